#pragma once
/// @file
/// Time grids: where a fixed-step sampler evaluates, from t = 1 down to t_end.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/process/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gm {

/// A time grid: `nodes(steps, t_end, process)` returns steps + 1 decreasing times, the first exactly 1 and
/// the last exactly t_end.  Separate from the sampler, so any grid pairs with any sampler.
template <class G>
concept TimeGrid = requires(const G& g, int64_t n, double t_end) {
  { G::name } -> std::convertible_to<std::string_view>;
};

namespace detail {

void check_grid_args(int64_t steps, double t_end);
#if GM_HEADER_DEFINITIONS
GM_INLINE void check_grid_args(int64_t steps, double t_end) {
  if (steps < 1) throw Error("gm: a time grid needs at least 1 step, got " + std::to_string(steps));
  if (!(t_end >= 0 && t_end < 1)) throw Error("gm: t_end must be in [0, 1), got " + std::to_string(t_end));
}
#endif

/// Nodes from values u_0..u_n of a monotone reparameterisation mapped back to t, with exact end points.
template <class F>
std::vector<double> nodes_from(int64_t steps, double t_end, F&& to_t) {
  std::vector<double> out(static_cast<size_t>(steps + 1));
  for (int64_t i = 0; i <= steps; ++i) out[static_cast<size_t>(i)] = to_t(static_cast<double>(i) / steps);
  out.front() = 1.0;
  out.back() = t_end;
  return out;
}

/// The log-SNR range [lambda(1), lambda(t_end)] a grid spans; lambda(1) is floored at `lambda_min` where it
/// is -inf (alpha(1) = 0) or below the floor, and lambda(t_end) must be finite.
template <Process I>
std::pair<double, double> lambda_range(const I& ip, double t_end, double lambda_min, std::string_view grid) {
  const double l0 = ip.log_snr(torch::tensor(1.0, torch::kFloat64)).template item<double>();
  const double l1 = ip.log_snr(torch::tensor(t_end, torch::kFloat64)).template item<double>();
  if (!std::isfinite(l1)) {
    throw Error("gm: the " + std::string(grid) + " grid needs a finite log-SNR at t_end; use t_end > 0");
  }
  return {std::isfinite(l0) ? std::max(l0, lambda_min) : lambda_min, l1};
}
template <Process I>
double t_of_lambda(const I& ip, double lambda) {
  return ip.t_from_log_snr(torch::tensor(lambda, torch::kFloat64)).template item<double>();
}

}  // namespace detail

/// Uniform in t: t_i = 1 - i (1 - t_end) / n.
struct UniformGrid {
  static constexpr std::string_view name = "uniform";
  template <Process I>
  std::vector<double> nodes(int64_t steps, double t_end, const I&) const {
    detail::check_grid_args(steps, t_end);
    return detail::nodes_from(steps, t_end, [&](double u) { return 1 - u * (1 - t_end); });
  }
};

/// Uniform in log-SNR lambda between lambda(1) and lambda(t_end), as DPM-Solver recommends (Lu et al.,
/// NeurIPS 2022, sec. 3.3).  Where lambda(1) = -inf (alpha(1) = 0), the grid runs from `lambda_min`
/// (default -10, i.e. sigma/alpha = e^10) and its first node is still t = 1.
struct LogSnrGrid {
  struct Options {
    TORCH_ARG(double, lambda_min) = -10.0;
  };
  static constexpr std::string_view name = "logsnr";
  Options options{};
  LogSnrGrid() = default;
  explicit LogSnrGrid(Options o) : options(o) {}

  template <Process I>
  std::vector<double> nodes(int64_t steps, double t_end, const I& ip) const {
    detail::check_grid_args(steps, t_end);
    const auto range = detail::lambda_range(ip, t_end, options.lambda_min(), name);
    const double l0 = range.first, l1 = range.second;  // captured below: no structured bindings (clang < 16)
    return detail::nodes_from(steps, t_end, [&](double u) { return detail::t_of_lambda(ip, l0 + u * (l1 - l0)); });
  }
};

/// EDM's rho-spaced noise levels (Karras et al., NeurIPS 2022, eq. 5) in s = sigma/alpha:
/// s_i = (s_max^(1/rho) + i/n (s_min^(1/rho) - s_max^(1/rho)))^rho, rho = 7 by default, mapped to t through
/// the process's log-SNR.  s_max is the process's s at t = 1 (capped at e^10 where alpha(1) = 0).
struct EDMGrid {
  struct Options {
    TORCH_ARG(double, rho) = 7.0;
    TORCH_ARG(double, lambda_min) = -10.0;
  };
  static constexpr std::string_view name = "edm";
  Options options{};
  EDMGrid() = default;
  explicit EDMGrid(Options o) : options(o) {}

  template <Process I>
  std::vector<double> nodes(int64_t steps, double t_end, const I& ip) const {
    detail::check_grid_args(steps, t_end);
    const double rho = options.rho();
    const auto range = detail::lambda_range(ip, t_end, options.lambda_min(), name);
    const double l0 = range.first, l1 = range.second;  // captured below: no structured bindings (clang < 16)
    const double a = std::exp(-l0 / rho), b = std::exp(-l1 / rho);  // s^(1/rho) at both ends, s = e^-lambda
    return detail::nodes_from(steps, t_end, [&](double u) {
      return detail::t_of_lambda(ip, -rho * std::log(a + u * (b - a)));
    });
  }
};

/// Quadratic in t, dense near the data: t_i = t_end + (1 - t_end) (1 - i/n)^2 (DDIM's "quad" spacing, Song,
/// Meng & Ermon, ICLR 2021).
struct QuadraticGrid {
  static constexpr std::string_view name = "quadratic";
  template <Process I>
  std::vector<double> nodes(int64_t steps, double t_end, const I&) const {
    detail::check_grid_args(steps, t_end);
    return detail::nodes_from(steps, t_end, [&](double u) { return t_end + (1 - t_end) * (1 - u) * (1 - u); });
  }
};

namespace detail {
/// The regularised incomplete beta function I_x(a, b), by its continued fraction (Lentz's method, as in
/// Numerical Recipes' betacf), with the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where that converges faster.
double incomplete_beta(double x, double a, double b);
#if GM_HEADER_DEFINITIONS
GM_INLINE double incomplete_beta(double x, double a, double b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - incomplete_beta(1 - x, b, a);
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x)) / a;
  const double tiny = 1e-300;
  double f = 1, c = 1, d = 0;
  for (int i = 0; i <= 400; ++i) {
    const int m = i / 2;
    double num;
    if (i == 0) num = 1;
    else if (i % 2 == 0) num = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    else num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 + num * d;
    d = 1 / (std::abs(d) < tiny ? tiny : d);
    c = 1 + num / (std::abs(c) < tiny ? tiny : c);
    const double cd = c * d;
    f *= cd;
    if (std::abs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}
#endif
}  // namespace detail

/// Beta spacing (Lee et al., "Beta Sampling is All You Need", 2024; ComfyUI's beta scheduler): the nodes are
/// the quantiles of a Beta(a, b) distribution at 1 - i/n, t_i = t_end + (1 - t_end) F^-1(1 - i/n), which with
/// a = b = 0.6 (the default, as ComfyUI) packs steps near both ends of the time range.
struct BetaGrid {
  struct Options {
    TORCH_ARG(double, a) = 0.6;
    TORCH_ARG(double, b) = 0.6;
  };
  static constexpr std::string_view name = "beta";
  Options options{};
  BetaGrid() = default;
  explicit BetaGrid(Options o) : options(o) {}

  template <Process I>
  std::vector<double> nodes(int64_t steps, double t_end, const I&) const {
    detail::check_grid_args(steps, t_end);
    return detail::nodes_from(steps, t_end, [&](double u) {
      double lo = 0, hi = 1;  // F^-1(1 - u) by bisection
      for (int i = 0; i < 60; ++i) {
        const double mid = 0.5 * (lo + hi);
        (detail::incomplete_beta(mid, options.a(), options.b()) < 1 - u ? lo : hi) = mid;
      }
      return t_end + (1 - t_end) * 0.5 * (lo + hi);
    });
  }
};

/// SD3's time shift (Esser et al., "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis",
/// ICML 2024, sec. 5.3.2; diffusers' FlowMatchEulerDiscreteScheduler shift; LightningDiT's timestep_shift):
/// t -> shift t / (1 + (shift - 1) t), which keeps 0 and 1 and moves the nodes towards the noise for shift > 1
/// (SD3 samples at 3.0).  The nodes' first and last stay exactly 1 and t_end.
std::vector<double> shift_times(std::vector<double> nodes, double shift);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<double> shift_times(std::vector<double> nodes, double shift) {
  if (!(shift > 0) || !std::isfinite(shift)) throw Error("gm: a time shift must be positive, got " + std::to_string(shift));
  if (shift == 1 || nodes.size() < 3) return nodes;
  for (size_t i = 1; i + 1 < nodes.size(); ++i) nodes[i] = shift * nodes[i] / (1 + (shift - 1) * nodes[i]);
  return nodes;
}
#endif

/// SD3's resolution-dependent shift: sqrt(m / n) for m pixels against the n = 256 x 256 the schedule was
/// tuned for (Esser et al. 2024, eq. 23: the same SNR per pixel block at any resolution).
inline double resolution_shift(double pixels, double base_pixels = 256.0 * 256.0) { return std::sqrt(pixels / base_pixels); }

/// The fixed grids by name, for a config key (`sampling.grid`): uniform, logsnr (or exponential: uniform in
/// log sigma/alpha, k-diffusion's get_sigmas_exponential), edm (or karras: rho = 7), quadratic, beta.
inline constexpr std::string_view grid_names = "uniform, logsnr (exponential), edm (karras), quadratic or beta";

/// Whether `name` is one of `grid_names`.
bool is_grid_name(std::string_view name);
#if GM_HEADER_DEFINITIONS
GM_INLINE bool is_grid_name(std::string_view name) {
  return name == UniformGrid::name || name == LogSnrGrid::name || name == EDMGrid::name || name == QuadraticGrid::name ||
         name == BetaGrid::name || name == "karras" || name == "exponential";
}
#endif

/// The nodes of the grid called `name` (one of `grid_names`, default options), so a grid chosen at run time
/// costs no sampler instantiation per grid; another name is a one-line `gm::Error`.
template <Process I>
std::vector<double> grid_nodes(std::string_view name, int64_t steps, double t_end, const I& ip) {
  if (name == UniformGrid::name) return UniformGrid{}.nodes(steps, t_end, ip);
  if (name == LogSnrGrid::name || name == "exponential") return LogSnrGrid{}.nodes(steps, t_end, ip);
  if (name == EDMGrid::name || name == "karras") return EDMGrid{}.nodes(steps, t_end, ip);
  if (name == QuadraticGrid::name) return QuadraticGrid{}.nodes(steps, t_end, ip);
  if (name == BetaGrid::name) return BetaGrid{}.nodes(steps, t_end, ip);
  throw Error("gm: unknown time grid '" + std::string(name) + "'; use " + std::string(grid_names));
}

/// Check explicit sampling times: at least two, the first exactly 1, strictly decreasing, the last in
/// [0, 1); else a one-line `gm::Error`.
void check_times(const std::vector<double>& times);
#if GM_HEADER_DEFINITIONS
GM_INLINE void check_times(const std::vector<double>& times) {
  if (times.size() < 2) throw Error("gm: sampling times need at least 2 nodes (1 step), got " + std::to_string(times.size()));
  if (times.front() != 1.0) throw Error("gm: sampling times must start at t = 1, got " + std::to_string(times.front()));
  for (size_t i = 1; i < times.size(); ++i) {
    if (!(times[i] < times[i - 1])) {
      throw Error("gm: sampling times must decrease; node " + std::to_string(i) + " is " + std::to_string(times[i]) +
                  " after " + std::to_string(times[i - 1]));
    }
  }
  if (!(times.back() >= 0)) throw Error("gm: sampling times must end at t >= 0, got " + std::to_string(times.back()));
}
#endif

}  // namespace gm
