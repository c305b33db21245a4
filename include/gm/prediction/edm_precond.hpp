#pragma once
/// @file
/// EDM's preconditioned denoiser as a fifth parameterisation.

#include <gm/detail/broadcast.hpp>
#include <gm/prediction/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <string_view>

namespace gm {

/// EDM preconditioning: D(x; sigma) = c_skip x + c_out F(c_in x; c_noise), the network output being F.
///
/// Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS 2022,
/// table 1: c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2),
/// c_noise = log(s) / 4, with sd = sigma_data.  For a process with alpha != 1, s is the scale-free
/// noise level sigma / alpha and x is x_t / alpha (EDM's eq. 4 with s(t) = alpha); the forms below are
/// multiplied out so that they stay finite where alpha = 0.
struct EDMPrecond {
  struct Options {
    TORCH_ARG(double, sigma_data) = 0.5;
  };
  static constexpr std::string_view name = "edm";
  Options options{};

  EDMPrecond() = default;
  explicit EDMPrecond(Options o) : options(o) {}

  /// sqrt(sigma^2 + alpha^2 sd^2): the standard deviation of x_t when x0 has std sd.
  template <Process I>
  torch::Tensor scale(const torch::Tensor& t, const I& ip) const {
    auto a = ip.alpha(t);
    auto s = ip.sigma(t);
    const double sd = options.sigma_data();
    return torch::sqrt(s * s + a * a * sd * sd);
  }
  /// c_skip applied to x_t (includes the 1/alpha): sd^2 alpha / (sigma^2 + alpha^2 sd^2).
  template <Process I>
  torch::Tensor c_skip(const torch::Tensor& t, const I& ip) const {
    auto n = scale(t, ip);
    const double sd = options.sigma_data();
    return sd * sd * ip.alpha(t) / (n * n);
  }
  /// c_out = sigma sd / sqrt(sigma^2 + alpha^2 sd^2).
  template <Process I>
  torch::Tensor c_out(const torch::Tensor& t, const I& ip) const {
    return ip.sigma(t) * options.sigma_data() / scale(t, ip);
  }

  template <Process I>
  Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    auto d = detail::bcast(c_skip(t, ip), x) * x + detail::bcast(c_out(t, ip), x) * out;
    auto a = detail::bcast(ip.alpha(t), x);
    auto s = detail::bcast(ip.sigma(t), x);
    return {d, (x - a * d) / s};
  }
  template <Process I>
  torch::Tensor from_estimate(const Estimate& e, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return (e.data - detail::bcast(c_skip(t, ip), x) * x) / detail::bcast(c_out(t, ip), x);
  }
  /// c_in x_t / alpha = x_t / sqrt(sigma^2 + alpha^2 sd^2): unit-variance network input.
  template <Process I>
  torch::Tensor network_input(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return x / detail::bcast(scale(t, ip), x);
  }
  /// c_noise = log(sigma / alpha) / 4 = -lambda / 4, with lambda clamped to [-max_log_snr, max_log_snr]
  /// so the time input stays finite where alpha = 0 (t = 1 on Linear, Trig, VPCosine: lambda = -inf) or
  /// sigma = 0 (lambda = +inf).  +-30 is far beyond any trained noise level (EDM's sigma in [0.002, 80]
  /// is lambda = log(alpha / sigma) in [-4.4, 6.2]).
  static constexpr double max_log_snr = 30.0;
  template <Process I>
  torch::Tensor network_time(const torch::Tensor& t, const I& ip) const {
    return -0.25 * ip.log_snr(t).clamp(-max_log_snr, max_log_snr);
  }
};
static_assert(Parameterization<EDMPrecond>);
static_assert(HasNetworkInput<EDMPrecond> && HasNetworkTime<EDMPrecond>);

}  // namespace gm
