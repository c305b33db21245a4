#pragma once
/// @file
/// The trigonometric (GVP) interpolant.

#include <gm/process/concepts.hpp>

#include <torch/types.h>

#include <numbers>
#include <string_view>

namespace gm {

/// Trigonometric schedule: alpha(t) = cos(pi t / 2), sigma(t) = sin(pi t / 2), so alpha^2 + sigma^2 = 1.
///
/// The "GVP" interpolant of stochastic interpolants (Albergo & Vanden-Eijnden, "Building Normalizing Flows
/// with Stochastic Interpolants", ICLR 2023; Ma et al., "SiT", 2024).  Written with sines so that
/// alpha(1) = 0 and sigma(0) = 0 hold exactly in floating point.
struct Trig {
  static constexpr std::string_view name = "trig";
  static constexpr bool alpha_vanishes_at_one = true;
  static constexpr double half_pi = std::numbers::pi / 2;

  torch::Tensor alpha(const torch::Tensor& t) const { return torch::sin(half_pi * (1 - t)); }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sin(half_pi * t); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return -half_pi * sigma(t); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return half_pi * alpha(t); }
  torch::Tensor log_snr(const torch::Tensor& t) const { return torch::log(alpha(t)) - torch::log(sigma(t)); }
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const {
    return torch::atan(torch::exp(-lambda)) / half_pi;
  }
};
static_assert(Schedule<Trig>);

}  // namespace gm
