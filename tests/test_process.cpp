// Schedules and Interpolant<S>: boundary values, derivatives, log-SNR and its inverse, the SDE form.
#include "helpers.hpp"

#include <cmath>

using gm::test::f64;
using gm::test::max_abs;
using gm::test::max_rel;

namespace {

struct Boundary {
  double alpha0, sigma0, alpha1, sigma1;
};

// Each schedule's values at t = 0 and t = 1, written from its definition (not from the code under test).
template <class S>
Boundary boundary() {
  const double vp_a1 = std::exp(-0.25 * (20.0 - 0.1) - 0.5 * 0.1);  // exp(-1/2 int_0^1 beta)
  if constexpr (std::is_same_v<S, gm::Linear> || std::is_same_v<S, gm::Trig> || std::is_same_v<S, gm::VPCosine>) {
    return {1, 0, 0, 1};
  } else if constexpr (std::is_same_v<S, gm::VP>) {
    return {1, 0, vp_a1, std::sqrt(1 - vp_a1 * vp_a1)};
  } else if constexpr (std::is_same_v<S, gm::SubVP>) {
    return {1, 0, vp_a1, 1 - vp_a1 * vp_a1};
  } else if constexpr (std::is_same_v<S, gm::VE>) {
    return {1, 0.01, 1, 50};
  } else {
    static_assert(std::is_same_v<S, gm::EDM>);
    return {1, 0.002, 1, 80};
  }
}

// A schedule with only alpha and sigma: the derivative and inverse fallbacks must fill in the rest.
// (It is VP with beta_min 0.1, beta_max 20, written out.)
struct BareVP {
  torch::Tensor alpha(const torch::Tensor& t) const { return torch::exp(-0.25 * t * t * 19.9 - 0.05 * t); }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sqrt(1 - alpha(t).pow(2)); }
};

}  // namespace

TEST_CASE_TEMPLATE("schedule boundary values match the definition", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto ends = torch::tensor({0.0, 1.0}, f64());
  auto a = ip.alpha(ends);
  auto s = ip.sigma(ends);
  const Boundary b = boundary<S>();
  CHECK(a[0].template item<double>() == doctest::Approx(b.alpha0).epsilon(1e-12));
  CHECK(s[0].template item<double>() == doctest::Approx(b.sigma0).epsilon(1e-12));
  CHECK(a[1].template item<double>() == doctest::Approx(b.alpha1).epsilon(1e-12));
  CHECK(s[1].template item<double>() == doctest::Approx(b.sigma1).epsilon(1e-12));
}

TEST_CASE_TEMPLATE("schedule derivatives agree with autograd", S, GM_ALL_SCHEDULES) {
  S s;
  auto t = gm::test::interior_times(41);
  auto da_ag = gm::detail::autograd_derivative([&](const torch::Tensor& u) { return s.alpha(u); }, t);
  auto ds_ag = gm::detail::autograd_derivative([&](const torch::Tensor& u) { return s.sigma(u); }, t);
  CHECK(max_rel(s.d_alpha(t), da_ag) < 1e-10);
  CHECK(max_rel(s.d_sigma(t), ds_ag) < 1e-10);
  // Sanity of the autograd reference itself: a central difference agrees to O(h^2).
  const double h = 1e-5;
  auto ds_fd = (s.sigma(t + h) - s.sigma(t - h)) / (2 * h);
  CHECK(max_rel(ds_fd, ds_ag) < 1e-6);
}

TEST_CASE_TEMPLATE("log-SNR matches log(alpha/sigma) and its inverse round-trips", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto t = gm::test::interior_times(41);
  auto lam = ip.log_snr(t);
  CHECK(max_abs(lam, torch::log(ip.alpha(t) / ip.sigma(t))) < 1e-10);
  CHECK(max_abs(ip.t_from_log_snr(lam), t) < 1e-10);
  CHECK(max_rel(ip.snr(t), (ip.alpha(t) / ip.sigma(t)).pow(2)) < 1e-10);
  // log-SNR decreases in t: noise grows towards t = 1.
  CHECK((lam.slice(0, 1) < lam.slice(0, 0, -1)).all().template item<bool>());
  // The closed-form inverse agrees with gm's bisection fallback.
  struct OnlyAlphaSigma {
    S s;
    torch::Tensor alpha(const torch::Tensor& u) const { return s.alpha(u); }
    torch::Tensor sigma(const torch::Tensor& u) const { return s.sigma(u); }
  };
  CHECK(max_abs(gm::t_from_log_snr(OnlyAlphaSigma{}, lam), t) < 1e-10);
}

TEST_CASE_TEMPLATE("schedules work in float32 and float64 on any batch shape", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    auto t = torch::rand({3, 4}, torch::TensorOptions().dtype(dtype)) * 0.9 + 0.05;
    for (const auto& v : {ip.alpha(t), ip.sigma(t), ip.d_alpha(t), ip.d_sigma(t), ip.log_snr(t), ip.drift_coef(t),
                          ip.diffusion_sq(t)}) {
      CHECK((v.scalar_type() == dtype));
      CHECK((v.sizes() == t.sizes()));
      CHECK(torch::isfinite(v).all().template item<bool>());
    }
  }
}

TEST_CASE_TEMPLATE("the SDE drift and diffusion reproduce the marginal mean and variance", S, GM_ALL_SCHEDULES) {
  // For dx = f x dt + g dW started at x(t0) with mean m0 and variance v0, the moments follow
  // dm/dt = f m and dv/dt = 2 f v + g^2.  Integrate them with RK4 and compare with the interpolant's
  // closed form: mean alpha(t) mu, variance alpha(t)^2 s^2 + sigma(t)^2 for x0 ~ N(mu, s^2).
  gm::Interpolant<S> ip;
  const double mu = 1.5, s2 = 0.49, t0 = 0.05, t1 = 0.95;
  auto at = [&](double t) { return torch::tensor(t, f64()); };
  auto rhs = [&](double t, double m, double v) {
    const double f = ip.drift_coef(at(t)).template item<double>();
    const double g2 = ip.diffusion_sq(at(t)).template item<double>();
    return std::pair{f * m, 2 * f * v + g2};
  };
  const double a0 = ip.alpha(at(t0)).template item<double>(), sg0 = ip.sigma(at(t0)).template item<double>();
  double m = a0 * mu, v = a0 * a0 * s2 + sg0 * sg0;
  const int n = 400;
  const double h = (t1 - t0) / n;
  for (int i = 0; i < n; ++i) {
    const double t = t0 + i * h;  // grid time, not accumulated
    auto [k1m, k1v] = rhs(t, m, v);
    auto [k2m, k2v] = rhs(t + h / 2, m + h / 2 * k1m, v + h / 2 * k1v);
    auto [k3m, k3v] = rhs(t + h / 2, m + h / 2 * k2m, v + h / 2 * k2v);
    auto [k4m, k4v] = rhs(t + h, m + h * k3m, v + h * k3v);
    m += h / 6 * (k1m + 2 * k2m + 2 * k3m + k4m);
    v += h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v);
  }
  const double a1 = ip.alpha(at(t1)).template item<double>(), sg1 = ip.sigma(at(t1)).template item<double>();
  CHECK(m == doctest::Approx(a1 * mu).epsilon(1e-8));
  CHECK(v == doctest::Approx(a1 * a1 * s2 + sg1 * sg1).epsilon(1e-8));
}

TEST_CASE("VP's SDE is score_sde's: f = -beta/2 and g^2 = beta") {
  gm::Interpolant<gm::VP> vp;
  auto t = gm::test::interior_times();
  auto beta = 0.1 + t * (20 - 0.1);
  CHECK(max_rel(vp.drift_coef(t), -0.5 * beta) < 1e-12);
  CHECK(max_rel(vp.diffusion_sq(t), beta) < 1e-10);
  // VE: f = 0, g^2 = d sigma^2 / dt.
  gm::Interpolant<gm::VE> ve;
  CHECK(max_abs(ve.drift_coef(t), torch::zeros_like(t)) == 0);
  CHECK(max_rel(ve.diffusion_sq(t), 2 * ve.sigma(t).pow(2) * std::log(50 / 0.01)) < 1e-12);
}

TEST_CASE("Interpolant::sample broadcasts t over any data shape") {
  gm::Interpolant<gm::Trig> ip;
  auto x0 = torch::randn({4, 3, 2}, f64());
  auto eps = torch::randn({4, 3, 2}, f64());
  auto t = torch::tensor({0.1, 0.4, 0.6, 0.9}, f64());
  auto xt = ip.sample(x0, eps, t);
  REQUIRE((xt.sizes() == x0.sizes()));
  for (int64_t i = 0; i < 4; ++i) {
    auto ti = t[i];
    CHECK(max_abs(xt[i], ip.alpha(ti) * x0[i] + ip.sigma(ti) * eps[i]) < 1e-15);
  }
  // A 0-d time applies to every sample, and the conditional velocity is the time derivative of x_t.
  auto t0 = torch::tensor(0.3, f64());
  const double h = 1e-6;
  auto fd = (ip.sample(x0, eps, t0 + h) - ip.sample(x0, eps, t0 - h)) / (2 * h);
  CHECK(max_abs(ip.velocity(x0, eps, t0), fd) < 1e-8);
}

TEST_CASE("a schedule with only alpha and sigma gets derivatives and the inverse from gm") {
  gm::Interpolant<BareVP> bare;
  gm::Interpolant<gm::VP> vp;
  auto t = gm::test::interior_times(21);
  CHECK(max_rel(bare.d_alpha(t), vp.d_alpha(t)) < 1e-10);
  CHECK(max_rel(bare.d_sigma(t), vp.d_sigma(t)) < 1e-10);
  CHECK(max_abs(bare.t_from_log_snr(vp.log_snr(t)), t) < 1e-12);
  CHECK(max_rel(bare.diffusion_sq(t), vp.diffusion_sq(t)) < 1e-9);
  // The autograd fallback also works where the caller has turned gradients off.
  {
    torch::NoGradGuard no_grad;
    CHECK(max_rel(bare.d_sigma(t), vp.d_sigma(t)) < 1e-10);
  }
  {
    c10::InferenceMode inference;
    auto ti = torch::linspace(0.05, 0.95, 21, f64());
    CHECK(max_rel(bare.d_alpha(ti), vp.d_alpha(ti)) < 1e-10);
  }
}

TEST_CASE("schedule options change the process") {
  gm::Interpolant<gm::VE> ve{gm::VE(gm::VE::Options().sigma_min(0.1).sigma_max(10))};
  auto ends = torch::tensor({0.0, 1.0}, f64());
  CHECK(max_rel(ve.sigma(ends), torch::tensor({0.1, 10.0}, f64())) < 1e-12);
  gm::Interpolant<gm::VP> vp{gm::VP(gm::VP::Options().beta_min(1).beta_max(1))};  // constant beta
  auto t = gm::test::interior_times();
  CHECK(max_rel(vp.alpha(t), torch::exp(-0.5 * t)) < 1e-12);
  CHECK(max_abs(vp.t_from_log_snr(vp.log_snr(t)), t) < 1e-12);
  gm::Interpolant<gm::EDM> edm{gm::EDM(gm::EDM::Options().rho(1))};  // linear in sigma
  CHECK(max_rel(edm.sigma(t), 0.002 + t * (80 - 0.002)) < 1e-12);
}
