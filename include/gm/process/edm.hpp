#pragma once
/// @file
/// The EDM process: alpha = 1 and sigma on EDM's rho-warped time.

#include <gm/process/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <string_view>

namespace gm {

/// EDM schedule: alpha(t) = 1, sigma(t) = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho.
///
/// Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS 2022: the
/// process x = x0 + sigma n with EDM's time warp, so a uniform grid in t is exactly EDM's sampling
/// discretisation (their eq. 5) with sigma_min = 0.002, sigma_max = 80 and rho = 7.  Pair it with
/// `Predict<EDMPrecond>` for EDM's preconditioned denoiser.
struct EDM {
  struct Options {
    TORCH_ARG(double, sigma_min) = 0.002;
    TORCH_ARG(double, sigma_max) = 80.0;
    TORCH_ARG(double, rho) = 7.0;
  };
  static constexpr std::string_view name = "edm";
  Options options{};

  EDM() = default;
  explicit EDM(Options o) : options(o) {}

  double lo() const { return std::pow(options.sigma_min(), 1 / options.rho()); }
  double hi() const { return std::pow(options.sigma_max(), 1 / options.rho()); }
  torch::Tensor base(const torch::Tensor& t) const { return lo() + t * (hi() - lo()); }

  torch::Tensor alpha(const torch::Tensor& t) const { return torch::ones_like(t); }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::pow(base(t), options.rho()); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return torch::zeros_like(t); }
  torch::Tensor d_sigma(const torch::Tensor& t) const {
    return options.rho() * (hi() - lo()) * torch::pow(base(t), options.rho() - 1);
  }
  torch::Tensor log_snr(const torch::Tensor& t) const { return -options.rho() * torch::log(base(t)); }
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const {
    return (torch::exp(-lambda / options.rho()) - lo()) / (hi() - lo());
  }
};
static_assert(Schedule<EDM>);

}  // namespace gm
