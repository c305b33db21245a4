// gm against its peers' own code on PyPI: diffusers' schedulers on the Gaussian-mixture oracle, with the same
// process, the same time grid and the same exact model (tests/data/diffusers_samplers.py runs diffusers).

#include "helpers.hpp"

#include <gm/data/features.hpp>
#include <gm/data/gaussian_mixture.hpp>
#include <gm/io/npy.hpp>
#include <gm/process/linear.hpp>
#include <gm/process/vp.hpp>
#include <gm/sampler/all.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using gm::test::f64;
using gm::test::max_abs;

TEST_CASE("gm's DDIM, DPM-Solver++(2M), UniPC and flow-matching Euler equal diffusers' schedulers on the oracle") {
  const auto dir = gm::test::fresh_dir("diffusers");
  std::filesystem::create_directories(dir);
  const auto mixture = gm::test::source_dir() / "configs/mixtures/ring8.toml";
  auto g = gm::GaussianMixture::from_toml(mixture);
  gm::Interpolant<gm::VP> vp;
  gm::Interpolant<gm::Linear> lin;
  auto t = torch::arange(1, 1001, f64()) / 1000.0;
  gm::io::write_npy(dir / "vp_alpha2.npy", vp.alpha(t).pow(2).contiguous());
  auto gen = gm::make_generator(11);
  auto x_vp = torch::randn({256, 2}, gen, f64()), x_lin = torch::randn({256, 2}, gen, f64());
  gm::io::write_npy(dir / "vp_x1.npy", x_vp);
  gm::io::write_npy(dir / "linear_x1.npy", x_lin);
  const std::string cmd = std::string(gm::test::python()) + " " + (gm::test::source_dir() / "tests/data/diffusers_samplers.py").string() + " " +
                          mixture.string() + " " + dir.string() + " 25 > " + (dir / "log.txt").string() + " 2>&1";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "diffusers_samplers.py failed: see " << (dir / "log.txt").string());

  auto as_nodes = [](const torch::Tensor& t) {
    auto c = t.flatten().to(torch::kFloat64).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  gm::Field noise_field(vp, gm::Predict<gm::Noise>{},
                        [g, vp](const torch::Tensor& x, const torch::Tensor& s) { return g.predict<gm::Noise>(x, s, vp); });
  gm::Field velocity_field(lin, gm::Predict<gm::Velocity>{},
                           [g, lin](const torch::Tensor& x, const torch::Tensor& s) { return g.predict<gm::Velocity>(x, s, lin); });
  // gm's sampler from the same points on the nodes diffusers stepped through; diffusers keeps its schedule in
  // float32 (alphas_cumprod, sigmas), so the two agree to float32 rounding, not to float64's.
  auto compare = [&](const char* name, const auto& sampler, auto& field, const torch::Tensor& x1) {
    const auto nodes = as_nodes(gm::data::read_npy(dir / (std::string(name) + "_nodes.npy")));
    auto mine = gm::integrate(sampler, field, x1, nodes);
    auto ref = gm::data::read_npy(dir / (std::string(name) + "_out.npy"));
    const double diff = max_abs(mine, ref), scale = ref.abs().max().item<double>();
    MESSAGE(std::string(name) << ", 25 steps: max |gm - diffusers| = " << diff << " (samples up to " << scale << ")");
    CHECK(nodes.size() == 26);
    CHECK(diff < 1e-4 * scale);
  };
  compare("ddim", gm::DDIMSampler{}, noise_field, x_vp);         // leading spacing
  compare("dpmpp2m", gm::DPMSolverPP2M{}, noise_field, x_vp);    // linspace spacing, first order at the end
  compare("unipc", gm::UniPC<2>{}, noise_field, x_vp);           // bh2, the same
  compare("euler", gm::EulerSampler{}, velocity_field, x_lin);   // FlowMatchEulerDiscreteScheduler's sigmas
  std::filesystem::remove_all(dir);
}

namespace {
// Karras et al.'s own view: alpha = 1, sigma = 80 t, so gm's s = sigma and t = 0 is sigma = 0, where
// k-diffusion's sigmas end.
struct KarrasVE {
  static constexpr std::string_view name = "karras_ve";
  torch::Tensor alpha(const torch::Tensor& t) const { return torch::ones_like(t); }
  torch::Tensor sigma(const torch::Tensor& t) const { return 80 * t; }
};
}  // namespace

TEST_CASE("gm's k-diffusion samplers equal k-diffusion's own on the oracle, on k-diffusion's sigmas") {
  const auto dir = gm::test::fresh_dir("kdiffusion");
  std::filesystem::create_directories(dir);
  const auto mixture = gm::test::source_dir() / "configs/mixtures/ring8.toml";
  auto g = gm::GaussianMixture::from_toml(mixture);
  gm::Interpolant<KarrasVE> ip;
  auto x1 = 80 * torch::randn({256, 2}, gm::make_generator(12), f64());
  gm::io::write_npy(dir / "x1.npy", x1);
  const int64_t steps = 12;
  const std::string cmd = std::string(gm::test::python()) + " " + (gm::test::source_dir() / "tests/data/kdiffusion_samplers.py").string() +
                          " " + mixture.string() + " " + dir.string() + " " + std::to_string(steps) + " > " +
                          (dir / "log.txt").string() + " 2>&1";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "kdiffusion_samplers.py failed: see " << (dir / "log.txt").string());
  // gm's grid: the times of k-diffusion's sigmas (t = sigma / 80, the last 0).
  auto sig = gm::data::read_npy(dir / "sigmas.npy").to(torch::kFloat64).contiguous();
  std::vector<double> nodes;
  for (int64_t i = 0; i < sig.numel(); ++i) nodes.push_back(sig[i].item<double>() / 80);
  nodes.front() = 1.0;
  REQUIRE(nodes.size() == static_cast<size_t>(steps + 1));
  REQUIRE(nodes.back() == 0.0);
  gm::Field field(ip, gm::Predict<gm::Data>{},
                  [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<gm::Data>(x, t, ip); });
  const auto quiet = gm::AncestralOptions().s_noise(0);
  auto compare = [&](const auto& sampler) {
    using S = std::decay_t<decltype(sampler)>;
    auto mine = gm::integrate(sampler, field, x1, nodes, gm::NoObserver{}, gm::make_generator(1));
    auto ref = gm::data::read_npy(dir / (std::string(S::name) + "_out.npy"));
    const double diff = max_abs(mine, ref), scale = ref.abs().max().item<double>();
    MESSAGE(S::name << ", " << steps << " steps: max |gm - k-diffusion| = " << diff << " (samples up to " << scale << ")");
    CHECK(diff < 1e-9 * scale);
  };
  compare(gm::EulerAncestralSampler(quiet));
  compare(gm::DPM2Sampler{});
  compare(gm::DPM2AncestralSampler(quiet));
  compare(gm::DPMPP2SAncestralSampler(quiet));
  compare(gm::DPMPPSDESampler(gm::DPMPPSDESampler::Options().s_noise(0)));
  compare(gm::DPMPP2MSDESampler(gm::DPMPP2MSDESampler::Options().s_noise(0)));
  compare(gm::DPMPP3MSDESampler(gm::DPMPP3MSDESampler::Options().s_noise(0)));
  compare(gm::LMSSampler{});
  compare(gm::EDMStochasticSampler(gm::EDMStochasticSampler::Options().s_noise(0)));
  std::filesystem::remove_all(dir);
}
