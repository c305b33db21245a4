// gm against its peers' own code on PyPI: diffusers' schedulers on the Gaussian-mixture oracle, with the same
// process, the same time grid and the same exact model (tests/data/diffusers_samplers.py runs diffusers).

#include "helpers.hpp"

#include <gm/data/features.hpp>
#include <gm/data/gaussian_mixture.hpp>
#include <gm/io/npy.hpp>
#include <gm/process/linear.hpp>
#include <gm/process/vp.hpp>
#include <gm/sampler/all.hpp>
#include <gm/train/coupling.hpp>
#include <gm/train/flow_map.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using gm::test::f64;
using gm::test::max_abs;

TEST_CASE("gm's DDIM, DPM-Solver++(2M), UniPC and flow-matching Euler equal diffusers' schedulers on the oracle" * gm::test::own_process) {
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

TEST_CASE("gm's k-diffusion samplers equal k-diffusion's own on the oracle, on k-diffusion's sigmas" * gm::test::own_process) {
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

TEST_CASE("gm's couplings equal POT's on the same costs: ot.emd's assignment, ot.sinkhorn's plans in both of gm's regimes" * gm::test::own_process) {
  // POT (PythonOT/POT): ot.emd is the network simplex torchcfm's exact OTPlanSampler calls; ot.sinkhorn its
  // entropic one (method 'sinkhorn', the plain iteration; 'sinkhorn_log' where the kernel would underflow).
  const auto dir = gm::test::fresh_dir("pot");
  std::filesystem::create_directories(dir);
  auto gen = gm::make_generator(31);
  const int64_t n = 200;
  auto data = 3 * torch::randn({n, 2}, gen, f64()), noise = torch::randn({n, 2}, gen, f64());
  const auto cost = gm::squared_distances(data, noise);
  const auto ties = torch::randint(0, 4, {n, n}, gen, f64());
  // One noise point far out: the cost spans thousands of eps (gm's log domain) while most of it is ordinary.
  auto far = noise.clone();
  far[0][0] = 40.0;
  const auto wide = gm::squared_distances(data, far);
  gm::io::write_npy(dir / "cost.npy", cost);
  gm::io::write_npy(dir / "wide.npy", wide);
  gm::io::write_npy(dir / "ties.npy", ties);
  auto span = [](const torch::Tensor& c, double reg) { return (c.max() - c.min()).item<double>() / (reg * c.mean().item<double>()); };
  REQUIRE(span(cost, 0.1) < 200);  // gm's plain iteration
  REQUIRE(span(wide, 0.1) > 200);  // gm's log domain
  const std::string script = R"(import sys, numpy as np, ot
d = sys.argv[1]
M, W, T = np.load(d + '/cost.npy'), np.load(d + '/wide.npy'), np.load(d + '/ties.npy')
a = ot.unif(M.shape[0])
np.save(d + '/emd.npy', ot.emd(a, a, M))
np.save(d + '/emd_ties.npy', ot.emd(a, a, T))
np.save(d + '/sk_plain.npy', ot.sinkhorn(a, a, M, 0.1 * M.mean(), method='sinkhorn', numItermax=20000, stopThr=1e-13))
np.save(d + '/sk_log.npy', ot.sinkhorn(a, a, W, 0.1 * W.mean(), method='sinkhorn_log', numItermax=20000, stopThr=1e-13))
)";
  REQUIRE(gm::test::run_python(dir, "pot.py", script, dir.string()));
  // The exact plan of a uniform batch is a permutation (times 1/n): gm's assignment is that permutation.
  const auto emd = gm::data::read_npy(dir / "emd.npy");
  const auto perm = gm::min_cost_assignment(cost);
  CHECK(torch::equal(std::get<1>(emd.max(1)), perm));
  CHECK(max_abs(emd.amax(1), torch::full({n}, 1.0 / n, f64())) < 1e-15);
  // With ties the optimum is not unique: the same total cost.
  const auto tperm = gm::min_cost_assignment(ties);
  const double gm_total = ties.gather(1, tperm.unsqueeze(1)).sum().item<double>() / n;
  CHECK(gm_total == doctest::Approx((gm::data::read_npy(dir / "emd_ties.npy") * ties).sum().item<double>()).epsilon(1e-12));
  // Sinkhorn, run to convergence on both sides: the same plan.
  const auto plain = gm::sinkhorn_plan(cost, 0.1, 20000, 1e-14), log_domain = gm::sinkhorn_plan(wide, 0.1, 20000, 1e-14);
  CHECK(max_abs(plain, gm::data::read_npy(dir / "sk_plain.npy")) < 1e-8 / n);
  CHECK(max_abs(log_domain, gm::data::read_npy(dir / "sk_log.npy")) < 1e-8 / n);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gm's Gaussian paths are torchcfm's ConditionalFlowMatcher(sigma) on the same tensors, time reversed" * gm::test::own_process) {
  // torchcfm runs from its source x0 (here gm's noise) at t = 0 to its target x1 (gm's data) at t = 1, so
  // its t is gm's 1 - t and its conditional flow x1 - x0 gm's velocity with the sign turned.
  const auto dir = gm::test::fresh_dir("torchcfm_paths");
  std::filesystem::create_directories(dir);
  auto gen = gm::make_generator(41);
  const int64_t n = 64;
  auto data = torch::randn({n, 3}, gen, f64()), noise = torch::randn({n, 3}, gen, f64());
  auto t = torch::rand({n}, gen, f64());
  gm::io::write_npy(dir / "data.npy", data);
  gm::io::write_npy(dir / "noise.npy", noise);
  gm::io::write_npy(dir / "t.npy", t);
  const std::string script = R"(import sys, numpy as np, torch
from torchcfm.conditional_flow_matching import ConditionalFlowMatcher
d = sys.argv[1]
data, noise, t = (torch.from_numpy(np.load(d + f)) for f in ('/data.npy', '/noise.npy', '/t.npy'))
torch.manual_seed(0)
tt, xt, ut, eps = ConditionalFlowMatcher(sigma=0.3).sample_location_and_conditional_flow(noise, data, 1 - t, return_noise=True)
for name, a in (('xt', xt), ('ut', ut), ('eps', eps)): np.save(d + '/' + name + '.npy', a.numpy())
)";
  REQUIRE(gm::test::run_python(dir, "cfm.py", script, dir.string()));
  const auto xt = gm::data::read_npy(dir / "xt.npy"), ut = gm::data::read_npy(dir / "ut.npy"), z = gm::data::read_npy(dir / "eps.npy");
  const gm::Interpolant<gm::Linear> ip;
  CHECK(max_abs(ip.sample(data, noise, t) + 0.3 * z, xt) < 1e-14);
  // The loss of a model u(x, t) = 0.5 x + t against torchcfm's target on torchcfm's point.
  auto u = [](const torch::Tensor& x, const torch::Tensor& tt) { return 0.5 * x + tt.unsqueeze(1); };
  const gm::GaussianPath path(gm::GaussianPath::Options().sigma_min(0.3));
  const auto reference = (u(xt, t) + ut).pow(2).mean(1);
  CHECK(max_abs(path.loss(u, data, noise, t, ip, 0, z), reference) < 1e-13);
  std::filesystem::remove_all(dir);
}

TEST_CASE("gm's plans are torchcfm's OTPlanSampler's on the same batch: exact, sinkhorn at an absolute reg, and its draws" * gm::test::own_process) {
  // torchcfm's OTPlanSampler.get_map (POT's ot.emd, or ot.sinkhorn at reg in the cost's units) on the same
  // x0, x1; gm's ExactOTCoupling's permutation is the support of its exact plan, gm's SinkhornCoupling with
  // relative(false) its sinkhorn plan.  sample_map draws pairs from the plan with replacement: gm's
  // draw_from_plan draws from the same distribution (frequencies within 5 standard errors).
  const auto dir = gm::test::fresh_dir("torchcfm_plans");
  std::filesystem::create_directories(dir);
  auto gen = gm::make_generator(52);
  const int64_t n = 96;
  auto x0 = 2 * torch::randn({n, 2}, gen, f64()), x1 = torch::randn({n, 2}, gen, f64());
  gm::io::write_npy(dir / "x0.npy", x0);
  gm::io::write_npy(dir / "x1.npy", x1);
  const std::string script = R"(import sys, numpy as np, torch
from torchcfm.optimal_transport import OTPlanSampler
d = sys.argv[1]
x0, x1 = torch.from_numpy(np.load(d + '/x0.npy')), torch.from_numpy(np.load(d + '/x1.npy'))
np.save(d + '/exact.npy', OTPlanSampler(method='exact').get_map(x0, x1))
s = OTPlanSampler(method='sinkhorn', reg=0.5, num_threads=1)
import functools, ot
s.ot_fn = functools.partial(ot.sinkhorn, reg=0.5, numItermax=20000, stopThr=1e-13)
np.save(d + '/sinkhorn.npy', s.get_map(x0, x1))
)";
  REQUIRE(gm::test::run_python(dir, "plans.py", script, dir.string()));
  const auto exact = gm::data::read_npy(dir / "exact.npy"), sinkhorn = gm::data::read_npy(dir / "sinkhorn.npy");
  const auto perm = gm::ExactOTCoupling{}.pair(x0, x1, gm::make_generator(0));
  CHECK(torch::equal(std::get<1>(exact.max(1)), perm));
  const gm::SinkhornCoupling sk(gm::SinkhornCoupling::Options().reg(0.5).relative(false).iters(20000));
  const auto plan = gm::sinkhorn_plan(gm::squared_distances(x0, x1), 0.5 / gm::squared_distances(x0, x1).mean().item<double>(),
                                      20000, 1e-14);
  CHECK(max_abs(plan, sinkhorn) < 1e-8 / n);
  CHECK(max_abs(sk.plan(x0, x1), sinkhorn) < 1e-6 / n);  // the coupling's own stop (1e-9 on the marginals)
  // Draws: a small plan, many pairs, each cell's frequency within 5 standard errors of its mass.
  const auto small = sinkhorn.slice(0, 0, 4).slice(1, 0, 4) / sinkhorn.slice(0, 0, 4).slice(1, 0, 4).sum();
  const int64_t draws = 200000;
  const auto d = gm::draw_from_plan(small, draws, gm::make_generator(5));
  const auto counts = torch::bincount(d.rows * 4 + d.cols, {}, 16).to(torch::kFloat64) / draws;
  const auto p = small.reshape({-1});
  CHECK(((counts - p).abs() / (p * (1 - p) / draws).sqrt()).max().item<double>() < 5);
  std::filesystem::remove_all(dir);
}
