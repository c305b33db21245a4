// Time samplers: moments of their target distributions, and reproducible seeded draws.
#include "helpers.hpp"

#include <cmath>

using gm::test::f64;

namespace {
constexpr int64_t kN = 200000;
// Tolerance for a sample mean: 5 standard errors.
double mean_tol(double sd) { return 5 * sd / std::sqrt(static_cast<double>(kN)); }
double sample_mean(const torch::Tensor& x) { return x.mean().item<double>(); }
double sample_std(const torch::Tensor& x) { return x.std().item<double>(); }
}  // namespace

TEST_CASE("UniformTime is uniform on [eps, 1]") {
  gm::Interpolant<gm::Linear> ip;
  const double eps = 0.01;
  auto t = gm::UniformTime(gm::UniformTime::Options().eps(eps)).sample(kN, ip, gm::make_generator(1), f64());
  CHECK(t.min().item<double>() >= eps);
  CHECK(t.max().item<double>() <= 1);
  const double sd = (1 - eps) / std::sqrt(12.0);
  CHECK(std::abs(sample_mean(t) - (1 + eps) / 2) < mean_tol(sd));
  CHECK(sample_std(t) == doctest::Approx(sd).epsilon(0.01));
}

TEST_CASE("LogitNormalTime has normal logits with the given mean and std") {
  gm::Interpolant<gm::Linear> ip;
  auto t = gm::LogitNormalTime(gm::LogitNormalTime::Options().mean(0.5).std(0.8))
               .sample(kN, ip, gm::make_generator(2), f64());
  auto logit = torch::log(t) - torch::log1p(-t);
  CHECK(std::abs(sample_mean(logit) - 0.5) < mean_tol(0.8));
  CHECK(sample_std(logit) == doctest::Approx(0.8).epsilon(0.01));
}

TEST_CASE_TEMPLATE("EDMLogNormalTime draws ln(sigma/alpha) ~ N(P_mean, P_std^2)", S, gm::Linear, gm::VE, gm::EDM) {
  // Every draw of N(-1.2, 1.2^2) lies inside these processes' noise ranges except for far tails.
  gm::Interpolant<S> ip;
  auto t = gm::EDMLogNormalTime().sample(kN, ip, gm::make_generator(3), f64());
  auto log_sigma = -ip.log_snr(t);
  if constexpr (std::is_same_v<S, gm::Linear>) {
    CHECK(std::abs(sample_mean(log_sigma) + 1.2) < mean_tol(1.2));
    CHECK(sample_std(log_sigma) == doctest::Approx(1.2).epsilon(0.01));
  } else {
    // VE and EDM clip at their sigma_min: compare the median, which clipping leaves alone.
    CHECK(log_sigma.median().template item<double>() == doctest::Approx(-1.2).epsilon(0.02));
  }
  CHECK(t.min().template item<double>() >= 0);
  CHECK(t.max().template item<double>() <= 1);
}

TEST_CASE("StratifiedTime puts one draw in each stratum, antithetic pairs sum to one") {
  gm::Interpolant<gm::Linear> ip;
  const int64_t n = 64;
  auto t = gm::StratifiedTime(gm::StratifiedTime::Options().eps(0)).sample(n, ip, gm::make_generator(4), f64());
  auto strata = std::get<0>(torch::floor(t * n).to(torch::kLong).sort());
  CHECK(torch::equal(strata, torch::arange(n, torch::kLong)));
  // Over many batches the draws are uniform, and the batch mean varies far less than for i.i.d. draws.
  std::vector<double> means;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    means.push_back(sample_mean(gm::StratifiedTime().sample(n, ip, gm::make_generator(100 + seed), f64())));
  }
  auto m = torch::tensor(means, f64());
  CHECK(std::abs(sample_mean(m) - 0.5) < 5 * (1 / std::sqrt(12.0) / n) / std::sqrt(200.0) + 1e-4);
  // The stratified batch mean has std 1 / (n sqrt 12); i.i.d. draws would give 1 / sqrt(12 n).
  CHECK(sample_std(m) == doctest::Approx(1 / (n * std::sqrt(12.0))).epsilon(0.2));

  auto a = gm::StratifiedTime(gm::StratifiedTime::Options().eps(0).antithetic(true))
               .sample(n, ip, gm::make_generator(5), f64());
  CHECK(gm::test::max_abs(a.slice(0, 0, n / 2) + a.slice(0, n / 2), torch::ones({n / 2}, f64())) < 1e-12);
}

TEST_CASE("seeded draws are reproducible and seeds differ") {
  gm::Interpolant<gm::VP> ip;
  gm::LogitNormalTime ln;
  auto a = ln.sample(16, ip, gm::make_generator(7), f64());
  auto b = ln.sample(16, ip, gm::make_generator(7), f64());
  auto c = ln.sample(16, ip, gm::make_generator(8), f64());
  CHECK(torch::equal(a, b));
  CHECK_FALSE(torch::equal(a, c));
  // A generator advances: two draws from one generator differ, and do not disturb torch's global one.
  torch::manual_seed(0);
  auto global_before = torch::rand({4});
  torch::manual_seed(0);
  auto gen = gm::make_generator(7);
  auto d1 = gm::UniformTime().sample(16, ip, gen, f64());
  auto d2 = gm::UniformTime().sample(16, ip, gen, f64());
  CHECK_FALSE(torch::equal(d1, d2));
  CHECK(torch::equal(torch::rand({4}), global_before));
  // float32 output when asked.
  CHECK((ln.sample(4, ip, gen, torch::kFloat32).scalar_type() == torch::kFloat32));
}
