#pragma once
/// @file
/// `Interpolant<S>`: the generic machinery on top of a schedule.

#include <gm/detail/broadcast.hpp>
#include <gm/process/concepts.hpp>
#include <gm/process/schedule.hpp>

#include <torch/types.h>

#include <string_view>
#include <utility>

namespace gm {

/// The process x_t = alpha(t) x0 + sigma(t) eps built from a schedule `S`.
///
/// Adds to the schedule what every trainer and sampler needs: drawing x_t, the conditional velocity,
/// SNR and log-SNR with its inverse, and the forward SDE dx = f(t) x dt + g(t) dW with the same
/// marginals (Song et al., ICLR 2021, eq. 5 and appendix B): f = alpha'/alpha and
/// g^2 = 2 sigma sigma' - 2 f sigma^2 = d(sigma^2)/dt - 2 f sigma^2.  From f and g a sampler builds the
/// probability-flow ODE and the reverse SDE.
///
/// Members missing from `S` (derivatives, log-SNR inverse) are supplied by autograd and bisection.
/// Times `t` are 0-d or of shape [B]; they broadcast over data x of shape [B, ...].
///
/// @tparam S the schedule policy (see `gm::Schedule`).
///
/// Example:
/// @code
/// gm::Interpolant<gm::VP> vp;
/// auto t = torch::rand({x0.size(0)});
/// auto xt = vp.sample(x0, torch::randn_like(x0), t);
/// auto lam = vp.log_snr(t);
/// @endcode
template <Schedule S>
class Interpolant {
 public:
  using schedule_type = S;
  static constexpr std::string_view name = schedule_name<S>();

  Interpolant() = default;
  explicit Interpolant(S schedule) : schedule_(std::move(schedule)) {}

  const S& schedule() const { return schedule_; }

  torch::Tensor alpha(const torch::Tensor& t) const { return schedule_.alpha(t); }
  torch::Tensor sigma(const torch::Tensor& t) const { return schedule_.sigma(t); }
  torch::Tensor d_alpha(const torch::Tensor& t) const { return gm::d_alpha(schedule_, t); }
  torch::Tensor d_sigma(const torch::Tensor& t) const { return gm::d_sigma(schedule_, t); }

  /// lambda(t) = log(alpha / sigma).
  torch::Tensor log_snr(const torch::Tensor& t) const { return gm::log_snr(schedule_, t); }
  /// alpha^2 / sigma^2.
  torch::Tensor snr(const torch::Tensor& t) const { return torch::exp(2 * log_snr(t)); }
  /// The inverse of `log_snr`.
  torch::Tensor t_from_log_snr(const torch::Tensor& lambda) const { return gm::t_from_log_snr(schedule_, lambda); }

  /// x_t = alpha(t) x0 + sigma(t) eps, with t broadcast over the data dimensions.
  torch::Tensor sample(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t) const {
    return detail::bcast(alpha(t), x0) * x0 + detail::bcast(sigma(t), eps) * eps;
  }
  /// The conditional velocity d/dt x_t = alpha'(t) x0 + sigma'(t) eps.
  torch::Tensor velocity(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t) const {
    return detail::bcast(d_alpha(t), x0) * x0 + detail::bcast(d_sigma(t), eps) * eps;
  }

  /// Drift coefficient f(t) = alpha'/alpha of the forward SDE dx = f x dt + g dW.
  torch::Tensor drift_coef(const torch::Tensor& t) const { return d_alpha(t) / alpha(t); }
  /// Squared diffusion g(t)^2 = 2 sigma (sigma' - f sigma) of the forward SDE.
  torch::Tensor diffusion_sq(const torch::Tensor& t) const {
    auto s = sigma(t);
    return 2 * s * (d_sigma(t) - drift_coef(t) * s);
  }
  /// Forward drift f(t) x.
  torch::Tensor drift(const torch::Tensor& x, const torch::Tensor& t) const {
    return detail::bcast(drift_coef(t), x) * x;
  }

 private:
  S schedule_{};
};

}  // namespace gm
