#pragma once
/// @file
/// The `Sampler` concept, sampler categories, and what the driver tells a sampler at each step.

#include <gm/random.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <string_view>
#include <vector>

namespace gm {

/// Sampler categories; `gm::integrate` dispatches on them.
struct ode_tag {};        ///< one-step deterministic (Runge-Kutta, DDIM with eta = 0)
struct sde_tag {};        ///< one-step stochastic (Euler-Maruyama, predictor-corrector, DDIM with eta > 0)
struct multistep_tag {};  ///< reuses past model evaluations (DPM-Solver++, UniPC)
struct adaptive_tag {};   ///< chooses its own steps between the grid's ends (Dormand-Prince)

/// What the driver tells a sampler about the step it is to take from `t` to `t_next` (< t).
struct StepInfo {
  int64_t index = 0;             ///< step number, 0 for the step that starts at t = grid[0]
  int64_t steps = 0;             ///< number of steps in the grid
  double t = 1;                  ///< grid[index]
  double t_next = 0;             ///< grid[index + 1]
  const std::vector<double>* grid = nullptr;
  at::Generator generator{};     ///< for stochastic samplers; undefined means torch's global generator
  /// Per-sample seeds (one per row of x), or null: then row i's noise comes from its own seed alone.
  const std::vector<uint64_t>* row_seeds = nullptr;
  mutable int64_t draws = 0;     ///< noise draws taken in this step (set to 0 by the driver)
  bool last() const { return index + 1 == steps; }
  /// Standard normal noise shaped like x for a stochastic sampler: from `generator`, or with `row_seeds`,
  /// row i from (row_seeds[i], step, draw) alone, so a sample does not depend on its batch.
  torch::Tensor noise(const torch::Tensor& x) const {
    if (!row_seeds) return torch::randn(x.sizes(), generator, on_generator(generator, x.options())).to(x.device());
    const auto stream = static_cast<uint64_t>(index) * 4096 + static_cast<uint64_t>(draws++) + 1;
    return row_randn(*row_seeds, stream, x.sizes().slice(1), x.options());
  }
};

/// A sampler: a `name`, its `order` of accuracy, and a `category` tag.
///
/// Samplers of category ode, sde or multistep provide `State init_state() const` and
/// `Tensor step(Field&, const Tensor& x, const StepInfo&, State&) const`; adaptive samplers provide
/// `Tensor solve(Field&, const Tensor& x, double t0, double t1, Observer&) const`.  Drive any of them with
/// `gm::integrate`.
template <class S>
concept Sampler = std::copy_constructible<S> && requires {
  typename S::category;
  { S::order } -> std::convertible_to<int>;
  { S::name } -> std::convertible_to<std::string_view>;
} && (std::same_as<typename S::category, ode_tag> || std::same_as<typename S::category, sde_tag> ||
      std::same_as<typename S::category, multistep_tag> || std::same_as<typename S::category, adaptive_tag>);

/// A fixed-grid sampler (ode, sde or multistep) also has a `State` and `init_state()`.
template <class S>
concept SteppingSampler = Sampler<S> && !std::same_as<typename S::category, adaptive_tag> && requires(const S& s) {
  typename S::State;
  { s.init_state() } -> std::same_as<typename S::State>;
};

/// Model evaluations one step of `s` takes: its `evals_per_step()` if it has one, else its tableau's `stages`,
/// else 1.  Adaptive samplers choose their own count and give 0.
template <class S>
int64_t evals_per_step(const S& s) {
  if constexpr (std::same_as<typename S::category, adaptive_tag>) {
    return 0;
  } else if constexpr (requires { s.evals_per_step(); }) {
    return s.evals_per_step();
  } else if constexpr (requires { S::stages; }) {
    return S::stages;
  } else {
    return 1;
  }
}

/// The steps `s` takes at `nfe` model evaluations: nfe / evals_per_step(s) rounded down, at least 1 (Heun at
/// NFE 3 takes 1 step, 2 evaluations).  An adaptive sampler's steps are its own: it gets `nfe`.
template <class S>
int64_t steps_for_nfe(const S& s, int64_t nfe) {
  const int64_t per = evals_per_step(s);
  return per > 0 ? std::max<int64_t>(1, nfe / per) : std::max<int64_t>(1, nfe);
}

/// Explains why `S` is not a `Sampler`.
template <class S>
consteval bool check_sampler() {
  static_assert(requires { typename S::category; },
                "gm: a Sampler needs `using category = gm::ode_tag` (or sde_tag, multistep_tag, adaptive_tag).");
  static_assert(requires { S::order; }, "gm: a Sampler needs `static constexpr int order`, its order of accuracy.");
  static_assert(requires { S::name; }, "gm: a Sampler needs `static constexpr std::string_view name`.");
  return Sampler<S>;
}

}  // namespace gm
