#pragma once
/// @file
/// `gm::EDM2UNet`: the magnitude-preserving UNet of EDM2 (Karras et al. 2024), with its learned
/// log-variance head for `gm::LearnedLogVar`.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/nn/embedding.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

namespace gm {

/// Options of `EDM2UNet`; the defaults are EDM2's (training/networks_edm2.py) but for the width, which
/// EDM2's ImageNet-512 XS model sets to 128 and its XXL to 448.
struct EDM2UNetOptions {
  TORCH_ARG(int64_t, in_channels) = 1;     ///< image channels (the output has as many)
  TORCH_ARG(int64_t, image_size) = 28;     ///< height and width; halved exactly between levels
  TORCH_ARG(int64_t, channels) = 64;       ///< model_channels: channels of the first level
  TORCH_ARG(std::vector<int64_t>, channel_mult) = std::vector<int64_t>{1, 2, 3, 4};  ///< per level, x channels
  TORCH_ARG(int64_t, res_blocks) = 3;      ///< blocks per level (num_blocks)
  TORCH_ARG(std::vector<int64_t>, attention_resolutions) = std::vector<int64_t>{16, 8};  ///< sizes with attention
  TORCH_ARG(int64_t, head_channels) = 64;  ///< channels per attention head; a block narrower than this has none (EDM2's)
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(int64_t, num_classes) = 0;     ///< 0: unconditional; else labels 0..num_classes-1 plus the null class
  TORCH_ARG(double, label_balance) = 0.5;  ///< mp_sum of the noise (0) and class (1) embeddings
  TORCH_ARG(double, concat_balance) = 0.5; ///< mp_cat of skip connections (0) and the main path (1)
  TORCH_ARG(double, res_balance) = 0.3;    ///< mp_sum of main branch (0) and residual branch (1)
  TORCH_ARG(double, attn_balance) = 0.3;   ///< mp_sum of main branch (0) and self-attention (1)
  TORCH_ARG(double, clip_act) = 256;       ///< clip block outputs to [-clip_act, clip_act] (0: none)
  TORCH_ARG(int64_t, logvar_channels) = 128;  ///< Fourier features of the log-variance head
};

namespace nn {

/// Each slice along dim 0 (`dim` empty) or along `dim` scaled to unit root-mean-square: x / (eps +
/// ||x|| / sqrt(n)), EDM2's normalize (its Equation 66's weight normalisation and its pixel norm).
torch::Tensor mp_normalize(const torch::Tensor& x, std::vector<int64_t> dim = {}, double eps = 1e-4);
/// Magnitude-preserving SiLU, silu(x) / 0.596: unit second moment for standard normal x (EDM2 Eq. 81).
torch::Tensor mp_silu(const torch::Tensor& x);
/// Magnitude-preserving sum, lerp(a, b, t) / sqrt((1 - t)^2 + t^2) (EDM2 Eq. 88).
torch::Tensor mp_sum(const torch::Tensor& a, const torch::Tensor& b, double t = 0.5);
/// Magnitude-preserving concatenation along channels with a's and b's shares (1 - t) and t of the
/// magnitude, whatever their channel counts (EDM2 Eq. 103).
torch::Tensor mp_cat(const torch::Tensor& a, const torch::Tensor& b, double t = 0.5);

#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor mp_normalize(const torch::Tensor& x, std::vector<int64_t> dim, double eps) {
  if (dim.empty()) {
    for (int64_t d = 1; d < x.dim(); ++d) dim.push_back(d);
  }
  const auto wide = at::promote_types(x.scalar_type(), torch::kFloat32);  // float32 at least, as EDM2; float64 stays
  auto norm = torch::linalg_vector_norm(x.to(wide), 2, dim, /*keepdim=*/true);
  norm = eps + norm * std::sqrt(static_cast<double>(norm.numel()) / static_cast<double>(x.numel()));
  return x / norm.to(x.scalar_type());
}
GM_INLINE torch::Tensor mp_silu(const torch::Tensor& x) { return torch::silu(x) / 0.596; }
GM_INLINE torch::Tensor mp_sum(const torch::Tensor& a, const torch::Tensor& b, double t) {
  return a.lerp(b, t) / std::sqrt((1 - t) * (1 - t) + t * t);
}
GM_INLINE torch::Tensor mp_cat(const torch::Tensor& a, const torch::Tensor& b, double t) {
  const auto na = static_cast<double>(a.size(1)), nb = static_cast<double>(b.size(1));
  const double c = std::sqrt((na + nb) / ((1 - t) * (1 - t) + t * t));
  return torch::cat({a * (c / std::sqrt(na) * (1 - t)), b * (c / std::sqrt(nb) * t)}, 1);
}
#endif

/// Magnitude-preserving Fourier features of a scalar, sqrt(2) cos(2 pi (f x + phi)) with f ~ N(0, 1) and
/// phi ~ U[0, 1) drawn once (EDM2 Eq. 75): unit second moment.  Returns [B, channels].
class MPFourierImpl : public torch::nn::Module {
 public:
  explicit MPFourierImpl(int64_t channels, double bandwidth = 1.0);
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  torch::Tensor freqs_, phases_;
};

/// A magnitude-preserving convolution (kernel k > 0) or linear layer (k = 0) (EDM2 Eq. 47) with forced
/// weight normalisation (Eq. 66): each training forward first rescales the stored weights to unit norm per
/// output channel, so the optimiser's steps change their direction and the effective learning rate decays
/// on its own; the forward then normalises again and scales by gain / sqrt(fan_in).  No bias.
class MPConvImpl : public torch::nn::Module {
 public:
  MPConvImpl(int64_t in, int64_t out, int64_t kernel);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& gain = {});
  torch::Tensor weight;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE MPFourierImpl::MPFourierImpl(int64_t channels, double bandwidth) {
  freqs_ = register_buffer("freqs", 2 * std::numbers::pi * torch::randn({channels}) * bandwidth);
  phases_ = register_buffer("phases", 2 * std::numbers::pi * torch::rand({channels}));
}
GM_INLINE torch::Tensor MPFourierImpl::forward(const torch::Tensor& x) const {
  const auto wide = at::promote_types(x.scalar_type(), torch::kFloat32);
  auto y = torch::outer(x.to(wide).flatten(), freqs_.to(wide)) + phases_.to(wide);
  return (torch::cos(y) * std::sqrt(2.0)).to(x.scalar_type());
}

GM_INLINE MPConvImpl::MPConvImpl(int64_t in, int64_t out, int64_t kernel) {
  weight = register_parameter("weight", kernel > 0 ? torch::randn({out, in, kernel, kernel}) : torch::randn({out, in}));
}
GM_INLINE torch::Tensor MPConvImpl::forward(const torch::Tensor& x, const torch::Tensor& gain) {
  if (is_training()) {
    torch::NoGradGuard ng;
    weight.copy_(mp_normalize(weight));  // forced weight normalisation
  }
  auto w = mp_normalize(weight);
  w = w / std::sqrt(static_cast<double>(w[0].numel()));
  if (gain.defined()) w = w * gain;
  w = w.to(x.scalar_type());
  if (w.dim() == 2) return torch::matmul(x, w.t());
  const int64_t pad = w.size(-1) / 2;
  return torch::conv2d(x, w, std::optional<torch::Tensor>{}, std::vector<int64_t>{1, 1}, std::vector<int64_t>{pad, pad});
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(MPFourier);
TORCH_MODULE(MPConv);

/// EDM2's UNet block (its Figure 21): an encoder block pixel-normalises its input (after a 1x1 conv where
/// the channels change), a decoder block projects the skip at the end; the residual branch is mp_silu,
/// 3x3 conv, the embedding as a learned-gain scale (1 + gain * linear(emb)), mp_silu, dropout, 3x3 conv,
/// joined by mp_sum; then optional self-attention on pixel-normalised q, k, v, joined by mp_sum.
class EDM2BlockImpl : public torch::nn::Module {
 public:
  EDM2BlockImpl(int64_t in, int64_t out, int64_t emb, bool encoder, int resample, bool attention,
                const EDM2UNetOptions& o);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);

 private:
  bool encoder_;
  int resample_;  // -1 down, 0 keep, +1 up
  int64_t heads_ = 0;
  double dropout_, res_balance_, attn_balance_, clip_;
  torch::Tensor emb_gain_;
  MPConv conv0_{nullptr}, emb_{nullptr}, conv1_{nullptr}, skip_{nullptr}, qkv_{nullptr}, proj_{nullptr};
};

#if GM_HEADER_DEFINITIONS
GM_INLINE EDM2BlockImpl::EDM2BlockImpl(int64_t in, int64_t out, int64_t emb, bool encoder, int resample, bool attention,
                                       const EDM2UNetOptions& o)
    : encoder_(encoder), resample_(resample), dropout_(o.dropout()), res_balance_(o.res_balance()),
      attn_balance_(o.attn_balance()), clip_(o.clip_act()) {
  // EDM2's Block: num_heads = out_channels // channels_per_head if attention else 0, so a block narrower than
  // head_channels has no attention (NVlabs/edm2, training/networks_edm2.py).
  if (attention) heads_ = out / std::max<int64_t>(1, o.head_channels());
  emb_gain_ = register_parameter("emb_gain", torch::zeros({}));
  conv0_ = register_module("conv0", MPConv(encoder ? out : in, out, 3));
  emb_ = register_module("emb", MPConv(emb, out, 0));
  conv1_ = register_module("conv1", MPConv(out, out, 3));
  if (in != out) skip_ = register_module("skip", MPConv(in, out, 1));
  if (heads_ > 0) {
    if (out % heads_) throw Error("gm: EDM2UNet attention: channels must divide into heads");
    qkv_ = register_module("qkv", MPConv(out, 3 * out, 1));
    proj_ = register_module("proj", MPConv(out, out, 1));
  }
}

GM_INLINE torch::Tensor EDM2BlockImpl::forward(const torch::Tensor& x_in, const torch::Tensor& emb) {
  auto x = x_in;
  if (resample_ < 0) {  // 2x2 average, EDM2's resample(mode = 'down') with its [1, 1] filter
    x = torch::avg_pool2d(x, 2);
  } else if (resample_ > 0) {  // nearest, EDM2's 'up'
    x = x.repeat_interleave(2, 2).repeat_interleave(2, 3);
  }
  if (encoder_) {
    if (skip_) x = skip_->forward(x);
    x = mp_normalize(x, {1});  // pixel norm
  }
  auto y = conv0_->forward(mp_silu(x));
  auto scale = emb_->forward(emb, emb_gain_) + 1;
  y = mp_silu(y * scale.unsqueeze(2).unsqueeze(3).to(y.scalar_type()));
  y = nn::dropout(y, dropout_, is_training());
  y = conv1_->forward(y);
  if (!encoder_ && skip_) x = skip_->forward(x);
  x = mp_sum(x, y, res_balance_);
  if (heads_ > 0) {
    const int64_t b = x.size(0), ch = x.size(1), hw = x.size(2) * x.size(3);
    auto qkv = mp_normalize(qkv_->forward(x).reshape({b, heads_, ch / heads_, 3, hw}), {2});
    auto q = qkv.select(3, 0).transpose(-2, -1), k = qkv.select(3, 1).transpose(-2, -1),
         v = qkv.select(3, 2).transpose(-2, -1);  // [B, heads, HW, d]
    auto a = attention(q, k, v).transpose(-2, -1).reshape(x.sizes());
    x = mp_sum(x, proj_->forward(a), attn_balance_);
  }
  if (clip_ > 0) x = x.clamp(-clip_, clip_);
  return x;
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(EDM2Block);

}  // namespace nn

/// EDM2's magnitude-preserving UNet (Karras, Aittala, Lehtinen, Hellsten, Aila & Laine 2024, "Analyzing
/// and Improving the Training Dynamics of Diffusion Models", config G; NVlabs/edm2
/// training/networks_edm2.py).  Every layer keeps activations, weights and their updates at unit magnitude
/// in expectation: MPConv with forced weight normalisation and no biases, mp_silu, mp_sum and mp_cat in
/// place of plain SiLU, additions and concatenations, pixel norm instead of GroupNorm, Fourier features
/// of the time (MPFourier), learned zero-initialised gains on the embedding and the output.  An encoder
/// of `res_blocks` blocks per level (the first level opens with a 3x3 conv of the image and a constant
/// channel; later levels with a downsampling block), a decoder of one upsampling (or two middle) blocks
/// and `res_blocks + 1` blocks per level, each taking an encoder output through mp_cat.
///
/// Called as gm's UNet is: `net(x, t)` or `net(x, t, y)` with int64 labels (the null class `num_classes`
/// is the zero one-hot vector, as EDM2 calls its conditional network without labels).  t is the network
/// time the parameterisation gives (EDMPrecond: ln(sigma) / 4, EDM2's c_noise).  `logvar(t)` is EDM2's
/// uncertainty head, a linear map of Fourier features of t, for the learned weighting `gm::LearnedLogVar`.
class EDM2UNetImpl : public torch::nn::Module {
 public:
  static constexpr bool prefers_all_cores = true;

  explicit EDM2UNetImpl(EDM2UNetOptions o = {});

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return forward(x, t, {}); }
  /// With class labels y: int64 [B] in 0..num_classes (num_classes, or undefined: the null class).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y);
  /// The learned log-variance u(t) per sample ([B]): EDM2's logvar_linear(logvar_fourier(c_noise)).
  torch::Tensor logvar(const torch::Tensor& t);

  int64_t null_class() const { return o_.num_classes() > 0 ? o_.num_classes() : -1; }
  const EDM2UNetOptions& options() const { return o_; }
  /// "EDM2UNet 1.23M params (32 ch, 1-2-2, 1 blocks, attention at 7, 10 classes)", for logs.
  std::string describe() const;

 private:
  EDM2UNetOptions o_;
  nn::MPFourier fourier_{nullptr}, logvar_fourier_{nullptr};
  nn::MPConv emb_noise_{nullptr}, emb_label_{nullptr}, in_{nullptr}, out_{nullptr}, logvar_linear_{nullptr};
  torch::Tensor out_gain_;
  torch::nn::ModuleList enc_, dec_;
  std::vector<bool> dec_takes_skip_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE EDM2UNetImpl::EDM2UNetImpl(EDM2UNetOptions o) : o_(std::move(o)) {
  const auto levels = static_cast<int64_t>(o_.channel_mult().size());
  if (o_.in_channels() < 1 || o_.channels() < 1 || o_.res_blocks() < 1 || levels == 0 || o_.num_classes() < 0) {
    throw Error("gm: EDM2UNet needs in_channels, channels, res_blocks >= 1 and a channel_mult");
  }
  if (o_.image_size() < 1 || o_.image_size() % (int64_t{1} << (levels - 1))) {
    throw Error("gm: EDM2UNet halves the image exactly at each of its " + std::to_string(levels) + " levels: " +
                std::to_string(o_.image_size()) + " is not a multiple of " + std::to_string(int64_t{1} << (levels - 1)) +
                " (give fewer levels in channel_mult)");
  }
  const auto& mult = o_.channel_mult();
  const int64_t c0 = o_.channels() * mult.front();
  int64_t cemb = 0;
  for (auto m : mult) cemb = std::max(cemb, o_.channels() * m);
  fourier_ = register_module("fourier", nn::MPFourier(c0));
  emb_noise_ = register_module("emb_noise", nn::MPConv(c0, cemb, 0));
  if (o_.num_classes() > 0) emb_label_ = register_module("emb_label", nn::MPConv(o_.num_classes(), cemb, 0));
  out_gain_ = register_parameter("out_gain", torch::zeros({}));
  auto attn_at = [&](int64_t level) {
    const int64_t res = o_.image_size() >> level;
    const auto& a = o_.attention_resolutions();
    return std::find(a.begin(), a.end(), res) != a.end();
  };
  std::vector<int64_t> skips;
  int64_t cout = o_.in_channels() + 1;
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t ch = o_.channels() * mult[static_cast<size_t>(l)];
    if (l == 0) {
      in_ = register_module("in", nn::MPConv(cout, ch, 3));
      cout = ch;
    } else {
      enc_->push_back(nn::EDM2Block(cout, cout, cemb, true, -1, false, o_));
    }
    skips.push_back(cout);
    for (int64_t i = 0; i < o_.res_blocks(); ++i) {
      enc_->push_back(nn::EDM2Block(cout, ch, cemb, true, 0, attn_at(l), o_));
      cout = ch;
      skips.push_back(cout);
    }
  }
  for (int64_t l = levels - 1; l >= 0; --l) {
    const int64_t ch = o_.channels() * mult[static_cast<size_t>(l)];
    if (l == levels - 1) {
      dec_->push_back(nn::EDM2Block(cout, cout, cemb, false, 0, true, o_));
      dec_->push_back(nn::EDM2Block(cout, cout, cemb, false, 0, false, o_));
      dec_takes_skip_.insert(dec_takes_skip_.end(), {false, false});
    } else {
      dec_->push_back(nn::EDM2Block(cout, cout, cemb, false, +1, false, o_));
      dec_takes_skip_.push_back(false);
    }
    for (int64_t i = 0; i <= o_.res_blocks(); ++i) {
      const int64_t cin = cout + skips.back();
      skips.pop_back();
      dec_->push_back(nn::EDM2Block(cin, ch, cemb, false, 0, attn_at(l), o_));
      dec_takes_skip_.push_back(true);
      cout = ch;
    }
  }
  register_module("enc", enc_);
  register_module("dec", dec_);
  out_ = register_module("out", nn::MPConv(cout, o_.in_channels(), 3));
  logvar_fourier_ = register_module("logvar_fourier", nn::MPFourier(o_.logvar_channels()));
  logvar_linear_ = register_module("logvar_linear", nn::MPConv(o_.logvar_channels(), 1, 0));
}

GM_INLINE torch::Tensor EDM2UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y) {
  if (x.dim() != 4 || x.size(1) != o_.in_channels() || x.size(2) != o_.image_size() || x.size(3) != o_.image_size()) {
    throw Error("gm: EDM2UNet expects [B, " + std::to_string(o_.in_channels()) + ", " + std::to_string(o_.image_size()) +
                ", " + std::to_string(o_.image_size()) + "] input");
  }
  const int64_t b = x.size(0);
  const auto dt = x.scalar_type();
  auto tt = t.dim() == 0 ? t.expand({b}) : t;
  auto emb = emb_noise_->forward(fourier_->forward(tt.to(dt)));
  if (emb_label_) {
    const int64_t k = o_.num_classes();
    auto labels = y.defined() ? y.to(torch::kInt64) : torch::full({b}, k, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
    nn::check_labels(labels, k);
    // One-hot times sqrt(classes), as EDM2; the null class is the zero vector.
    auto onehot = torch::one_hot(labels, k + 1).slice(1, 0, k).to(dt) * std::sqrt(static_cast<double>(k));
    emb = nn::mp_sum(emb, emb_label_->forward(onehot), o_.label_balance());
  }
  emb = nn::mp_silu(emb);
  auto h = in_->forward(torch::cat({x, torch::ones_like(x.slice(1, 0, 1))}, 1));
  std::vector<torch::Tensor> skips{h};
  for (const auto& m : *enc_) {
    h = m->as<nn::EDM2Block>()->forward(h, emb);
    skips.push_back(h);
  }
  for (size_t i = 0; i < dec_->size(); ++i) {
    if (dec_takes_skip_[i]) {
      h = nn::mp_cat(h, skips.back(), o_.concat_balance());
      skips.pop_back();
    }
    h = dec_[i]->as<nn::EDM2Block>()->forward(h, emb);
  }
  return out_->forward(h, out_gain_);
}

GM_INLINE torch::Tensor EDM2UNetImpl::logvar(const torch::Tensor& t) {
  return logvar_linear_->forward(logvar_fourier_->forward(t.flatten())).flatten();
}

GM_INLINE std::string EDM2UNetImpl::describe() const {
  std::string mult, attn;
  for (auto m : o_.channel_mult()) mult += (mult.empty() ? "" : "-") + std::to_string(m);
  for (auto a : o_.attention_resolutions()) attn += (attn.empty() ? "" : ",") + std::to_string(a);
  return "EDM2UNet " + nn::count_text(nn::parameter_count(*this)) + " params (" + std::to_string(o_.channels()) +
         " ch, " + mult + ", " + std::to_string(o_.res_blocks()) + " blocks, attention at " +
         (attn.empty() ? "none" : attn) +
         (o_.num_classes() > 0 ? ", " + std::to_string(o_.num_classes()) + " classes" : "") + ")";
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(EDM2UNet);

}  // namespace gm
