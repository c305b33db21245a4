#pragma once
/// @file
/// `gm::Inpaint<S>`: conditional sampling of the unknown part of x given known values, for any fixed-grid
/// sampler on any process, by replacement.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/types.h>

#include <concepts>
#include <cstdint>
#include <string_view>
#include <utility>

namespace gm {

/// Inpainting by replacement (Song et al., "Score-Based Generative Modeling through Stochastic Differential
/// Equations", ICLR 2021, app. I.2; score_sde's `get_pc_inpainter`).  Wraps a fixed-grid sampler S: before
/// the first step and after every step, the known entries of x (where `mask` is 1) are replaced by a fresh
/// draw of the forward process at the time reached, alpha(t) x0 + sigma(t) z, so the unknown entries are
/// generated in agreement with them; after the last step they are x0 itself.
///
/// It is the simple method, not exact conditional sampling: the replaced entries are drawn from p(x_t | x0)
/// of the known part alone, which ignores what the unknown part already says about them.  It is close when
/// the unknown entries are nearly determined by the known ones through the model, and measured against the
/// Gaussian-mixture oracle in tests/test_sampler.cpp.  Noise draws use the StepInfo's generator or
/// per-sample seeds, like every stochastic sampler.
///
/// @tparam S a fixed-grid sampler (ode, sde or multistep); an adaptive one is refused at compile time.
///
/// Example:
/// @code
/// gm::Inpaint<gm::EulerMaruyamaSampler> inpaint({}, known, mask);   // mask: 1 known, 0 to generate
/// auto x = gm::integrate(inpaint, field, noise, grid, gm::NoObserver{}, gen);
/// @endcode
template <class S>
struct Inpaint {
  static_assert(!std::same_as<typename S::category, adaptive_tag>,
                "gm: Inpaint re-imposes the known values after each step, which needs a fixed-grid sampler; an "
                "adaptive sampler (Dormand-Prince) chooses its own steps, so use Heun, RK4, DPM-Solver++ or an SDE "
                "sampler instead.");
  using category = typename S::category;
  using State = typename S::State;
  static constexpr std::string_view name = S::name;
  static constexpr int order = S::order;

  S inner{};
  torch::Tensor known;  ///< x0 values (any value where mask is 0), shaped like a batch of samples
  torch::Tensor mask;   ///< 1 where known, 0 where generated; broadcastable to x

  Inpaint(S sampler, torch::Tensor known_values, torch::Tensor known_mask)
      : inner(std::move(sampler)), known(std::move(known_values)), mask(std::move(known_mask)) {}

  State init_state() const { return inner.init_state(); }
  int64_t evals_per_step() const { return gm::evals_per_step(inner); }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State& state) const {
    auto in = info.index == 0 ? impose(field, x, info.t, info) : x;
    auto out = inner.step(field, in, info, state);
    if (info.last()) {  // the end of the grid stands for t = 0: the known values themselves
      auto m = mask.to(out.options());
      return m * known.to(out.options()) + (1 - m) * out;
    }
    return impose(field, out, info.t_next, info);
  }

 private:
  template <class F>
  torch::Tensor impose(F& field, const torch::Tensor& x, double t, const StepInfo& info) const {
    const auto c = detail::coefs(field.process(), t);
    auto m = mask.to(x.options());
    auto draw = c.alpha * known.to(x.options()) + c.sigma * info.noise(x);
    return m * draw + (1 - m) * x;
  }
};

}  // namespace gm
