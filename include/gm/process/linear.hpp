#pragma once
/// @file
/// The linear interpolant of rectified flow and conditional OT flow matching.

#include <gm/process/concepts.hpp>

#include <torch/types.h>

#include <string_view>

namespace gm {

/// Linear schedule: alpha(t) = 1 - t, sigma(t) = t.
///
/// The straight path between data and noise of rectified flow (Liu, Gong & Liu, "Flow Straight and Fast",
/// ICLR 2023) and of conditional optimal-transport flow matching (Lipman et al., "Flow Matching for
/// Generative Modeling", ICLR 2023).  alpha(1) = 0, so log-SNR is -inf at t = 1.
///
/// Example:
/// @code
/// gm::Interpolant<gm::Linear> flow;
/// auto xt = flow.sample(x0, eps, t);  // (1 - t) x0 + t eps
/// @endcode
struct Linear {
  static constexpr std::string_view name = "linear";
  static constexpr bool alpha_vanishes_at_one = true;

  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return t.clone(); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return -torch::ones_like(t); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return torch::ones_like(t); }
  torch::Tensor log_snr(const torch::Tensor& t) const { return torch::log1p(-t) - torch::log(t); }
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const { return torch::sigmoid(-lambda); }
};
static_assert(Schedule<Linear>);

}  // namespace gm
