#pragma once
/// @file
/// Few-step sampling from flow maps: models of the average velocity u(x, t, r) over [r, t] (MeanFlow,
/// shortcut models, consistency models), and the exact flow map of any velocity field for tests.

#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/types.h>

#include <cstdint>
#include <string_view>

namespace gm {

/// A parameterisation whose network predicts the average velocity u(x, t, r) = (1 / (t - r)) int_r^t v ds
/// of the probability-flow ODE over [r, t], so that the flow map is X_{t -> r}(x) = x - (t - r) u(x, t, r);
/// at r = t it is the velocity itself.  Such a network takes its times as [B, 2] rows (t, r) (gm::MLP and
/// gm::UNet built with `times(2)`); given [B] times it reads r = t.  `gm::MeanFlow`, `gm::Shortcut` and
/// `gm::Consistency` declare `static constexpr bool average_velocity = true`.
template <class P>
concept AverageVelocityParameterization = Parameterization<P> && requires {
  { P::average_velocity } -> std::convertible_to<bool>;
} && P::average_velocity;

/// The times (t, r) of a batch as the [B, 2] rows a two-time network takes.
inline torch::Tensor time_pair(const torch::Tensor& t, const torch::Tensor& r) { return torch::stack({t, r}, 1); }

/// The flow-map sampler: x_next = x - (t - t_next) u(x, t, t_next), one model evaluation per step, the
/// one- and few-step sampler of MeanFlow (Geng et al., "Mean Flows for One-step Generative Modeling", 2025,
/// Algorithm 2) and of shortcut models (Frans et al., "One Step Diffusion via Shortcut Models", ICLR 2025).
/// With a perfect model every grid gives the exact ODE solution; the grid only spreads the model's error.
/// Only for models that predict the average velocity: any other is rejected at compile time.
struct FlowMapSampler {
  using category = ode_tag;
  static constexpr std::string_view name = "flow_map";
  static constexpr int order = 1;
  struct State {};
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    static_assert(AverageVelocityParameterization<typename F::parameterization>,
                  "gm: the flow_map sampler needs a model of the average velocity u(x, t, r): train it with "
                  "gm::MeanFlow, gm::Shortcut or gm::Consistency (a plain velocity model takes Euler, Heun, ...).");
    return x - (info.t - info.t_next) * field.average_velocity(x, info.t, info.t_next);
  }
};

/// Multistep consistency sampling (Song et al., "Consistency Models", ICML 2023, Algorithm 1): each step
/// jumps to the data, x0 = x - t u(x, t, 0), and, unless it is the last, puts fresh noise back at the next
/// time, x_next = alpha(t_next) x0 + sigma(t_next) z.  The sampler of consistency models (gm::Consistency,
/// which learns only the jump to r = 0); it runs on any average-velocity model.
struct ConsistencySampler {
  using category = sde_tag;
  static constexpr std::string_view name = "consistency";
  static constexpr int order = 1;
  struct State {};
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    static_assert(AverageVelocityParameterization<typename F::parameterization>,
                  "gm: the consistency sampler needs a model of the average velocity u(x, t, r): train it with "
                  "gm::Consistency, gm::MeanFlow or gm::Shortcut.");
    auto x0 = x - info.t * field.average_velocity(x, info.t, 0.0);
    if (info.last() || info.t_next <= 0) return x0;
    const auto c = detail::coefs(field.process(), info.t_next);
    return c.alpha * x0 + c.sigma * info.noise(x);
  }
};

/// The flow map X_{t -> r}(x) of the ODE dx/ds = v(x, s) by `steps` classical Runge-Kutta steps from t to r:
/// the reference a one-step model is measured against, exact to RK4's O(h^4) on the oracle's smooth fields.
/// t and r are 0-d tensors, or [B] for one pair per row (then v gets [B] times); they may be dual tensors or
/// require grad, so derivatives of the flow map in x, t and r come through.
template <class V>
torch::Tensor flow_map(V&& v, torch::Tensor x, const torch::Tensor& t, const torch::Tensor& r, int64_t steps = 200) {
  if (steps < 1) throw Error("gm: flow_map needs at least one step");
  const auto h = (r - t) / static_cast<double>(steps);
  const auto hx = detail::bcast(h, x);
  for (int64_t i = 0; i < steps; ++i) {
    const auto s = t + h * static_cast<double>(i);
    auto k1 = v(x, s);
    auto k2 = v(x + 0.5 * hx * k1, s + 0.5 * h);
    auto k3 = v(x + 0.5 * hx * k2, s + 0.5 * h);
    auto k4 = v(x + hx * k3, s + h);
    x = x + hx / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4);
  }
  return x;
}

/// The exact average velocity (x - X_{t -> r}(x)) / (t - r) of the ODE dx/ds = v(x, s) for per-row times
/// t2 = [B, 2] rows (t, r) (rows with equal pairs are integrated together), the velocity itself where
/// r = t: a perfect MeanFlow model, built from the oracle's exact velocity.
template <class V>
torch::Tensor exact_average_velocity(V&& v, const torch::Tensor& x, const torch::Tensor& t2, int64_t steps = 200) {
  if (t2.dim() != 2 || t2.size(1) != 2 || t2.size(0) != x.size(0)) throw Error("gm: times must be [B, 2] rows (t, r)");
  auto out = torch::empty_like(x);
  auto pairs = std::get<0>(torch::unique_dim(t2.to(torch::kFloat64).cpu(), 0));
  for (int64_t i = 0; i < pairs.size(0); ++i) {
    const double t = pairs[i][0].item<double>(), r = pairs[i][1].item<double>();
    auto rows = ((t2.select(1, 0) == t) & (t2.select(1, 1) == r)).nonzero().squeeze(1);
    auto xi = x.index_select(0, rows);
    auto tt = torch::scalar_tensor(t, x.options()), rr = torch::scalar_tensor(r, x.options());
    auto ui = t == r ? v(xi, tt) : (xi - flow_map(v, xi, tt, rr, steps)) / (t - r);
    out.index_copy_(0, rows, ui);
  }
  return out;
}

}  // namespace gm
