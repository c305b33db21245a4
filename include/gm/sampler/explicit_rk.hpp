#pragma once
/// @file
/// The explicit Runge-Kutta family on the probability-flow ODE, as one stepper fed a Butcher tableau.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/types.h>

#include <array>
#include <cmath>
#include <string_view>

namespace gm {

/// Butcher tableaux (Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I", II.1).
namespace tableau {

/// Forward Euler, order 1.
struct Euler {
  static constexpr std::string_view name = "euler";
  static constexpr int order = 1, stages = 1;
  static constexpr std::array<std::array<double, 1>, 1> a{{{0}}};
  static constexpr std::array<double, 1> b{1}, c{0};
};
/// Explicit midpoint, order 2.
struct Midpoint {
  static constexpr std::string_view name = "midpoint";
  static constexpr int order = 2, stages = 2;
  static constexpr std::array<std::array<double, 2>, 2> a{{{0, 0}, {0.5, 0}}};
  static constexpr std::array<double, 2> b{0, 1}, c{0, 0.5};
};
/// Heun's method (explicit trapezoid), order 2; EDM's second-order sampler (Karras et al., 2022, alg. 1).
struct Heun {
  static constexpr std::string_view name = "heun";
  static constexpr int order = 2, stages = 2;
  static constexpr bool euler_at_zero_sigma = true;  ///< EDM: Euler on a final step that reaches sigma = 0
  static constexpr std::array<std::array<double, 2>, 2> a{{{0, 0}, {1, 0}}};
  static constexpr std::array<double, 2> b{0.5, 0.5}, c{0, 1};
};
/// The classical fourth-order Runge-Kutta method.
struct RK4 {
  static constexpr std::string_view name = "rk4";
  static constexpr int order = 4, stages = 4;
  static constexpr std::array<std::array<double, 4>, 4> a{{{0, 0, 0, 0}, {0.5, 0, 0, 0}, {0, 0.5, 0, 0}, {0, 0, 1, 0}}};
  static constexpr std::array<double, 4> b{1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, c{0, 0.5, 0.5, 1};
};

}  // namespace tableau

/// An explicit Runge-Kutta sampler on the probability-flow ODE dx/dt = alpha' E[x0|x] + sigma' E[eps|x].
///
/// One generic stepper for every tableau: a step takes `stages` model evaluations at times
/// t + c_j (t_next - t), computed from the grid, never accumulated.
///
/// @tparam T a Butcher tableau from `gm::tableau` (or your own with the same members).
template <class T>
struct ExplicitRK {
  using category = ode_tag;
  static constexpr std::string_view name = T::name;
  static constexpr int order = T::order;
  static constexpr int stages = T::stages;
  struct State {};
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    const double h = info.t_next - info.t;
    if constexpr (requires { T::euler_at_zero_sigma; } && requires { field.process(); }) {  // not on likelihood's reversed-time system
      if (T::euler_at_zero_sigma && detail::coefs(field.process(), info.t_next).sigma == 0) {
        return x + h * field.velocity(x, info.t);
      }
    }
    std::array<torch::Tensor, T::stages> k;
    torch::Tensor acc;
    for (int j = 0; j < T::stages; ++j) {
      torch::Tensor xj = x;
      for (int l = 0; l < j; ++l) {
        if (T::a[j][l] != 0) xj = xj + (h * T::a[j][l]) * k[l];
      }
      k[j] = field.velocity(xj, info.t + T::c[j] * h);
      if (T::b[j] != 0) acc = acc.defined() ? acc + T::b[j] * k[j] : T::b[j] * k[j];
    }
    return x + h * acc;
  }
};

/// Euler on the probability-flow ODE, order 1.
using EulerSampler = ExplicitRK<tableau::Euler>;
/// Explicit midpoint, order 2.
using MidpointSampler = ExplicitRK<tableau::Midpoint>;
/// Heun, order 2, with Euler on a final step to sigma = 0 as in EDM.
using HeunSampler = ExplicitRK<tableau::Heun>;
/// Classical Runge-Kutta, order 4.
using RK4Sampler = ExplicitRK<tableau::RK4>;

static_assert(SteppingSampler<EulerSampler> && SteppingSampler<RK4Sampler>);

}  // namespace gm
