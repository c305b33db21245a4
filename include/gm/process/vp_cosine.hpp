#pragma once
/// @file
/// The cosine schedule of improved DDPM.

#include <gm/process/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <numbers>
#include <string_view>

namespace gm {

/// Cosine variance-preserving schedule: alpha(t)^2 = f(t) / f(0), f(t) = cos^2(pi/2 (t + s) / (1 + s)),
/// sigma(t) = sqrt(1 - alpha(t)^2), computed as sqrt(sin(theta - theta0) sin(theta + theta0)) / cos(theta0),
/// which has no cancellation near t = 0 (float32 keeps its relative precision at t = 1e-5).
///
/// Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021, with their offset
/// s = 0.008 as default.  alpha(1) = 0 exactly (no clipping of beta: this is the continuous-time schedule).
struct VPCosine {
  struct Options {
    TORCH_ARG(double, s) = 0.008;
  };
  static constexpr std::string_view name = "cosine";
  static constexpr bool alpha_vanishes_at_one = true;
  static constexpr double half_pi = std::numbers::pi / 2;
  Options options{};

  VPCosine() = default;
  explicit VPCosine(Options o) : options(o) {}

  /// cos(theta(t)) with theta(t) = pi/2 (t + s) / (1 + s), as a sine so it is exactly 0 at t = 1.
  torch::Tensor cos_theta(const torch::Tensor& t) const {
    return torch::sin(half_pi * (1 - t) / (1 + options.s()));
  }
  double cos_theta0() const { return std::cos(half_pi * options.s() / (1 + options.s())); }

  torch::Tensor alpha(const torch::Tensor& t) const { return cos_theta(t) / cos_theta0(); }
  /// 1 - cos^2(theta) / cos^2(theta0) = sin(theta - theta0) sin(theta + theta0) / cos^2(theta0), with
  /// theta - theta0 = pi/2 t / (1 + s) and theta + theta0 = pi/2 (t + 2 s) / (1 + s).
  torch::Tensor sigma(const torch::Tensor& t) const {
    const double k = half_pi / (1 + options.s());
    auto prod = torch::sin(k * t) * torch::sin(k * (t + 2 * options.s()));
    return torch::sqrt(prod.clamp_min(0)) / cos_theta0();
  }
  torch::Tensor d_alpha(const torch::Tensor& t) const {
    const double k = half_pi / (1 + options.s());
    return -k * torch::cos(half_pi * (1 - t) / (1 + options.s())) / cos_theta0();
  }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return -alpha(t) * d_alpha(t) / sigma(t); }
  torch::Tensor log_snr(const torch::Tensor& t) const { return torch::log(alpha(t)) - torch::log(sigma(t)); }
  /// Closed form: alpha = sqrt(sigmoid(2 lambda)), then invert the cosine.
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const {
    auto c = torch::exp(0.5 * torch::log_sigmoid(2 * lambda)) * cos_theta0();
    return 1 - torch::asin(c.clamp(0, 1)) * (1 + options.s()) / half_pi;
  }
};
static_assert(Schedule<VPCosine>);

}  // namespace gm
