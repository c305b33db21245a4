#pragma once
/// @file
/// Training objectives with their own loss: the few-step objectives for flow maps (MeanFlow, shortcut models,
/// consistency training, ECT) and SB-CFM's Brownian-bridge flow matching.
/// Each is a parameterisation of the average velocity u(x, t, r) (`gm::AverageVelocityParameterization`)
/// with its own pair of times and its own loss, which `gm::Trainer` uses in place of the regression on P's
/// target: `gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::MeanFlow>, gm::MLP, gm::FlowMapSampler>`.

#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
#include <gm/nn/jvp.hpp>
#include <gm/prediction/tags.hpp>
#include <gm/process/concepts.hpp>
#include <gm/random.hpp>
#include <gm/sampler/flow_map.hpp>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace gm {

/// Draws another batch of times from the trainer's time sampler.
using TimeDraw = std::function<torch::Tensor()>;
/// The network's average velocity u(x, t2) at [B, 2] times (t, r), with its graph.
using AverageVelocityModel = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t2)>;

/// A training objective: a parameterisation that brings its own times and loss.  `times(t, more, gen, step)`
/// turns the time sampler's t (and more draws of it) into the times the model is called at ([B], or [B, 2]
/// pairs (t, r) for a flow map), and `loss(u, x0, eps, times, process, step, extra)` -> [B] is the per-sample
/// loss of the model u(x, times); `extra` is a second standard-normal draw shaped like x0 when P declares
/// `static constexpr bool extra_noise = true`, else undefined.  `gm::Trainer` trains P by its `loss` when P is
/// one, with every draw made for the global batch (so data-parallel ranks agree).
template <class P>
concept Objective = Parameterization<P> &&
    requires(const P& p, const torch::Tensor& a, const TimeDraw& more, const at::Generator& g,
             const AverageVelocityModel& u, const detail::ProcessArchetype& ip) {
      { p.times(a, more, g, int64_t{}) } -> std::convertible_to<torch::Tensor>;
      { p.loss(u, a, a, a, ip, int64_t{}, a) } -> std::convertible_to<torch::Tensor>;
    };

/// A flow-map training objective: an objective whose model is of the average velocity u(x, t, r)
/// (gm::MeanFlow, gm::Shortcut, gm::Consistency).
template <class P>
concept FlowMapObjective = AverageVelocityParameterization<P> && Objective<P>;

/// Whether objective P asks the trainer for a second noise draw (`extra_noise`).
template <class P>
constexpr bool wants_extra_noise() {
  if constexpr (requires { P::extra_noise; }) {
    return P::extra_noise;
  } else {
    return false;
  }
}

namespace detail {
/// The conditional velocity d/dt x_t = alpha'(t) x0 + sigma'(t) eps of the pair (x0, eps).
template <Process I>
torch::Tensor conditional_velocity(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t, const I& ip) {
  return detail::bcast(ip.d_alpha(t), x0) * x0 + detail::bcast(ip.d_sigma(t), x0) * eps;
}
/// The mean square over all but the first dimension: [B, ...] -> [B].
inline torch::Tensor per_row_mean_square(const torch::Tensor& e) { return e.pow(2).flatten(1).mean(1); }
/// The sum of squares over all but the first dimension: [B, ...] -> [B].
inline torch::Tensor per_row_sum_square(const torch::Tensor& e) { return e.pow(2).flatten(1).sum(1); }
}  // namespace detail

/// MeanFlow (Geng, Deng, Bai, Kolter & He, "Mean Flows for One-step Generative Modeling", 2025): the network
/// learns the average velocity u(z, t, r) through the MeanFlow identity u = v - (t - r) du/dt, where du/dt
/// = v d_z u + d_t u is the total derivative along the ODE, computed in one forward-mode pass (`gm::jvp`
/// along (v, (1, 0))), and the target is held fixed (stop-gradient):
///   loss = w ||u(z_t, t, r) - sg(v - (t - r) du/dt)||^2,  w = sg(1 / (||.||^2 + c)^p)  (adaptive weighting),
/// with ||.||^2 each sample's sum of squares over its elements and c = 0.01, as the official code computes
/// it (Gsunshine/meanflow, meanflow.py: `loss = jnp.sum(loss, axis=(1, 2, 3)); adp_wt = (loss + norm_eps) **
/// norm_p; loss = loss / stop_gradient(adp_wt)`, norm_eps = 0.01, norm_p = 1.0 in configs/default.py).
/// v is the conditional velocity alpha' x0 + sigma' eps of the drawn pair, as in the paper's Algorithm 1.
/// Times: two draws of the trainer's time sampler, t the larger and r the smaller; a share 1 - `ratio` of
/// the rows gets r = t (plain flow matching).  The paper's best 1-NFE ImageNet setting: logit-normal times
/// (-0.4, 1.0), ratio 0.25, p = 1 (`configs/meanflow_2d.toml`).
struct MeanFlow : Velocity {
  struct Options {
    TORCH_ARG(double, ratio) = 0.25;     ///< share of rows with r != t
    TORCH_ARG(double, power) = 1.0;      ///< adaptive weighting's p (0: plain squared error)
    TORCH_ARG(double, c) = 1e-2;         ///< adaptive weighting's c (the official code's norm_eps)
    TORCH_ARG(JVPMode, jvp) = JVPMode::forward;
  };
  static constexpr std::string_view name = "meanflow";
  static constexpr bool average_velocity = true;
  Options options{};
  MeanFlow() = default;
  explicit MeanFlow(Options o) : options(o) {}

  torch::Tensor times(const torch::Tensor& t, const TimeDraw& more, const at::Generator& gen, int64_t) const {
    auto s = more().to(t.dtype());
    auto hi = torch::maximum(t, s), lo = torch::minimum(t, s);
    auto apart = torch::rand(t.sizes(), gen, on_generator(gen, t.options())) < options.ratio();
    return time_pair(hi, torch::where(apart, lo, hi));
  }

  template <Process I, class U>
  torch::Tensor loss(U&& u, const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t2, const I& ip,
                     int64_t, const torch::Tensor& = {}) const {
    auto t = t2.select(1, 0), r = t2.select(1, 1);
    auto z = ip.sample(x0, eps, t);
    auto v = detail::conditional_velocity(x0, eps, t, ip);
    auto dt = time_pair(torch::ones_like(t), torch::zeros_like(r));  // d/dt moves t, not r
    auto j = jvp([&](const std::vector<torch::Tensor>& in) { return u(in[0], in[1]); }, {z, t2}, {v, dt},
                 options.jvp());
    auto target = (v - detail::bcast(t - r, v) * j.tangent.to(v.scalar_type())).detach();
    auto error = detail::per_row_sum_square(j.output.to(target.scalar_type()) - target);
    if (options.power() == 0) return error;
    return error * (error.detach() + options.c()).pow(-options.power());
  }
};

/// Shortcut models (Frans, Hafner, Levine & Abbeel, "One Step Diffusion via Shortcut Models", ICLR 2025):
/// the network u(x, t, r) of the step d = t - r learns flow matching at d = 0 and, on a share `bootstrap`
/// of the rows, self-consistency: one jump of 2d equals two jumps of d,
///   u(x_t, t, t - 2d) -> sg((u(x_t, t, t - d) + u(x', t - d, t - 2d)) / 2),  x' = x_t - d u(x_t, t, t - d),
/// with d = 2^-k, k in 1..`levels` (so 2d from 1 down to 2^(1 - levels); the paper's 128 smallest steps is
/// levels = 7) and t on the multiples of 2d.  The flow-matching rows are trained at the smallest step
/// d_min = 2^-levels, u(x_t, t, t - d_min) -> v (r clipped at 0), the very step the teacher's smallest queries
/// use, as the reference code does (kvfrans/shortcut-models, targets_shortcut.py: the flow rows get
/// dt_base = log2(denoise_timesteps), the bootstrap rows dt_base + 1 <= that for their two half jumps).  The
/// targets come from the current weights (the reference code can take them from the EMA; gm keeps one network).
struct Shortcut : Velocity {
  struct Options {
    TORCH_ARG(double, bootstrap) = 0.25;  ///< share of rows trained by self-consistency
    TORCH_ARG(int64_t, levels) = 7;       ///< smallest step d = 2^-levels
  };
  static constexpr std::string_view name = "shortcut";
  static constexpr bool average_velocity = true;
  Options options{};
  Shortcut() = default;
  explicit Shortcut(Options o) : options(o) {
    if (options.levels() < 1 || options.levels() > 20) throw Error("gm: shortcut levels must be in 1..20");
  }

  torch::Tensor times(const torch::Tensor& t, const TimeDraw&, const at::Generator& gen, int64_t) const {
    const auto o = on_generator(gen, t.options());
    auto k = torch::randint(1, options.levels() + 1, t.sizes(), gen, o);
    auto jump = 2 * torch::pow(2.0, -k);                                                 // 2d
    auto start = (jump * (1 + torch::floor(torch::rand(t.sizes(), gen, o) / jump))).clamp_max(1);  // {2d, 4d, .., 1}
    auto boot = torch::rand(t.sizes(), gen, o) < options.bootstrap();
    auto flow_r = (t - smallest()).clamp_min(0);
    return time_pair(torch::where(boot, start, t), torch::where(boot, start - jump, flow_r));
  }

  /// The smallest step d_min = 2^-levels: the flow-matching rows' step and the teacher's smallest query.
  double smallest() const { return std::ldexp(1.0, -static_cast<int>(options.levels())); }

  template <Process I, class U>
  torch::Tensor loss(U&& u, const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t2, const I& ip,
                     int64_t, const torch::Tensor& = {}) const {
    auto t = t2.select(1, 0), r = t2.select(1, 1);
    auto z = ip.sample(x0, eps, t);
    auto out = u(z, t2);
    auto target = detail::conditional_velocity(x0, eps, t, ip).to(out.scalar_type());
    // Bootstrap rows jump 2d >= 2 d_min; the flow-matching rows d_min at most (less where r was clipped at 0).
    auto boot = ((t - r) > 1.5 * smallest()).nonzero().squeeze(1);
    if (boot.numel() > 0) {
      torch::NoGradGuard ng;
      auto zb = z.index_select(0, boot), tb = t.index_select(0, boot), rb = r.index_select(0, boot);
      auto mid = 0.5 * (tb + rb), d = detail::bcast(tb - mid, zb);
      auto u1 = u(zb, time_pair(tb, mid));
      auto u2 = u(zb - d * u1.to(zb.scalar_type()), time_pair(mid, rb));
      target = target.index_copy(0, boot, (0.5 * (u1 + u2)).to(target.scalar_type()));
    }
    return detail::per_row_mean_square(out - target.detach());
  }
};

/// Consistency training, ECT's way (Geng, Pokle, Luo, Lin & Kolter, "Consistency Models Made Easy", ICLR
/// 2025): the consistency function f(x_t, t) = x_t - t u(x_t, t, 0) (the flow map to the data, so f(x, 0) = x
/// holds by construction) is trained to agree with itself one small step earlier on the same noise,
///   loss = (sqrt(||f(x_t, t) - sg(f(x_r, r))||^2 + c^2) - c) / (s_t - s_r),  x_r = alpha(r) x0 + sigma(r) eps,
/// with ||.||^2 each sample's sum of squares and s = sigma / alpha EDM's sigma, exactly ECT's ECMLoss
/// (locuslab/ect, training/loss.py: `loss = torch.sum(...); loss = torch.sqrt(loss + c**2) - c` (c > 0) or
/// `torch.sqrt(loss)`, `return loss / (t - r)` with t, r EDM sigmas; c = 0 by default): a pseudo-Huber
/// distance, whose 1 / (s_t - s_r) weighting makes it the rate of change of f as the step shrinks.  The step
/// shrinks with training: in EDM's sigma, s_r = s_t (1 - n(s_t) / q^a),
/// n(s) = 1 + k sigmoid(-b s), a = floor(step / `every`) (ECT's mapping function, k = 8, b = 1, q = 2).  At
/// a = 0 the step reaches r = 0 and the objective is flow matching (ECT's "diffusion pretraining" as stage 0),
/// then it tightens to consistency.  Chosen over sCT (Lu & Song 2025) because it needs no JVP and no TrigFlow
/// parameterisation, and its discrete pairs are exactly checkable on the oracle.  Sample with
/// `gm::ConsistencySampler`.
struct Consistency : Velocity {
  struct Options {
    TORCH_ARG(int64_t, every) = 1000;  ///< training steps per halving of the step (ECT's d)
    TORCH_ARG(double, q) = 2.0;
    TORCH_ARG(double, k) = 8.0;
    TORCH_ARG(double, b) = 1.0;
    TORCH_ARG(double, c) = 0.0;        ///< the pseudo-Huber constant (ECT's c; 0: the L2 distance)
  };
  static constexpr std::string_view name = "consistency";
  static constexpr bool average_velocity = true;
  Options options{};
  Consistency() = default;
  explicit Consistency(Options o) : options(o) {
    if (options.every() < 1 || !(options.q() > 1)) throw Error("gm: consistency needs every >= 1 and q > 1");
  }

  torch::Tensor times(const torch::Tensor& t, const TimeDraw&, const at::Generator&, int64_t) const { return time_pair(t, t); }

  /// The earlier time r of the pair at training step `step`, for times t, on the process.
  template <Process I>
  torch::Tensor earlier(const torch::Tensor& t, const I& ip, int64_t step) const {
    const double shrink = std::pow(options.q(), -static_cast<double>(step / options.every()));
    auto s = edm_sigma(t, ip);
    auto sr = (s * (1 - shrink * (1 + options.k() * torch::sigmoid(-options.b() * s)))).clamp_min(0);
    auto r = ip.t_from_log_snr(-torch::log(sr.clamp_min(1e-30)));  // gm's log-SNR is log(alpha / sigma)
    return torch::where(sr > 0, torch::minimum(r, t), torch::zeros_like(t));
  }

  template <Process I, class U>
  torch::Tensor loss(U&& u, const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t2, const I& ip,
                     int64_t step, const torch::Tensor& = {}) const {
    auto t = t2.select(1, 0);
    auto r = earlier(t, ip, step);
    auto zeros = torch::zeros_like(t);
    auto z = ip.sample(x0, eps, t);
    auto f = z - detail::bcast(t, z) * u(z, time_pair(t, zeros)).to(z.scalar_type());
    torch::Tensor target;
    {
      torch::NoGradGuard ng;
      auto zr = ip.sample(x0, eps, r);
      auto ur = u(zr, time_pair(r, zeros)).to(z.scalar_type());
      // f(x_r, r) at r = 0 is x0 itself (the boundary condition), whatever the network says.
      target = torch::where(detail::bcast(r > 0, zr), zr - detail::bcast(r, zr) * ur, x0);
    }
    // sqrt's derivative is infinite at 0: a row that already agrees (f = target) takes a zero gradient.
    auto sq = detail::per_row_sum_square(f - target);
    auto dist = options.c() > 0 ? torch::sqrt(sq + options.c() * options.c()) - options.c() : torch::sqrt(sq.clamp_min(1e-30));
    return dist / (edm_sigma(t, ip) - edm_sigma(r, ip)).clamp_min(1e-12);
  }

  /// EDM's sigma s = sigma(t) / alpha(t) of the process at t (infinite where alpha vanishes: 1e12 there).
  template <Process I>
  static torch::Tensor edm_sigma(const torch::Tensor& t, const I& ip) {
    return ip.sigma(t) / ip.alpha(t).clamp_min(1e-12);
  }
};

namespace detail {
/// What gm::SchrodingerBridge and gm::GaussianPath share: a velocity objective on paths that take a second
/// standard-normal draw z (`extra_noise`), trained at the time sampler's t by regressing `D::velocity` at
/// `D::path`.  `D::what` names the objective in the error for a missing z.
template <class D>
struct NoisyPathObjective : Velocity {
  static constexpr bool extra_noise = true;

  torch::Tensor times(const torch::Tensor& t, const TimeDraw&, const at::Generator&, int64_t) const { return t; }

  template <Process I, class U>
  torch::Tensor loss(U&& u, const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t, const I& ip,
                     int64_t, const torch::Tensor& z) const {
    if (!z.defined()) throw Error(std::string("gm: the ") + D::what + " objective needs the trainer's second noise draw");
    const auto& self = static_cast<const D&>(*this);
    auto target = self.velocity(x0, eps, z, t, ip).detach();
    return per_row_mean_square(u(self.path(x0, eps, z, t, ip), t).to(target.scalar_type()) - target);
  }
};
}  // namespace detail

/// Flow matching on Schrödinger-bridge paths (Tong, Malkin, Fatras et al., "Simulation-free Schrödinger
/// bridges via score and flow matching", AISTATS 2024; torchcfm's SchrodingerBridgeConditionalFlowMatcher):
/// each pair (x0, eps) is joined by a Brownian bridge of variance sigma^2, so
///   x_t = alpha x0 + sigma_t eps + s(t) z,  s(t) = sigma sqrt(t (1 - t)),  z ~ N(0, I),
/// and the network regresses the bridge's velocity alpha' x0 + sigma_t' eps + s'(t) z, with
/// s'(t) = sigma (1 - 2t) / (2 sqrt(t (1 - t))) (torchcfm's (1 - 2t) / (2t(1 - t)) (x_t - mu_t)).  With the
/// entropic coupling at reg = 2 sigma^2 in absolute units (`gm::SinkhornCoupling::Options().reg(2 * sigma *
/// sigma).relative(false)`) the pairs are the Schrödinger bridge's static coupling and the learned field is
/// the probability flow of the Schrödinger bridge between data and noise: SB-CFM.  sigma = 0 is plain (OT-)CFM.
/// The model is a velocity field of these marginals, which are not the process's own: sample it with a
/// velocity sampler (Euler, Heun, RK4, Dormand-Prince), not with the samplers that convert through
/// E[x0 | x_t].  torchcfm also trains a score for SDE sampling; gm trains the flow.
struct SchrodingerBridge : detail::NoisyPathObjective<SchrodingerBridge> {
  struct Options {
    TORCH_ARG(double, sigma) = 1.0;  ///< the bridge's noise level (torchcfm's sigma)
  };
  static constexpr std::string_view name = "sb_cfm";
  static constexpr const char* what = "Schrödinger-bridge";
  Options options{};
  SchrodingerBridge() = default;
  explicit SchrodingerBridge(Options o) : options(o) {
    if (!(options.sigma() >= 0)) throw Error("gm: the Schrödinger bridge's sigma must be >= 0");
  }

  /// The bridge's point x_t = alpha x0 + sigma_t eps + s(t) z of the pair (x0, eps) and bridge noise z.
  template <Process I>
  torch::Tensor path(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& z, const torch::Tensor& t,
                     const I& ip) const {
    return ip.sample(x0, eps, t) + detail::bcast(options.sigma() * torch::sqrt((t * (1 - t)).clamp_min(0)), x0) * z;
  }
  /// Its velocity d/dt x_t, the regression target (t inside (0, 1)).
  template <Process I>
  torch::Tensor velocity(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& z, const torch::Tensor& t,
                         const I& ip) const {
    auto ds = options.sigma() * (1 - 2 * t) / (2 * torch::sqrt((t * (1 - t)).clamp_min(1e-12)));
    return detail::conditional_velocity(x0, eps, t, ip) + detail::bcast(ds, x0) * z;
  }
};

/// Flow matching on Gaussian paths of constant width sigma_min around the straight (or coupled) path: each
/// pair (x0, eps) gives x_t = alpha x0 + sigma_t eps + sigma_min z, z ~ N(0, I), and the target is the
/// pair's velocity alpha' x0 + sigma_t' eps, unchanged by the width: torchcfm's ConditionalFlowMatcher(sigma)
/// and ExactOptimalTransportConditionalFlowMatcher(sigma) (conditional_flow_matching.py: compute_mu_t, then
/// `mu_t + sigma_t * epsilon` with compute_sigma_t = sigma, and compute_conditional_flow = x1 - x0), Tong et al.
/// 2024's I-CFM and OT-CFM with sigma > 0 (Lipman et al. 2023's sigma_min).  sigma_min = 0 is plain flow
/// matching.  Like gm::SchrodingerBridge its marginals are not the process's own: sample it with a velocity
/// sampler.
struct GaussianPath : detail::NoisyPathObjective<GaussianPath> {
  struct Options {
    TORCH_ARG(double, sigma_min) = 0.0;  ///< the paths' constant width (torchcfm's sigma)
  };
  static constexpr std::string_view name = "cfm_sigma";
  static constexpr const char* what = "Gaussian-path";
  Options options{};
  GaussianPath() = default;
  explicit GaussianPath(Options o) : options(o) {
    if (!(options.sigma_min() >= 0)) throw Error("gm: sigma_min must be >= 0");
  }

  /// The point x_t = alpha x0 + sigma_t eps + sigma_min z of the pair (x0, eps) and path noise z.
  template <Process I>
  torch::Tensor path(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& z, const torch::Tensor& t,
                     const I& ip) const {
    return ip.sample(x0, eps, t) + options.sigma_min() * z;
  }
  /// The target: the pair's velocity, which the constant width does not change.
  template <Process I>
  torch::Tensor velocity(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor&, const torch::Tensor& t,
                         const I& ip) const {
    return detail::conditional_velocity(x0, eps, t, ip);
  }
};

}  // namespace gm
