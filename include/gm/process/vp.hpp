#pragma once
/// @file
/// The variance-preserving SDE with a linear beta schedule, and its sub-VP sibling.

#include <gm/process/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <string_view>

namespace gm {
namespace detail {

/// The t >= 0 with log alpha(t) = c for the VP family, log alpha(t) = -beta_min t / 2 - (beta_max -
/// beta_min) t^2 / 4.  The root of the quadratic in the form that is stable for beta_max = beta_min.
inline torch::Tensor vp_t_from_log_alpha(const torch::Tensor& c, double beta_min, double beta_max) {
  const double d = beta_max - beta_min;
  return -2 * c / (0.5 * beta_min + torch::sqrt(0.25 * beta_min * beta_min - d * c));
}

/// Shared part of VP and sub-VP: beta(t) and log alpha(t).
struct LinearBeta {
  struct Options {
    TORCH_ARG(double, beta_min) = 0.1;
    TORCH_ARG(double, beta_max) = 20.0;
  };
  Options options{};

  torch::Tensor beta(const torch::Tensor& t) const {
    return options.beta_min() + t * (options.beta_max() - options.beta_min());
  }
  torch::Tensor log_alpha(const torch::Tensor& t) const {
    return -0.25 * t * t * (options.beta_max() - options.beta_min()) - 0.5 * t * options.beta_min();
  }
  torch::Tensor alpha(const torch::Tensor& t) const { return torch::exp(log_alpha(t)); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return -0.5 * beta(t) * alpha(t); }
};

}  // namespace detail

/// Variance-preserving schedule with linear beta(t) = beta_min + t (beta_max - beta_min):
/// alpha(t) = exp(-1/2 int_0^t beta), sigma(t) = sqrt(1 - alpha(t)^2).
///
/// The VP SDE of Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
/// ICLR 2021, the continuous limit of DDPM (Ho et al., NeurIPS 2020).  Defaults beta_min = 0.1 and
/// beta_max = 20 are score_sde's.  alpha(1) > 0, so log-SNR is finite on all of [0, 1].
///
/// Example:
/// @code
/// gm::Interpolant<gm::VP> vp{gm::VP(gm::VP::Options().beta_max(10))};
/// @endcode
struct VP : detail::LinearBeta {
  static constexpr std::string_view name = "vp";
  VP() = default;
  explicit VP(Options o) : LinearBeta{o} {}

  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sqrt(-torch::expm1(2 * log_alpha(t))); }
  torch::Tensor d_sigma(const torch::Tensor& t) const {
    auto a = alpha(t);
    return 0.5 * beta(t) * a * a / sigma(t);
  }
  torch::Tensor log_snr(const torch::Tensor& t) const {
    auto la = log_alpha(t);
    return la - 0.5 * torch::log(-torch::expm1(2 * la));
  }
  /// Closed form: alpha^2 = sigmoid(2 lambda), then the VP quadratic in t.
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const {
    auto log_a = 0.5 * torch::log_sigmoid(2 * lambda);
    return detail::vp_t_from_log_alpha(log_a, options.beta_min(), options.beta_max());
  }
};
static_assert(Schedule<VP>);

/// Sub-variance-preserving schedule: the VP alpha(t), with sigma(t) = 1 - alpha(t)^2.
///
/// The sub-VP SDE of Song et al., ICLR 2021, whose variance stays below VP's; it gave their best
/// likelihoods.  Same defaults as `VP`.
struct SubVP : detail::LinearBeta {
  static constexpr std::string_view name = "subvp";
  SubVP() = default;
  explicit SubVP(Options o) : LinearBeta{o} {}

  torch::Tensor sigma(const torch::Tensor& t) const { return -torch::expm1(2 * log_alpha(t)); }
  torch::Tensor d_sigma(const torch::Tensor& t) const {
    auto a = alpha(t);
    return beta(t) * a * a;
  }
  torch::Tensor log_snr(const torch::Tensor& t) const {
    auto la = log_alpha(t);
    return la - torch::log(-torch::expm1(2 * la));
  }
  /// Closed form: alpha / (1 - alpha^2) = e^lambda is a quadratic in alpha.
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const {
    auto inv_r = torch::exp(-lambda);
    auto a = 2 / (inv_r + torch::sqrt(inv_r * inv_r + 4));
    return detail::vp_t_from_log_alpha(torch::log(a), options.beta_min(), options.beta_max());
  }
};
static_assert(Schedule<SubVP>);

}  // namespace gm
