// Samplers: convergence orders on a closed-form Gaussian flow, agreement with an RK4 reference on the
// mixture oracle, DDIM = DPM-Solver++(1), SDE marginals, Dormand-Prince tolerance, grids and the driver.
#include "helpers.hpp"

#include <gm/sampler.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

using gm::test::f64;
using gm::test::contains;
using gm::test::error_of;
using gm::test::max_abs;

namespace {

// The oracle as a model predicting in P.
template <class P, class I>
auto oracle_field(const gm::GaussianMixture& g, const I& ip) {
  return gm::Field(ip, gm::Predict<P>{},
                   [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<P>(x, t, ip); });
}

// A single Gaussian N(mu, s^2 I) in 2-D: the probability-flow ODE is linear and solvable exactly.
gm::GaussianMixture gaussian() {
  return gm::GaussianMixture(torch::tensor({1.0}, f64()), torch::tensor({{1.0, -0.5}}, f64()),
                             torch::tensor({0.5}, f64()));
}
// Its exact ODE solution from x at t = 1 to t: x(t) = alpha_t mu + sqrt(v_t / v_1) (x - alpha_1 mu).
template <class I>
torch::Tensor gaussian_flow(const torch::Tensor& x1, double t, const I& ip) {
  auto mu = torch::tensor({1.0, -0.5}, f64());
  auto c1 = gm::detail::coefs(ip, 1.0), ct = gm::detail::coefs(ip, t);
  const double v1 = c1.alpha * c1.alpha * 0.25 + c1.sigma * c1.sigma;
  const double vt = ct.alpha * ct.alpha * 0.25 + ct.sigma * ct.sigma;
  return ct.alpha * mu + std::sqrt(vt / v1) * (x1 - c1.alpha * mu);
}

// The order to expect: UniPC's corrector raises its predictor's order by one at no extra evaluation.
template <class S>
double expected_order() {
  if constexpr (std::is_same_v<S, gm::UniPC<2>> || std::is_same_v<S, gm::UniPC<3>>) {
    return S::order + 1;
  } else if constexpr (std::is_same_v<S, gm::DPMSolverPP3MRef>) {
    return 2;  // the reference code's halved D2 term
  } else {
    return S::order;
  }
}
// Step counts inside each method's asymptotic range and above float64 round-off.
template <class S>
int64_t first_steps() {
  if constexpr (std::is_same_v<typename S::category, gm::multistep_tag>) {
    return expected_order<S>() >= 4 ? 128 : 64;  // multistep warm-up needs more steps to fade
  } else {
    return S::order >= 4 ? 8 : 16;
  }
}

template <class S>
std::string sampler_name() {
  return std::string(S::name);
}

}  // namespace

TEST_CASE_TEMPLATE("deterministic samplers converge at their order on a Gaussian flow", S, gm::EulerSampler,
                   gm::MidpointSampler, gm::HeunSampler, gm::RK4Sampler, gm::DDIMSampler, gm::DPMSolverPP2M,
                   gm::DPMSolverPP3M, gm::DPMSolverPP3MRef, gm::UniPC<2>, gm::UniPC<3>) {
  // VP from t = 1 to 0.05 on a grid uniform in log-SNR; error at the end against the exact solution.
  gm::Interpolant<gm::VP> ip;
  auto g = gaussian();
  auto field = oracle_field<gm::Velocity>(g, ip);
  auto x1 = torch::randn({64, 2}, f64());
  const double t_end = 0.05;
  auto exact = gaussian_flow(x1, t_end, ip);
  const int64_t n0 = first_steps<S>();
  std::vector<double> errs;
  for (int64_t n : {n0, 2 * n0, 4 * n0}) {
    auto grid = gm::LogSnrGrid().nodes(n, t_end, ip);
    auto x = gm::integrate(S{}, field, x1, grid);
    errs.push_back((x - exact).norm(2, 1).mean().template item<double>());
  }
  const double p1 = std::log2(errs[0] / errs[1]), p2 = std::log2(errs[1] / errs[2]);
  MESSAGE(sampler_name<S>() << ": errors " << errs[0] << ", " << errs[1] << ", " << errs[2] << "; orders " << p1
                            << ", " << p2);
  CHECK(p2 == doctest::Approx(expected_order<S>()).epsilon(0.2 / expected_order<S>()));
}

TEST_CASE_TEMPLATE("samplers agree with an RK4 reference on the mixture oracle" * gm::test::own_process, S, gm::Linear, gm::Trig, gm::VP,
                   gm::VE, gm::LearnedSchedule) {
  torch::NoGradGuard ng;  // the learned schedule's coefficients would otherwise record a graph through every step
  gm::Interpolant<S> ip;
  auto g = gm::GaussianMixture::from_toml(gm::test::source_dir() / "configs/mixtures/ring8.toml");
  auto field = oracle_field<gm::Velocity>(g, ip);
  const double t_end = 1e-3;
  auto x1 = torch::randn({128, 2}, f64()) * gm::detail::coefs(ip, 1.0).sigma;
  auto ref = gm::integrate(gm::RK4Sampler{}, field, x1, gm::UniformGrid().nodes(2000, t_end, ip));
  auto err = [&](const auto& sampler, int64_t steps, auto grid) {
    auto x = gm::integrate(sampler, field, x1, grid.nodes(steps, t_end, ip));
    return (x - ref).norm(2, 1).mean().template item<double>();
  };
  const double scale = ref.norm(2, 1).mean().template item<double>();  // ~4 for ring8
  INFO("schedule " << S::name);
  CHECK(err(gm::EulerSampler{}, 400, gm::UniformGrid{}) < 0.05 * scale);
  CHECK(err(gm::MidpointSampler{}, 200, gm::UniformGrid{}) < 2e-3 * scale);
  CHECK(err(gm::HeunSampler{}, 200, gm::UniformGrid{}) < 2e-3 * scale);
  CHECK(err(gm::RK4Sampler{}, 100, gm::UniformGrid{}) < 1e-4 * scale);
  CHECK(err(gm::DDIMSampler{}, 400, gm::LogSnrGrid{}) < 0.05 * scale);
  CHECK(err(gm::DPMSolverPP2M{}, 100, gm::LogSnrGrid{}) < 2e-3 * scale);
  CHECK(err(gm::DPMSolverPP3M{}, 100, gm::LogSnrGrid{}) < 2e-3 * scale);
  CHECK(err(gm::UniPC<2>{}, 100, gm::LogSnrGrid{}) < 2e-3 * scale);
  CHECK(err(gm::UniPC<3>{}, 100, gm::LogSnrGrid{}) < 2e-3 * scale);
  CHECK(err(gm::DopriSampler(gm::DopriSampler::Options().rtol(1e-6).atol(1e-6)), 1, gm::UniformGrid{}) <
        1e-4 * scale);
}

TEST_CASE_TEMPLATE("DDIM with eta = 0 is DPM-Solver++ of order 1, which is Euler in e^lambda", S, gm::VP, gm::Linear,
                   gm::VE) {
  gm::Interpolant<S> ip;
  auto g = gm::GaussianMixture::from_toml(gm::test::source_dir() / "configs/mixtures/ring8.toml");
  auto field = oracle_field<gm::Data>(g, ip);
  auto x1 = torch::randn({64, 2}, f64()) * gm::detail::coefs(ip, 1.0).sigma;
  auto grid = gm::UniformGrid().nodes(25, 1e-2, ip);
  auto ddim = gm::integrate(gm::DDIMSampler{}, field, x1, grid);
  auto dpm1 = gm::integrate(gm::DPMSolverPP<1>{}, field, x1, grid);
  // Euler on d(x/sigma)/d(e^lambda) = E[x0 | x], written out here.
  auto y = x1.clone();
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    auto a = gm::detail::coefs(ip, grid[i]), b = gm::detail::coefs(ip, grid[i + 1]);
    auto d = g.denoise(y, torch::full({y.size(0)}, grid[i], f64()), ip);
    y = b.sigma * (y / a.sigma + (std::exp(b.lambda) - std::exp(a.lambda)) * d);
  }
  CHECK(max_abs(ddim, dpm1) < 1e-10);
  CHECK(max_abs(ddim, y) < 1e-10);
}

TEST_CASE_TEMPLATE("SDE samplers reach the right marginal mean and variance" * gm::test::own_process, S, gm::EulerMaruyamaSampler,
                   gm::PCSampler, gm::DDPMSampler) {
  // Data N(1, 0.5^2) in 1-D, VP; at t_end the marginal is N(alpha mu, alpha^2 s^2 + sigma^2).
  gm::Interpolant<gm::VP> ip;
  auto g = gm::GaussianMixture(torch::tensor({1.0}, f64()), torch::tensor({{1.0}}, f64()), torch::tensor({0.5}, f64()));
  auto field = oracle_field<gm::Noise>(g, ip);
  const int64_t n = 20000;
  const double t_end = 1e-3;
  auto gen = gm::make_generator(3);
  auto x1 = torch::randn({n, 1}, gen, f64());
  S sampler;
  if constexpr (std::is_same_v<S, gm::PCSampler>) sampler = gm::PCSampler(gm::PCSampler::Options().snr(0.05));
  auto x = gm::integrate(sampler, field, x1, gm::UniformGrid().nodes(500, t_end, ip), gm::NoObserver{}, gen);
  auto c = gm::detail::coefs(ip, t_end);
  const double mean = c.alpha, var = c.alpha * c.alpha * 0.25 + c.sigma * c.sigma;
  // Five standard errors of the sample mean and variance, plus 0.01 for the time discretisation.
  const double sd = std::sqrt(var);
  CHECK(std::abs(x.mean().template item<double>() - mean) < 5 * sd / std::sqrt(double(n)) + 0.01);
  CHECK(std::abs(x.var().template item<double>() - var) < 5 * var * std::sqrt(2.0 / n) + 0.01);
  // Seeded: the same generator seed gives the same samples, another seed others.
  auto run = [&](uint64_t seed) {
    auto gs = gm::make_generator(seed);
    auto xs = torch::randn({256, 1}, gs, f64());
    return gm::integrate(sampler, field, xs, gm::UniformGrid().nodes(50, t_end, ip), gm::NoObserver{}, gs);
  };
  CHECK(torch::equal(run(7), run(7)));
  CHECK_FALSE(torch::equal(run(7), run(8)));
}

TEST_CASE("SDE samplers start from t = 1 on a process with alpha(1) = 0" * gm::test::own_process) {
  gm::Interpolant<gm::Linear> ip;
  auto g = gm::GaussianMixture(torch::tensor({1.0}, f64()), torch::tensor({{1.0}}, f64()), torch::tensor({0.5}, f64()));
  auto field = oracle_field<gm::Velocity>(g, ip);
  const int64_t n = 20000;
  auto gen = gm::make_generator(5);
  auto x = gm::integrate(gm::EulerMaruyamaSampler{}, field, torch::randn({n, 1}, gen, f64()),
                         gm::UniformGrid().nodes(1000, 1e-3, ip), gm::NoObserver{}, gen);
  CHECK(torch::isfinite(x).all().item<bool>());
  CHECK(std::abs(x.mean().item<double>() - 0.999) < 5 * 0.5 / std::sqrt(double(n)) + 0.02);
  CHECK(std::abs(x.std().item<double>() - 0.5) < 0.03);
}

TEST_CASE("Dormand-Prince meets its tolerance and reports its NFE") {
  gm::Interpolant<gm::VP> ip;
  auto g = gaussian();
  auto field = oracle_field<gm::Velocity>(g, ip);
  auto x1 = torch::randn({32, 2}, f64());
  auto exact = gaussian_flow(x1, 0.05, ip);
  int64_t last_nfe = 0;
  for (double tol : {1e-4, 1e-6, 1e-8}) {
    field.reset_counters();
    int64_t accepted = 0;
    auto x = gm::integrate(gm::DopriSampler(gm::DopriSampler::Options().rtol(tol).atol(tol)), field, x1,
                           std::vector<double>{1.0, 0.05}, [&](const gm::StepEvent&) { ++accepted; });
    const double err = (x - exact).abs().max().item<double>();
    MESSAGE("dopri5 tol " << tol << ": max error " << err << ", " << accepted << " steps, NFE " << field.nfe());
    // Each accepted step keeps its (RMS) local error below atol + rtol |x|, and the flow here is
    // contractive, so the global error is at most the sum over the steps.
    const double scale = tol + tol * std::max(x1.abs().max().item<double>(), exact.abs().max().item<double>());
    CHECK(err < accepted * scale);
    CHECK(field.nfe() % 6 == 1);  // one initial evaluation, then 6 per tried step (first same as last)
    CHECK(field.nfe() > last_nfe);  // tighter tolerance costs more evaluations
    last_nfe = field.nfe();
  }
  // A budget too small for the tolerance is an error, not a silent wrong answer.
  CHECK_THROWS_AS(gm::integrate(gm::DopriSampler(gm::DopriSampler::Options().rtol(1e-10).atol(1e-10).max_nfe(30)),
                                field, x1, std::vector<double>{1.0, 0.05}),
                  gm::Error);
}

TEST_CASE_TEMPLATE("time grids start at 1, end at t_end and decrease", S, gm::Linear, gm::VP, gm::VE, gm::EDM) {
  gm::Interpolant<S> ip;
  auto check = [&](const std::vector<double>& g, int64_t n, double t_end) {
    REQUIRE(g.size() == static_cast<size_t>(n + 1));
    CHECK(g.front() == 1.0);
    CHECK(g.back() == t_end);
    for (size_t i = 1; i < g.size(); ++i) CHECK(g[i] < g[i - 1]);
  };
  for (int64_t n : {1, 2, 10, 50}) {
    check(gm::UniformGrid().nodes(n, 1e-3, ip), n, 1e-3);
    check(gm::LogSnrGrid().nodes(n, 1e-3, ip), n, 1e-3);
    check(gm::EDMGrid().nodes(n, 1e-3, ip), n, 1e-3);
    check(gm::QuadraticGrid().nodes(n, 1e-3, ip), n, 1e-3);
  }
  // The log-SNR grid is uniform in lambda, away from a floored first node.
  auto g = gm::LogSnrGrid().nodes(10, 1e-2, ip);
  std::vector<double> lam;
  for (double t : g) lam.push_back(gm::detail::coefs(ip, t).lambda);
  for (size_t i = 2; i + 1 < lam.size(); ++i) CHECK(lam[i + 1] - lam[i] == doctest::Approx(lam[i] - lam[i - 1]));
  CHECK_THROWS_AS(gm::UniformGrid().nodes(0, 1e-3, ip), gm::Error);
  CHECK_THROWS_AS(gm::UniformGrid().nodes(10, 1.5, ip), gm::Error);
}

TEST_CASE("EDM's rho grid on the EDM process is the uniform grid") {
  gm::Interpolant<gm::EDM> ip;
  auto a = gm::EDMGrid().nodes(18, 0.0, ip);
  auto b = gm::UniformGrid().nodes(18, 0.0, ip);
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-9));
}

TEST_CASE("the driver counts NFE, records trajectories, stops early and takes grid times exactly") {
  gm::Interpolant<gm::Linear> ip;
  auto g = gaussian();
  auto field = oracle_field<gm::Velocity>(g, ip);
  auto x1 = torch::randn({8, 2}, f64());
  auto grid = gm::UniformGrid().nodes(10, 0.0, ip);
  gm::TrajectoryRecorder rec;
  gm::integrate(gm::RK4Sampler{}, field, x1, grid, rec);
  CHECK(field.nfe() == 40);
  REQUIRE(rec.times.size() == 10);
  for (size_t i = 0; i < 10; ++i) CHECK(rec.times[i] == grid[i + 1]);
  // Heun takes Euler on the final step to sigma = 0: 2 * 9 + 1 evaluations.
  field.reset_counters();
  gm::integrate(gm::HeunSampler{}, field, x1, grid);
  CHECK(field.nfe() == 19);
  // An observer returning true stops the run.
  field.reset_counters();
  int seen = 0;
  gm::integrate(gm::EulerSampler{}, field, x1, grid, [&](const gm::StepEvent& e) { return ++seen == 3; });
  CHECK(seen == 3);
  CHECK(field.nfe() == 3);
  CHECK(field.model_seconds() >= 0);
  CHECK_THROWS_AS(gm::integrate(gm::EulerSampler{}, field, x1, std::vector<double>{1.0}), gm::Error);
  CHECK_THROWS_AS(gm::integrate(gm::EulerSampler{}, field, x1, std::vector<double>{0.5, 1.0}), gm::Error);
}

TEST_CASE("every parameterisation feeds every sampler") {
  gm::Interpolant<gm::VP> ip;
  auto g = gaussian();
  auto x1 = torch::randn({16, 2}, f64());
  auto grid = gm::LogSnrGrid().nodes(20, 1e-2, ip);
  auto data_field = oracle_field<gm::Data>(g, ip);
  auto ref = gm::integrate(gm::DPMSolverPP2M{}, data_field, x1, grid);
  gm::for_each_type<gm::type_list<gm::Velocity, gm::Noise, gm::Score, gm::EDMPrecond>>([&]<class P>() {
    auto field = oracle_field<P>(g, ip);
    INFO(P::name);
    CHECK(max_abs(gm::integrate(gm::DPMSolverPP2M{}, field, x1, grid), ref) < 1e-9);
  });
}

TEST_CASE("classifier-free guidance combines conditional and unconditional outputs") {
  gm::Interpolant<gm::Linear> ip;
  // A toy conditional model: velocity pulling towards the conditioning value.
  auto model = [](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& c) { return x - c; };
  auto cond = torch::full({4, 1}, 2.0, f64()), null = torch::zeros({4, 1}, f64());
  auto x = torch::randn({4, 1}, f64());
  gm::Field f1(ip, gm::Velocity{}, model, gm::Guidance{cond, null, 1.0});
  gm::Field f3(ip, gm::Velocity{}, model, gm::Guidance{cond, null, 3.0});
  gm::Field f0(ip, gm::Velocity{}, model, gm::Guidance{cond, null, 0.0});
  CHECK(max_abs(f1.output(x, 0.5), x - 2) < 1e-15);
  CHECK(max_abs(f0.output(x, 0.5), x) < 1e-15);
  CHECK(max_abs(f3.output(x, 0.5), x + 3 * ((x - 2) - x)) < 1e-14);
  // A guidance interval [0.2, 0.7]: inside, the guided output in one evaluation; outside, the conditional one.
  gm::Field fi(ip, gm::Velocity{}, model, gm::Guidance{cond, null, 3.0, 0.2, 0.7});
  CHECK(max_abs(fi.output(x, 0.5), x + 3 * ((x - 2) - x)) < 1e-14);
  CHECK(max_abs(fi.output(x, 0.9), x - 2) < 1e-15);
  CHECK(max_abs(fi.output(x, 0.1), x - 2) < 1e-15);
  CHECK(fi.nfe() == 3);
}

TEST_CASE("the guidance interval on Heun: judged once per step at its start, as REPA's sampler does, or per evaluation") {
  gm::Interpolant<gm::Linear> ip;
  auto model = [](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& c) { return x - c; };
  auto cond = torch::full({4, 1}, 2.0, f64()), null = torch::zeros({4, 1}, f64());
  auto x1 = torch::randn({4, 1}, gm::make_generator(9), f64());
  const std::vector<double> grid{1.0, 0.6, 0.2};
  const double scale = 3.0, low = 0.0, high = 0.7;
  // REPA (sihyun-yu/REPA, generate.py, euler_sampler with heun): each step's guidance is decided from t_cur,
  // `cfg_scale > 1.0 and t_cur <= guidance_high and t_cur >= guidance_low`, for the predictor at t_cur and
  // the corrector at t_next alike.  Written out here on the same tensors.
  auto velocity = [&](const torch::Tensor& x, bool guided) {
    auto c = model(x, {}, cond), u = model(x, {}, null);
    return guided ? u + scale * (c - u) : c;
  };
  auto heun = [&](bool per_step) {
    auto x = x1.clone();
    for (size_t i = 0; i + 1 < grid.size(); ++i) {
      const double t = grid[i], tn = grid[i + 1];
      auto inside = [&](double s) { return s >= low && s <= high; };
      auto d = velocity(x, inside(t));
      auto xe = x + (tn - t) * d;
      auto d2 = velocity(xe, inside(per_step ? t : tn));
      x = x + (tn - t) * 0.5 * (d + d2);
    }
    return x;
  };
  for (bool per_step : {true, false}) {
    gm::Guidance g{cond, null, scale, low, high};
    g.per_step = per_step;
    gm::Field field(ip, gm::Velocity{}, model, g);
    auto out = gm::integrate(gm::HeunSampler{}, field, x1.clone(), grid);
    CAPTURE(per_step);
    CHECK(field.nfe() == 4);
    CHECK(max_abs(out, heun(per_step)) < 1e-14);
  }
  // The two rules differ here: the first step starts at 1.0, outside [0, 0.7], and its corrector at 0.6 is inside.
  CHECK(max_abs(heun(true), heun(false)) > 1e-3);
  // Outside gm::integrate, a field judges each evaluation by its own time.
  gm::Field lone(ip, gm::Velocity{}, model, gm::Guidance{cond, null, scale, low, high});
  CHECK(max_abs(lone.output(x1, 0.6), velocity(x1, true)) < 1e-14);
}

TEST_CASE("CFG rescale pulls each guided sample's spread back to the conditional output's") {
  gm::Interpolant<gm::Linear> ip;
  auto model = [](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& c) { return x * c; };  // c scales
  auto cond = torch::full({3, 1}, 2.0, f64()), null = torch::full({3, 1}, 0.5, f64());
  auto x = torch::randn({3, 5}, gm::make_generator(4), f64());
  auto guided = [&](double phi) {
    gm::Field f(ip, gm::Velocity{}, model, gm::Guidance{cond, null, 4.0, 0.0, 1.0, phi});
    return f.output(x, 0.5);
  };
  auto plain = guided(0), full = guided(1), half = guided(0.5);
  auto out_cond = x * 2;
  CHECK(max_abs(plain, x * 0.5 + 4 * (x * 2 - x * 0.5)) < 1e-13);
  CHECK(max_abs(full.std(1), out_cond.std(1)) < 1e-12);             // phi = 1: the conditional output's spread
  CHECK(max_abs(half, 0.5 * full + 0.5 * plain) < 1e-13);            // and phi blends linearly
}

namespace {
// Three components: x[0] = 2 picks the two at (2, -2) and (2, 2) with equal odds; (-2, 0) is 8 sd away.
gm::GaussianMixture three_blobs() {
  return gm::GaussianMixture(torch::tensor({0.5, 0.25, 0.25}, f64()), torch::tensor({{-2.0, 0.0}, {2.0, -2.0}, {2.0, 2.0}}, f64()),
                             torch::tensor({0.5, 0.5, 0.5}, f64()));
}
// A sampler for n samples: the plain one, or inpainting with the first coordinate known to be 2.
template <class S>
S make_sampler(int64_t) {
  return S{};
}
template <>
gm::Inpaint<gm::DDPMSampler> make_sampler<gm::Inpaint<gm::DDPMSampler>>(int64_t n) {
  return {{}, torch::tensor({2.0, 0.0}, f64()).expand({n, 2}), torch::tensor({1.0, 0.0}, f64())};
}
// Inpaint x[1] given x[0] = 2 with sampler S on process I; returns the generated column.
template <class S, class I>
torch::Tensor inpaint_column(const S& sampler, int64_t steps, uint64_t seed) {
  I ip;
  auto field = oracle_field<gm::Data>(three_blobs(), ip);
  const int64_t n = 4000;
  auto gen = gm::make_generator(seed);
  const double s1 = gm::detail::coefs(ip, 1.0).sigma;
  auto x1 = s1 * torch::randn({n, 2}, gen, f64());
  auto known = torch::tensor({2.0, 0.0}, f64()).expand({n, 2});
  auto mask = torch::tensor({1.0, 0.0}, f64());
  gm::Inpaint<S> inpaint(sampler, known, mask);
  auto x = gm::integrate(inpaint, field, x1, gm::UniformGrid().nodes(steps, 1e-3, ip), gm::NoObserver{}, gen);
  CHECK(max_abs(x.select(1, 0), torch::full({n}, 2.0, f64())) < 0.01);  // the known coordinate ends at its value
  return x.select(1, 1);
}
}  // namespace

TEST_CASE_TEMPLATE("inpainting by replacement samples a mixture conditioned on one coordinate" * gm::test::own_process, S, gm::EulerMaruyamaSampler,
                   gm::DDPMSampler, gm::HeunSampler, gm::DPMSolverPP2M) {
  // Exact conditional of x[1] given x[0] = 2: N(-2, 0.25) and N(2, 0.25) with weights 1/2 each.  Measured
  // (200 steps, 4000 samples): the odds within 0.02 of 1/2 and the spread within 0.02 of 0.5 for every
  // sampler and process; the modes within 0.065 of +-2 for the SDE samplers, and pulled in to +-1.86 ..
  // 1.89 by the ODE samplers (replacement is not exact conditioning; the SDE's noise corrects more of it).
  constexpr bool sde = std::is_same_v<typename S::category, gm::sde_tag>;
  auto check = [](const torch::Tensor& y) {
    const double up = (y > 0).to(torch::kFloat64).mean().template item<double>();
    CHECK(std::abs(up - 0.5) < 0.04);  // 5 standard errors
    for (const auto& mode : {y.masked_select(y > 0), -y.masked_select(y <= 0)}) {
      CHECK(std::abs(mode.mean().template item<double>() - 2.0) < (sde ? 0.1 : 0.2));
      CHECK(std::abs(mode.std().template item<double>() - 0.5) < 0.04);
    }
  };
  check(inpaint_column<S, gm::Interpolant<gm::Linear>>(S{}, 200, 1));
  check(inpaint_column<S, gm::Interpolant<gm::VP>>(S{}, 200, 2));
  check(inpaint_column<S, gm::Interpolant<gm::VE>>(S{}, 200, 3));
}

TEST_CASE_TEMPLATE("with per-sample seeds a sample does not depend on its batch", S, gm::EulerMaruyamaSampler,
                   gm::DDPMSampler, gm::Inpaint<gm::DDPMSampler>, gm::EulerAncestralSampler, gm::DPMPP2MSDESampler,
                   gm::EDMStochasticSampler) {
  gm::Interpolant<gm::VP> ip;
  auto field = oracle_field<gm::Data>(three_blobs(), ip);
  auto seeds = gm::sample_seeds(11, 0, 6);
  auto draw = [&](int64_t first, int64_t n) {
    std::vector<uint64_t> s(seeds.begin() + first, seeds.begin() + first + n);
    auto x1 = gm::row_randn(s, 0, {2}, f64());
    return gm::integrate(make_sampler<S>(n), field, x1, gm::UniformGrid().nodes(20, 1e-3, ip), gm::NoObserver{}, {}, &s);
  };
  auto all = draw(0, 6);
  auto parts = torch::cat({draw(0, 2), draw(2, 3), draw(5, 1)});
  CHECK(max_abs(all, parts) == 0);
  CHECK(gm::sample_seeds(11, 2, 1)[0] == seeds[2]);
  CHECK(gm::sample_seeds(12, 2, 1)[0] != seeds[2]);
  CHECK(contains(error_of([&] { gm::integrate(gm::DDPMSampler{}, field, torch::zeros({3, 2}, f64()),
                                              gm::UniformGrid().nodes(4, 1e-3, ip), gm::NoObserver{}, {}, &seeds); }),
                 "6 row seeds for 3 samples"));
}

namespace {
// Data-predicting models on VP: the exact three-blob mixture (sd 0.5), and the same blobs at sd 0.8 as
// autoguidance's weak model.
auto blob_models(const gm::Interpolant<gm::VP>& ip) {
  const auto g = three_blobs();
  const auto blurry = gm::GaussianMixture(g.weights(), g.means(), torch::full({3}, 0.8, f64()));
  auto main = [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<gm::Data>(x, t, ip); };
  auto weak = [blurry, ip](const torch::Tensor& x, const torch::Tensor& t) { return blurry.predict<gm::Data>(x, t, ip); };
  return std::pair{main, weak};
}
}  // namespace

TEST_CASE("autoguidance: a scale of 1 is the main model under every sampler, and the combination is exact") {
  gm::Interpolant<gm::VP> ip;
  const auto models = blob_models(ip);
  auto main = models.first;
  auto weak = models.second;
  auto seeds = gm::sample_seeds(5, 0, 8);
  auto x1 = gm::row_randn(seeds, 0, {2}, f64());
  gm::for_each_type<gm::AllSamplers>([&]<class S>() {
    INFO(S::name);
    gm::Field plain(ip, gm::Predict<gm::Data>{}, main);
    gm::Field guided(ip, gm::Predict<gm::Data>{}, gm::AutoGuided{main, weak, 1.0});
    const auto grid = gm::UniformGrid().nodes(12, 1e-3, ip);
    auto a = gm::integrate(S{}, plain, x1, grid, gm::NoObserver{}, {}, &seeds);
    auto b = gm::integrate(S{}, guided, x1, grid, gm::NoObserver{}, {}, &seeds);
    CHECK(max_abs(a, b) == 0);
  });
  gm::Field guided(ip, gm::Predict<gm::Data>{}, gm::AutoGuided{main, weak, 2.5});
  auto x = torch::randn({5, 2}, f64());
  auto tt = torch::full({5}, 0.4, f64());
  CHECK(max_abs(guided.output(x, 0.4), weak(x, tt) + 2.5 * (main(x, tt) - weak(x, tt))) < 1e-14);
}

TEST_CASE("autoguidance by a blurrier model sharpens the modes and keeps their odds") {
  // The main model is the exact three-blob mixture (sd 0.5); the weak one the same blobs at sd 0.8.
  // Guided at w = 2, samples gather closer to their modes, and each mode keeps its share (unlike
  // classifier-free guidance, autoguidance is not meant to trade variety for quality).
  gm::Interpolant<gm::VP> ip;
  const auto g = three_blobs();
  const auto models = blob_models(ip);
  auto main = models.first;
  auto weak = models.second;
  torch::manual_seed(3);
  auto x1 = torch::randn({4000, 2}, f64());
  const auto grid = gm::UniformGrid().nodes(100, 1e-3, ip);
  gm::Field plain(ip, gm::Predict<gm::Data>{}, main);
  gm::Field guided(ip, gm::Predict<gm::Data>{}, gm::AutoGuided{main, weak, 2.0});
  auto a = gm::integrate(gm::HeunSampler{}, plain, x1, grid);
  auto b = gm::integrate(gm::HeunSampler{}, guided, x1, grid);
  auto spread = [&](const torch::Tensor& x) {  // mean distance to the nearest mode, and each mode's share
    auto d = torch::cdist(x, g.means());
    auto [dist, idx] = d.min(1);
    return std::pair{dist.mean().item<double>(), torch::bincount(idx, {}, 3).to(torch::kFloat64) / x.size(0)};
  };
  auto [da, sa] = spread(a);
  auto [db, sb] = spread(b);
  MESSAGE("mean distance to the nearest mode: main " << da << ", autoguided " << db << "; shares " << sa[0].item<double>()
          << "/" << sa[1].item<double>() << "/" << sa[2].item<double>() << " vs " << sb[0].item<double>() << "/"
          << sb[1].item<double>() << "/" << sb[2].item<double>());
  CHECK(da == doctest::Approx(0.5 * std::sqrt(M_PI / 2)).epsilon(0.05));  // 2-D Gaussian: s sqrt(pi / 2)
  CHECK(db < 0.85 * da);
  CHECK(max_abs(sa, sb) < 0.03);
}

TEST_CASE("an optimised grid beats the fixed grids it starts from, also on other draws, and saves and loads" * gm::test::own_process) {
  gm::Interpolant<gm::Linear> ip;
  auto g = gm::GaussianMixture::from_toml(gm::test::source_dir() / "configs/mixtures/ring8.toml");
  auto field = oracle_field<gm::Velocity>(g, ip);
  auto draws = [&](uint64_t seed, int64_t n) {
    auto gen = gm::make_generator(seed);
    auto x1 = torch::randn({n, 2}, gen, f64());
    return std::pair{x1, gm::integrate(gm::RK4Sampler{}, field, x1, gm::UniformGrid().nodes(2000, 1e-3, ip))};
  };
  auto [x_train, ref_train] = draws(1, 300);
  auto [x_test, ref_test] = draws(2, 1000);
  const int64_t steps = 4;
  const std::vector<std::vector<double>> starts{gm::UniformGrid().nodes(steps, 1e-3, ip), gm::LogSnrGrid().nodes(steps, 1e-3, ip),
                                                gm::EDMGrid().nodes(steps, 1e-3, ip)};
  auto err = [&](const std::vector<double>& grid, const torch::Tensor& x1, const torch::Tensor& ref) {
    return (gm::integrate(gm::HeunSampler{}, field, x1, grid) - ref).norm(2, 1).mean().item<double>();
  };
  auto grid = gm::optimize_grid(gm::HeunSampler{}, field, ip, x_train, ref_train, steps, 1e-3, starts,
                                gm::GridSearchOptions().max_evals(400));
  const auto& n = grid.stored;
  REQUIRE(n.size() == steps + 1);
  CHECK(n.front() == 1.0);
  CHECK(n.back() == 1e-3);
  for (size_t i = 1; i < n.size(); ++i) CHECK(n[i] < n[i - 1]);
  double best_train = 1e300, best_test = 1e300;
  for (const auto& s : starts) best_train = std::min(best_train, err(s, x_train, ref_train)), best_test = std::min(best_test, err(s, x_test, ref_test));
  const double opt_train = err(n, x_train, ref_train), opt_test = err(n, x_test, ref_test);
  MESSAGE("Heun, 4 steps on ring8: best fixed grid " << best_test << ", optimised " << opt_test << " (held-out draws)");
  CHECK(opt_train <= best_train);
  CHECK(opt_test < 0.9 * best_test);  // measured 0.021 against 0.026

  const auto file = std::filesystem::path(gm::test::fresh_dir("grid")) / "g.toml";
  std::filesystem::create_directories(file.parent_path());
  grid.meta = {{"sampler", "heun"}};
  grid.save(file);
  const auto back = gm::OptimizedGrid::load(file);
  CHECK(back.stored == n);
  CHECK(back.meta.at("sampler") == "heun");
  CHECK(back.nodes(steps, 1e-3, ip) == n);
  CHECK(contains(error_of([&] { back.nodes(steps + 1, 1e-3, ip); }), "this optimized grid has 4 steps"));
  std::ofstream(file) << "nodes = [1.0, 0.5, 0.7, 0.001]\n";
  CHECK(contains(error_of([&] { gm::OptimizedGrid::load(file); }), "decrease strictly"));
  std::filesystem::remove_all(file.parent_path());
}

// --- k-diffusion's samplers and EDM's stochastic sampler (gm/sampler/kdiffusion.hpp) ---------------------

TEST_CASE("k-diffusion's samplers without noise converge at their order on a Gaussian flow, on VP and Linear") {
  // eta = 0 (and S_churn = 0) leaves each sampler's deterministic solver: Euler ancestral is DDIM (1), DPM2,
  // DPM2 ancestral, DPM++ 2S, DPM++ SDE and 2M SDE are second order, 3M SDE too (k-diffusion's halved D2
  // term), LMS fourth, EDM's sampler Heun (2).
  const auto still = gm::AncestralOptions().eta(0);
  auto check = [&](const auto& sampler, double order, auto ip, int64_t n0) {
    using S = std::decay_t<decltype(sampler)>;
    auto g = gaussian();
    auto field = oracle_field<gm::Velocity>(g, ip);
    auto x1 = torch::randn({64, 2}, gm::make_generator(21), f64());
    const double t_end = 0.05;
    auto exact = gaussian_flow(x1, t_end, ip);
    std::vector<double> errs;
    for (int64_t n : {n0, 2 * n0, 4 * n0}) {
      auto x = gm::integrate(sampler, field, x1, gm::LogSnrGrid().nodes(n, t_end, ip));
      errs.push_back((x - exact).norm(2, 1).mean().template item<double>());
    }
    const double p = std::log2(errs[1] / errs[2]);
    MESSAGE(S::name << " on " << decltype(ip)::name << ": errors " << errs[0] << ", " << errs[1] << ", " << errs[2]
                    << "; order " << std::log2(errs[0] / errs[1]) << ", " << p);
    CHECK(p == doctest::Approx(order).epsilon(0.2 / order));
  };
  for (auto run : {0, 1}) {
    auto go = [&](auto ip) {
      check(gm::EulerAncestralSampler(still), 1, ip, 32);
      check(gm::DPM2Sampler{}, 2, ip, 16);
      check(gm::DPM2AncestralSampler(still), 2, ip, 16);
      check(gm::DPMPP2SAncestralSampler(still), 2, ip, 16);
      check(gm::DPMPPSDESampler(gm::DPMPPSDESampler::Options().eta(0)), 2, ip, 16);
      check(gm::DPMPP2MSDESampler(gm::DPMPP2MSDESampler::Options().eta(0)), 2, ip, 32);
      check(gm::DPMPP3MSDESampler(gm::DPMPP3MSDESampler::Options().eta(0)), 2, ip, 32);
      check(gm::LMSSampler{}, 4, ip, 64);
      check(gm::EDMStochasticSampler(gm::EDMStochasticSampler::Options().churn(0)), 2, ip, 16);
    };
    if (run == 0) go(gm::Interpolant<gm::VP>{});
    else go(gm::Interpolant<gm::Linear>{});  // from alpha(1) = 0: the first state at s = e^10
  }
}

TEST_CASE_TEMPLATE("k-diffusion's ancestral and SDE samplers reach the right marginal mean and variance" * gm::test::own_process, S,
                   gm::EulerAncestralSampler, gm::DPM2AncestralSampler, gm::DPMPP2SAncestralSampler, gm::DPMPPSDESampler,
                   gm::DPMPP2MSDESampler, gm::DPMPP3MSDESampler, gm::EDMStochasticSampler) {
  // Data N(1, 0.5^2) in 1-D; at t_end the marginal is N(alpha mu, alpha^2 s^2 + sigma^2), on VP and on Linear.
  auto g = gm::GaussianMixture(torch::tensor({1.0}, f64()), torch::tensor({{1.0}}, f64()), torch::tensor({0.5}, f64()));
  auto run = [&](auto ip) {
    auto field = oracle_field<gm::Velocity>(g, ip);
    const int64_t n = 16000;
    const double t_end = 1e-3;
    auto gen = gm::make_generator(3);
    const double s1 = gm::detail::coefs(ip, 1.0).sigma, a1 = gm::detail::coefs(ip, 1.0).alpha;
    auto x1 = a1 * 1.0 + std::sqrt(a1 * a1 * 0.25 + s1 * s1) * torch::randn({n, 1}, gen, f64());
    // Euler ancestral (= DDPM's ancestral step) is first order in the variance too: more steps.
    const int64_t steps = std::is_same_v<S, gm::EulerAncestralSampler> ? 400 : 100;
    auto x = gm::integrate(S{}, field, x1, gm::LogSnrGrid().nodes(steps, t_end, ip), gm::NoObserver{}, gen);
    auto c = gm::detail::coefs(ip, t_end);
    const double mean = c.alpha, var = c.alpha * c.alpha * 0.25 + c.sigma * c.sigma;
    const double m = x.mean().template item<double>(), v = x.var().template item<double>();
    MESSAGE(S::name << " on " << decltype(ip)::name << ": mean " << m << " (exact " << mean << "), variance " << v
                    << " (exact " << var << ")");
    CHECK(std::abs(m - mean) < 5 * std::sqrt(var / n) + 0.01);
    CHECK(std::abs(v - var) < 5 * var * std::sqrt(2.0 / n) + 0.01);
    return x;
  };
  run(gm::Interpolant<gm::VP>{});
  run(gm::Interpolant<gm::Linear>{});
  // The noise is the sampler's: another seed gives other samples, the same seed the same.
  gm::Interpolant<gm::VP> ip;
  auto field = oracle_field<gm::Velocity>(g, ip);
  auto draw = [&](uint64_t seed) {
    auto gs = gm::make_generator(seed);
    return gm::integrate(S{}, field, torch::randn({64, 1}, gs, f64()), gm::LogSnrGrid().nodes(20, 1e-3, ip),
                         gm::NoObserver{}, gs);
  };
  CHECK(torch::equal(draw(7), draw(7)));
  CHECK_FALSE(torch::equal(draw(7), draw(8)));
}

TEST_CASE("the Brownian tree: standard normal increments, additive over intervals, independent on disjoint ones") {
  auto like = torch::zeros({20000}, f64());
  gm::detail::BrownianTree w(std::log(1e-3), std::log(100.0), 9, nullptr, like);
  auto inc = w.increment(0.5, 2.0);
  CHECK(std::abs(inc.mean().item<double>()) < 5 / std::sqrt(20000.0));
  CHECK(std::abs(inc.var().item<double>() - 1) < 5 * std::sqrt(2.0 / 20000));
  // W(c) - W(a) = (W(b) - W(a)) + (W(c) - W(b)), so increments refine one path.
  const double a = std::log(0.5), b = std::log(0.9), c = std::log(2.0);
  CHECK(max_abs(w.at(c) - w.at(a), (w.at(b) - w.at(a)) + (w.at(c) - w.at(b))) < 1e-12);
  auto other = w.increment(2.0, 7.0);
  const double corr = (inc * other).mean().item<double>();
  CHECK(std::abs(corr) < 5 / std::sqrt(20000.0));
  gm::detail::BrownianTree same(std::log(1e-3), std::log(100.0), 9, nullptr, like);
  CHECK(torch::equal(same.increment(0.5, 2.0), inc));
  gm::detail::BrownianTree another(std::log(1e-3), std::log(100.0), 10, nullptr, like);
  CHECK_FALSE(torch::equal(another.increment(0.5, 2.0), inc));
}

TEST_CASE("LMS weights integrate the Lagrange basis exactly: constant and cubic derivatives") {
  const std::vector<double> nodes{3.0, 5.0, 8.0, 12.0};
  const auto w = gm::detail::lms_coefficients(nodes, 2.0);
  // d(s) = s^3: the integral from 3 to 2 of s^3 is (16 - 81) / 4.
  double cubic = 0, constant = 0;
  for (size_t j = 0; j < nodes.size(); ++j) cubic += w[j] * std::pow(nodes[j], 3), constant += w[j];
  CHECK(cubic == doctest::Approx((16.0 - 81.0) / 4).epsilon(1e-12));
  CHECK(constant == doctest::Approx(-1.0).epsilon(1e-12));
}

TEST_CASE("beta spacing, SD3's time shift and the grids by name") {
  using gm::detail::incomplete_beta;
  CHECK(incomplete_beta(0.5, 0.6, 0.6) == doctest::Approx(0.5).epsilon(1e-12));  // symmetric
  CHECK(incomplete_beta(0.3, 1, 1) == doctest::Approx(0.3).epsilon(1e-12));       // uniform
  // I_x(2, 3) = 6 x^2 - 8 x^3 + 3 x^4.
  CHECK(incomplete_beta(0.4, 2, 3) == doctest::Approx(6 * 0.16 - 8 * 0.064 + 3 * 0.0256).epsilon(1e-12));
  gm::Interpolant<gm::Linear> ip;
  const auto beta = gm::BetaGrid().nodes(10, 1e-3, ip);
  REQUIRE(beta.size() == 11);
  CHECK(beta.front() == 1.0);
  CHECK(beta.back() == 1e-3);
  for (size_t i = 1; i < beta.size(); ++i) CHECK(beta[i] < beta[i - 1]);
  CHECK(beta[5] == doctest::Approx(0.5 * (1 + 1e-3)).epsilon(1e-9));               // the median of Beta(a, a)
  CHECK(beta[0] - beta[1] < beta[4] - beta[5]);                                      // dense at the ends
  // Shift 3: 0.5 -> 0.75, the ends kept.
  const auto shifted = gm::shift_times(gm::UniformGrid().nodes(2, 0.0, ip), 3.0);
  CHECK(shifted == std::vector<double>{1.0, 0.75, 0.0});
  CHECK(gm::resolution_shift(512.0 * 512.0) == doctest::Approx(2.0));
  CHECK(gm::grid_nodes("karras", 8, 1e-3, ip) == gm::EDMGrid().nodes(8, 1e-3, ip));
  CHECK(gm::grid_nodes("exponential", 8, 1e-3, ip) == gm::LogSnrGrid().nodes(8, 1e-3, ip));
  CHECK(gm::grid_nodes("beta", 10, 1e-3, ip) == beta);
  CHECK(contains(error_of([&] { gm::grid_nodes("cosine", 8, 1e-3, ip); }), "unknown time grid 'cosine'"));
  CHECK(contains(error_of([&] { gm::shift_times({1.0, 0.5, 0.0}, -1); }), "time shift must be positive"));
}

TEST_CASE("ScheduleTransform: a velocity model of Linear, sampled along VP, is VP's exact field and marginals") {
  const auto g = three_blobs();
  gm::Interpolant<gm::Linear> lin;
  gm::Interpolant<gm::VP> vp;
  auto velocity = [g, lin](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<gm::Velocity>(x, t, lin); };
  gm::ScheduleTransform to_vp{lin, vp, gm::Predict<gm::Velocity>{}, velocity};
  // The transformed data estimate equals VP's own exact one, at every t (t = 1 included).
  auto x = torch::randn({32, 2}, gm::make_generator(8), f64());
  for (double t : {1.0, 0.9, 0.5, 0.1, 1e-3}) {
    auto tt = torch::full({32}, t, f64());
    CHECK(max_abs(to_vp(x, tt), g.predict<gm::Data>(x, tt, vp)) < 1e-10);
  }
  // Sampled along VP with DPM-Solver++: the same samples as VP's exact field, and VP's exact marginal at t_end.
  gm::Field field(vp, gm::Predict<gm::Data>{}, to_vp);
  gm::Field exact(vp, gm::Predict<gm::Data>{}, [g, vp](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<gm::Data>(x, t, vp); });
  auto gen = gm::make_generator(9);
  const double t_end = 0.02;
  auto x1 = vp.sample(g.sample(4000, gen), torch::randn({4000, 2}, gen, f64()), torch::tensor(1.0, f64()));
  const auto grid = gm::LogSnrGrid().nodes(200, t_end, vp);
  auto a = gm::integrate(gm::DPMSolverPP2M{}, field, x1, grid);
  auto b = gm::integrate(gm::DPMSolverPP2M{}, exact, x1, grid);
  CHECK(max_abs(a, b) < 1e-8);
  // p_t_end of VP: the mixture with means alpha mu and variances alpha^2 s^2 + sigma^2.
  const auto c = gm::detail::coefs(vp, t_end);
  const double mean0 = c.alpha * (0.5 * -2.0 + 0.25 * 2.0 + 0.25 * 2.0);
  CHECK(std::abs(a.select(1, 0).mean().item<double>() - mean0) < 5 * 2.1 / std::sqrt(4000.0));
  const double held = g.log_prob(a / c.alpha).mean().item<double>(), fresh = g.log_prob(g.sample(4000, gen)).mean().item<double>();
  MESSAGE("ScheduleTransform along VP: mean log p of the samples " << held << ", of exact draws " << fresh);
  CHECK(std::abs(held - fresh) < 0.1);
}

TEST_CASE("SiT's SDE sampler keeps the marginals for every diffusion coefficient, on VP and Linear" * gm::test::own_process) {
  auto g = gm::GaussianMixture(torch::tensor({1.0}, f64()), torch::tensor({{1.0}}, f64()), torch::tensor({0.5}, f64()));
  auto run = [&](const std::string& form, auto ip) {
    auto field = oracle_field<gm::Velocity>(g, ip);
    const int64_t n = 16000;
    const double t_end = 1e-3;
    auto gen = gm::make_generator(13);
    const auto c1 = gm::detail::coefs(ip, 1.0);
    auto x1 = c1.alpha + std::sqrt(c1.alpha * c1.alpha * 0.25 + c1.sigma * c1.sigma) * torch::randn({n, 1}, gen, f64());
    gm::SiTSDESampler sampler(gm::SiTSDESampler::Options().diffusion(form));
    auto x = gm::integrate(sampler, field, x1, gm::UniformGrid().nodes(400, t_end, ip), gm::NoObserver{}, gen);
    auto c = gm::detail::coefs(ip, t_end);
    const double mean = c.alpha, var = c.alpha * c.alpha * 0.25 + c.sigma * c.sigma;
    const double m = x.mean().template item<double>(), v = x.var().template item<double>();
    MESSAGE("sit_sde " << form << " on " << decltype(ip)::name << ": mean " << m << " (exact " << mean << "), variance "
                       << v << " (exact " << var << ")");
    CHECK(std::abs(m - mean) < 5 * std::sqrt(var / n) + 0.01);
    CHECK(std::abs(v - var) < 5 * var * std::sqrt(2.0 / n) + 0.01);
  };
  for (const char* form : {"sigma", "constant", "sbdm", "linear", "decreasing", "increasing-decreasing"}) {
    run(form, gm::Interpolant<gm::VP>{});
    run(form, gm::Interpolant<gm::Linear>{});
  }
  // The last step: tweedie returns the posterior mean, euler the probability-flow step; bad options are refused.
  gm::Interpolant<gm::VP> ip;
  auto field = oracle_field<gm::Velocity>(g, ip);
  auto x = torch::randn({8, 1}, gm::make_generator(2), f64());
  const std::vector<double> one_step{0.3, 0.1};
  auto tweedie = gm::integrate(gm::SiTSDESampler(gm::SiTSDESampler::Options().last_step("tweedie")), field, x, one_step);
  CHECK(max_abs(tweedie, g.predict<gm::Data>(x, torch::full({8}, 0.3, f64()), ip)) < 1e-12);
  auto euler = gm::integrate(gm::SiTSDESampler(gm::SiTSDESampler::Options().last_step("euler")), field, x, one_step);
  CHECK(max_abs(euler, gm::integrate(gm::EulerSampler{}, field, x, one_step)) < 1e-12);
  CHECK_THROWS_WITH(gm::SiTSDESampler(gm::SiTSDESampler::Options().diffusion("cosine")), doctest::Contains("sit_sde's diffusion"));
}
