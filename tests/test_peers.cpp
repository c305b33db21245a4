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
  auto nodes = as_nodes(gm::data::read_npy(dir / "ddim_nodes.npy"));
  gm::Field noise_field(vp, gm::Predict<gm::Noise>{},
                        [g, vp](const torch::Tensor& x, const torch::Tensor& s) { return g.predict<gm::Noise>(x, s, vp); });
  auto ours = gm::integrate(gm::DDIMSampler{}, noise_field, x_vp, nodes);
  auto theirs = gm::data::read_npy(dir / "ddim_out.npy");
  const double ddim = max_abs(ours, theirs), scale = theirs.abs().max().item<double>();
  MESSAGE("DDIM, 25 steps of diffusers' leading spacing on gm's VP: max |gm - diffusers| = " << ddim << " (samples up to " << scale << ")");
  CHECK(nodes.size() == 26);
  CHECK(ddim < 1e-4 * scale);  // diffusers keeps alphas_cumprod in float32

  // DPM-Solver++(2M) and UniPC-2 (bh2) with diffusers' defaults: linspace spacing, first order at the last step.
  auto multistep = [&](const char* name, const auto& sampler) {
    const auto n = as_nodes(gm::data::read_npy(dir / (std::string(name) + "_nodes.npy")));
    auto mine = gm::integrate(sampler, noise_field, x_vp, n);
    auto ref = gm::data::read_npy(dir / (std::string(name) + "_out.npy"));
    const double diff = max_abs(mine, ref);
    MESSAGE(name << ", 25 steps of diffusers' linspace spacing on gm's VP: max |gm - diffusers| = " << diff);
    CHECK(n.size() == 26);
    CHECK(diff < 1e-4 * ref.abs().max().item<double>());
  };
  multistep("dpmpp2m", gm::DPMSolverPP2M{});
  multistep("unipc", gm::UniPC<2>{});

  nodes = as_nodes(gm::data::read_npy(dir / "euler_nodes.npy"));
  gm::Field velocity_field(lin, gm::Predict<gm::Velocity>{},
                           [g, lin](const torch::Tensor& x, const torch::Tensor& s) { return g.predict<gm::Velocity>(x, s, lin); });
  ours = gm::integrate(gm::EulerSampler{}, velocity_field, x_lin, nodes);
  theirs = gm::data::read_npy(dir / "euler_out.npy");
  const double euler = max_abs(ours, theirs);
  MESSAGE("flow-matching Euler, 25 steps on diffusers' sigmas: max |gm - diffusers| = " << euler);
  CHECK(nodes.size() == 26);
  CHECK(euler < 1e-4 * theirs.abs().max().item<double>());  // diffusers steps in float32
  std::filesystem::remove_all(dir);
}
