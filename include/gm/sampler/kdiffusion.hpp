#pragma once
/// @file
/// The samplers of k-diffusion (Crowsonkb's k_diffusion/sampling.py) and EDM's stochastic sampler, on every
/// process: Euler ancestral, DPM2 and DPM2 ancestral, DPM++ 2S ancestral, DPM++ SDE, DPM++ 2M SDE and 3M
/// SDE (Brownian-tree noise), LMS, and Karras et al.'s Algorithm 2 with S_churn.
///
/// k-diffusion works in EDM's variance-exploding view x = x0 + sigma eps.  Every gm process is that view
/// scaled (Karras et al. 2022, sec. 4): with s = sigma(t) / alpha(t) = e^-lambda and x~ = x / alpha, the
/// scaled state x~ = x0 + s eps follows the same ODE and SDEs in s.  So each sampler here runs k-diffusion's
/// update on (x~, s), evaluates the model at the t whose log-SNR is -log s, and returns alpha(t_next) x~.
/// Where alpha(1) = 0 (s = inf) the first state is x~ = D + s_max N at s_max = e^10 (the floor gm's
/// log-SNR grids use), D and N the model's data and noise estimates at t = 1.
///
/// One convention differs from k-diffusion, as everywhere in gm: a grid that ends at t_end > 0 takes its last
/// step without noise (eta = 0), the deterministic step to t_end.  On a grid that ends where sigma = 0, the
/// last step returns the denoised estimate, as k-diffusion does.

#include <gm/random.hpp>
#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace gm {
namespace detail {

/// The largest s = sigma/alpha a k-diffusion sampler starts from: e^10, where LogSnrGrid floors lambda.
inline constexpr double kd_s_max = 22026.465794806718;

/// A scaled state: x~ at s, and the model's estimate there when it was evaluated.
struct KState {
  torch::Tensor xs;
  double s = 0;
  Estimate e;
};

/// s = sigma/alpha at a grid time (0 where sigma is 0; inf where alpha is 0).
template <Process I>
double kd_s(const I& ip, double t) {
  const auto c = coefs(ip, t);
  if (c.sigma == 0) return 0;
  return c.alpha > 0 ? c.sigma / c.alpha : std::numeric_limits<double>::infinity();
}

/// The scaled state at a grid time t, with the model evaluated there (one evaluation): x~ = x / alpha, or
/// D + s_max N where alpha is 0 or s exceeds s_max.
template <class F>
KState kd_start(F& field, const torch::Tensor& x, double t) {
  const auto c = coefs(field.process(), t);
  auto e = field.estimate(x, t);
  const double s = c.alpha > 0 ? c.sigma / c.alpha : std::numeric_limits<double>::infinity();
  if (!(s <= kd_s_max)) return {e.data + kd_s_max * e.noise, kd_s_max, std::move(e)};
  return {x / c.alpha, s, std::move(e)};
}

/// The scaled state at a grid time t without evaluating the model (alpha(t) > 0 and s finite), or nothing.
template <class F>
std::optional<KState> kd_scale(F& field, const torch::Tensor& x, double t) {
  const auto c = coefs(field.process(), t);
  if (!(c.alpha > 0) || !(c.sigma / c.alpha <= kd_s_max)) return std::nullopt;
  return KState{x / c.alpha, c.sigma / c.alpha, {}};
}

/// The model's estimate at scaled state x~ and noise level s > 0: evaluated at the t with log-SNR -log s.
template <class F>
Estimate kd_denoise(F& field, const torch::Tensor& xs, double s) {
  const auto& ip = field.process();
  const double t = ip.t_from_log_snr(torch::tensor(-std::log(s), torch::kFloat64)).template item<double>();
  return field.estimate(coefs(ip, t).alpha * xs, t);
}

/// Back from the scaled state at t: alpha(t) x~.
template <Process I>
torch::Tensor kd_unscale(const I& ip, const torch::Tensor& xs, double t) {
  return coefs(ip, t).alpha * xs;
}

/// k-diffusion's get_ancestral_step: the level s_down to step to deterministically and the noise s_up to add,
/// s_down^2 + s_up^2 = to^2, s_up = min(to, eta to sqrt(1 - to^2 / from^2)).
std::pair<double, double> ancestral_step(double from, double to, double eta);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::pair<double, double> ancestral_step(double from, double to, double eta) {
  if (eta == 0 || to == 0) return {to, 0.0};
  const double up = std::min(to, eta * to * std::sqrt(std::max(0.0, 1 - (to / from) * (to / from))));
  return {std::sqrt(std::max(0.0, to * to - up * up)), up};
}
#endif

/// The s range of a grid: the first node's s (capped at s_max) and the smallest positive one.
template <Process I>
std::pair<double, double> kd_range(const I& ip, const std::vector<double>& grid) {
  double lo = std::numeric_limits<double>::infinity();
  for (double t : grid) {
    const double s = kd_s(ip, t);
    if (s > 0) lo = std::min(lo, s);
  }
  return {std::min(lo, kd_s_max), std::min(kd_s(ip, grid.front()), kd_s_max)};
}

/// A Brownian motion W(u) on [lo, hi], u = log s, that answers any u from a fixed seed: the value at a node
/// of the dyadic bisection of [lo, hi] is the Brownian bridge between its ends plus a draw seeded by the
/// node alone (Lévy's construction, as torchsde's BrownianTree), bisected until the interval is under
/// 1e-6 of the range, then interpolated.  So the noise of a step depends on the interval it covers, not on
/// how the rest of the grid is cut: (W(b) - W(a)) / sqrt(|b - a|) is standard normal for any a, b, and a
/// finer grid refines the same path (k-diffusion's BrownianTreeNoiseSampler, which DPM++ SDE and the
/// 2M/3M SDE samplers use so that results converge as steps are added).  With per-sample seeds each row's
/// path comes from its own seed.
class BrownianTree {
 public:
  BrownianTree() = default;
  /// Paths on [lo, hi] shaped like `like`, from `seed` or, with `rows`, one path per row from its seed.
  BrownianTree(double lo, double hi, uint64_t seed, const std::vector<uint64_t>* rows, const torch::Tensor& like)
      : lo_(lo), hi_(hi), seed_(seed), rows_(rows), shape_(like.sizes().vec()), options_(like.options()) {
    if (!(hi > lo)) hi_ = lo_ + 1;
    end_ = std::sqrt(hi_ - lo_) * draw(0, 0);
  }
  bool defined() const { return !shape_.empty(); }
  /// W(u), u clamped to [lo, hi]; W(lo) = 0.
  torch::Tensor at(double u) const {
    u = std::clamp(u, lo_, hi_);
    // A step's increment starts where the last one ended: the newest few W(u) are kept, not re-walked.
    for (const auto& [v, w] : recent_) {
      if (w.defined() && v == u) return w;
    }
    auto w = walk(u);
    recent_[next_++ % recent_.size()] = {u, w};
    return w;
  }
  /// A standard normal increment over [s_a, s_b] (levels s, not their logs): (W(b) - W(a)) / sqrt(|b - a|).
  torch::Tensor increment(double s_a, double s_b) const {
    const double a = std::log(s_a), b = std::log(s_b);
    return (at(b) - at(a)) / std::sqrt(std::abs(b - a));
  }

 private:
  torch::Tensor walk(double u) const {
    double a = lo_, b = hi_;
    torch::Tensor wa = torch::zeros(shape_, options_), wb = end_;
    uint64_t index = 0;
    for (uint64_t depth = 1; depth <= 40 && (b - a) > 1e-6 * (hi_ - lo_); ++depth) {
      const double m = 0.5 * (a + b);
      auto wm = 0.5 * (wa + wb) + std::sqrt(0.25 * (b - a)) * draw(depth, index);
      if (u <= m) {
        b = m, wb = wm, index = 2 * index;
      } else {
        a = m, wa = wm, index = 2 * index + 1;
      }
    }
    return wa + ((u - a) / (b - a)) * (wb - wa);
  }
  torch::Tensor draw(uint64_t depth, uint64_t index) const {
    const uint64_t node = (uint64_t{1} << 62) | (depth << 41) | index;
    if (rows_) return row_randn(*rows_, node, at::IntArrayRef(shape_).slice(1), options_);
    auto gen = make_generator(mix_seed(seed_, node), options_.device());
    return torch::randn(shape_, gen, on_generator(gen, options_));
  }
  double lo_ = 0, hi_ = 1;
  uint64_t seed_ = 0;
  const std::vector<uint64_t>* rows_ = nullptr;
  std::vector<int64_t> shape_;
  torch::TensorOptions options_;
  torch::Tensor end_;
  mutable std::array<std::pair<double, torch::Tensor>, 4> recent_{};
  mutable size_t next_ = 0;
};

/// The Brownian tree of one `integrate` call, built at its first step over the grid's s range; its seed is
/// one draw from the step's generator (or the row seeds).
template <Process I>
const BrownianTree& kd_tree(std::optional<BrownianTree>& tree, const I& ip, const StepInfo& info, const torch::Tensor& x) {
  if (!tree) {
    const auto range = kd_range(ip, *info.grid);
    uint64_t seed = 0;
    if (!info.row_seeds) {
      seed = static_cast<uint64_t>(torch::randint(std::numeric_limits<int64_t>::max(), {1}, info.generator,
                                                  on_generator(info.generator, torch::kInt64)).template item<int64_t>());
    }
    tree.emplace(std::log(range.first), std::log(range.second), seed, info.row_seeds, x);
  }
  return *tree;
}

/// k-diffusion's ancestral step, shared by its ancestral samplers: evaluate at t, move deterministically to
/// s_down with `move(state, s_down)` (s_down > 0), add s_up of noise; the denoised estimate where s_next or
/// s_down is 0.  `eta` is 0 on a grid's last step.
template <class F, class Move>
torch::Tensor kd_ancestral(F& field, const torch::Tensor& x, const StepInfo& info, double eta, double s_noise, Move&& move) {
  const auto& ip = field.process();
  auto k = kd_start(field, x, info.t);
  const double next = kd_s(ip, info.t_next);
  if (next == 0) return kd_unscale(ip, k.e.data, info.t_next);
  const auto steps = ancestral_step(k.s, next, info.last() ? 0.0 : eta);
  auto xs = steps.first == 0 ? k.e.data : move(k, steps.first);
  if (steps.second > 0 && s_noise != 0) xs = xs + (s_noise * steps.second) * info.noise(x);
  return kd_unscale(ip, xs, info.t_next);
}

/// The weights of linear multistep (Adams-Bashforth on a non-uniform grid): the integral over [s_i, s_next]
/// of the Lagrange basis polynomial of each past node s_i, s_{i-1}, ... (newest first), by 4-point
/// Gauss-Legendre quadrature, exact for the degree <= 3 these have (k-diffusion integrates them with scipy).
std::vector<double> lms_coefficients(const std::vector<double>& nodes, double s_next);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<double> lms_coefficients(const std::vector<double>& nodes, double s_next) {
  static constexpr std::array<double, 4> x{-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526};
  static constexpr std::array<double, 4> w{0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538};
  const double a = nodes.front(), b = s_next;
  std::vector<double> out(nodes.size(), 0.0);
  for (size_t j = 0; j < nodes.size(); ++j) {
    for (size_t q = 0; q < 4; ++q) {
      const double tau = 0.5 * (a + b) + 0.5 * (b - a) * x[q];
      double prod = 1;
      for (size_t k = 0; k < nodes.size(); ++k) {
        if (k != j) prod *= (tau - nodes[k]) / (nodes[j] - nodes[k]);
      }
      out[j] += 0.5 * (b - a) * w[q] * prod;
    }
  }
  return out;
}
#endif

}  // namespace detail

/// Options of the ancestral and SDE samplers of k-diffusion: eta scales the noise of each step (0: the
/// deterministic solver), s_noise multiplies the drawn noise (k-diffusion's s_noise; 0 drops it while
/// keeping eta's deterministic part, which is how tests compare with k-diffusion noise-free).
struct AncestralOptions {
  TORCH_ARG(double, eta) = 1.0;
  TORCH_ARG(double, s_noise) = 1.0;
};

namespace detail {
/// The deterministic moves of k-diffusion's ancestral samplers, from a state k to s_down > 0.
struct EulerMove {  // x~ + (s_down - s) d with d = (x~ - D) / s = N
  static constexpr std::string_view name = "euler_ancestral";
  static constexpr int order = 1, evals = 1;
  template <class F>
  torch::Tensor operator()(F&, const KState& k, double down) const { return k.e.data + down * k.e.noise; }
};
struct DPM2Move {  // DPM2's midpoint step, the midpoint at the geometric mean of s and s_down
  static constexpr std::string_view name = "dpm_2_ancestral";
  static constexpr int order = 1, evals = 2;
  template <class F>
  torch::Tensor operator()(F& field, const KState& k, double down) const {
    const double mid = std::sqrt(k.s * down);
    const auto e2 = kd_denoise(field, k.e.data + mid * k.e.noise, mid);
    return k.xs + (down - k.s) * e2.noise;
  }
};
struct DPMPP2SMove {  // DPM-Solver++(2S), r = 1/2, in k-diffusion's t = -log s
  static constexpr std::string_view name = "dpmpp_2s_ancestral";
  static constexpr int order = 2, evals = 2;
  template <class F>
  torch::Tensor operator()(F& field, const KState& k, double down) const {
    const double h = std::log(k.s) - std::log(down);
    const double mid = k.s * std::exp(-0.5 * h);
    const auto e2 = kd_denoise(field, (mid / k.s) * k.xs - std::expm1(-0.5 * h) * k.e.data, mid);
    return (down / k.s) * k.xs - std::expm1(-h) * e2.data;
  }
};
}  // namespace detail

/// k-diffusion's ancestral samplers: the model's estimate at s, a deterministic `Move` to s_down, then s_up of
/// fresh noise, s_down^2 + s_up^2 = s_next^2, s_up = min(s_next, eta s_next sqrt(1 - s_next^2 / s^2))
/// (get_ancestral_step; eta = 1 is DDPM's ancestral step in EDM's view).
/// - `EulerAncestralSampler` ("euler_ancestral", sample_euler_ancestral): an Euler move; one evaluation a step.
/// - `DPM2AncestralSampler` ("dpm_2_ancestral", sample_dpm_2_ancestral): DPM2's midpoint move; two.
/// - `DPMPP2SAncestralSampler` ("dpmpp_2s_ancestral", sample_dpmpp_2s_ancestral): Lu et al. 2022's
///   single-step DPM-Solver++(2S); two.
template <class Move>
struct AncestralSampler {
  using category = sde_tag;
  static constexpr std::string_view name = Move::name;
  static constexpr int order = Move::order;
  struct State {};
  AncestralOptions options{};
  AncestralSampler() = default;
  explicit AncestralSampler(AncestralOptions o) : options(o) {}
  State init_state() const { return {}; }
  int64_t evals_per_step() const { return Move::evals; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    return detail::kd_ancestral(field, x, info, options.eta(), options.s_noise(),
                                [&](const detail::KState& k, double down) { return Move{}(field, k, down); });
  }
};
using EulerAncestralSampler = AncestralSampler<detail::EulerMove>;
using DPM2AncestralSampler = AncestralSampler<detail::DPM2Move>;
using DPMPP2SAncestralSampler = AncestralSampler<detail::DPMPP2SMove>;

/// DPM2 (k-diffusion's sample_dpm_2): a midpoint step in s, the midpoint at the geometric mean of s and s_next
/// (after DPM-Solver-2 and Karras et al.'s Algorithm 2).  Two evaluations a step; second order.
struct DPM2Sampler {
  using category = ode_tag;
  static constexpr std::string_view name = "dpm_2";
  static constexpr int order = 2;
  struct State {};
  State init_state() const { return {}; }
  int64_t evals_per_step() const { return 2; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    const auto& ip = field.process();
    auto k = detail::kd_start(field, x, info.t);
    const double next = detail::kd_s(ip, info.t_next);
    if (next == 0) return detail::kd_unscale(ip, k.e.data, info.t_next);
    const double mid = std::sqrt(k.s * next);
    const auto e2 = detail::kd_denoise(field, k.e.data + mid * k.e.noise, mid);
    return detail::kd_unscale(ip, k.xs + (next - k.s) * e2.noise, info.t_next);
  }
};

/// DPM++ SDE (k-diffusion's sample_dpmpp_sde): a stochastic single-step DPM-Solver++ of two stages (r = 1/2),
/// each with ancestral noise from the Brownian tree.  Two evaluations a step.
struct DPMPPSDESampler {
  struct Options {
    TORCH_ARG(double, eta) = 1.0;
    TORCH_ARG(double, s_noise) = 1.0;
    TORCH_ARG(double, r) = 0.5;
  };
  using category = sde_tag;
  static constexpr std::string_view name = "dpmpp_sde";
  static constexpr int order = 2;
  struct State {
    std::optional<detail::BrownianTree> tree;
  };
  Options options{};
  DPMPPSDESampler() = default;
  explicit DPMPPSDESampler(Options o) : options(o) {}
  State init_state() const { return {}; }
  int64_t evals_per_step() const { return 2; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State& state) const {
    const auto& ip = field.process();
    auto k = detail::kd_start(field, x, info.t);
    const double next = detail::kd_s(ip, info.t_next);
    if (next == 0) return detail::kd_unscale(ip, k.e.data, info.t_next);
    const double eta = info.last() ? 0.0 : options.eta();
    const bool noisy = eta > 0 && options.s_noise() != 0;
    const auto* tree = noisy ? &detail::kd_tree(state.tree, ip, info, x) : nullptr;
    const double h = std::log(k.s) - std::log(next), r = options.r(), fac = 1 / (2 * r);
    const double mid = k.s * std::exp(-h * r);
    // Stage 1: to the midpoint level, with its share of the noise.
    double down = 0, up = 0;
    std::tie(down, up) = detail::ancestral_step(k.s, mid, eta);
    auto x2 = (down / k.s) * k.xs + (1 - down / k.s) * k.e.data;
    if (noisy && up > 0) x2 = x2 + (options.s_noise() * up) * tree->increment(k.s, mid);
    const auto e2 = detail::kd_denoise(field, x2, mid);
    // Stage 2: to s_next with the blended estimate.
    std::tie(down, up) = detail::ancestral_step(k.s, next, eta);
    const auto d = (1 - fac) * k.e.data + fac * e2.data;
    auto xs = (down / k.s) * k.xs + (1 - down / k.s) * d;
    if (noisy && up > 0) xs = xs + (options.s_noise() * up) * tree->increment(k.s, next);
    return detail::kd_unscale(ip, xs, info.t_next);
  }
};

/// DPM++ 2M SDE and 3M SDE (k-diffusion's sample_dpmpp_2m_sde and sample_dpmpp_3m_sde, the SDE variants of
/// Lu et al. 2022's multistep DPM-Solver++): one evaluation a step, noise from the Brownian tree.  With
/// h = log(s / s_next) and h_eta = (1 + eta) h, x~' = e^-h_eta x~ + (1 - e^-h_eta) D plus a first-difference
/// correction (2M: k-diffusion's solver_type "midpoint", its default, or "heun"; 3M: the heun form until two
/// past estimates exist, then its second-difference term, which is k-diffusion's halved D2 as in
/// DPMSolverPP3MRef, so 3M SDE at eta = 0 is second order) and s_next sqrt(1 - e^{-2 eta h}) of noise.
template <int Order>
struct DPMPPMultistepSDE {
  static_assert(Order == 2 || Order == 3, "gm: k-diffusion's multistep SDE solvers are 2M and 3M.");
  struct Options {
    TORCH_ARG(double, eta) = 1.0;
    TORCH_ARG(double, s_noise) = 1.0;
    TORCH_ARG(std::string, solver) = "midpoint";  ///< 2M only: midpoint or heun
  };
  using category = sde_tag;
  static constexpr std::string_view name = Order == 2 ? "dpmpp_2m_sde" : "dpmpp_3m_sde";
  static constexpr int order = 2;
  struct State {
    std::optional<detail::BrownianTree> tree;
    torch::Tensor d1, d2;  // the previous two data estimates, newest first
    double h1 = 0, h2 = 0;
  };
  Options options{};
  DPMPPMultistepSDE() = default;
  explicit DPMPPMultistepSDE(Options o) : options(std::move(o)) {
    TORCH_CHECK(options.solver() == "midpoint" || options.solver() == "heun", "gm: dpmpp_2m_sde's solver is midpoint or heun");
  }
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State& state) const {
    const auto& ip = field.process();
    auto k = detail::kd_start(field, x, info.t);
    const double next = detail::kd_s(ip, info.t_next);
    const auto& denoised = k.e.data;
    torch::Tensor xs = denoised;  // to s = 0: the denoised estimate
    double h = 0;
    if (next > 0) {
      const double eta = info.last() ? 0.0 : options.eta();
      h = std::log(k.s) - std::log(next);
      const double h_eta = h * (eta + 1), c = -std::expm1(-h_eta);
      const double phi2 = 1 - c / h_eta;  // e^-h_eta - 1 over h_eta, plus 1
      xs = std::exp(-h_eta) * k.xs + c * denoised;
      if (Order == 3 && state.d2.defined()) {
        const double r0 = state.h1 / h, r1 = state.h2 / h;
        auto d1_0 = (denoised - state.d1) / r0;
        auto d1_1 = (state.d1 - state.d2) / r1;
        auto d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1));
        auto d2 = (d1_0 - d1_1) / (r0 + r1);
        xs = xs + phi2 * d1 - (phi2 / h_eta - 0.5) * d2;
      } else if (state.d1.defined()) {
        auto diff = (denoised - state.d1) / (state.h1 / h);
        xs = xs + (Order == 2 && options.solver() == "midpoint" ? 0.5 * c : phi2) * diff;
      }
      if (eta > 0 && options.s_noise() != 0) {
        xs = xs + (next * std::sqrt(-std::expm1(-2 * eta * h)) * options.s_noise()) *
                      detail::kd_tree(state.tree, ip, info, x).increment(k.s, next);
      }
    }
    state.d2 = state.d1;
    state.d1 = denoised;
    state.h2 = state.h1;
    state.h1 = h;
    return detail::kd_unscale(ip, xs, info.t_next);
  }
};
/// DPM++ 2M SDE ("dpmpp_2m_sde").
using DPMPP2MSDESampler = DPMPPMultistepSDE<2>;
/// DPM++ 3M SDE ("dpmpp_3m_sde").
using DPMPP3MSDESampler = DPMPPMultistepSDE<3>;

/// Linear multistep (k-diffusion's sample_lms): Adams-Bashforth in s on the derivative d = N, of order up to
/// `order` (4) as history allows, with weights integrated over the non-uniform grid.  One evaluation a step.
struct LMSSampler {
  struct Options {
    TORCH_ARG(int64_t, order) = 4;
  };
  using category = multistep_tag;
  static constexpr std::string_view name = "lms";
  static constexpr int order = 4;
  struct State {
    std::vector<torch::Tensor> ds;  // newest first
    std::vector<double> ss;
  };
  Options options{};
  LMSSampler() = default;
  explicit LMSSampler(Options o) : options(o) { TORCH_CHECK(o.order() >= 1 && o.order() <= 4, "gm: LMS order is 1 to 4"); }
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State& state) const {
    const auto& ip = field.process();
    auto k = detail::kd_start(field, x, info.t);
    const double next = detail::kd_s(ip, info.t_next);
    state.ds.insert(state.ds.begin(), k.e.noise);
    state.ss.insert(state.ss.begin(), k.s);
    if (static_cast<int64_t>(state.ds.size()) > options.order()) state.ds.pop_back(), state.ss.pop_back();
    const auto c = detail::lms_coefficients(state.ss, next);
    auto xs = k.xs;
    for (size_t j = 0; j < c.size(); ++j) xs = xs + c[j] * state.ds[j];
    return detail::kd_unscale(ip, xs, info.t_next);
  }
};

/// EDM's stochastic sampler (Karras et al., "Elucidating the Design Space of Diffusion-Based Generative
/// Models", NeurIPS 2022, Algorithm 2; k-diffusion's sample_heun with s_churn): at each level s in
/// [S_min, S_max], first raise the noise to s_hat = s (1 + gamma), gamma = min(S_churn / N, sqrt 2 - 1), by
/// fresh noise of scale S_noise, then take a Heun step from s_hat to s_next (Euler where s_next = 0).  The
/// defaults are EDM's ImageNet-64 settings (S_churn 40, S_min 0.05, S_max 50, S_noise 1.003); S_churn = 0 is
/// the deterministic Heun sampler in s.  Two evaluations a step.
struct EDMStochasticSampler {
  struct Options {
    TORCH_ARG(double, churn) = 40.0;
    TORCH_ARG(double, s_min) = 0.05;
    TORCH_ARG(double, s_max) = 50.0;
    TORCH_ARG(double, s_noise) = 1.003;
  };
  using category = sde_tag;
  static constexpr std::string_view name = "edm_stochastic";
  static constexpr int order = 2;
  struct State {};
  Options options{};
  EDMStochasticSampler() = default;
  explicit EDMStochasticSampler(Options o) : options(o) {}
  State init_state() const { return {}; }
  int64_t evals_per_step() const { return 2; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    const auto& ip = field.process();
    const double next = detail::kd_s(ip, info.t_next);
    // Churn needs x~ before the first evaluation: where alpha(t) = 0 there is none, and no churn.
    auto scaled = detail::kd_scale(field, x, info.t);
    detail::KState k;
    if (scaled && options.churn() > 0 && scaled->s >= options.s_min() && scaled->s <= options.s_max()) {
      const double gamma = std::min(options.churn() / static_cast<double>(info.steps), std::sqrt(2.0) - 1);
      const double s_hat = scaled->s * (1 + gamma);
      auto xs = scaled->xs + (options.s_noise() * std::sqrt(s_hat * s_hat - scaled->s * scaled->s)) * info.noise(x);
      k = {xs, s_hat, detail::kd_denoise(field, xs, s_hat)};
    } else {
      k = detail::kd_start(field, x, info.t);
    }
    auto xs = k.xs + (next - k.s) * k.e.noise;  // Euler from s_hat
    if (next > 0) {
      const auto e2 = detail::kd_denoise(field, xs, next);
      xs = k.xs + (next - k.s) * (0.5 * (k.e.noise + e2.noise));
    }
    return detail::kd_unscale(ip, xs, info.t_next);
  }
};

}  // namespace gm
