#pragma once
/// @file
/// Concepts for noise schedules (alpha, sigma) and for processes built on them.
///
/// Convention everywhere in gm: t in [0, 1], data at t = 0, noise at t = 1, and
/// x_t = alpha(t) x0 + sigma(t) eps.  See docs/concepts.md#schedule.

#include <torch/types.h>

#include <concepts>
#include <string_view>

namespace gm {

/// A schedule provides `alpha(t)`, the signal scale.
template <class S>
concept HasAlpha = requires(const S& s, const torch::Tensor& t) {
  { s.alpha(t) } -> std::convertible_to<torch::Tensor>;
};

/// A schedule provides `sigma(t)`, the noise scale.
template <class S>
concept HasSigma = requires(const S& s, const torch::Tensor& t) {
  { s.sigma(t) } -> std::convertible_to<torch::Tensor>;
};

/// Optional: the time derivative `d_alpha(t)`.  Without it gm differentiates `alpha` by autograd.
template <class S>
concept HasDAlpha = requires(const S& s, const torch::Tensor& t) {
  { s.d_alpha(t) } -> std::convertible_to<torch::Tensor>;
};

/// Optional: the time derivative `d_sigma(t)`.  Without it gm differentiates `sigma` by autograd.
template <class S>
concept HasDSigma = requires(const S& s, const torch::Tensor& t) {
  { s.d_sigma(t) } -> std::convertible_to<torch::Tensor>;
};

/// Optional: log-SNR `log_snr(t)` = log(alpha / sigma), in a numerically careful form.
template <class S>
concept HasLogSnr = requires(const S& s, const torch::Tensor& t) {
  { s.log_snr(t) } -> std::convertible_to<torch::Tensor>;
};

/// Optional: the inverse of log-SNR, `t_from_log_snr(lambda)`.  Without it gm bisects numerically.
template <class S>
concept HasLogSnrInverse = requires(const S& s, const torch::Tensor& lambda) {
  { s.t_from_log_snr(lambda) } -> std::convertible_to<torch::Tensor>;
};

/// Optional: a short name, used by benchmarks and logs (`static constexpr std::string_view name`).
template <class S>
concept HasName = requires {
  { S::name } -> std::convertible_to<std::string_view>;
};

/// A noise schedule: the pair alpha(t), sigma(t) of x_t = alpha(t) x0 + sigma(t) eps.
///
/// Only `alpha` and `sigma` are required.  Derivatives, log-SNR and its inverse are optional: gm falls back
/// to autograd and to bisection (see gm/process/schedule.hpp).  Methods take and return tensors of any
/// shape and floating dtype, elementwise.
template <class S>
concept Schedule = std::copy_constructible<S> && HasAlpha<S> && HasSigma<S>;

/// Explains, one sentence per member, why `S` is not a `Schedule`.  Use as
/// `static_assert(gm::check_schedule<MySchedule>());`.
template <class S>
consteval bool check_schedule() {
  static_assert(HasAlpha<S>,
                "gm: a Schedule needs `torch::Tensor alpha(const torch::Tensor& t) const`, the signal scale "
                "(alpha(0) = 1 at the data end); see docs/concepts.md#schedule.");
  static_assert(HasSigma<S>,
                "gm: a Schedule needs `torch::Tensor sigma(const torch::Tensor& t) const`, the noise scale "
                "(largest at t = 1); see docs/concepts.md#schedule.");
  static_assert(std::copy_constructible<S>, "gm: a Schedule must be a copyable value type.");
  return Schedule<S>;
}

/// A process: everything samplers and trainers ask of an `Interpolant<S>`.
///
/// Besides alpha and sigma it has their derivatives, log-SNR and its inverse, and the forward SDE
/// dx = f(t) x dt + g(t) dW that has the same marginals.
template <class I>
concept Process = requires(const I& p, const torch::Tensor& t, const torch::Tensor& x) {
  { p.alpha(t) } -> std::convertible_to<torch::Tensor>;
  { p.sigma(t) } -> std::convertible_to<torch::Tensor>;
  { p.d_alpha(t) } -> std::convertible_to<torch::Tensor>;
  { p.d_sigma(t) } -> std::convertible_to<torch::Tensor>;
  { p.log_snr(t) } -> std::convertible_to<torch::Tensor>;
  { p.t_from_log_snr(t) } -> std::convertible_to<torch::Tensor>;
  { p.drift_coef(t) } -> std::convertible_to<torch::Tensor>;
  { p.diffusion_sq(t) } -> std::convertible_to<torch::Tensor>;
  { p.sample(x, x, t) } -> std::convertible_to<torch::Tensor>;
};

}  // namespace gm
