#pragma once
/// @file
/// Generic schedule operations with fallbacks: derivatives by autograd, log-SNR from alpha and sigma,
/// and its inverse by bisection.  A schedule's own member wins wherever it has one.

#include <gm/process/concepts.hpp>

#include <torch/csrc/autograd/autograd.h>
#include <torch/types.h>

#include <string_view>

namespace gm {
namespace detail {

/// d/dt of an elementwise function of t, by autograd.  Works inside NoGradGuard and InferenceMode.
template <class F>
torch::Tensor autograd_derivative(F&& f, const torch::Tensor& t) {
  c10::InferenceMode no_inference(false);
  torch::AutoGradMode grad_on(true);
  auto tt = t.detach().clone().requires_grad_(true);
  auto y = f(tt);
  if (!y.requires_grad()) return torch::zeros_like(t);  // f does not depend on t
  auto g = torch::autograd::grad({y.sum()}, {tt}, /*grad_outputs=*/{}, /*retain_graph=*/false,
                                 /*create_graph=*/false, /*allow_unused=*/true)[0];
  if (!g.defined()) return torch::zeros_like(t);  // f does not depend on t
  return g.detach();
}

}  // namespace detail

/// alpha'(t): the schedule's own `d_alpha`, else autograd through `alpha`.
template <Schedule S>
torch::Tensor d_alpha(const S& s, const torch::Tensor& t) {
  if constexpr (HasDAlpha<S>) {
    return s.d_alpha(t);
  } else {
    return detail::autograd_derivative([&](const torch::Tensor& u) { return s.alpha(u); }, t);
  }
}

/// sigma'(t): the schedule's own `d_sigma`, else autograd through `sigma`.
template <Schedule S>
torch::Tensor d_sigma(const S& s, const torch::Tensor& t) {
  if constexpr (HasDSigma<S>) {
    return s.d_sigma(t);
  } else {
    return detail::autograd_derivative([&](const torch::Tensor& u) { return s.sigma(u); }, t);
  }
}

/// log-SNR lambda(t) = log(alpha / sigma): the schedule's own, else log(alpha) - log(sigma).
template <Schedule S>
torch::Tensor log_snr(const S& s, const torch::Tensor& t) {
  if constexpr (HasLogSnr<S>) {
    return s.log_snr(t);
  } else {
    return torch::log(s.alpha(t)) - torch::log(s.sigma(t));
  }
}

/// The t with lambda(t) = lambda: the schedule's own inverse, else 64 steps of bisection on [0, 1]
/// (lambda is decreasing in t for every valid schedule).  Values outside lambda's range clamp to 0 or 1.
template <Schedule S>
torch::Tensor t_from_log_snr(const S& s, const torch::Tensor& lambda) {
  if constexpr (HasLogSnrInverse<S>) {
    return s.t_from_log_snr(lambda);
  } else {
    torch::NoGradGuard no_grad;
    auto lo = torch::zeros_like(lambda);
    auto hi = torch::ones_like(lambda);
    for (int i = 0; i < 64; ++i) {
      auto mid = 0.5 * (lo + hi);
      auto above = log_snr(s, mid) > lambda;  // still too much signal: move right
      lo = torch::where(above, mid, lo);
      hi = torch::where(above, hi, mid);
    }
    return 0.5 * (lo + hi);
  }
}

/// The schedule's name, or "custom" where it has none.
template <Schedule S>
constexpr std::string_view schedule_name() {
  if constexpr (HasName<S>) {
    return S::name;
  } else {
    return "custom";
  }
}

}  // namespace gm
