#pragma once
/// @file
/// VDM's continuous-time ELBO (Kingma, Salimans, Poole & Ho, "Variational Diffusion Models", NeurIPS 2021) of
/// discrete (8-bit) or continuous data, as a loss weighting with prior and reconstruction terms; its learned
/// schedule is `gm::LearnedSchedule` (gm/process/vdm.hpp).

#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/prediction/weighting.hpp>
#include <gm/process/concepts.hpp>
#include <gm/process/schedule.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string_view>

namespace gm {

namespace detail {
/// gamma'(t) = -2 lambda'(t): the schedule's own (differentiable in its weights) where it has one, else by
/// autograd through log_snr.
template <Process I>
torch::Tensor d_gamma(const I& ip, const torch::Tensor& t) {
  if constexpr (requires { ip.schedule().d_gamma(t); }) {
    return ip.schedule().d_gamma(t);
  } else {
    return -2 * detail::autograd_derivative([&](const torch::Tensor& u) { return ip.log_snr(u); }, t);
  }
}
}  // namespace detail

/// VDM's continuous-time ELBO (Kingma et al., NeurIPS 2021, eq. 17 and appendix): -log p(x) <=
/// L_diffusion + L_prior + L_reconstruction, reported in bits per dimension.
///
/// - As a loss weighting, w_eps(t) = 1/2 gamma'(t) on the noise error, so the trainer's per-sample loss
///   w mean_d (eps - eps_hat)^2 is the diffusion term 1/2 gamma'(t) ||eps - eps_hat||^2 per dimension (in
///   nats; converted for other parameterisations through `Predict<P>::data_scale`).  gamma' carries
///   gradients into a learned schedule.
/// - `objective` adds the prior term KL(q(z_1 | x) || N(0, I)) and the reconstruction term -log p(x | z_0),
///   z_0 = alpha_0 x + sigma_0 eps_0, and converts to bits per dimension.  For discrete data (`levels` > 0,
///   values lo + k (hi - lo) / (levels - 1), gm's 8-bit pixels by default) p(x | z_0) is VDM's factorised
///   decoder, a softmax over the levels with logits -1/2 ((z_0 / alpha_0 - x_k) alpha_0 / sigma_0)^2 (summed
///   over the levels within 8 decoder deviations, which is exact in floating point); for
///   continuous data (`levels` = 0) it is N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2).
///
/// Needs a process with sigma(0) > 0 (`LearnedSchedule`; VP, Linear and the others are noise-free at t = 0).
/// Use it with `Predict<Noise>` and `StratifiedTime` (antithetic), as VDM does.
struct VDMELBO {
  struct Options {
    TORCH_ARG(int64_t, levels) = 256;  ///< discrete data levels (0: continuous data, Gaussian decoder)
    TORCH_ARG(double, lo) = -1.0;      ///< the lowest level
    TORCH_ARG(double, hi) = 1.0;       ///< the highest level
  };
  static constexpr std::string_view name = "vdm_elbo";
  Options options{};
  VDMELBO() = default;
  explicit VDMELBO(Options o) : options(o) {}

  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I& ip, const Pr& pred) const {
    return detail::in_prediction_space(0.5 * detail::d_gamma(ip, t) * ip.snr(t), t, ip, pred);
  }

  /// KL(q(z_1 | x) || N(0, I)) per dimension, [B] (nats).
  template <Process I>
  torch::Tensor prior(const torch::Tensor& x0, const I& ip) const {
    auto one = torch::ones({1}, x0.options());
    auto a2 = ip.alpha(one).pow(2), s2 = ip.sigma(one).pow(2);
    return 0.5 * (a2 * x0.pow(2) + s2 - torch::log(s2) - 1).flatten(1).mean(1);
  }

  /// -log p(x | z_0) per dimension, [B] (nats), with z_0 drawn from `eps0`.
  template <Process I>
  torch::Tensor reconstruction(const torch::Tensor& x0, const torch::Tensor& eps0, const I& ip) const {
    auto zero = torch::zeros({1}, x0.options());
    auto a0 = ip.alpha(zero), s0 = ip.sigma(zero);
    auto inv = a0 / s0;  // 1 / the decoder's standard deviation in x's units
    if (!(s0.min().template item<double>() > 0)) {
      throw Error("gm: the VDM ELBO needs a process with sigma(0) > 0 (e.g. gm::LearnedSchedule); this one has "
                  "sigma(0) = 0");
    }
    auto zr = (a0 * x0 + s0 * eps0) / a0;  // z_0 / alpha_0
    if (options.levels() <= 0) {  // Gaussian decoder: 1/2 log(2 pi sd^2) + 1/2 ((x - zr) / sd)^2
      return (0.5 * std::log(2 * std::numbers::pi) - torch::log(inv) + 0.5 * ((x0 - zr) * inv).pow(2)).flatten(1).mean(1);
    }
    const int64_t k = options.levels();
    const double step = (options.hi() - options.lo()) / static_cast<double>(k - 1);
    auto flat = zr.flatten(1).unsqueeze(-1);  // [B, D, 1]
    auto own = options.lo() + step * torch::round((x0.flatten(1).unsqueeze(-1) - options.lo()) / step).clamp(0, k - 1);
    // The normaliser sums exp(logit) over the levels.  Levels more than 8 decoder deviations from z_0 / alpha_0
    // add less than e^-32 of the nearest one's term, so only the window of levels within that reach of the
    // nearest is summed: 5 levels instead of 256 at VDM's gamma_0 = -13.3, the same float result.
    const double reach = 8 / inv.min().template item<double>();
    const int64_t half = static_cast<int64_t>(std::ceil(reach / step)) + 1;
    torch::Tensor logits;
    if (2 * half + 1 >= k) {
      logits = -0.5 * ((flat - (options.lo() + step * torch::arange(k, x0.options()))) * inv).pow(2);
    } else {
      auto nearest = torch::round((flat.detach() - options.lo()) / step).clamp(0, k - 1);
      auto index = nearest + torch::arange(-half, half + 1, x0.options());  // [B, D, 2 half + 1]
      auto inside = (index >= 0) & (index <= k - 1);
      logits = -0.5 * ((flat - (options.lo() + step * index.clamp(0, k - 1))) * inv).pow(2);
      logits = torch::where(inside, logits, torch::full_like(logits, -std::numeric_limits<double>::infinity()));
    }
    auto logp = -0.5 * ((flat - own) * inv).pow(2).squeeze(-1) - torch::logsumexp(logits, -1);
    return -logp.mean(1);
  }

  /// The per-sample ELBO bound in bits per dimension, [B]: `diffusion` (the weighted per-sample loss, nats
  /// per dimension) plus the prior and reconstruction terms.  With `for_gradient` and a `LearnedSchedule`
  /// that minimises variance, also hands 2 x the diffusion term to the schedule for the backward pass.
  template <Process I>
  torch::Tensor objective(const torch::Tensor& diffusion, const torch::Tensor& x0, const torch::Tensor& eps0, const I& ip,
                          bool for_gradient) const {
    if constexpr (requires { ip.schedule().net->set_variance_weights(diffusion); }) {
      if (for_gradient) ip.schedule().net->set_variance_weights(2 * diffusion.detach());
    }
    return (diffusion + prior(x0, ip) + reconstruction(x0, eps0, ip)) / std::numbers::ln2;
  }
};
static_assert(LossWeighting<VDMELBO>);

/// A weighting with prior and reconstruction terms: the trainer draws eps_0 for them and reports
/// `objective` as the loss.
template <class W>
concept ELBOObjective = requires(const W& w, const torch::Tensor& x, const detail::ProcessArchetype& ip) {
  { w.objective(x, x, x, ip, true) } -> std::convertible_to<torch::Tensor>;
};
static_assert(ELBOObjective<VDMELBO>);

}  // namespace gm
