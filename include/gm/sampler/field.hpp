#pragma once
/// @file
/// `Field`: a model seen through a process and a parameterisation, as samplers use it.

#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/process/concepts.hpp>

#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace gm {

/// Optional trait of a schedule: `static constexpr bool alpha_vanishes_at_one = true` when alpha(1) = 0
/// (Linear, Trig, VPCosine).  Lets gm reject at compile time what cannot work at t = 1.
template <class S>
constexpr bool alpha_vanishes_at_one() {
  if constexpr (requires { S::alpha_vanishes_at_one; }) {
    return S::alpha_vanishes_at_one;
  } else {
    return false;
  }
}

/// The run-time side of the compile-time check above, for schedules that do not declare the trait: a Noise
/// or Score prediction on a process whose alpha(1) is 0 is a one-line `gm::Error` instead of NaN at t = 1.
template <class P, Process I>
void check_prediction_at_one(const I& ip) {
  if constexpr (std::same_as<P, Noise> || std::same_as<P, Score>) {
    const double a1 = ip.alpha(torch::tensor(1.0, torch::kFloat64)).template item<double>();
    if (!(std::abs(a1) > 1e-12)) {
      throw Error("gm: process '" + std::string(I::name) + "' has alpha(1) = " + std::to_string(a1) + ": a " +
                  std::string(P::name) + " prediction cannot give E[x0 | x_t] at t = 1; predict Velocity, Data or "
                  "EDMPrecond instead (and declare `static constexpr bool alpha_vanishes_at_one = true` in the "
                  "schedule to have this caught at compile time)");
    }
  }
}

/// Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022): the model is
/// called with `cond` and with `null_cond`, and its outputs combine as out_null + scale (out_cond - out_null).
/// Guidance in any parameterisation is the same, since all are affine in the output.  Scale 1 calls only the
/// conditional model and scale 0 only the unconditional one; any other scale evaluates both in one batch of
/// twice the rows (one model call, counted as one evaluation).
///
/// Two refinements of the field's practice are options: guidance only on part of the time range
/// (Kynkäänniemi et al., "Applying Guidance in a Limited Interval Improves Sample and Distribution Quality in
/// Diffusion Models", NeurIPS 2024; REPA's guidance_low/guidance_high, LightningDiT's cfg_interval_start),
/// outside which the conditional model alone runs at one evaluation; and CFG rescale (Lin et al., "Common
/// Diffusion Noise Schedules and Sample Steps are Flawed", WACV 2024, eq. 15-16; diffusers' guidance_rescale),
/// which pulls the guided output's standard deviation back to the conditional output's:
/// out = phi out_cfg std(out_cond) / std(out_cfg) + (1 - phi) out_cfg, per sample, on the model's output.
struct Guidance {
  torch::Tensor cond;       ///< conditioning passed to the model (e.g. class labels)
  torch::Tensor null_cond;  ///< the "unconditional" conditioning (e.g. the null label)
  double scale = 1.0;       ///< 1: conditional model only; 0: unconditional only
  double low = 0.0;         ///< guidance applies for t in [low, high] (t = 1 noise); elsewhere scale 1
  double high = 1.0;
  double rescale = 0.0;     ///< CFG rescale phi in [0, 1]; 0: off
  /// Whether [low, high] is judged once per step, at the step's start time, for every evaluation of the step
  /// (REPA's euler/heun samplers, generate.py: `t_cur <= guidance_high and t_cur >= guidance_low` also for the
  /// Heun corrector at t_next), or per evaluation at its own time (false).  The two differ only for samplers
  /// that evaluate more than once per step (Heun, RK, DPM-Solver's orders > 1) on a step that crosses an end of
  /// the interval.  Adaptive samplers, whose steps gm::integrate does not see, judge per evaluation.
  bool per_step = true;
};

/// out_weak + scale (out_main - out_weak): autoguidance's combination (scale 1: out_main itself).
inline torch::Tensor autoguide(const torch::Tensor& out_main, const torch::Tensor& out_weak, double scale) {
  if (scale == 1.0) return out_main;
  return out_weak + scale * (out_main - out_weak);
}

/// Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself"): a model
/// guided by a weaker version of itself (an earlier checkpoint, a smaller network) instead of by its own
/// unconditional branch, out_weak + scale (out_main - out_weak), both called with the same conditioning.
/// It is a model, so it goes into a `Field` like any other and works with every sampler; scale 1 is the
/// main model.  The two models must predict in the same parameterisation.
///
/// @code
/// gm::Field field(process, gm::Predict<gm::Velocity>{}, gm::AutoGuided{main_fn, weak_fn, 2.0},
///                 gm::Guidance{labels, {}, 1.0});  // labels to both models, no classifier-free branch
/// @endcode
template <class Main, class Weak>
struct AutoGuided {
  Main main;
  Weak weak;
  double scale = 2.0;

  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t)
    requires(std::invocable<Main&, const torch::Tensor&, const torch::Tensor&> &&
             std::invocable<Weak&, const torch::Tensor&, const torch::Tensor&>)
  {
    return autoguide(main(x, t), weak(x, t), scale);
  }
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& cond)
    requires(std::invocable<Main&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&> &&
             std::invocable<Weak&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&>)
  {
    return autoguide(main(x, t, cond), weak(x, t, cond), scale);
  }
};
template <class Main, class Weak>
AutoGuided(Main, Weak, double) -> AutoGuided<Main, Weak>;

namespace detail {
/// alpha, sigma, log-SNR and derivatives of a process at one time, in double precision.
struct Coefs {
  double alpha, sigma, lambda, d_alpha, d_sigma;
};
template <Process I>
Coefs coefs(const I& ip, double t) {
  auto tt = torch::tensor(t, torch::kFloat64);
  return {ip.alpha(tt).template item<double>(), ip.sigma(tt).template item<double>(),
          ip.log_snr(tt).template item<double>(), ip.d_alpha(tt).template item<double>(),
          ip.d_sigma(tt).template item<double>()};
}
}  // namespace detail

/// A model seen through a process and a parameterisation: what samplers evaluate.
///
/// The model is any callable `model(x, t)` (or `model(x, t, cond)` with `Guidance`) returning its output in
/// P for x of shape [B, ...] and t of shape [B]: a network, or `GaussianMixture::predict<P>` for exact
/// tests.  The field turns that output into the posterior pair, the velocity of the probability-flow ODE, or
/// the score, so every parameterisation feeds every sampler.  It counts evaluations (NFE) and the time spent
/// inside the model, so sampler overhead can be measured.
///
/// @tparam I the process (`Interpolant<S>`).
/// @tparam P the parameterisation the model predicts in.
/// @tparam M the model callable.
///
/// Example:
/// @code
/// auto oracle = gm::GaussianMixture::from_toml("configs/mixtures/ring8.toml");
/// gm::Interpolant<gm::Linear> flow;
/// gm::Field field(flow, gm::Predict<gm::Velocity>{},
///                 [&](const torch::Tensor& x, const torch::Tensor& t) { return oracle.velocity(x, t, flow); });
/// @endcode
template <Process I, class P, class M>
class Field {
  static_assert(Parameterization<P>, "gm: Field<I, P, M> needs P to be a gm::Parameterization.");
  static_assert(!(alpha_vanishes_at_one<typename I::schedule_type>() &&
                  (std::same_as<P, Noise> || std::same_as<P, Score>)),
                "gm: a Noise or Score prediction cannot give E[x0 | x_t] at t = 1, where this process has "
                "alpha(1) = 0 and x_1 is pure noise; predict Velocity, Data or EDMPrecond instead.");
  static_assert(std::invocable<M&, const torch::Tensor&, const torch::Tensor&> ||
                    std::invocable<M&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&>,
                "gm: a Field's model must be callable as model(x, t) or model(x, t, cond), returning a tensor.");

 public:
  using process_type = I;
  using parameterization = P;

  Field(I process, Predict<P> predict, M model, Guidance guidance = {})
      : process_(std::move(process)), predict_(std::move(predict)), model_(std::move(model)),
        guidance_(std::move(guidance)) {
    check_prediction_at_one<P>(process_);
  }
  Field(I process, P p, M model, Guidance guidance = {})
      : Field(std::move(process), Predict<P>(std::move(p)), std::move(model), std::move(guidance)) {}

  const I& process() const { return process_; }
  const Predict<P>& predict() const { return predict_; }

  /// The model's raw output in P at (x, t); counts one evaluation.
  torch::Tensor output(const torch::Tensor& x, double t) {
    auto tt = torch::full({x.size(0)}, t, x.options());
    const auto start = std::chrono::steady_clock::now();
    auto out = call(x, tt, t);
    model_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++nfe_;
    return out;
  }
  /// E[x0 | x_t = x] and E[eps | x_t = x] as the model sees them.  At t <= 0, where sigma = 0 and the
  /// noise estimate (x - alpha D) / sigma is 0 / 0, the noise term is its limit 0 (x_0 holds no noise),
  /// so every sampler may end at t_end = 0.
  Estimate estimate(const torch::Tensor& x, double t) {
    auto out = output(x, t);
    // One time for the whole batch: a 0-d t broadcasts, and the coefficients cost one scalar each.
    auto e = predict_.estimate(out, x, torch::scalar_tensor(t, x.options()), process_);
    if (t <= 0) e.noise = torch::zeros_like(e.data);
    return e;
  }
  /// The probability-flow ODE velocity dx/dt = alpha' E[x0|x] + sigma' E[eps|x] (alpha' E[x0|x] at t = 0).
  torch::Tensor velocity(const torch::Tensor& x, double t) {
    if constexpr (std::derived_from<P, Velocity>) {
      return output(x, t);
    } else {
      auto e = estimate(x, t);
      auto c = detail::coefs(process_, t);
      return c.d_alpha * e.data + c.d_sigma * e.noise;
    }
  }
  /// The average velocity u(x, t, r) over [r, t] of a flow-map model (a parameterisation with
  /// `average_velocity`, e.g. gm::MeanFlow): the model called with [B, 2] times (t, r); counts one evaluation.
  torch::Tensor average_velocity(const torch::Tensor& x, double t, double r) {
    auto tt = torch::stack({torch::full({x.size(0)}, t, x.options()), torch::full({x.size(0)}, r, x.options())}, 1);
    const auto start = std::chrono::steady_clock::now();
    auto out = call(x, tt, t);
    model_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++nfe_;
    return out;
  }
  /// E[x0 | x_t = x].
  torch::Tensor data(const torch::Tensor& x, double t) {
    if constexpr (std::same_as<P, Data>) {
      return output(x, t);
    } else {
      return estimate(x, t).data;
    }
  }

  /// gm::integrate says where each step starts (Guidance::per_step judges the guidance interval there);
  /// NaN: no step (the time of each evaluation judges).
  void begin_step(double t) { step_time_ = t; }

  int64_t nfe() const { return nfe_; }
  double model_seconds() const { return model_seconds_; }
  void reset_counters() {
    nfe_ = 0;
    model_seconds_ = 0;
  }

 private:
  torch::Tensor call(const torch::Tensor& x, const torch::Tensor& t, double time) {
    if constexpr (std::invocable<M&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&>) {
      const double when = guidance_.per_step && !std::isnan(step_time_) ? step_time_ : time;
      const double scale = when >= guidance_.low && when <= guidance_.high ? guidance_.scale : 1.0;
      if (scale == 1.0) return model_(x, t, guidance_.cond);
      if (scale == 0.0) return model_(x, t, guidance_.null_cond);
      // Both branches in one batch, as DiT's forward_with_cfg does: one call, twice the rows.
      auto both = model_(torch::cat({x, x}), torch::cat({t, t}), torch::cat({guidance_.cond, guidance_.null_cond}));
      auto out_cond = both.narrow(0, 0, x.size(0)), out_null = both.narrow(0, x.size(0), x.size(0));
      auto out = out_null + scale * (out_cond - out_null);
      if (guidance_.rescale > 0) {
        std::vector<int64_t> dims(static_cast<size_t>(out.dim() - 1));
        for (size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<int64_t>(i + 1);
        auto ratio = out_cond.std(dims, /*unbiased=*/true, /*keepdim=*/true) / out.std(dims, true, true);
        out = guidance_.rescale * (out * ratio) + (1 - guidance_.rescale) * out;
      }
      return out;
    } else {
      return model_(x, t);
    }
  }

  I process_;
  Predict<P> predict_;
  M model_;
  Guidance guidance_;
  int64_t nfe_ = 0;
  double model_seconds_ = 0;
  double step_time_ = std::numeric_limits<double>::quiet_NaN();
};

template <Process I, class P, class M>
Field(I, Predict<P>, M, Guidance = {}) -> Field<I, P, M>;
template <Process I, Parameterization P, class M>
Field(I, P, M, Guidance = {}) -> Field<I, P, M>;

}  // namespace gm
