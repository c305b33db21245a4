#pragma once
/// @file
/// DDIM on any process.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <string_view>

namespace gm {

/// DDIM (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, eq. 12) written with the
/// process's alpha and sigma, so it runs on every process:
///   x_next = alpha' D + sqrt(sigma'^2 - c^2) N + c z,   c = eta sigma' sqrt(1 - e^{2 (lambda - lambda')}),
/// primes at t_next, D and N the model's E[x0|x], E[eps|x] at t.  No noise is added on the last step.
///
/// @tparam Stochastic false: `DDIMSampler`, eta = 0, deterministic (`ode_tag`; it equals DPM-Solver++ of
/// order 1); true: `DDPMSampler`, eta in (0, 1] (default 1: ancestral sampling from the DDPM posterior of
/// Ho et al. 2020), stochastic (`sde_tag`), drawing from the StepInfo's generator.  The category is part
/// of the type, so a stochastic DDIM is never labelled deterministic.
template <bool Stochastic>
struct DDIMFamily {
  struct Options {
    TORCH_ARG(double, eta) = Stochastic ? 1.0 : 0.0;
  };
  using category = std::conditional_t<Stochastic, sde_tag, ode_tag>;
  static constexpr std::string_view name = Stochastic ? "ddpm" : "ddim";
  static constexpr int order = 1;
  struct State {};
  Options options{};
  DDIMFamily() = default;
  explicit DDIMFamily(Options o) : options(o) {
    TORCH_CHECK(Stochastic ? (o.eta() > 0 && o.eta() <= 1) : o.eta() == 0,
                Stochastic ? "gm: DDPMSampler needs eta in (0, 1]" : "gm: DDIMSampler is deterministic (eta = 0); use "
                                                                    "DDPMSampler for eta > 0");
  }
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
    if (c > 0) out = out + c * info.noise(x);
    return out;
  }
};

/// Deterministic DDIM (eta = 0).
using DDIMSampler = DDIMFamily<false>;
/// DDIM with eta > 0; eta = 1 is DDPM's ancestral sampler.
using DDPMSampler = DDIMFamily<true>;

}  // namespace gm
