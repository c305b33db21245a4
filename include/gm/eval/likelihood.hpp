#pragma once
/// @file
/// `gm::log_likelihood`: the log-density of data under the probability-flow ODE (the instantaneous change of
/// variables of Chen et al. 2018, "Neural Ordinary Differential Equations", as Song et al. 2021 use it for
/// score models), with the exact divergence or Hutchinson's estimator (Grathwohl et al. 2019, FFJORD), and
/// bits per dimension for 8-bit images.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/random.hpp>
#include <gm/sampler/dopri.hpp>
#include <gm/sampler/field.hpp>
#include <gm/sampler/integrate.hpp>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

namespace gm {

/// How `log_likelihood` estimates the divergence of the velocity.
struct LikelihoodOptions {
  /// "exact": one backward pass per dimension (for low dimensions); "hutchinson": K probes z with
  /// E[z z^T] = I and div v ~ mean of z^T (dv/dx) z, one backward pass per probe.
  TORCH_ARG(std::string, divergence) = "exact";
  TORCH_ARG(std::string, probe) = "rademacher";  ///< Hutchinson's probes: rademacher or gaussian
  TORCH_ARG(int64_t, probes) = 1;                ///< K, probes per point (fixed over the integration)
  TORCH_ARG(double, t_eps) = 1e-5;               ///< the integration starts here, where the ODE is regular
  /// Fixed-step samplers' nodes in t from t_eps to 1: "uniform", or "log" (geometric, t_i = t_eps^(1 - i/n)),
  /// dense near the data, where an image model's velocity changes fastest.
  TORCH_ARG(std::string, spacing) = "uniform";
};

namespace detail {

/// The probability-flow ODE and the divergence of its velocity as one system in reversed time tau = 1 - t,
/// so gm's samplers, which integrate downwards, carry it from t = t_eps (tau = 1 - t_eps) up to t = 1
/// (tau = 0).  The state is [B, D + 1]: the flattened x and the accumulated divergence.
template <class F>
class AugmentedField {
 public:
  AugmentedField(F& field, std::vector<int64_t> shape, const LikelihoodOptions& o, torch::Tensor probes)
      : field_(field), shape_(std::move(shape)), o_(o), probes_(std::move(probes)) {}

  /// d[x, logdet]/dtau = -[v, div v] at t = 1 - tau.
  torch::Tensor velocity(const torch::Tensor& z, double tau) {
    const double t = 1.0 - tau;
    const int64_t b = z.size(0), d = z.size(1) - 1;
    torch::Tensor v, div;
    {
      torch::AutoGradMode grad(true);
      auto x = z.narrow(1, 0, d).detach().requires_grad_(true);
      auto shaped = x.view(shape_with(b));
      v = field_.velocity(shaped, t).reshape({b, d});
      div = o_.divergence() == "exact" ? exact_div(v, x) : hutchinson_div(v, x);
      v = v.detach();
    }
    ++nfe_;
    return -torch::cat({v, div.detach().unsqueeze(1)}, 1);
  }
  int64_t nfe() const { return nfe_; }

 private:
  std::vector<int64_t> shape_with(int64_t b) const {
    auto s = shape_;
    s[0] = b;
    return s;
  }
  static torch::Tensor exact_div(const torch::Tensor& v, const torch::Tensor& x) {
    auto div = torch::zeros({v.size(0)}, v.options());
    for (int64_t i = 0; i < v.size(1); ++i) {
      auto g = torch::autograd::grad({v.select(1, i).sum()}, {x}, {}, /*retain_graph=*/true)[0];
      div = div + g.select(1, i);
    }
    return div;
  }
  torch::Tensor hutchinson_div(const torch::Tensor& v, const torch::Tensor& x) const {
    auto div = torch::zeros({v.size(0)}, v.options());
    const int64_t k = probes_.size(0);
    for (int64_t j = 0; j < k; ++j) {
      const auto& z = probes_[j];
      auto g = torch::autograd::grad({(v * z).sum()}, {x}, {}, /*retain_graph=*/true)[0];
      div = div + (g * z).sum(1);
    }
    return div / static_cast<double>(k);
  }

  F& field_;
  std::vector<int64_t> shape_;
  LikelihoodOptions o_;
  torch::Tensor probes_;  // [K, B, D]
  int64_t nfe_ = 0;
};

}  // namespace detail

/// What `log_likelihood` returns, per point.
struct Likelihood {
  torch::Tensor log_p;      ///< log p_0(x), [B] (nats)
  torch::Tensor prior;      ///< log p_1(x_1) under the prior, [B]
  torch::Tensor delta;      ///< the integral of div v from t_eps to 1, [B]
  torch::Tensor x1;         ///< where x went at t = 1
  int64_t nfe = 0;          ///< velocity evaluations (each with its divergence)
};

/// The log-density of data `x` [B, ...] under the probability-flow ODE of `field` (a `gm::Field`):
/// log p_0(x) = log p_1(x_1) + integral from t_eps to 1 of div v(x_t, t) dt, where x_t solves dx/dt = v from
/// x at t_eps.  The state and the divergence are integrated together by `sampler` (any explicit Runge-Kutta
/// sampler of gm on `steps` uniform steps, or `DopriSampler`, adaptive, for which `steps` is ignored).
///
/// The prior p_1 is the process's law at t = 1 taken as N(0, sigma(1)^2 I): it neglects alpha(1) x0.  That
/// is exact where alpha(1) = 0 (Linear, Trig, VPCosine), within exp(-(beta terms)) for VP, and for VE the
/// "wide Gaussian" of score_sde: x_1 = x0 + sigma_max eps, whose error is about |x0|^2 / (2 sigma_max^2)
/// nats per point.  `data_variance` adds alpha(1)^2 s^2 to the prior variance for data of per-coordinate variance
/// s^2, which removes most of that error when the data is centred.
template <class F, class S = DopriSampler>
Likelihood log_likelihood(F& field, const torch::Tensor& x, const LikelihoodOptions& o = {}, const S& sampler = S{},
                          int64_t steps = 100, const at::Generator& gen = {}, double data_variance = 0.0) {
  if (o.divergence() != "exact" && o.divergence() != "hutchinson") {
    throw Error("gm: likelihood divergence must be exact or hutchinson, not '" + o.divergence() + "'");
  }
  if (o.probe() != "rademacher" && o.probe() != "gaussian") {
    throw Error("gm: likelihood probe must be rademacher or gaussian, not '" + o.probe() + "'");
  }
  if (o.probes() < 1) throw Error("gm: likelihood needs at least one probe");
  if (o.spacing() != "uniform" && o.spacing() != "log") {
    throw Error("gm: likelihood spacing must be uniform or log, not '" + o.spacing() + "'");
  }
  if (!(o.t_eps() >= 0 && o.t_eps() < 1)) throw Error("gm: likelihood t_eps must be in [0, 1)");
  const int64_t b = x.size(0), d = x.numel() / std::max<int64_t>(b, 1);
  auto flat = x.reshape({b, d});
  torch::Tensor probes;
  if (o.divergence() == "hutchinson") {
    const auto opts = flat.options();
    probes = torch::randn({o.probes(), b, d}, gen, on_generator(gen, opts)).to(opts.device());
    if (o.probe() == "rademacher") probes = torch::sign(probes);
  }
  detail::AugmentedField<F> aug(field, x.sizes().vec(), o, probes);
  auto z0 = torch::cat({flat.detach(), torch::zeros({b, 1}, flat.options())}, 1);
  std::vector<double> grid;
  const int64_t n = std::max<int64_t>(1, steps);
  if (o.spacing() == "log") {
    if (!(o.t_eps() > 0)) throw Error("gm: likelihood spacing 'log' needs t_eps > 0");
    for (int64_t i = 0; i <= n; ++i) grid.push_back(1.0 - std::pow(o.t_eps(), 1.0 - static_cast<double>(i) / n));
    grid.back() = 0.0;
  } else {
    for (int64_t i = 0; i <= n; ++i) grid.push_back((1.0 - o.t_eps()) * (1.0 - static_cast<double>(i) / n));
  }
  torch::NoGradGuard ng;
  auto z1 = integrate(sampler, aug, z0, grid);
  Likelihood out;
  out.x1 = z1.narrow(1, 0, d).reshape(x.sizes());
  out.delta = z1.select(1, d);
  const auto c = detail::coefs(field.process(), 1.0);
  const double var = c.sigma * c.sigma + c.alpha * c.alpha * data_variance;
  out.prior = -0.5 * z1.narrow(1, 0, d).pow(2).sum(1) / var - 0.5 * d * std::log(2 * std::numbers::pi * var);
  out.log_p = out.prior + out.delta;
  out.nfe = aug.nfe();
  return out;
}

/// Bits per dimension of 8-bit data from the log-density `log_p` [B] of the model's continuous data in
/// [-1, 1], for data of `dims` dimensions dequantised uniformly (u + v) / 256 with v ~ U[0, 1) and mapped
/// by y = 2 (u + v) / 256 - 1:
///
///   log p(u + v on [0, 256)) = log p(y) + D log(2 / 256),   bpd = -log p(u + v) / (D ln 2)
///                            = -log p(y) / (D ln 2) + 7.
///
/// (The change of variables from [0, 256) to [-1, 1] has Jacobian 2 / 256 per dimension.)  The mean over
/// the dequantisation noise bounds the discrete model's bpd from above (Theis et al. 2016).
torch::Tensor bits_per_dim(const torch::Tensor& log_p, int64_t dims);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor bits_per_dim(const torch::Tensor& log_p, int64_t dims) {
  const double d = static_cast<double>(dims);
  return -(log_p + d * std::log(2.0 / 256.0)) / (d * std::numbers::ln2);
}
#endif

}  // namespace gm
