#pragma once
/// @file
/// `gm::ZeroTerminalSNR<S>`: a variance-preserving schedule rescaled to zero signal at t = 1.

#include <gm/process/schedule.hpp>

#include <torch/types.h>

#include <string_view>

namespace gm {

/// Zero terminal SNR (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are Flawed", WACV 2024,
/// alg. 1; diffusers' rescale_zero_terminal_snr) as a schedule adaptor: alpha is shifted and scaled so that
/// alpha(1) = 0 while alpha(0) stays, alpha~ = (alpha - alpha(1)) alpha(0) / (alpha(0) - alpha(1)), and
/// sigma~ = sqrt(1 - alpha~^2) keeps it variance preserving.  Training then sees pure noise at t = 1, which is
/// where sampling starts (VP's alpha(1) = e^-5 leaks the data's mean into x_1; Lin et al. measure the
/// resulting brightness bias).  alpha(1) = 0 makes Noise and Score predictions fail to compile; predict
/// Velocity, as Lin et al. do.  Meant for VP-type bases (alpha(0) = 1).  gm's grids start at t = 1 ("trailing"
/// spacing in Lin et al.'s terms), which their sec. 3.3 asks for.
template <Schedule S>
struct ZeroTerminalSNR {
  static constexpr std::string_view name = "zero_terminal_snr";
  static constexpr bool alpha_vanishes_at_one = true;
  S base{};

  torch::Tensor alpha(const torch::Tensor& t) const { return (base.alpha(t) - at(t, 1)) * scale(t); }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sqrt(torch::clamp_min(1 - alpha(t).pow(2), 0)); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return gm::d_alpha(base, t) * scale(t); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return -alpha(t) * d_alpha(t) / sigma(t); }

 private:
  torch::Tensor at(const torch::Tensor& like, double u) const { return base.alpha(torch::full_like(like, u)); }
  torch::Tensor scale(const torch::Tensor& t) const { return at(t, 0) / (at(t, 0) - at(t, 1)); }
};

}  // namespace gm
