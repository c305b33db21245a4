#pragma once
/// @file
/// Stochastic samplers on the reverse SDE: Euler-Maruyama and predictor-corrector with Langevin steps.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <string_view>

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

}  // namespace gm
