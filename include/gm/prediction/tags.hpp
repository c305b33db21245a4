#pragma once
/// @file
/// The four classical parameterisations: velocity, noise, score and data (x0).

#include <gm/detail/broadcast.hpp>
#include <gm/prediction/concepts.hpp>

#include <torch/types.h>

#include <string_view>

namespace gm {

/// Data (x0) prediction: the network outputs D = E[x0 | x_t].
///
/// The denoiser view (Karras et al., NeurIPS 2022); DPM-Solver++ integrates in it (Lu et al., 2022).
struct Data {
  static constexpr std::string_view name = "data";

  template <Process I>
  Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    auto a = detail::bcast(ip.alpha(t), x);
    auto s = detail::bcast(ip.sigma(t), x);
    return {out, (x - a * out) / s};
  }
  template <Process I>
  torch::Tensor from_estimate(const Estimate& e, const torch::Tensor&, const torch::Tensor&, const I&) const {
    return e.data;
  }
};

/// Noise prediction: the network outputs E[eps | x_t].
///
/// DDPM's parameterisation (Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020).  Its
/// data estimate (x - sigma eps) / alpha is undefined where alpha = 0.
struct Noise {
  static constexpr std::string_view name = "noise";

  template <Process I>
  Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    auto a = detail::bcast(ip.alpha(t), x);
    auto s = detail::bcast(ip.sigma(t), x);
    return {(x - s * out) / a, out};
  }
  template <Process I>
  torch::Tensor from_estimate(const Estimate& e, const torch::Tensor&, const torch::Tensor&, const I&) const {
    return e.noise;
  }
};

/// Score prediction: the network outputs grad log p_t(x_t) = -E[eps | x_t] / sigma(t).
///
/// Denoising score matching (Vincent, 2011; Song & Ermon, NeurIPS 2019; Song et al., ICLR 2021).
struct Score {
  static constexpr std::string_view name = "score";

  template <Process I>
  Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    auto a = detail::bcast(ip.alpha(t), x);
    auto s = detail::bcast(ip.sigma(t), x);
    return {(x + s * s * out) / a, -s * out};
  }
  template <Process I>
  torch::Tensor from_estimate(const Estimate& e, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return -e.noise / detail::bcast(ip.sigma(t), x);
  }
};

/// Velocity prediction: the network outputs E[d/dt x_t | x_t] = alpha' E[x0|x_t] + sigma' E[eps|x_t].
///
/// Flow matching and rectified flow (Lipman et al., ICLR 2023; Liu et al., ICLR 2023) and stochastic
/// interpolants (Albergo & Vanden-Eijnden, ICLR 2023).  The map back solves the 2x2 system
/// [alpha sigma; alpha' sigma'] (D, N) = (x, v), whose determinant alpha sigma' - sigma alpha' is
/// nonzero for every schedule whose SNR decreases.
struct Velocity {
  static constexpr std::string_view name = "velocity";

  template <Process I>
  Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    auto a = detail::bcast(ip.alpha(t), x);
    auto s = detail::bcast(ip.sigma(t), x);
    auto da = detail::bcast(ip.d_alpha(t), x);
    auto ds = detail::bcast(ip.d_sigma(t), x);
    auto det = a * ds - s * da;
    return {(ds * x - s * out) / det, (a * out - da * x) / det};
  }
  template <Process I>
  torch::Tensor from_estimate(const Estimate& e, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return detail::bcast(ip.d_alpha(t), x) * e.data + detail::bcast(ip.d_sigma(t), x) * e.noise;
  }
};

static_assert(Parameterization<Data>);
static_assert(Parameterization<Noise>);
static_assert(Parameterization<Score>);
static_assert(Parameterization<Velocity>);

}  // namespace gm
