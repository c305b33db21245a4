#pragma once
/// @file
/// A time-conditioned MLP for feature-vector data (2-D toys, embeddings).

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

namespace gm {

/// Options of `MLP`.
struct MLPOptions {
  TORCH_ARG(int64_t, dim) = 2;                      ///< data dimension (input and output)
  TORCH_ARG(int64_t, hidden) = 256;                 ///< width of the hidden layers
  TORCH_ARG(int64_t, layers) = 3;                   ///< number of hidden layers (Linear + activation)
  TORCH_ARG(std::string, activation) = "silu";      ///< silu, relu, gelu, tanh or selu (torchcfm's MLP's)
  /// Each hidden layer's width, first to last (e.g. {64, 128, 64}); empty: `layers` layers of `hidden`.
  TORCH_ARG(std::vector<int64_t>, widths) = {};
  TORCH_ARG(std::string, time_embedding) = "sinusoidal";  ///< sinusoidal, fourier, or raw (t itself)
  TORCH_ARG(int64_t, time_features) = 32;           ///< embedding size (sinusoidal, fourier)
  TORCH_ARG(double, fourier_scale) = 16.0;          ///< std of the random Fourier frequencies
  /// 1, or 2 for a flow map u(x, t, r) (gm::MeanFlow, gm::Shortcut, gm::Consistency): times come as [B, 2]
  /// rows (t, r) and the network sees embed(t) and embed(t - r) (MeanFlow's (t, t - r)); [B] times read r = t.
  TORCH_ARG(int64_t, times) = 1;
};

/// A multilayer perceptron f(x, t) for feature vectors: [x, embed(t)] -> (Linear, act) x layers -> Linear.
///
/// Time enters through a sinusoidal embedding (Vaswani et al. 2017, as in DDPM), random Fourier features
/// (Tancik et al. 2020; Song et al. 2021's Gaussian Fourier projection), or raw t (as Meta's flow_matching
/// 2-D example does).  With `hidden(512).layers(4).time_embedding("raw")` it is that example's network.
/// A normal `torch::nn::Module`: `MLP net(gm::MLPOptions().hidden(512))`.
class MLPImpl : public torch::nn::Module {
 public:
  explicit MLPImpl(MLPOptions options = {});

  /// "MLP <hidden>x<layers>", for logs.
  std::string describe() const;

  /// x: [B, dim]; t: [B] or 0-d, or [B, 2] rows (t, r) when built with times(2).  Returns [B, dim] in x's dtype.  Under gm::Autocast the products run in
  /// bf16 and each result is cast back, so activations stay in x's dtype.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t);

  const MLPOptions& options() const { return options_; }

 private:
  torch::Tensor embed(const torch::Tensor& t, const torch::Tensor& x) const;
  torch::Tensor act(const torch::Tensor& h) const;

  MLPOptions options_;
  torch::Tensor freqs_;
  torch::nn::ModuleList hidden_;
  torch::nn::Linear out_{nullptr};
};

#if GM_HEADER_DEFINITIONS
GM_INLINE MLPImpl::MLPImpl(MLPOptions options) : options_(std::move(options)) {
  const auto& o = options_;
  TORCH_CHECK(o.layers() >= 1 && o.hidden() >= 1 && o.dim() >= 1, "gm: MLP needs dim, hidden, layers >= 1");
  TORCH_CHECK(o.times() == 1 || o.times() == 2, "gm: MLP times must be 1 or 2");
  TORCH_CHECK(o.activation() == "silu" || o.activation() == "relu" || o.activation() == "gelu" ||
                  o.activation() == "tanh" || o.activation() == "selu",
              "gm: MLP activation must be silu, relu, gelu, tanh or selu, not '", o.activation(), "'");
  for (const auto w : o.widths()) {
    if (w < 1) throw Error("gm: MLP widths must be >= 1, not " + std::to_string(w));
  }
  TORCH_CHECK(o.time_embedding() == "sinusoidal" || o.time_embedding() == "fourier" || o.time_embedding() == "raw",
              "gm: MLP time_embedding must be sinusoidal, fourier or raw, not '", o.time_embedding(), "'");
  int64_t t_dim = 1;
  if (o.time_embedding() != "raw") {
    TORCH_CHECK(o.time_features() >= 2 && o.time_features() % 2 == 0, "gm: MLP time_features must be even");
    t_dim = o.time_features();
    const int64_t half = t_dim / 2;
    torch::Tensor freqs;
    if (o.time_embedding() == "sinusoidal") {
      // Frequencies 1 .. 1000 geometrically, applied to 1000 t (t in [0, 1] plays DDPM's step index).
      freqs = 1000.0 * torch::exp(-std::log(1000.0) * torch::arange(half, torch::kFloat32) / half);
    } else {
      freqs = 2 * std::numbers::pi * o.fourier_scale() * torch::randn({half});
    }
    freqs_ = register_buffer("freqs", freqs);
  }
  int64_t in = o.dim() + o.times() * t_dim;
  const auto widths = o.widths().empty() ? std::vector<int64_t>(static_cast<size_t>(o.layers()), o.hidden()) : o.widths();
  for (const auto w : widths) {
    hidden_->push_back(torch::nn::Linear(in, w));
    in = w;
  }
  register_module("hidden", hidden_);
  out_ = register_module("out", torch::nn::Linear(in, o.dim()));
}

GM_INLINE auto MLPImpl::describe() const -> std::string {
  if (options_.widths().empty()) return "MLP " + std::to_string(options_.hidden()) + "x" + std::to_string(options_.layers());
  std::string w;
  for (const auto v : options_.widths()) w += (w.empty() ? "" : "-") + std::to_string(v);
  return "MLP " + w;
}

GM_INLINE auto MLPImpl::forward(const torch::Tensor& x, const torch::Tensor& t) -> torch::Tensor {
  const auto dtype = x.scalar_type();
  torch::Tensor h;
  if (t.dim() == 2) {
    if (options_.times() != 2 || t.size(1) != 2) {
      throw Error("gm: this MLP takes one time, not [B, " + std::to_string(t.size(1)) +
                  "] (build it with times(2) for a flow map)");
    }
    h = torch::cat({x, embed(t.select(1, 0), x), embed(t.select(1, 0) - t.select(1, 1), x)}, 1);
  } else if (options_.times() == 2) {
    h = torch::cat({x, embed(t, x), embed(torch::zeros_like(t.dim() == 0 ? t.expand({x.size(0)}) : t), x)}, 1);
  } else {
    h = torch::cat({x, embed(t, x)}, 1);
  }
  for (const auto& layer : *hidden_) h = act(layer->as<torch::nn::Linear>()->forward(h).to(dtype));
  return out_->forward(h).to(dtype);
}

GM_INLINE auto MLPImpl::embed(const torch::Tensor& t, const torch::Tensor& x) const -> torch::Tensor {
  auto tt = (t.dim() == 0 ? t.expand({x.size(0)}) : t).to(x.dtype()).unsqueeze(1);  // [B, 1]
  if (options_.time_embedding() == "raw") return tt;
  auto arg = tt * freqs_.to(x.dtype()).unsqueeze(0);
  return torch::cat({torch::sin(arg), torch::cos(arg)}, 1);
}

GM_INLINE auto MLPImpl::act(const torch::Tensor& h) const -> torch::Tensor {
  const auto& a = options_.activation();
  if (a == "silu") return torch::silu(h);
  if (a == "relu") return torch::relu(h);
  if (a == "gelu") return torch::gelu(h);
  if (a == "selu") return torch::selu(h);
  return torch::tanh(h);
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(MLP);

}  // namespace gm
