#pragma once
/// @file
/// Variational Diffusion Models (Kingma, Salimans, Poole & Ho, "Variational Diffusion Models", NeurIPS 2021):
/// a learned monotone noise schedule gamma(t) = -log SNR(t) as a gm Schedule.  VDM's ELBO, a loss weighting,
/// lives a layer up, in gm/prediction/vdm_elbo.hpp.

#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
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
    auto slope = 5.0 * torch::randn({n}, gen, on_generator(gen)).abs() + 0.5;
    auto centre = torch::rand({n}, gen, on_generator(gen));
    auto offset = -slope * (2 * centre - 1);  // before w2 is registered, which makes slope require grad
    w2_ = register_parameter("w2", slope, o.learn_shape());
    b2_ = register_parameter("b2", offset, o.learn_shape());
    w3_ = register_parameter("w3", 0.01 * torch::randn({n}, gen, on_generator(gen)), o.learn_shape());
  }

  const MonotoneGammaOptions& options() const { return options_; }

  /// gamma(t), elementwise over t of any shape.
  torch::Tensor gamma(const torch::Tensor& t) const {
    return per_distinct(t, [&](const torch::Tensor& u) {
      const auto [raw0, sp] = ends(u);
      auto s = hooked((raw(u) - raw0) / sp);
      return gamma_0_.to(u.scalar_type()) + gap(u) * s;
    });
  }
  /// gamma'(t), elementwise, in closed form.
  torch::Tensor d_gamma(const torch::Tensor& t) const {
    return per_distinct(t, [&](const torch::Tensor& u) { return gap(u) * hooked(d_raw(u) / ends(u).second); });
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
  /// `f(t)`, where autograd records (training: every time its own, so gradients reach the weights per
  /// sample); else (sampling) `f` of t's distinct values only, spread back to t's shape.  A sampler hands
  /// the model one time for the whole batch, as a [B] tensor: without this every coefficient cost B rows
  /// of the monotone network's [B, features] products instead of one (a B-fold slower oracle or EDM-style
  /// network time).
  template <class F>
  static torch::Tensor per_distinct(const torch::Tensor& t, F&& f) {
    if (torch::GradMode::is_enabled() || t.numel() <= 1) return f(t);
    const auto [values, inverse] = at::_unique(t.reshape({-1}), /*sorted=*/false, /*return_inverse=*/true);
    if (values.numel() == t.numel()) return f(t);
    return f(values).index_select(0, inverse).view(t.sizes());
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

}  // namespace gm
