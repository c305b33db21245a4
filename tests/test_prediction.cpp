// Parameterisations, Predict<P> and loss weightings.
#include "helpers.hpp"

using gm::test::f64;
using gm::test::max_abs;
using gm::test::max_rel;

namespace {
using AllParams = gm::type_list<gm::Velocity, gm::Noise, gm::Score, gm::Data, gm::EDMPrecond>;

struct Batch {
  torch::Tensor x0, eps, t, xt;
};
template <class I>
Batch make_batch(const I& ip, int64_t n = 64) {
  auto x0 = torch::randn({n, 3}, f64());
  auto eps = torch::randn({n, 3}, f64());
  auto t = torch::rand({n}, f64()) * 0.9 + 0.05;
  return {x0, eps, t, ip.sample(x0, eps, t)};
}
}  // namespace

TEST_CASE_TEMPLATE("every conversion between every pair of parameterisations round-trips", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto b = make_batch(ip);
  int pairs = 0;
  gm::for_each_type<AllParams>([&]<class P>() {
    gm::for_each_type<AllParams>([&]<class Q>() {
      gm::Predict<P> from;
      gm::Predict<Q> to;
      auto out = torch::randn_like(b.xt);  // any output in P
      auto in_q = from.template convert<Q>(out, b.xt, b.t, ip);
      auto back = to.template convert<P>(in_q, b.xt, b.t, ip);
      INFO(P::name << " -> " << Q::name << " -> " << P::name);
      CHECK(max_rel(back, out) < 1e-10);
      ++pairs;
    });
  });
  CHECK(pairs == 25);
}

TEST_CASE_TEMPLATE("training targets stand for the true (x0, eps)", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto b = make_batch(ip);
  gm::for_each_type<AllParams>([&]<class P>() {
    gm::Predict<P> pred;
    auto target = pred.target(b.x0, b.eps, b.t, ip);
    auto e = pred.estimate(target, b.xt, b.t, ip);
    INFO(P::name);
    CHECK(max_rel(e.data, b.x0) < 1e-10);
    CHECK(max_rel(e.noise, b.eps) < 1e-10);
  });
  // The named targets, from their definitions.
  auto s = gm::detail::bcast(ip.sigma(b.t), b.x0);
  CHECK(max_abs(gm::Predict<gm::Velocity>().target(b.x0, b.eps, b.t, ip), ip.velocity(b.x0, b.eps, b.t)) < 1e-12);
  CHECK(max_abs(gm::Predict<gm::Noise>().target(b.x0, b.eps, b.t, ip), b.eps) == 0);
  CHECK(max_abs(gm::Predict<gm::Data>().target(b.x0, b.eps, b.t, ip), b.x0) == 0);
  CHECK(max_rel(gm::Predict<gm::Score>().target(b.x0, b.eps, b.t, ip), -b.eps / s) < 1e-12);
}

TEST_CASE("Predict's named conversions agree with the posterior pair") {
  gm::Interpolant<gm::Linear> ip;
  auto b = make_batch(ip);
  gm::Predict<gm::Noise> pred;
  auto out = torch::randn_like(b.xt);
  auto a = gm::detail::bcast(ip.alpha(b.t), b.xt);
  auto s = gm::detail::bcast(ip.sigma(b.t), b.xt);
  auto d = (b.xt - s * out) / a;
  CHECK(max_rel(pred.data(out, b.xt, b.t, ip), d) < 1e-12);
  CHECK(max_rel(pred.score(out, b.xt, b.t, ip), -out / s) < 1e-12);
  CHECK(max_rel(pred.velocity(out, b.xt, b.t, ip), -d + out) < 1e-12);  // alpha' = -1, sigma' = 1
  CHECK(max_abs(pred.noise(out, b.xt, b.t, ip), out) < 1e-12);
}

TEST_CASE_TEMPLATE("EDM preconditioning has unit-variance input and output at sigma_data", S, gm::VE, gm::EDM, gm::VP) {
  // x0 ~ N(0, sd^2): Var(c_in x_t) = 1, and the target F has unit variance (Karras et al., appendix B.6).
  gm::Interpolant<S> ip;
  gm::Predict<gm::EDMPrecond> pred;
  const int64_t n = 200000;
  for (double tv : {0.2, 0.5, 0.8}) {
    auto t = torch::full({n}, tv, f64());
    auto x0 = 0.5 * torch::randn({n, 1}, f64());
    auto eps = torch::randn({n, 1}, f64());
    auto xt = ip.sample(x0, eps, t);
    const double tol = 5 * std::sqrt(2.0 / n);  // 5 standard errors of a sample variance of 1
    CHECK(pred.network_input(xt, t, ip).var().template item<double>() == doctest::Approx(1).epsilon(tol));
    CHECK(pred.target(x0, eps, t, ip).var().template item<double>() == doctest::Approx(1).epsilon(tol));
    // c_noise = log(sigma / alpha) / 4.
    auto t0 = torch::tensor(tv, f64());
    CHECK(pred.network_time(t0, ip).template item<double>() ==
          doctest::Approx(0.25 * std::log((ip.sigma(t0) / ip.alpha(t0)).template item<double>())));
  }
  // Other parameterisations feed x_t and t unchanged.
  auto t = gm::test::interior_times();
  CHECK(max_abs(gm::Predict<gm::Velocity>().network_time(t, ip), t) == 0);
}

TEST_CASE_TEMPLATE("loss weightings mean the same objective in every parameterisation", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto t = gm::test::interior_times(17);
  auto snr = ip.snr(t);
  auto sigma2 = ip.sigma(t).pow(2);
  // Weighted squared errors in P and in Data agree when the errors correspond: w_P |dP|^2 = w_D |dD|^2.
  auto check_weighting = [&]<class W>(const W& w) {
    gm::for_each_type<AllParams>([&]<class P>() {
      gm::Predict<P> pred;
      gm::Predict<gm::Data> data;
      auto k = pred.data_scale(t, ip);  // dD = k dP
      INFO(W::name << " in " << P::name);
      CHECK(max_rel(w.weight(t, ip, pred), w.weight(t, ip, data) * k * k) < 1e-10);
    });
  };
  check_weighting(gm::SNRWeight{});
  check_weighting(gm::MinSNRWeight{});
  check_weighting(gm::EDMWeight{});
  check_weighting(gm::LikelihoodWeight{});

  // The familiar forms.
  gm::Predict<gm::Noise> noise;
  gm::Predict<gm::Score> score;
  gm::Predict<gm::Data> data;
  CHECK(max_rel(gm::SNRWeight{}.weight(t, ip, noise), torch::ones_like(t)) < 1e-10);  // plain eps-MSE
  CHECK(max_rel(gm::SNRWeight{}.weight(t, ip, data), snr) < 1e-10);
  CHECK(max_rel(gm::MinSNRWeight{}.weight(t, ip, noise), snr.clamp_max(5) / snr) < 1e-10);  // Hang et al., eq. 7
  CHECK(max_rel(gm::LikelihoodWeight{}.weight(t, ip, score), ip.diffusion_sq(t)) < 1e-10);
  CHECK(max_rel(gm::LikelihoodWeight{}.weight(t, ip, noise), ip.diffusion_sq(t) / sigma2) < 1e-10);
  CHECK(max_rel(gm::EDMWeight{}.weight(t, ip, gm::Predict<gm::EDMPrecond>{}), torch::ones_like(t)) < 1e-10);
  CHECK(max_abs(gm::UniformWeight{}.weight(t, ip, score), torch::ones_like(t)) == 0);
}

TEST_CASE("data_scale is the derivative of the data estimate with respect to the output") {
  gm::Interpolant<gm::VPCosine> ip;
  auto b = make_batch(ip, 8);
  gm::for_each_type<AllParams>([&]<class P>() {
    gm::Predict<P> pred;
    auto out = torch::randn_like(b.xt);
    const double h = 1e-3;  // the map is affine: a finite difference is exact up to rounding
    auto dd = (pred.data(out + h, b.xt, b.t, ip) - pred.data(out, b.xt, b.t, ip)) / h;
    INFO(P::name);
    CHECK(max_rel(dd, gm::detail::bcast(pred.data_scale(b.t, ip), b.xt).expand_as(dd)) < 1e-9);
  });
}
