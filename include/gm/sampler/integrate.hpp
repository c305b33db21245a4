#pragma once
/// @file
/// `gm::integrate`: the one driver that owns every sampler's time loop.

#include <gm/error.hpp>
#include <gm/sampler/concepts.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace gm {

/// What an observer sees after each step.
struct StepEvent {
  int64_t index;          ///< step just taken (0-based); for adaptive samplers, the accepted-step count
  double t;               ///< the time reached
  const torch::Tensor& x; ///< the state at t
  int64_t nfe;            ///< model evaluations so far
};

/// An observer is called as `obs(const StepEvent&)` after each step and returns void, or bool where `true`
/// stops the integration early.
template <class O>
concept Observer = std::invocable<O&, const StepEvent&>;

/// The observer that does nothing.
struct NoObserver {
  void operator()(const StepEvent&) const {}
};

/// Records x after every step (on the CPU), for trajectories and plots.
struct TrajectoryRecorder {
  std::vector<double> times;
  std::vector<torch::Tensor> states;
  void operator()(const StepEvent& e) {
    times.push_back(e.t);
    states.push_back(e.x.detach().cpu().clone());
  }
};

namespace detail {
template <class O>
bool notify(O& obs, const StepEvent& e) {
  if constexpr (std::is_same_v<std::invoke_result_t<O&, const StepEvent&>, bool>) {
    return obs(e);
  } else {
    obs(e);
    return false;
  }
}
}  // namespace detail

/// Run `sampler` on `field` from x at grid[0] (= 1, pure noise) down to grid.back().
///
/// Fixed-grid samplers (ode, sde, multistep) step from grid[i] to grid[i+1]; times come from the grid and are
/// never accumulated.  Adaptive samplers integrate from grid.front() to grid.back() with their own steps.
/// `observer` sees every step and may stop early; `generator` seeds stochastic samplers, or, when
/// `row_seeds` is given (one seed per row of x, see `gm::sample_seeds`), row i's noise comes from its seed
/// alone, so a sample does not depend on the batch it is drawn in.
///
/// Example:
/// @code
/// auto grid = gm::UniformGrid().nodes(20, 1e-3, flow);
/// auto x0 = gm::integrate(gm::HeunSampler{}, field, torch::randn({n, 2}), grid);
/// @endcode
template <class S, class F, class O = NoObserver>
torch::Tensor integrate(const S& sampler, F& field, torch::Tensor x, const std::vector<double>& grid, O&& observer = {},
                        const at::Generator& generator = {}, const std::vector<uint64_t>* row_seeds = nullptr) {
  static_assert(check_sampler<S>(), "gm::integrate needs a gm::Sampler.");
  static_assert(Observer<std::remove_reference_t<O>>,
                "gm::integrate's observer must be callable as obs(const gm::StepEvent&), returning void or bool.");
  if (row_seeds && static_cast<int64_t>(row_seeds->size()) != x.size(0)) {
    throw Error("gm: integrate got " + std::to_string(row_seeds->size()) + " row seeds for " + std::to_string(x.size(0)) +
                " samples");
  }
  if (grid.size() < 2) throw Error("gm: integrate needs a grid of at least 2 nodes");
  for (size_t i = 1; i < grid.size(); ++i) {
    if (!(grid[i] < grid[i - 1])) throw Error("gm: integrate needs a strictly decreasing grid");
  }
  if constexpr (std::same_as<typename S::category, adaptive_tag>) {
    int64_t accepted = 0;
    return sampler.solve(field, std::move(x), grid.front(), grid.back(), [&](double t, const torch::Tensor& xt) {
      return detail::notify(observer, StepEvent{accepted++, t, xt, field.nfe()});
    });
  } else {
    auto state = sampler.init_state();
    StepInfo info;
    info.steps = static_cast<int64_t>(grid.size()) - 1;
    info.grid = &grid;
    info.generator = generator;
    info.row_seeds = row_seeds;
    struct StepTimeReset {  // the field forgets the last step's start however the loop ends
      F& f;
      ~StepTimeReset() {
        if constexpr (requires { f.begin_step(0.0); }) f.begin_step(std::numeric_limits<double>::quiet_NaN());
      }
    } reset{field};
    for (int64_t i = 0; i < info.steps; ++i) {
      info.index = i;
      info.t = grid[static_cast<size_t>(i)];
      info.t_next = grid[static_cast<size_t>(i + 1)];
      info.draws = 0;
      if constexpr (requires { field.begin_step(info.t); }) field.begin_step(info.t);
      x = sampler.step(field, x, info, state);
      if (detail::notify(observer, StepEvent{i, info.t_next, x, field.nfe()})) break;
    }
    return x;
  }
}

}  // namespace gm
