#pragma once
/// @file
/// Loss weightings w(t) for the regression loss w(t) ||out - target||^2.

#include <gm/prediction/predict.hpp>
#include <gm/process/concepts.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <concepts>
#include <string_view>
#include <utility>

namespace gm {

/// A loss weighting gives the per-sample weight on the squared error in the prediction's own space.
///
/// All but `UniformWeight` are defined, as in the literature, on the data-space error ||D - x0||^2 and
/// converted to P's space with `Predict<P>::data_scale`: w_P = w_data * (dD/dout)^2.  So a weighting
/// means the same objective whatever the network predicts.
template <class W>
concept LossWeighting =
    requires(const W& w, const torch::Tensor& t, const detail::ProcessArchetype& ip, const Predict<Data>& pred) {
      { w.weight(t, ip, pred) } -> std::convertible_to<torch::Tensor>;
      { W::name } -> std::convertible_to<std::string_view>;
    };

namespace detail {
/// A data-space weight, converted to the prediction's space.
template <Process I, class Pr>
torch::Tensor in_prediction_space(const torch::Tensor& w_data, const torch::Tensor& t, const I& ip, const Pr& pred) {
  auto k = pred.data_scale(t, ip);
  return w_data * k * k;
}
}  // namespace detail

/// Plain MSE in the prediction's own space: w = 1 (the rectified-flow and DDPM "simple" losses).
struct UniformWeight {
  static constexpr std::string_view name = "uniform";
  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I&, const Pr&) const {
    return torch::ones_like(t);
  }
};

/// w_data = SNR(t) = alpha^2 / sigma^2: the noise-prediction MSE, whatever P is (Ho et al., 2020;
/// Kingma et al., "Variational Diffusion Models", NeurIPS 2021).
struct SNRWeight {
  static constexpr std::string_view name = "snr";
  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I& ip, const Pr& pred) const {
    return detail::in_prediction_space(ip.snr(t), t, ip, pred);
  }
};

/// w_data = min(SNR(t), gamma): Min-SNR-gamma (Hang et al., "Efficient Diffusion Training via Min-SNR
/// Weighting Strategy", ICCV 2023), gamma = 5 by default.
struct MinSNRWeight {
  struct Options {
    TORCH_ARG(double, gamma) = 5.0;
  };
  static constexpr std::string_view name = "min_snr";
  Options options{};
  MinSNRWeight() = default;
  explicit MinSNRWeight(Options o) : options(o) {}

  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I& ip, const Pr& pred) const {
    return detail::in_prediction_space(ip.snr(t).clamp_max(options.gamma()), t, ip, pred);
  }
};

/// w_data = (s^2 + sd^2) / (s sd)^2 with s = sigma/alpha: EDM's lambda(sigma) (Karras et al., NeurIPS
/// 2022, table 1), which gives `EDMPrecond` unit weight on its output F.
struct EDMWeight {
  struct Options {
    TORCH_ARG(double, sigma_data) = 0.5;
  };
  static constexpr std::string_view name = "edm";
  Options options{};
  EDMWeight() = default;
  explicit EDMWeight(Options o) : options(o) {}

  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I& ip, const Pr& pred) const {
    const double sd2 = options.sigma_data() * options.sigma_data();
    auto s2 = torch::exp(-2 * ip.log_snr(t));  // (sigma / alpha)^2
    return detail::in_prediction_space((s2 + sd2) / (s2 * sd2), t, ip, pred);
  }
};

/// Likelihood weighting: g(t)^2 on the score error (Song, Durkan, Murray & Ermon, "Maximum Likelihood
/// Training of Score-Based Diffusion Models", NeurIPS 2021), the continuous ELBO.  In data space that is
/// g^2 alpha^2 / sigma^4; score_sde writes it as g^2 / sigma^2 on the noise error.
struct LikelihoodWeight {
  static constexpr std::string_view name = "likelihood";
  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I& ip, const Pr& pred) const {
    auto s2 = ip.sigma(t).pow(2);
    return detail::in_prediction_space(ip.diffusion_sq(t) * ip.snr(t) / s2, t, ip, pred);
  }
};

/// EDM2's learned uncertainty weighting (Karras et al. 2024, "Analyzing and Improving the Training Dynamics
/// of Diffusion Models", Eq. 21; Kendall & Gal 2017): the network also predicts a log-variance u(t), and
/// the per-sample loss is w(t) / e^u(t) * ||out - target||^2 + u(t), with w the base weighting `W` (EDM2:
/// `EDMWeight`).  Minimising over u gives e^u = the expected weighted error at t, so the loss is
/// normalised to one across noise levels as training goes; EDM2 trains u jointly with the network.  The
/// network must provide `logvar(t)` of its network time (gm::EDM2UNet does); any other is refused at
/// compile time.
template <class W = EDMWeight>
struct LearnedLogVar {
  static_assert(LossWeighting<W>, "gm: LearnedLogVar's base must be a gm::LossWeighting.");
  static constexpr std::string_view name = "learned_logvar";
  static constexpr bool learned_logvar = true;
  W base{};
  LearnedLogVar() = default;
  explicit LearnedLogVar(W w) : base(std::move(w)) {}

  template <Process I, class Pr>
  torch::Tensor weight(const torch::Tensor& t, const I& ip, const Pr& pred) const {
    return base.weight(t, ip, pred);
  }
  /// The loss from a weighted per-sample error and the log-variance u [B]: error / e^u + u.
  static torch::Tensor combine(const torch::Tensor& weighted_error, const torch::Tensor& logvar) {
    return weighted_error * torch::exp(-logvar) + logvar;
  }
};

/// Whether a weighting asks for the network's learned log-variance (`gm::LearnedLogVar`).
template <class W>
concept LearnsLogVar = requires { requires W::learned_logvar; };

static_assert(LossWeighting<UniformWeight>);
static_assert(LossWeighting<SNRWeight>);
static_assert(LossWeighting<MinSNRWeight>);
static_assert(LossWeighting<EDMWeight>);
static_assert(LossWeighting<LikelihoodWeight>);
static_assert(LossWeighting<LearnedLogVar<>> && LearnsLogVar<LearnedLogVar<>>);

}  // namespace gm
