#pragma once
/// @file
/// DDIM on any process.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <string_view>

namespace gm {

/// DDIM (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, eq. 12) written with the
/// process's alpha and sigma, so it runs on every process:
///   x_next = alpha' D + sqrt(sigma'^2 - c^2) N + c z,   c = eta sigma' sqrt(1 - e^{2 (lambda - lambda')}),
/// primes at t_next, D and N the model's E[x0|x], E[eps|x] at t.  eta = 0 is deterministic (and equals
/// DPM-Solver++ of order 1); eta = 1 is ancestral sampling from the DDPM posterior.  No noise is added on
/// the last step.
struct DDIMSampler {
  struct Options {
    TORCH_ARG(double, eta) = 0.0;
  };
  using category = ode_tag;  // sde when eta > 0; the step draws from the StepInfo's generator then
  static constexpr std::string_view name = "ddim";
  static constexpr int order = 1;
  struct State {};
  Options options{};
  DDIMSampler() = default;
  explicit DDIMSampler(Options o) : options(o) {}
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, const torch::Tensor& x, const StepInfo& info, State&) const {
    const auto& ip = field.process();
    const auto s = detail::coefs(ip, info.t);
    const auto n = detail::coefs(ip, info.t_next);
    auto e = field.estimate(x, info.t);
    const double eta = info.last() ? 0.0 : options.eta();
    double c = 0;
    if (eta > 0) c = eta * n.sigma * std::sqrt(std::max(0.0, -std::expm1(2 * (s.lambda - n.lambda))));
    auto out = n.alpha * e.data + std::sqrt(std::max(0.0, n.sigma * n.sigma - c * c)) * e.noise;
    if (c > 0) out = out + c * torch::randn(x.sizes(), info.generator, x.options());
    return out;
  }
};

}  // namespace gm
