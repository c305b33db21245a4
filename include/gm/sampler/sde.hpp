#pragma once
/// @file
/// Stochastic samplers on the reverse SDE: Euler-Maruyama and predictor-corrector with Langevin steps.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <utility>

namespace gm {
namespace detail {

/// One Euler-Maruyama step of the reverse SDE dx = [f x - g^2 score] dt + g dW (Song et al., ICLR 2021,
/// eq. 6) from t to t_next < t, with the score from the field; the last step adds no noise (score_sde's
/// "noise removal").  Where f and g are infinite at t (t = 1 with alpha(1) = 0) the step is the
/// probability-flow Euler step instead, whose velocity stays finite there.
template <class F>
torch::Tensor reverse_sde_step(F& field, const torch::Tensor& x, const StepInfo& info) {
  const auto& ip = field.process();
  const auto c = coefs(ip, info.t);
  const double dt = info.t_next - info.t;  // < 0
  const double f = c.d_alpha / c.alpha;
  const double g2 = 2 * c.sigma * (c.d_sigma - f * c.sigma);
  auto e = field.estimate(x, info.t);
  if (!std::isfinite(f) || !std::isfinite(g2)) {
    return x + dt * (c.d_alpha * e.data + c.d_sigma * e.noise);
  }
  auto score = -e.noise / c.sigma;
  auto mean = x + dt * (f * x - g2 * score);
  if (info.last()) return mean;
  return mean + std::sqrt(g2 * -dt) * info.noise(x);
}

}  // namespace detail

/// Euler-Maruyama on the reverse-time SDE of the process (Song et al., "Score-Based Generative Modeling
/// through Stochastic Differential Equations", ICLR 2021), strong order 1/2, weak order 1.  Seeded by the
/// generator given to `gm::integrate`.
struct EulerMaruyamaSampler {
  using category = sde_tag;
  static constexpr std::string_view name = "euler_maruyama";
  static constexpr int order = 1;
  struct State {};
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    return detail::reverse_sde_step(field, x, info);
  }
};

/// Predictor-corrector sampling (Song et al., ICLR 2021, alg. 1-3): at each node, `corrector_steps` Langevin
/// MCMC steps at fixed t, then an Euler-Maruyama predictor step to the next node.
///
/// The Langevin step size follows score_sde's signal-to-noise rule: eps = 2 (snr ||z|| / ||score||)^2, with
/// norms averaged over the batch, x <- x + eps score + sqrt(2 eps) z.  score_sde uses snr = 0.16 for VE and
/// 0.01 to 0.17 for VP; larger is smoother, smaller more diverse.  NFE per step: 1 + corrector_steps.
struct PCSampler {
  struct Options {
    TORCH_ARG(double, snr) = 0.16;
    TORCH_ARG(int64_t, corrector_steps) = 1;
  };
  using category = sde_tag;
  static constexpr std::string_view name = "pc";
  static constexpr int order = 1;
  struct State {};
  Options options{};
  PCSampler() = default;
  explicit PCSampler(Options o) : options(o) {}
  State init_state() const { return {}; }
  int64_t evals_per_step() const { return 1 + options.corrector_steps(); }

  template <class F>
  torch::Tensor step(F& field, torch::Tensor x, const StepInfo& info, State&) const {
    const auto c = detail::coefs(field.process(), info.t);
    for (int64_t j = 0; j < options.corrector_steps(); ++j) {
      auto score = -field.estimate(x, info.t).noise / c.sigma;
      auto z = info.noise(x);
      const double g = score.flatten(1).norm(2, 1).mean().template item<double>();
      const double zn = z.flatten(1).norm(2, 1).mean().template item<double>();
      if (!(g > 0) || !std::isfinite(g)) break;
      const double eps = 2 * std::pow(options.snr() * zn / g, 2);
      x = x + eps * score + std::sqrt(2 * eps) * z;
    }
    return detail::reverse_sde_step(field, x, info);
  }
};

/// SiT's SDE sampler (Ma et al., "SiT: Exploring Flow and Diffusion-based Generative Models with Scalable
/// Interpolant Transformers", ECCV 2024, sec. 3.3; SiT's transport/sde.py): Euler-Maruyama on the family
/// of SDEs that share the process's marginals, dx = [v - w(t)/2 score] dt + sqrt(w(t)) dW (reverse time),
/// with the diffusion coefficient w chosen freely (SiT-XL/2's 2.06 FID comes from tuning it).  Forms, in
/// gm's time (t = 1 noise) and scaled by `norm`: "sigma" (w = sigma(t), SiT's default), "constant",
/// "sbdm" (the process's own g^2, as EulerMaruyamaSampler), "linear" (w = t, SiT's 1 - t),
/// "decreasing" (w = (1 - norm cos(pi t))^2 / 4, SiT's 0.25 (norm cos(pi t) + 1)^2 in its time) and
/// "increasing-decreasing" (w = sin^2(pi t)).  The last step is `last_step`: "mean" (the drift without noise,
/// SiT's default), "tweedie" (the posterior mean E[x0 | x]: a jump to the data, whatever t_end), "euler" (a
/// probability-flow Euler step) or "none" (with noise).  Where w is infinite (sbdm at alpha = 0) the step
/// is the probability-flow Euler step.  One evaluation a step.
struct SiTSDESampler {
  struct Options {
    TORCH_ARG(std::string, diffusion) = "sigma";
    TORCH_ARG(double, norm) = 1.0;
    TORCH_ARG(std::string, last_step) = "mean";
  };
  using category = sde_tag;
  static constexpr std::string_view name = "sit_sde";
  static constexpr int order = 1;
  struct State {};
  Options options{};
  SiTSDESampler() = default;
  explicit SiTSDESampler(Options o) : options(std::move(o)) {
    const auto& d = options.diffusion();
    TORCH_CHECK(d == "sigma" || d == "constant" || d == "sbdm" || d == "linear" || d == "decreasing" ||
                    d == "increasing-decreasing",
                "gm: sit_sde's diffusion is sigma, constant, sbdm, linear, decreasing or increasing-decreasing, not '", d, "'");
    const auto& l = options.last_step();
    TORCH_CHECK(l == "mean" || l == "tweedie" || l == "euler" || l == "none",
                "gm: sit_sde's last_step is mean, tweedie, euler or none, not '", l, "'");
    TORCH_CHECK(options.norm() >= 0, "gm: sit_sde's norm must be >= 0");
  }
  State init_state() const { return {}; }

  /// w(t) for the process coefficients c at t.
  double diffusion(const detail::Coefs& c, double t) const {
    const auto& d = options.diffusion();
    const double n = options.norm();
    if (d == "sigma") return n * c.sigma;
    if (d == "constant") return n;
    if (d == "linear") return n * t;
    if (d == "decreasing") return 0.25 * std::pow(1 - n * std::cos(std::numbers::pi * t), 2);
    if (d == "increasing-decreasing") return n * std::pow(std::sin(std::numbers::pi * t), 2);
    const double f = c.d_alpha / c.alpha;  // sbdm: the process's own g^2
    return n * 2 * c.sigma * (c.d_sigma - f * c.sigma);
  }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    const auto c = detail::coefs(field.process(), info.t);
    auto e = field.estimate(x, info.t);
    const double dt = info.t_next - info.t;  // < 0
    auto v = c.d_alpha * e.data + c.d_sigma * e.noise;
    const double w = diffusion(c, info.t);
    const auto& last = options.last_step();
    if (info.last() && last == "tweedie") return e.data;
    if (!std::isfinite(w) || (info.last() && last == "euler")) return x + dt * v;
    // The score is -N / sigma, so w/2 score = -(w / (2 sigma)) N.
    auto mean = x + dt * (v + (w / (2 * c.sigma)) * e.noise);
    if (info.last() && last == "mean") return mean;
    return mean + std::sqrt(w * -dt) * info.noise(x);
  }
};

}  // namespace gm
