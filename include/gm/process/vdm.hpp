#pragma once
/// @file
/// Variational Diffusion Models (Kingma, Salimans, Poole & Ho, "Variational Diffusion Models", NeurIPS 2021):
/// a learned monotone noise schedule gamma(t) = -log SNR(t) as a gm Schedule, and VDM's continuous-time ELBO
/// of discrete (8-bit) or continuous data as a loss weighting with prior and reconstruction terms.

#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/prediction/weighting.hpp>
#include <gm/process/concepts.hpp>
#include <gm/process/schedule.hpp>
#include <gm/random.hpp>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <string_view>
#include <utility>
#include <vector>

namespace gm {

/// Options of `MonotoneGamma`.
struct MonotoneGammaOptions {
  TORCH_ARG(double, gamma_min) = -13.3;  ///< gamma(0) at initialisation (VDM's CIFAR-10 value)
  TORCH_ARG(double, gamma_max) = 5.0;    ///< gamma(1) at initialisation
  TORCH_ARG(int64_t, features) = 1024;   ///< width of the monotone network's hidden layer (VDM: 1024)
  TORCH_ARG(bool, learn_endpoints) = true;  ///< train gamma(0) and gamma(1) (on the ELBO)
  TORCH_ARG(bool, learn_shape) = true;      ///< train the shape between them
  /// Train the shape to minimise the variance of the diffusion loss estimate instead of the loss itself
  /// (VDM section 5.2 and appendix I.2); the endpoints always follow the ELBO.  Needs `VDMELBO`.
  TORCH_ARG(bool, minimise_variance) = true;
  /// Seed of the shape's initial weights: every schedule made with the same options starts the same.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// VDM's learned schedule gamma(t) = -log SNR(t), monotone increasing by construction.
///
/// gamma(t) = gamma_0 + (gamma_1 - gamma_0) (g(t) - g(0)) / (g(1) - g(0)), with VDM's monotone network
/// g(t) = w1 t + mean_j w3_j (2 sigmoid(w2_j (2t - 1) + b2_j) - 1), whose weights are kept positive (w1 by
/// softplus, so it is strictly increasing; w2 and w3 by their absolute value, as VDM) (Kingma et al. 2021,
/// appendix H).  The endpoints are learned as gamma_0 and gamma_1 = gamma_0 + softplus(gap), so gamma(0) =
/// gamma_0 and gamma(1) = gamma_1 exactly and gamma_1 > gamma_0 always.  At initialisation the sigmoids'
/// centres are spread over [0, 1] with slopes 0.5 + |N(0, 5^2)| and w3 ~ |N(0, 0.01^2)|, drawn from `seed`
/// (so equal options give equal schedules): gamma starts nearly linear in t, VDM's fixed schedule.
///
/// Derivatives are closed-form (so they carry gradients to the weights without double backward).  With
/// `minimise_variance`, the gradient reaching the shape from the per-sample loss L_i is scaled by 2 L_i in
/// the backward pass (`set_variance_weights`), which turns the gradient of mean L into that of mean L^2:
/// the shape then minimises the variance of the loss estimate, at no extra cost.
class MonotoneGammaImpl : public torch::nn::Module {
 public:
  explicit MonotoneGammaImpl(MonotoneGammaOptions o = {}) : options_(o) {
    if (!(o.gamma_max() > o.gamma_min())) throw Error("gm: a VDM schedule needs gamma_max > gamma_min");
    if (o.features() < 1) throw Error("gm: a VDM schedule needs features >= 1");
    const int64_t n = o.features();
    gamma_0_ = register_parameter("gamma_0", torch::full({1}, o.gamma_min()), o.learn_endpoints());
    gap_ = register_parameter("gap", torch::full({1}, softplus_inverse(o.gamma_max() - o.gamma_min())), o.learn_endpoints());
    w1_ = register_parameter("w1", torch::full({1}, softplus_inverse(1.0)), o.learn_shape());
    auto gen = make_generator(o.seed());
    auto slope = 5.0 * torch::randn({n}, gen).abs() + 0.5;
    auto centre = torch::rand({n}, gen);
    auto offset = -slope * (2 * centre - 1);  // before w2 is registered, which makes slope require grad
    w2_ = register_parameter("w2", slope, o.learn_shape());
    b2_ = register_parameter("b2", offset, o.learn_shape());
    w3_ = register_parameter("w3", 0.01 * torch::randn({n}, gen), o.learn_shape());
  }

  const MonotoneGammaOptions& options() const { return options_; }

  /// gamma(t), elementwise over t of any shape.
  torch::Tensor gamma(const torch::Tensor& t) const {
    const auto [raw0, sp] = ends(t);
    auto s = hooked((raw(t) - raw0) / sp);
    return gamma_0_.to(t.scalar_type()) + gap(t) * s;
  }
  /// gamma'(t), elementwise, in closed form.
  torch::Tensor d_gamma(const torch::Tensor& t) const {
    auto ds = hooked(d_raw(t) / ends(t).second);
    return gap(t) * ds;
  }
  /// gamma(0) and gamma(1), as tensors of shape [1] on the parameters' device.
  torch::Tensor gamma_0() const { return gamma_0_; }
  torch::Tensor gamma_1() const { return gamma_0_ + torch::softplus(gap_); }

  /// Scale the shape's gradient from sample i by `w[i]` in the next backward passes (2 L_i: the gradient of
  /// the mean squared loss).  Ignored unless `minimise_variance`; undefined: no scaling.
  void set_variance_weights(torch::Tensor w) const { *slot_ = std::move(w); }

 private:
  static double softplus_inverse(double y) { return y > 20 ? y : std::log(std::expm1(y)); }
  static torch::Tensor zero(const torch::Tensor& t) { return torch::zeros({1}, t.options()); }
  torch::Tensor gap(const torch::Tensor& t) const { return torch::softplus(gap_).to(t.scalar_type()); }
  torch::Tensor pre(const torch::Tensor& t) const {  // w2 (2t - 1) + b2, [..., n]
    return w2_.abs().to(t.scalar_type()) * (2 * t.unsqueeze(-1) - 1) + b2_.to(t.scalar_type());
  }
  torch::Tensor raw(const torch::Tensor& t) const {
    auto h = (w3_.abs().to(t.scalar_type()) * (2 * torch::sigmoid(pre(t)) - 1)).mean(-1);
    return torch::softplus(w1_).to(t.scalar_type()) * t + h;
  }
  torch::Tensor d_raw(const torch::Tensor& t) const {
    auto sg = torch::sigmoid(pre(t));
    auto h = (w3_.abs().to(t.scalar_type()) * 4 * sg * (1 - sg) * w2_.abs().to(t.scalar_type())).mean(-1);
    return torch::softplus(w1_).to(t.scalar_type()) + h;
  }
  torch::Tensor span(const torch::Tensor& t) const { return raw(torch::ones({1}, t.options())) - raw(zero(t)); }
  /// raw(0) and span for t's dtype and device: computed each call while autograd records (training, where
  /// the weights change every step and gradients must flow), and cached for the current weights otherwise
  /// (sampling): a sampler step asks for gamma several times, and two of the three raw() evaluations behind
  /// each depend on the weights alone.  The cache holds a copy of the weights it was made from and is
  /// remade when they differ (FlatAdam updates them through its flat buffer, which no version counter of
  /// theirs sees, so only their values tell).
  std::pair<torch::Tensor, torch::Tensor> ends(const torch::Tensor& t) const {
    if (torch::GradMode::is_enabled()) return {raw(zero(t)), span(t)};
    auto& c = *cache_;
    const std::vector<torch::Tensor> now{w1_, w2_, b2_, w3_};
    bool same = c.raw0.defined() && c.raw0.scalar_type() == t.scalar_type() && c.raw0.device() == t.device();
    for (size_t i = 0; same && i < now.size(); ++i) same = torch::equal(c.weights[i], now[i]);
    if (!same) {
      c.weights.clear();
      for (const auto& w : now) c.weights.push_back(w.detach().clone());
      c.raw0 = raw(zero(t));
      c.span = span(t);
    }
    return {c.raw0, c.span};
  }
  struct EndsCache {
    std::vector<torch::Tensor> weights;
    torch::Tensor raw0, span;
  };
  std::shared_ptr<EndsCache> cache_ = std::make_shared<EndsCache>();
  torch::Tensor hooked(torch::Tensor s) const {
    if (options_.minimise_variance() && s.requires_grad()) {
      auto slot = slot_;
      s.register_hook([slot](const torch::Tensor& g) -> torch::Tensor {
        return slot->defined() && slot->sizes() == g.sizes() ? g * slot->to(g.scalar_type()) : g;
      });
    }
    return s;
  }

  MonotoneGammaOptions options_;
  torch::Tensor gamma_0_, gap_, w1_, w2_, b2_, w3_;
  std::shared_ptr<torch::Tensor> slot_ = std::make_shared<torch::Tensor>();
};
TORCH_MODULE(MonotoneGamma);

/// VDM's learned schedule as a gm Schedule: alpha^2 = sigmoid(-gamma), sigma^2 = sigmoid(gamma), with
/// gamma = -log SNR from a `MonotoneGamma` network (Kingma et al., NeurIPS 2021, section 4).
///
/// Variance-preserving (alpha^2 + sigma^2 = 1) and never noise-free: sigma(0)^2 = sigmoid(gamma_0) > 0,
/// which is what lets the ELBO end in a proper decoder p(x | z_0).  Copies share the network; train it by
/// registering it in the trained network (`attach`), so the optimiser, EMA, checkpoints and data-parallel
/// broadcast treat it as the network's own weights.  Every sampler runs on it.  Its coefficients carry
/// gradients to its weights, so sample under `torch::NoGradGuard` (the Trainer does) unless you mean to
/// differentiate through the sampler.
///
/// Example:
/// @code
/// gm::LearnedSchedule vdm;                     // gamma from -13.3 to 5, nearly linear at first
/// auto net = gm::make_unet(cfg, shape, 0);
/// vdm.attach(*net);                            // trained with the network
/// Trainer trainer(net, options, gm::Interpolant<gm::LearnedSchedule>(vdm));
/// @endcode
struct LearnedSchedule {
  static constexpr std::string_view name = "vdm";
  MonotoneGamma net;

  LearnedSchedule() : net(MonotoneGammaOptions{}) {}
  explicit LearnedSchedule(MonotoneGammaOptions o) : net(o) {}
  explicit LearnedSchedule(MonotoneGamma n) : net(std::move(n)) {}

  /// Register the schedule's network in `m` as the submodule "vdm_gamma".
  void attach(torch::nn::Module& m) const { m.register_module("vdm_gamma", net.ptr()); }

  torch::Tensor gamma(const torch::Tensor& t) const { return net->gamma(t); }
  torch::Tensor d_gamma(const torch::Tensor& t) const { return net->d_gamma(t); }
  torch::Tensor alpha(const torch::Tensor& t) const { return torch::sqrt(torch::sigmoid(-gamma(t))); }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sqrt(torch::sigmoid(gamma(t))); }
  /// alpha' = -1/2 alpha sigma^2 gamma'.
  torch::Tensor d_alpha(const torch::Tensor& t) const {
    auto g = gamma(t);
    return -0.5 * torch::sqrt(torch::sigmoid(-g)) * torch::sigmoid(g) * d_gamma(t);
  }
  /// sigma' = 1/2 sigma alpha^2 gamma'.
  torch::Tensor d_sigma(const torch::Tensor& t) const {
    auto g = gamma(t);
    return 0.5 * torch::sqrt(torch::sigmoid(g)) * torch::sigmoid(-g) * d_gamma(t);
  }
  torch::Tensor log_snr(const torch::Tensor& t) const { return -0.5 * gamma(t); }
};
static_assert(Schedule<LearnedSchedule>);

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
