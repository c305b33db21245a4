#pragma once
/// @file
/// The `Parameterization` concept: what a network predicts, and how that maps to E[x0 | x_t], E[eps | x_t].

#include <gm/process/concepts.hpp>

#include <torch/types.h>

#include <concepts>
#include <string_view>

namespace gm {

/// The posterior means a prediction stands for: `data` = E[x0 | x_t] and `noise` = E[eps | x_t].
///
/// Every parameterisation is an affine map of this pair given x_t and t, which is how `Predict<P>`
/// converts any one into any other.
struct Estimate {
  torch::Tensor data;
  torch::Tensor noise;
};

namespace detail {

/// A stand-in process used only to check concepts; it has every member of `gm::Process`, no bodies.
struct ProcessArchetype {
  torch::Tensor alpha(const torch::Tensor&) const;
  torch::Tensor sigma(const torch::Tensor&) const;
  torch::Tensor d_alpha(const torch::Tensor&) const;
  torch::Tensor d_sigma(const torch::Tensor&) const;
  torch::Tensor log_snr(const torch::Tensor&) const;
  torch::Tensor snr(const torch::Tensor&) const;
  torch::Tensor t_from_log_snr(const torch::Tensor&) const;
  torch::Tensor drift_coef(const torch::Tensor&) const;
  torch::Tensor diffusion_sq(const torch::Tensor&) const;
  torch::Tensor sample(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) const;
};
static_assert(Process<ProcessArchetype>);

}  // namespace detail

/// A parameterisation maps a network output to the posterior pair and back.
template <class P>
concept HasToEstimate = requires(const P& p, const torch::Tensor& a, const detail::ProcessArchetype& ip) {
  { p.to_estimate(a, a, a, ip) } -> std::same_as<Estimate>;  // (output, x_t, t, process)
};

/// A parameterisation expresses a posterior pair in its own terms.
template <class P>
concept HasFromEstimate = requires(const P& p, const Estimate& e, const torch::Tensor& a,
                                   const detail::ProcessArchetype& ip) {
  { p.from_estimate(e, a, a, ip) } -> std::convertible_to<torch::Tensor>;  // (pair, x_t, t, process)
};

/// Optional: the network sees `network_input(x_t, t, process)` instead of x_t (EDM's c_in).
template <class P>
concept HasNetworkInput = requires(const P& p, const torch::Tensor& a, const detail::ProcessArchetype& ip) {
  { p.network_input(a, a, ip) } -> std::convertible_to<torch::Tensor>;
};

/// Optional: the network is conditioned on `network_time(t, process)` instead of t (EDM's c_noise).
template <class P>
concept HasNetworkTime = requires(const P& p, const torch::Tensor& a, const detail::ProcessArchetype& ip) {
  { p.network_time(a, ip) } -> std::convertible_to<torch::Tensor>;
};

/// What a network predicts: velocity, noise, score, data, or EDM's preconditioned output.
///
/// A parameterisation is a small copyable value with a `name` and the two maps `to_estimate` and
/// `from_estimate`.  The training target is derived: it is `from_estimate` applied to the true (x0, eps).
template <class P>
concept Parameterization = std::copy_constructible<P> && HasName<P> && HasToEstimate<P> && HasFromEstimate<P>;

/// Explains, one sentence per member, why `P` is not a `Parameterization`.
template <class P>
consteval bool check_parameterization() {
  static_assert(HasName<P>, "gm: a Parameterization needs `static constexpr std::string_view name`.");
  static_assert(HasToEstimate<P>,
                "gm: a Parameterization needs `template <gm::Process I> gm::Estimate to_estimate(const "
                "torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I&) const`, "
                "mapping the network output to E[x0|x_t] and E[eps|x_t]; see docs/concepts.md#parameterization.");
  static_assert(HasFromEstimate<P>,
                "gm: a Parameterization needs `template <gm::Process I> torch::Tensor from_estimate(const "
                "gm::Estimate&, const torch::Tensor& x, const torch::Tensor& t, const I&) const`; see "
                "docs/concepts.md#parameterization.");
  return Parameterization<P>;
}

}  // namespace gm
