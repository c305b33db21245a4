// The Gaussian-mixture oracle: exact posterior quantities, marginal density, sampling, and its TOML file.
#include "helpers.hpp"

#include <filesystem>
#include <fstream>

#include <unistd.h>

using gm::test::f64;
using gm::test::max_abs;
using gm::test::max_rel;

namespace {

std::filesystem::path source_dir() { return std::filesystem::path(GM_SOURCE_DIR); }

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
