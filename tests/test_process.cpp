// Schedules and Interpolant<S>: boundary values, derivatives, log-SNR and its inverse, the SDE form.
#include "helpers.hpp"

#include <gm/data/gaussian_mixture.hpp>
#include <gm/process/check.hpp>
#include <gm/sampler.hpp>
#include <gm/trainer.hpp>

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
  } else if constexpr (std::is_same_v<S, gm::LearnedSchedule>) {  // VDM's initial gamma: -13.3 to 5
    auto a = [](double g) { return std::sqrt(1 / (1 + std::exp(g))); };  // sqrt(sigmoid(-g))
    return {a(-13.3), a(13.3), a(5.0), a(-5.0)};
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
  // The learned schedule's endpoints are float32 parameters: -13.3 and 5 to float32 precision.
  const double eps = std::is_same_v<S, gm::LearnedSchedule> ? 1e-5 : 1e-12;
  CHECK(a[0].template item<double>() == doctest::Approx(b.alpha0).epsilon(eps));
  CHECK(s[0].template item<double>() == doctest::Approx(b.sigma0).epsilon(eps));
  CHECK(a[1].template item<double>() == doctest::Approx(b.alpha1).epsilon(eps));
  CHECK(s[1].template item<double>() == doctest::Approx(b.sigma1).epsilon(eps));
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

TEST_CASE("VDM's learned gamma: exact endpoints, monotone for any weights, closed-form derivative") {
  gm::LearnedSchedule vdm(gm::MonotoneGammaOptions().features(64).gamma_min(-10).gamma_max(6));
  vdm.net->to(torch::kFloat64);
  auto t = torch::linspace(0, 1, 2001, f64());
  auto check = [&](const char* what) {
    INFO(what);
    auto g = vdm.gamma(t);
    CHECK(g[0].item<double>() == doctest::Approx(vdm.net->gamma_0().item<double>()).epsilon(1e-12));
    CHECK(g[-1].item<double>() == doctest::Approx(vdm.net->gamma_1().item<double>()).epsilon(1e-12));
    CHECK((g.slice(0, 1) > g.slice(0, 0, -1)).all().item<bool>());  // strictly increasing
    CHECK((vdm.d_gamma(t) > 0).all().item<bool>());
    auto ti = gm::test::interior_times(41);
    auto ag = gm::detail::autograd_derivative([&](const torch::Tensor& u) { return vdm.gamma(u); }, ti);
    CHECK(max_rel(vdm.d_gamma(ti), ag) < 1e-10);
    CHECK(max_abs(vdm.alpha(t).pow(2) + vdm.sigma(t).pow(2), torch::ones_like(t)) < 1e-12);
    CHECK(max_abs(vdm.log_snr(t), -0.5 * vdm.gamma(t)) < 1e-12);
  };
  check("at initialisation");
  {  // Any weights at all, negative and large included: the parametrisation keeps gamma monotone.
    torch::NoGradGuard ng;
    for (auto& p : vdm.net->parameters()) p.copy_(torch::randn_like(p) * 6);
  }
  check("with random weights");
  CHECK(gm::test::contains(gm::test::error_of([] { gm::LearnedSchedule(gm::MonotoneGammaOptions().gamma_min(3).gamma_max(1)); }),
                           "gamma_max > gamma_min"));
  // Schedules made with the same options start the same; attach() puts the weights into a network.
  gm::LearnedSchedule a, b;
  CHECK(max_abs(a.gamma(t.to(torch::kFloat32)), b.gamma(t.to(torch::kFloat32))) == 0);
  torch::nn::Module parent;
  a.attach(parent);
  CHECK(parent.named_parameters().contains("vdm_gamma.gamma_0"));
}

TEST_CASE("VDM's learned gamma when sampling: one evaluation per distinct time, the same values") {
  // A sampler hands the model one time for the whole batch, as a [B] tensor; without autograd the monotone
  // network runs on the distinct times only, and the values are those of the per-row evaluation.
  gm::LearnedSchedule vdm(gm::MonotoneGammaOptions().features(64));
  vdm.net->to(torch::kFloat64);
  auto t = torch::cat({torch::full({300}, 0.37, f64()), torch::full({200}, 0.81, f64())}).view({25, 20});
  const auto with_grad = vdm.gamma(t).detach(), d_with_grad = vdm.d_gamma(t).detach();  // row by row
  torch::NoGradGuard ng;
  const auto g = vdm.gamma(t), d = vdm.d_gamma(t);
  CHECK(g.sizes() == t.sizes());
  CHECK(max_abs(g, with_grad) < 1e-14);
  CHECK(max_abs(d, d_with_grad) < 1e-14);
  CHECK(g[0][0].item<double>() == doctest::Approx(vdm.gamma(torch::scalar_tensor(0.37, f64())).item<double>()).epsilon(1e-15));
  CHECK(max_abs(vdm.alpha(t), vdm.alpha(torch::full_like(t, 0.37)).where(t < 0.5, vdm.alpha(torch::full_like(t, 0.81)))) < 1e-15);
}

TEST_CASE("VDM's variance minimisation: the shape follows the gradient of the mean squared loss, the ends the loss") {
  // A per-sample loss that depends on gamma(t_i) and gamma'(t_i), as the diffusion loss does.
  auto opts = gm::MonotoneGammaOptions().features(16).gamma_min(-8).gamma_max(4);
  gm::LearnedSchedule hooked(opts), plain(gm::MonotoneGammaOptions(opts).minimise_variance(false));
  hooked.net->to(torch::kFloat64), plain.net->to(torch::kFloat64);
  auto t = torch::rand({32}, f64()), c = torch::randn({32}, f64());
  auto loss = [&](const gm::LearnedSchedule& s) { return 0.1 * s.d_gamma(t) * c.pow(2) + torch::sigmoid(s.gamma(t)); };
  auto l = loss(hooked);
  hooked.net->set_variance_weights(2 * l.detach());
  l.mean().backward();
  auto endpoints = torch::autograd::grad({loss(plain).mean()}, {plain.net->named_parameters()["gamma_0"],
                                                                 plain.net->named_parameters()["gap"]});
  std::vector<torch::Tensor> shape_params;
  for (const char* k : {"w1", "w2", "b2", "w3"}) shape_params.push_back(plain.net->named_parameters()[k]);
  auto shape = torch::autograd::grad({loss(plain).pow(2).mean()}, shape_params);
  auto hp = hooked.net->named_parameters();
  CHECK(max_rel(hp["gamma_0"].grad(), endpoints[0]) < 1e-12);
  CHECK(max_rel(hp["gap"].grad(), endpoints[1]) < 1e-12);
  int i = 0;
  for (const char* k : {"w1", "w2", "b2", "w3"}) {
    INFO(k);
    CHECK(max_rel(hp[k].grad(), shape[i++]) < 1e-12);
  }
  CHECK(hp["w3"].grad().abs().sum().item<double>() > 0);
}

TEST_CASE("ZeroTerminalSNR: alpha(1) = 0 and alpha(0) kept, variance preserving, exact derivatives, and it samples") {
  gm::Interpolant<gm::ZeroTerminalSNR<gm::VP>> z;
  gm::Interpolant<gm::VP> vp;
  auto t = torch::linspace(0.05, 1, 20, torch::kFloat64);
  CHECK(z.alpha(torch::tensor(1.0, torch::kFloat64)).item<double>() == 0.0);
  CHECK(z.alpha(torch::tensor(0.0, torch::kFloat64)).item<double>() == doctest::Approx(1.0).epsilon(1e-15));
  CHECK((z.alpha(t).pow(2) + z.sigma(t).pow(2) - 1).abs().max().item<double>() < 1e-14);
  // Lin et al.'s alg. 1: sqrt(alpha_bar) shifted by its last value and scaled back to its first.
  const double a1 = vp.alpha(torch::tensor(1.0, torch::kFloat64)).item<double>();
  CHECK((z.alpha(t) - (vp.alpha(t) - a1) / (1 - a1)).abs().max().item<double>() < 1e-14);
  // The analytic derivatives equal autograd's.
  auto h = 1e-6;
  auto fd_alpha = (z.alpha(t + h) - z.alpha(t - h)) / (2 * h);
  CHECK((z.d_alpha(t) - fd_alpha).abs().max().item<double>() < 1e-6);
  auto tt = torch::linspace(0.05, 0.95, 10, torch::kFloat64);
  auto fd_sigma = (z.sigma(tt + h) - z.sigma(tt - h)) / (2 * h);
  CHECK((z.d_sigma(tt) - fd_sigma).abs().max().item<double>() < 1e-6);
  // From pure noise at t = 1 (alpha = 0), Heun on the oracle's velocity reaches the data's marginal.
  auto g = gm::GaussianMixture(torch::tensor({1.0}, torch::kFloat64), torch::tensor({{1.0}}, torch::kFloat64),
                               torch::tensor({0.5}, torch::kFloat64));
  gm::Field field(z, gm::Predict<gm::Velocity>{}, [g, z](const torch::Tensor& x, const torch::Tensor& s) { return g.predict<gm::Velocity>(x, s, z); });
  auto x = gm::integrate(gm::HeunSampler{}, field, torch::randn({8000, 1}, gm::make_generator(4), torch::kFloat64),
                         gm::UniformGrid().nodes(100, 1e-3, z));
  const auto c = gm::detail::coefs(z, 1e-3);
  CHECK(x.mean().item<double>() == doctest::Approx(c.alpha).epsilon(0.03));
  CHECK(x.var().item<double>() == doctest::Approx(c.alpha * c.alpha * 0.25 + c.sigma * c.sigma).epsilon(0.06));
}

namespace {
// Near-degenerate schedules a user might write (issue 35): the checks at start must name what fails, where.
struct TinyAlphaOne {  // alpha(1) = 3e-5: fine for a velocity, ruinous for a noise prediction
  static constexpr std::string_view name = "tiny_alpha_one";
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - (1 - 3e-5) * t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return t; }
};
struct Clamped {  // a clamp past t = 0.9: alpha' = sigma' = 0 there, and the log-SNR stops falling
  static constexpr std::string_view name = "clamped";
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t.clamp_max(0.9); }
  torch::Tensor sigma(const torch::Tensor& t) const { return t.clamp_max(0.9); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return -(t < 0.9).to(t.dtype()); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return (t < 0.9).to(t.dtype()); }
};
struct Rising {  // sigma falls after t = 0.5: the log-SNR rises
  static constexpr std::string_view name = "rising";
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - 0.5 * t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return 0.5 - (t - 0.5).abs() + 0.01; }
};
struct NaNDerivative {
  static constexpr std::string_view name = "nan_derivative";
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return t; }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return torch::where(t > 0.7, torch::full_like(t, NAN), -torch::ones_like(t)); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return torch::ones_like(t); }
};
}  // namespace

TEST_CASE_TEMPLATE("gm's own processes pass the checks at start without a warning", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  CHECK(gm::check_process(ip).empty());
}

TEST_CASE("the checks at start name what fails in a near-degenerate schedule, and where") {
  auto error_of = [](const auto& ip) {
    try {
      (void)gm::check_process(ip);
    } catch (const gm::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const auto clamped = error_of(gm::Interpolant<Clamped>{});
  CHECK(clamped.find("log-SNR log(alpha / sigma) stops falling between t = 0.9") != std::string::npos);
  CHECK(clamped.find("alpha' = sigma' = 0 there") != std::string::npos);
  CHECK(error_of(gm::Interpolant<Rising>{}).find("log-SNR log(alpha / sigma) rises between t = 0.5") != std::string::npos);
  CHECK(error_of(gm::Interpolant<NaNDerivative>{}).find("alpha' is not finite at t = 0.7") != std::string::npos);
  gm::Interpolant<TinyAlphaOne> tiny;
  CHECK(gm::check_process(tiny, /*noise_prediction=*/false).empty());
  const auto w = gm::check_process(tiny, /*noise_prediction=*/true);
  REQUIRE(w.size() == 1);
  CHECK(w[0].find("alpha(1) = 3e-05") != std::string::npos);
  CHECK(w[0].find("sigma(1) / alpha(1) = 3.33e+04") != std::string::npos);
  // A trainer on a degenerate process stops at construction, with the same line.
  using Bad = gm::Trainer<gm::Interpolant<Clamped>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;
  CHECK_THROWS_WITH_AS(Bad(gm::MLP(gm::MLPOptions().hidden(8).layers(1)), gm::TrainOptions()),
                       doctest::Contains("stops falling"), gm::Error);
}
