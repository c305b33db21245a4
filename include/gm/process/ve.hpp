#pragma once
/// @file
/// The variance-exploding SDE.

#include <gm/process/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <string_view>

namespace gm {

/// Variance-exploding schedule: alpha(t) = 1, sigma(t) = sigma_min (sigma_max / sigma_min)^t.
///
/// The VE SDE of Song et al., ICLR 2021 (the continuous NCSN of Song & Ermon, NeurIPS 2019).  Defaults
/// sigma_min = 0.01, sigma_max = 50 are score_sde's CIFAR-10 values; choose sigma_max near the largest
/// pairwise distance in the data.  As in score_sde, sigma(0) = sigma_min, not 0.
struct VE {
  struct Options {
    TORCH_ARG(double, sigma_min) = 0.01;
    TORCH_ARG(double, sigma_max) = 50.0;
  };
  static constexpr std::string_view name = "ve";
  Options options{};

  VE() = default;
  explicit VE(Options o) : options(o) {}

  double log_ratio() const { return std::log(options.sigma_max() / options.sigma_min()); }

  torch::Tensor alpha(const torch::Tensor& t) const { return torch::ones_like(t); }
  torch::Tensor sigma(const torch::Tensor& t) const { return options.sigma_min() * torch::exp(t * log_ratio()); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return torch::zeros_like(t); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return sigma(t) * log_ratio(); }
  torch::Tensor log_snr(const torch::Tensor& t) const { return -(std::log(options.sigma_min()) + t * log_ratio()); }
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const {
    return (-lambda - std::log(options.sigma_min())) / log_ratio();
  }
};
static_assert(Schedule<VE>);

}  // namespace gm
