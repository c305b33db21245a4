// The Gaussian-mixture oracle: exact posterior quantities, marginal density, sampling, and its TOML file.
#include "helpers.hpp"

#include <gm/train/coupling.hpp>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <numbers>

#include <unistd.h>

using gm::test::f64;
using gm::test::max_abs;
using gm::test::max_rel;
using gm::test::contains;
using gm::test::error_of;

namespace {

std::filesystem::path source_dir() { return gm::test::source_dir(); }

gm::GaussianMixture ring8() { return gm::GaussianMixture::from_toml(source_dir() / "configs/mixtures/ring8.toml"); }

// A small asymmetric mixture in 3-D with unequal weights and stds.
gm::GaussianMixture lopsided() {
  auto w = torch::tensor({0.2, 0.5, 0.3}, f64());
  auto m = torch::tensor({1.0, -2.0, 0.5, -1.0, 0.0, 2.0, 3.0, 1.0, -1.0}, f64()).reshape({3, 3});
  auto s = torch::tensor({0.4, 1.0, 0.7}, f64());
  return gm::GaussianMixture(w, m, s);
}

// grad_x of log p_t by autograd.
template <class I>
torch::Tensor autograd_score(const gm::GaussianMixture& g, const torch::Tensor& x, const torch::Tensor& t,
                             const I& ip) {
  auto xx = x.detach().clone().requires_grad_(true);
  auto lp = g.log_prob(xx, t, ip).sum();
  return torch::autograd::grad({lp}, {xx})[0];
}

// The error message that loading `text` raises; fails the test if it loads.
std::string load_error(const std::string& text) {
  gm::test::TempFile f(text, "mixture");
  try {
    gm::GaussianMixture::from_toml(f.path);
  } catch (const gm::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(f.path.string()) != std::string::npos);  // names the file
    CHECK(msg.find('\n') == std::string::npos);            // on one line
    return msg;
  }
  FAIL("expected gm::Error for:\n" << text);
  return {};
}

}  // namespace

TEST_CASE_TEMPLATE("the oracle's score is the autograd gradient of its log-density", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto g = lopsided();
  auto x = 2 * torch::randn({32, 3}, f64());
  auto t = gm::test::interior_times(32);
  CHECK(max_rel(g.score(x, t, ip), autograd_score(g, x, t, ip)) < 1e-10);
  // Tweedie: E[x0 | x] = (x + sigma^2 score) / alpha.
  auto a = gm::detail::bcast(ip.alpha(t), x);
  auto s = gm::detail::bcast(ip.sigma(t), x);
  CHECK(max_rel(g.denoise(x, t, ip), (x + s * s * autograd_score(g, x, t, ip)) / a) < 1e-9);
}

TEST_CASE_TEMPLATE("the oracle's velocity is alpha' E[x0|x] + sigma' E[eps|x] and solves the continuity equation",
                   S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto g = lopsided();
  auto x = 2 * torch::randn({16, 3}, f64());
  auto t = gm::test::interior_times(16);
  auto e = g.estimate(x, t, ip);
  auto v = g.velocity(x, t, ip);
  CHECK(max_rel(v, gm::detail::bcast(ip.d_alpha(t), x) * e.data + gm::detail::bcast(ip.d_sigma(t), x) * e.noise) <
        1e-12);
  // E[eps | x] = (x - alpha E[x0 | x]) / sigma: the pair is consistent with x = alpha x0 + sigma eps.
  CHECK(max_rel(e.noise, (x - gm::detail::bcast(ip.alpha(t), x) * e.data) / gm::detail::bcast(ip.sigma(t), x)) <
        1e-9);
  // An independent check of v: d/dt log p_t(x) = -div v - v . grad log p_t (the continuity equation).
  auto tt = t.clone().requires_grad_(true);
  auto dlogp_dt = torch::autograd::grad({g.log_prob(x, tt, ip).sum()}, {tt})[0];
  auto xx = x.clone().requires_grad_(true);
  auto vx = g.velocity(xx, t, ip);
  torch::Tensor div = torch::zeros({16}, f64());
  for (int64_t d = 0; d < 3; ++d) {
    div = div + torch::autograd::grad({vx.select(1, d).sum()}, {xx}, {}, /*retain_graph=*/true)[0].select(1, d);
  }
  auto rhs = -div - (v * g.score(x, t, ip)).sum(1);
  CHECK(max_rel(dlogp_dt, rhs) < 1e-8);
}

TEST_CASE("the oracle matches the single-Gaussian closed form") {
  auto g = gm::GaussianMixture(torch::tensor({1.0}, f64()), torch::tensor({{1.0, -2.0}}, f64()),
                               torch::tensor({0.5}, f64()));
  gm::Interpolant<gm::Linear> ip;
  auto x = torch::randn({8, 2}, f64());
  auto t = torch::tensor(0.3, f64());
  const double a = 0.7, s = 0.3, v = a * a * 0.25 + s * s;
  auto mu = torch::tensor({1.0, -2.0}, f64());
  CHECK(max_rel(g.denoise(x, t, ip), mu + (a * 0.25 / v) * (x - a * mu)) < 1e-12);
  CHECK(max_rel(g.score(x, t, ip), -(x - a * mu) / v) < 1e-12);
  auto lp = -std::log(2 * M_PI * v) - 0.5 * (x - a * mu).pow(2).sum(1) / v;
  CHECK(max_rel(g.log_prob(x, t, ip), lp) < 1e-12);
}

TEST_CASE("the oracle's density integrates to one and its samples have the mixture's moments") {
  auto g = ring8();
  gm::Interpolant<gm::VP> ip;
  // Quadrature on a grid, at the data end and halfway.
  const int64_t m = 400;
  auto axis = torch::linspace(-8, 8, m, f64());
  auto grid = torch::stack(torch::meshgrid({axis, axis}, "ij"), -1).reshape({-1, 2});
  const double cell = std::pow(16.0 / (m - 1), 2);
  CHECK(g.log_prob(grid).exp().sum().item<double>() * cell == doctest::Approx(1).epsilon(1e-4));
  CHECK(g.log_prob(grid, torch::tensor(0.5, f64()), ip).exp().sum().item<double>() * cell ==
        doctest::Approx(1).epsilon(1e-4));
  // Samples: mean 0, E|x|^2 = 16 + 2 * 0.09.
  const int64_t n = 100000;
  auto x = g.sample(n, gm::make_generator(11));
  CHECK((x.sizes() == torch::IntArrayRef({n, 2})));
  CHECK(x.mean(0).abs().max().item<double>() < 5 * 4 / std::sqrt(2.0 * n) + 1e-3);
  CHECK(x.pow(2).sum(1).mean().item<double>() == doctest::Approx(16.18).epsilon(0.01));
  CHECK(torch::equal(x, g.sample(n, gm::make_generator(11))));
}

TEST_CASE("the oracle stands in for a network in any parameterisation and dtype") {
  auto g = ring8();
  gm::Interpolant<gm::Trig> ip;
  auto x = torch::randn({10, 2}, f64());
  auto t = gm::test::interior_times(10);
  gm::Predict<gm::Velocity> pv;
  auto v = g.predict<gm::Velocity>(x, t, ip);
  CHECK(max_rel(pv.convert<gm::Noise>(v, x, t, ip), g.noise(x, t, ip)) < 1e-10);
  CHECK(max_rel(pv.convert<gm::Score>(v, x, t, ip), g.score(x, t, ip)) < 1e-10);
  CHECK(max_rel(g.predict<gm::Data>(x, t, ip), g.denoise(x, t, ip)) < 1e-14);
  auto x32 = x.to(torch::kFloat32);
  auto v32 = g.velocity(x32, t.to(torch::kFloat32), ip);
  CHECK((v32.scalar_type() == torch::kFloat32));
  CHECK(max_rel(v32.to(torch::kFloat64), v) < 1e-4);
  // At t = 1 for Linear (alpha = 0) the posterior mean is the mixture mean, and stays finite.
  gm::Interpolant<gm::Linear> lin;
  auto d1 = g.denoise(x, torch::tensor(1.0, f64()), lin);
  CHECK(max_abs(d1, torch::zeros_like(d1)) < 1e-12);
}

TEST_CASE("ring8.toml is 8 equal modes on a circle of radius 4 with std 0.3") {
  auto g = ring8();
  CHECK(g.components() == 8);
  CHECK(g.dim() == 2);
  CHECK(max_abs(g.means().norm(2, 1), torch::full({8}, 4.0, f64())) < 1e-12);
  CHECK(max_abs(g.stds(), torch::full({8}, 0.3, f64())) == 0);
  CHECK(max_abs(g.weights(), torch::full({8}, 0.125, f64())) == 0);
}

TEST_CASE("a bad mixture file gives a one-line error naming the file and the key") {
  CHECK(load_error("weights = [1.0, 2.0\nmeans = [[0.0]]\n").find("TOML syntax error") != std::string::npos);
  CHECK(load_error("weights = [0.5, 0.5]\nmeans = [[0.0], [1.0]]\nstds = [1.0]\n").find("'stds'") !=
        std::string::npos);
  CHECK(load_error("weights = [0.5, 0.5]\nmeans = [[0.0]]\nstds = [1.0, 1.0]\n").find("'means'") !=
        std::string::npos);
  CHECK(load_error("weights = [0.5, 0.5]\nmeans = [[0.0, 1.0], [1.0]]\nstds = [1.0, 1.0]\n").find("'means'") !=
        std::string::npos);
  CHECK(load_error("weights = [0.5, 0.5]\nmeans = [[0.0], [1.0]]\nstds = [1.0, -0.3]\n").find("'stds'") !=
        std::string::npos);
  CHECK(load_error("weights = [-0.5, 0.5]\nmeans = [[0.0], [1.0]]\nstds = [1.0, 1.0]\n").find("'weights'") !=
        std::string::npos);
  CHECK(load_error("weights = [0.5, \"a\"]\nmeans = [[0.0], [1.0]]\nstds = [1.0, 1.0]\n").find("'weights'") !=
        std::string::npos);
  CHECK(load_error("means = [[0.0]]\nstds = [1.0]\n").find("'weights': missing") != std::string::npos);
  CHECK(load_error("weights = [1.0]\nmeans = [[0.0]]\nstds = [1.0]\nstd = [2.0]\n").find("'std': unknown key") !=
        std::string::npos);
  // The position is given as file:line:col.
  auto msg = load_error("weights = [0.5, 0.5]\nmeans = [[0.0], [1.0]]\nstds = [1.0, -0.3]\n");
  CHECK(msg.find(":3:") != std::string::npos);
  // A missing file.
  try {
    gm::GaussianMixture::from_toml("/nonexistent/mix.toml");
    FAIL("expected an error");
  } catch (const gm::Error& e) {
    CHECK(std::string(e.what()).find("/nonexistent/mix.toml: no such file") != std::string::npos);
  }
}

TEST_CASE("EM fits a mixture's weights, means and spreads back from its samples, and to_toml reads back") {
  const gm::GaussianMixture truth(torch::tensor({0.5, 0.3, 0.2}, torch::kFloat64),
                                  torch::tensor({{-3.0, 0.0}, {3.0, 1.0}, {0.0, 4.0}}, torch::kFloat64),
                                  torch::tensor({0.5, 0.8, 0.3}, torch::kFloat64));
  auto gen = gm::make_generator(4);
  const auto fitted = gm::GaussianMixture::fit(truth.sample(20000, gen), 3, 200, gen);
  const auto order = std::get<1>(fitted.means().select(1, 0).sort());  // by first coordinate: -3, 0, 3
  const auto means = fitted.means().index_select(0, order), stds = fitted.stds().index_select(0, order),
             weights = fitted.weights().index_select(0, order);
  CHECK(gm::test::max_abs(means, torch::tensor({{-3.0, 0.0}, {0.0, 4.0}, {3.0, 1.0}}, torch::kFloat64)) < 0.05);
  CHECK(gm::test::max_abs(stds, torch::tensor({0.5, 0.3, 0.8}, torch::kFloat64)) < 0.03);
  CHECK(gm::test::max_abs(weights, torch::tensor({0.5, 0.2, 0.3}, torch::kFloat64)) < 0.02);
  const auto back = gm::GaussianMixture::from_toml_text(fitted.to_toml(), "fitted.toml");
  CHECK(gm::test::max_abs(back.means(), fitted.means()) < 1e-15);
  CHECK(gm::test::max_abs(back.stds(), fitted.stds()) < 1e-15);
  CHECK(gm::test::max_abs(back.weights(), fitted.weights()) < 1e-15);
  CHECK_THROWS_AS(gm::GaussianMixture::fit(torch::zeros({2, 2}, torch::kFloat64), 3), gm::Error);
}

namespace {
// A VDM schedule in float64 whose shape is far from linear, so the tests see the learned part.
gm::Interpolant<gm::LearnedSchedule> curved_vdm(double gamma_min, double gamma_max) {
  gm::LearnedSchedule s(gm::MonotoneGammaOptions().features(32).gamma_min(gamma_min).gamma_max(gamma_max).seed(3));
  s.net->to(torch::kFloat64);
  torch::NoGradGuard ng;
  s.net->named_parameters()["w3"].mul_(300);  // sigmoid steps of height ~3 against the linear part's 1
  return gm::Interpolant<gm::LearnedSchedule>(s);
}
}  // namespace

TEST_CASE("VDM ELBO on Gaussian data with the exact denoiser matches its closed form, term by term" * gm::test::own_process) {
  const int64_t d = 3, n = 200000;
  const double s = 0.7;
  torch::NoGradGuard ng;
  gm::GaussianMixture g(torch::tensor({1.0}, f64()), torch::zeros({1, d}, f64()), torch::tensor({s}, f64()));
  auto ip = curved_vdm(-9, 4);
  const double g0 = ip.schedule().gamma(torch::zeros({1}, f64())).item<double>();
  const double g1 = ip.schedule().gamma(torch::ones({1}, f64())).item<double>();
  auto gen = gm::make_generator(7);
  auto x0 = g.sample(n, gen);
  auto t = gm::StratifiedTime(gm::StratifiedTime::Options().antithetic(true)).sample(n, ip, gen, f64());
  auto eps = torch::randn({n, d}, gen, f64()), eps0 = torch::randn({n, d}, gen, f64());
  const gm::VDMELBO elbo(gm::VDMELBO::Options().levels(0));
  const gm::Predict<gm::Noise> pred;
  auto xt = ip.sample(x0, eps, t);
  auto diffusion = elbo.weight(t, ip, pred) * (g.noise(xt, t, ip) - eps).pow(2).mean(1);  // nats per dimension
  auto mean_se = [&](const torch::Tensor& v) {
    return std::pair{v.mean().item<double>(), v.std().item<double>() / std::sqrt(static_cast<double>(v.numel()))};
  };
  // Diffusion term: 1/2 D [log(1 + s^2 e^-gamma_0) - log(1 + s^2 e^-gamma_1)] (per dimension: without D).
  const double diff_exact = 0.5 * (std::log1p(s * s * std::exp(-g0)) - std::log1p(s * s * std::exp(-g1)));
  auto [dm, dse] = mean_se(diffusion);
  MESSAGE("diffusion term " << dm << " +- " << dse << ", closed form " << diff_exact);
  CHECK(std::abs(dm - diff_exact) < 4 * dse);
  CHECK(std::abs(dm - diff_exact) < 0.01 * diff_exact);
  // Prior: 1/2 (alpha_1^2 s^2 + sigma_1^2 - log sigma_1^2 - 1); reconstruction: 1/2 (log(2 pi) + gamma_0 + 1).
  const double a1 = 1 / (1 + std::exp(g1)), s1 = 1 - a1;  // squares
  const double prior_exact = 0.5 * (a1 * s * s + s1 - std::log(s1) - 1);
  const double recon_exact = 0.5 * (std::log(2 * M_PI) + g0 + 1);
  auto [pm, pse] = mean_se(elbo.prior(x0, ip));
  auto [rm, rse] = mean_se(elbo.reconstruction(x0, eps0, ip));
  CHECK(std::abs(pm - prior_exact) < 4 * pse + 1e-12);
  CHECK(std::abs(rm - recon_exact) < 4 * rse);
  // The whole objective in bits per dimension, and the bound: it is above the exact entropy 1/2 log(2 pi e s^2).
  auto [om, ose] = mean_se(elbo.objective(diffusion, x0, eps0, ip, false));
  const double total = diff_exact + prior_exact + recon_exact, entropy = 0.5 * std::log(2 * M_PI * M_E * s * s);
  MESSAGE("ELBO " << om * std::numbers::ln2 << " nats/dim, closed form " << total << ", exact -log p " << entropy);
  CHECK(std::abs(om * std::numbers::ln2 - total) < 4 * ose * std::numbers::ln2);
  CHECK(total > entropy);
  CHECK(total - entropy < 0.01);  // tight: the decoder is sharp and q(z_1) is nearly N(0, I)
}

TEST_CASE("VDM ELBO with the exact denoiser is a bound on the mixture's exact log-likelihood, and a tight one" * gm::test::own_process) {
  gm::GaussianMixture g(torch::tensor({0.3, 0.7}, f64()), torch::tensor({{-1.0, 0.5}, {1.0, -0.5}}, f64()),
                        torch::tensor({0.6, 0.8}, f64()));
  auto ip = curved_vdm(-12, 6);
  const gm::VDMELBO elbo(gm::VDMELBO::Options().levels(0));
  // 32000 points, each with k times stratified over [0, 1] (t_j = (j + u) / k) and fresh noise per time,
  // in chunks.  The noise dominates what is left: one chunk's mean gap has a std of ~0.04 nats (measured over
  // 24 seeds: mean +0.002, std 0.026 for 4000 x 64), so the 8 together resolve it to ~0.014.
  const int64_t n = 4000, k = 32;
  torch::NoGradGuard ng;  // the schedule's weights require grad; keep no graphs
  auto gen = gm::make_generator(11);
  std::vector<torch::Tensor> gaps;
  for (int chunk = 0; chunk < 8; ++chunk) {
    auto x = g.sample(n, gen);
    auto x0 = x.repeat_interleave(k, 0);
    auto t = ((torch::arange(k, f64()).repeat({n}) + torch::rand({n}, gen, f64()).repeat_interleave(k)) / k).clamp(1e-6, 1);
    auto eps = torch::randn({n * k, 2}, gen, f64()), eps0 = torch::randn({n * k, 2}, gen, f64());
    auto xt = ip.sample(x0, eps, t);
    auto diffusion = elbo.weight(t, ip, gm::Predict<gm::Noise>{}) * (g.noise(xt, t, ip) - eps).pow(2).mean(1);
    auto bound = elbo.objective(diffusion, x0, eps0, ip, false) * (2 * std::numbers::ln2);  // -ELBO, nats per point
    gaps.push_back(bound.view({n, k}).mean(1) + g.log_prob(x));                            // -ELBO - (-log p)
  }
  auto gap = torch::cat(gaps);
  const double m = gap.mean().item<double>(), se = gap.std().item<double>() / std::sqrt(static_cast<double>(gap.numel()));
  MESSAGE("-ELBO - NLL = " << m << " +- " << se << " nats per point");
  CHECK(se < 0.02);
  CHECK(m > -3 * se);  // a bound
  CHECK(m < 0.06);     // and a tight one: what is left is mostly KL(q(z_1) || N(0, I)) ~ alpha_1^2 E|x|^2 / 2 = 0.003
}

TEST_CASE("VDM's discrete decoder is a distribution over the levels and sharp when sigma_0 is small") {
  auto ip = curved_vdm(-2, 4);  // a broad decoder: sigma_0 / alpha_0 = e^-1
  const gm::VDMELBO elbo;         // 256 levels on [-1, 1], gm's pixels
  auto levels = torch::linspace(-1, 1, 256, f64()).unsqueeze(1);
  auto zero = torch::zeros({1}, f64());
  const double a0 = ip.alpha(zero).item<double>(), s0 = ip.sigma(zero).item<double>();
  auto eps0 = (0.3 * a0 - a0 * levels) / s0;  // every level decoded from the same z_0 = 0.3 alpha_0
  auto p = torch::exp(-elbo.reconstruction(levels, eps0, ip));
  CHECK(p.sum().item<double>() == doctest::Approx(1.0).epsilon(1e-10));
  CHECK(p.argmax().item<int64_t>() == std::lround((0.3 + 1) * 127.5));
  auto sharp = curved_vdm(-13.3, 5);  // VDM's gamma_0: pixels come back with probability ~1
  auto x = torch::randint(0, 256, {256, 5}, f64()) * (2.0 / 255) - 1;  // 8-bit pixels
  // sigma_0 / alpha_0 = e^(-6.65) = 1.3e-3 against half a level, 3.9e-3: the right level has probability ~0.997.
  auto e0 = torch::randn({256, 5}, f64());
  auto windowed = elbo.reconstruction(x, e0, sharp);
  CHECK(windowed.mean().item<double>() < 0.02);
  {  // the decoder sums the levels near z_0 only; the sum over all 256 gives the same numbers
    auto z0 = sharp.alpha(zero), s0z = sharp.sigma(zero);
    auto zr = (x + s0z / z0 * e0).unsqueeze(-1);
    auto all = -0.5 * ((zr - torch::linspace(-1, 1, 256, f64())) * (z0 / s0z)).pow(2);
    auto own = -0.5 * ((zr.squeeze(-1) - x) * (z0 / s0z)).pow(2);
    CHECK(max_abs(windowed, -(own - torch::logsumexp(all, -1)).mean(1)) < 1e-12);
  }
  {  // and its gradient in gamma_0 is finite where levels fall outside [-1, 1]
    auto edge = torch::full({4, 3}, 1.0, f64());
    auto ip2 = curved_vdm(-13.3, 5);
    auto l = elbo.reconstruction(edge, torch::randn({4, 3}, f64()), ip2).sum();
    l.backward();
    CHECK(std::isfinite(ip2.schedule().net->named_parameters()["gamma_0"].grad().item<double>()));
  }
  CHECK(gm::test::contains(gm::test::error_of([&] {
                             gm::Interpolant<gm::VP> vp;
                             elbo.reconstruction(x, x, vp);
                           }),
                           "sigma(0) > 0"));
}

TEST_CASE_TEMPLATE("at t = 0 the oracle's noise is 0 and its score the mixture's own, not NaN", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto g = lopsided();
  auto x = 2 * torch::randn({16, 3}, f64());
  auto t = torch::zeros({16}, f64());
  // As a model too (predict<P>): a Score model at t = 0 used to be the noise over sigma, 0 / 0.
  const torch::Tensor noise = g.template predict<gm::Noise>(x, t, ip), score = g.template predict<gm::Score>(x, t, ip),
                      data = g.template predict<gm::Data>(x, t, ip);
  CHECK(max_rel(score, g.score(x, t, ip)) < 1e-12);
  const torch::Tensor sigma0 = ip.sigma(t), alpha0 = gm::detail::bcast(ip.alpha(t), x);
  CHECK(torch::isfinite(noise).all().item<bool>());
  CHECK(torch::isfinite(score).all().item<bool>());
  CHECK(torch::isfinite(data).all().item<bool>());
  if constexpr (std::is_same_v<S, gm::Linear> || std::is_same_v<S, gm::VP> || std::is_same_v<S, gm::Trig>) {
    REQUIRE(sigma0.abs().max().item<double>() == 0);
  }
  if (sigma0.abs().max().item<double>() == 0) {  // x_0 is the data itself
    CHECK(noise.abs().max().item<double>() == 0);
    auto xx = x.clone().requires_grad_(true);
    auto own = torch::autograd::grad({g.log_prob(xx).sum()}, {xx})[0];
    CHECK(max_rel(score, own) < 1e-10);
    CHECK(max_rel(data, x / alpha0) < 1e-12);
  }
}

TEST_CASE("couplings: the assignment is the cheapest permutation, Sinkhorn's plan has uniform marginals") {
  // Against every permutation of 7 rows.
  auto gen = gm::make_generator(2);
  for (int trial = 0; trial < 5; ++trial) {
    auto cost = torch::rand({7, 7}, gen, f64());
    auto perm = gm::min_cost_assignment(cost);
    auto pick = [&](const std::vector<int64_t>& p) {
      double s = 0;
      for (int64_t i = 0; i < 7; ++i) s += cost[i][p[static_cast<size_t>(i)]].item<double>();
      return s;
    };
    std::vector<int64_t> p{0, 1, 2, 3, 4, 5, 6}, got(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + 7);
    double best = 1e300;
    do best = std::min(best, pick(p));
    while (std::next_permutation(p.begin(), p.end()));
    CHECK(pick(got) == doctest::Approx(best).epsilon(1e-12));
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6});  // a permutation
  }
  auto plan = gm::sinkhorn_plan(torch::rand({40, 30}, gen, f64()), 0.05);
  CHECK(max_abs(plan.sum(1), torch::full({40}, 1.0 / 40, f64())) < 1e-8);
  CHECK(max_abs(plan.sum(0), torch::full({30}, 1.0 / 30, f64())) < 1e-12);
  CHECK(contains(error_of([] { gm::min_cost_assignment(torch::zeros({3, 4})); }), "square cost matrix"));
}

TEST_CASE("the assignment (auction potentials, JV augmentation): the same as the Hungarian method on random, tied and degenerate costs up to n = 1024" * gm::test::own_process) {
  auto gen = gm::make_generator(11);
  auto total = [](const torch::Tensor& cost, const torch::Tensor& perm) {
    return cost.gather(1, perm.unsqueeze(1)).sum().item<double>();
  };
  auto is_perm = [](const torch::Tensor& perm) {
    auto sorted = std::get<0>(perm.sort());
    return torch::equal(sorted, torch::arange(perm.size(0), torch::kInt64));
  };
  auto check = [&](const torch::Tensor& cost, bool unique, const std::string& what) {
    const auto fast = gm::min_cost_assignment(cost), ref = gm::detail::hungarian_assignment(cost);
    CAPTURE(what);
    CAPTURE(cost.size(0));
    REQUIRE(is_perm(fast));
    // Equal totals to the last bits the sums allow; where the optimum is unique, the same permutation.
    CHECK(total(cost, fast) == doctest::Approx(total(cost, ref)).epsilon(1e-12).scale(1.0));
    if (unique) CHECK(torch::equal(fast, ref));
  };
  for (int64_t n : {1, 2, 3, 7, 64, 257, 1024}) check(torch::rand({n, n}, gen, f64()), true, "uniform");
  for (int64_t n : {10, 128, 512}) {
    check(torch::randint(0, 3, {n, n}, gen, f64()), false, "integers 0..2 (many ties)");
    auto x0 = torch::randn({n, 2}, gen, f64());
    check(gm::squared_distances(x0, torch::cat({x0.slice(0, 0, n / 2), x0.slice(0, 0, n - n / 2)})), false,
          "squared distances to duplicated points");
    check(torch::full({n, n}, 3.0, f64()), false, "all equal");
    auto ra = torch::rand({n, 1}, gen, f64()), cb = torch::rand({1, n}, gen, f64());
    check(ra + cb, false, "rank one: every permutation optimal");
    check(torch::rand({n, n}, gen, f64()) * 1e-9 + 5, false, "nearly equal");
  }
  // Squared distances between point clouds, the couplings' costs (where JV's own reductions leave most rows free).
  for (int64_t n : {256, 1024}) {
    check(gm::squared_distances(3 * torch::randn({n, 2}, gen, f64()), torch::randn({n, 2}, gen, f64())), true, "clouds");
  }
  auto big = torch::rand({1024, 1024}, gen, f64());
  big.index_put_({torch::indexing::Slice(0, 512)}, 0.25);  // half the rows constant
  check(big, false, "half the rows constant");
}

TEST_CASE("couplings on the oracle: exact OT pairs ring8 with noise at a fraction of the independent cost") {
  auto g = ring8();
  auto gen = gm::make_generator(5);
  const int64_t n = 256;
  auto x0 = g.sample(n, gen), x1 = torch::randn({n, 2}, gen, f64());
  auto cost = [&](const torch::Tensor& idx) { return (x0 - x1.index_select(0, idx)).pow(2).sum(1).mean().item<double>(); };
  const double independent = cost(gm::IndependentCoupling{}.pair(x0, x1, gen));
  const double exact = cost(gm::ExactOTCoupling{}.pair(x0, x1, gen));
  const double sinkhorn = cost(gm::SinkhornCoupling(gm::SinkhornCoupling::Options().reg(0.01)).pair(x0, x1, gen));
  const double loose = cost(gm::SinkhornCoupling(gm::SinkhornCoupling::Options().reg(10)).pair(x0, x1, gen));
  MESSAGE("ring8 to N(0, I), 256 pairs: mean squared distance independent " << independent << ", exact OT " << exact
          << ", Sinkhorn reg 0.01 " << sinkhorn << ", reg 10 " << loose);
  // E|x0 - x1|^2 = E|x0|^2 + 2 = 16.09 + 2 for independent pairs; OT moves each point only to nearby noise.
  CHECK(independent == doctest::Approx(18.1).epsilon(0.1));
  CHECK(exact < 0.5 * independent);
  for (int k = 0; k < 20; ++k) {  // no random permutation beats the assignment
    CHECK(cost(torch::randperm(n, gen, torch::kInt64)) > exact);
  }
  CHECK(sinkhorn > exact);
  CHECK(sinkhorn < 1.1 * exact);  // small reg: close to exact OT
  CHECK(loose > 0.8 * independent);  // large reg: close to independent
}
