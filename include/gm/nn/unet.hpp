#pragma once
/// @file
/// `gm::UNet`: the image network of DDPM, ADM and score_sde's DDPM++.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/nn/embedding.hpp>

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace gm {

/// Options of `UNet`.
struct UNetOptions {
  TORCH_ARG(int64_t, in_channels) = 1;     ///< image channels (the output has as many)
  TORCH_ARG(int64_t, image_size) = 28;     ///< input height and width (attention resolutions refer to it)
  TORCH_ARG(int64_t, channels) = 64;       ///< channels of the first level
  TORCH_ARG(std::vector<int64_t>, channel_mult) = std::vector<int64_t>{1, 2, 2};  ///< per level, x channels
  TORCH_ARG(int64_t, res_blocks) = 2;      ///< residual blocks per level
  TORCH_ARG(std::vector<int64_t>, attention_resolutions) = std::vector<int64_t>{7};  ///< sizes with self-attention
  TORCH_ARG(int64_t, head_channels) = 32;  ///< channels per attention head
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(int64_t, groups) = 32;         ///< GroupNorm groups (fewer when the channels do not divide)
  TORCH_ARG(std::string, time_embedding) = "sinusoidal";  ///< sinusoidal or fourier
  TORCH_ARG(int64_t, num_classes) = 0;     ///< 0: unconditional; else labels 0..num_classes-1 plus the null class
  TORCH_ARG(int64_t, cond_channels) = 0;   ///< extra input channels of an image condition (concatenated to x)
  /// Augmentation labels per sample (EDM's augment_dim: 9 for gm::data::AugmentPipe; 0: none), mapped
  /// without bias onto the time features, as EDM's map_augment.
  TORCH_ARG(int64_t, augment_dim) = 0;
  /// 1, or 2 for a flow map u(x, t, r) (gm::MeanFlow, gm::Shortcut, gm::Consistency): times come as [B, 2]
  /// rows (t, r), and features of the interval t - r, through their own linear map, join t's (MeanFlow's
  /// (t, t - r) conditioning).  [B] times then read r = t.
  TORCH_ARG(int64_t, times) = 1;
};

namespace nn {

/// GroupNorm with at most `groups` groups, as many as divide `channels`.
torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels) {
  int64_t g = std::min(groups, channels);
  while (channels % g) --g;
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(g, channels));
}
#endif

/// Zero a module's weights and biases (output layers start at zero, as ADM and DiT do).
void zero_(torch::nn::Module& m);
#if GM_HEADER_DEFINITIONS
GM_INLINE void zero_(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  for (auto& p : m.parameters()) p.zero_();
}
#endif

/// ADM's residual block: GroupNorm, SiLU, 3x3 conv; the embedding as scale and shift of the second
/// GroupNorm (use_scale_shift_norm); SiLU, dropout, a zero-initialised 3x3 conv; a 1x1 conv on the skip
/// when the channels change.  Convolutions' results are cast back to the input's dtype, so under
/// gm::Autocast they run in bf16 while GroupNorm and SiLU stay in fp32.
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in, int64_t out, int64_t emb, double dropout, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb);

 private:
  torch::nn::GroupNorm norm1_;
  torch::nn::Conv2d conv1_;
  torch::nn::Linear emb_;
  torch::nn::GroupNorm norm2_;
  double dropout_;
  torch::nn::Conv2d conv2_;
  torch::nn::Conv2d skip_{nullptr};
};

#if GM_HEADER_DEFINITIONS
GM_INLINE ResBlockImpl::ResBlockImpl(int64_t in, int64_t out, int64_t emb, double dropout, int64_t groups)
    : norm1_(register_module("norm1", group_norm(groups, in))), conv1_(register_module("conv1",
             torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1)))), emb_(register_module("emb",
                               torch::nn::Linear(emb, 2 * out))), norm2_(register_module("norm2", group_norm(groups,
                                                 out))), dropout_(dropout),
                                                     conv2_(register_module("conv2",
                                                            torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out,
                                                                3).padding(1)))) {
  zero_(*conv2_);
  if (in != out) skip_ = register_module("skip", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
}

GM_INLINE auto ResBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& emb) -> torch::Tensor {
  const auto dt = x.scalar_type();
  // Between the two convolutions h stays in the convolutions' dtype (bf16 under gm::Autocast; GroupNorm
  // keeps its statistics in fp32): the residual stream x stays in dt.
  auto h = conv1_->forward(torch::silu(norm1_->forward(x)));
  auto ss = emb_->forward(torch::silu(emb)).to(h.scalar_type()).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
  h = torch::addcmul(ss[1], norm2_->forward(h), 1 + ss[0]);
  h = conv2_->forward(nn::dropout(torch::silu(h), dropout_, is_training())).to(dt);
  return (skip_ ? skip_->forward(x).to(dt) : x) + h;
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(ResBlock);

/// Multi-head self-attention over the pixels of a feature map, with a residual connection and a
/// zero-initialised output projection.
class AttentionBlockImpl : public torch::nn::Module {
 public:
  AttentionBlockImpl(int64_t channels, int64_t head_channels, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t heads_;
  torch::nn::GroupNorm norm_;
  torch::nn::Conv2d qkv_, proj_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE AttentionBlockImpl::AttentionBlockImpl(int64_t channels, int64_t head_channels, int64_t groups)
    : heads_(std::max<int64_t>(1, channels / std::max<int64_t>(1, head_channels))), norm_(register_module("norm",
             group_norm(groups, channels))), qkv_(register_module("qkv",
                        torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 3 * channels, 1)))),
                                          proj_(register_module("proj",
                                                torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 1)))) {
  if (channels % heads_) throw Error("gm: UNet attention: channels must divide into heads");
  zero_(*proj_);
}

GM_INLINE auto AttentionBlockImpl::forward(const torch::Tensor& x) -> torch::Tensor {
  const auto dt = x.scalar_type();
  const int64_t b = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
  // q, k and v stay in the product's dtype (bf16 under gm::Autocast) into the attention kernel.
  auto qkv = qkv_->forward(norm_->forward(x)).reshape({b, 3, heads_, c / heads_, hw});
  auto q = qkv.select(1, 0).transpose(-2, -1), k = qkv.select(1, 1).transpose(-2, -1),
       v = qkv.select(1, 2).transpose(-2, -1);  // [B, heads, HW, d]
  auto h = attention(q, k, v).transpose(-2, -1).reshape({b, c, x.size(2), x.size(3)});
  return x + proj_->forward(h).to(dt);
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(AttentionBlock);

}  // namespace nn

/// A UNet for images in the ADM / DDPM++ family (Ho et al. 2020, "Denoising Diffusion Probabilistic
/// Models"; Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", ADM; Song et al. 2021's DDPM++).
///
/// Levels of `res_blocks` residual blocks at `channels * channel_mult[i]` channels, halving the resolution
/// between levels (stride-2 convolutions) and doubling it back (nearest upsampling and a convolution), with
/// skip connections between them; self-attention at `attention_resolutions`; a middle of ResBlock,
/// attention, ResBlock.  GroupNorm, SiLU and dropout throughout.  Time enters through sinusoidal or Fourier
/// features and an MLP, as scale and shift of each block's second GroupNorm; a class label (with the null
/// class `num_classes` for guidance) is embedded and added to it.  `cond_channels` extra input channels take
/// an image condition (a coarse field, a masked image) concatenated to x.  Output layers start at zero.
///
/// A normal module: `gm::UNet net(gm::UNetOptions().channels(32).num_classes(10))`, called as
/// `net(x, t)`, `net(x, t, y)` or `net(x, t, y, cond)`.
class UNetImpl : public torch::nn::Module {
 public:
  /// Convolutions and normalisations run on the intra-op pool: use every core (gm::configure_threads).
  static constexpr bool prefers_all_cores = true;

  explicit UNetImpl(UNetOptions o = {});

  /// x: [B, C, H, W]; t: [B] or 0-d in [0, 1].  A conditional UNet sees the null class.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return forward(x, t, {}, {}); }
  /// With class labels y: int64 [B] in 0..num_classes (num_classes: the null class); undefined y is the null class.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y);
  /// With an image condition `cond` [B, cond_channels, H, W] concatenated to x.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                        const torch::Tensor& cond);
  /// With augmentation labels `aug` [B, augment_dim] (undefined: none, as at sampling).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                        const torch::Tensor& cond, const torch::Tensor& aug);

  /// The null class of guidance (num_classes), or -1 for an unconditional UNet.
  int64_t null_class() const { return o_.num_classes() > 0 ? o_.num_classes() : -1; }
  int64_t augment_dim() const { return o_.augment_dim(); }
  const UNetOptions& options() const { return o_; }
  /// "UNet 1.23M params (32 ch, 1-2-2, 2 blocks, attention at 7, 10 classes)", for logs.
  std::string describe() const;

 private:
  static std::string shape(const torch::Tensor& x);

  UNetOptions o_;
  nn::TimeFeatures time_{nullptr};
  torch::nn::Linear t1_{nullptr}, t2_{nullptr};
  nn::LabelEmbedding label_{nullptr};
  torch::nn::Linear augment_{nullptr};
  nn::TimeFeatures interval_{nullptr};
  torch::nn::Linear interval_map_{nullptr};
  torch::nn::Conv2d in_{nullptr};
  torch::nn::ModuleList down_, down_attn_, downsample_, up_, up_attn_, upsample_;
  std::vector<int> down_attn_at_, up_attn_at_;  // index into *_attn_ per block, -1: none
  nn::ResBlock mid1_{nullptr}, mid2_{nullptr};
  nn::AttentionBlock mid_attn_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  torch::nn::Conv2d out_{nullptr};
};

#if GM_HEADER_DEFINITIONS
GM_INLINE UNetImpl::UNetImpl(UNetOptions o) : o_(std::move(o)) {
  if (o_.in_channels() < 1 || o_.channels() < 1 || o_.res_blocks() < 1 || o_.channel_mult().empty() ||
      o_.image_size() < 1 || o_.num_classes() < 0 || o_.cond_channels() < 0 || o_.augment_dim() < 0 ||
      (o_.times() != 1 && o_.times() != 2)) {
    throw Error("gm: UNet needs in_channels, channels, res_blocks, image_size >= 1, a channel_mult and times 1 or 2");
  }
  const int64_t ch = o_.channels(), emb = 4 * ch, g = o_.groups();
  time_ = register_module("time", nn::TimeFeatures(ch, o_.time_embedding()));
  t1_ = register_module("t1", torch::nn::Linear(ch, emb));
  t2_ = register_module("t2", torch::nn::Linear(emb, emb));
  if (o_.times() == 2) {
    interval_ = register_module("interval", nn::TimeFeatures(ch, o_.time_embedding()));
    interval_map_ = register_module("interval_map", torch::nn::Linear(torch::nn::LinearOptions(ch, ch).bias(false)));
  }
  if (o_.num_classes() > 0) label_ = register_module("label", nn::LabelEmbedding(o_.num_classes(), emb));
  if (o_.augment_dim() > 0) {
    augment_ = register_module("augment", torch::nn::Linear(torch::nn::LinearOptions(o_.augment_dim(), ch).bias(false)));
  }
  in_ = register_module("in", torch::nn::Conv2d(torch::nn::Conv2dOptions(o_.in_channels() + o_.cond_channels(), ch,
                        3).padding(1)));
  // Attention is keyed by level (the downsampling factor, as ADM's attention_ds): a level's resolution is
  // the encoder's there (28, 14, 7, 4 for 28 x 28), and the decoder block of the same level gets the same.
  const auto levels = static_cast<int64_t>(o_.channel_mult().size());
  std::vector<int64_t> level_res{o_.image_size()};
  for (int64_t l = 1; l < levels; ++l) level_res.push_back((level_res.back() + 1) / 2);
  for (const auto a : o_.attention_resolutions()) {
    if (std::find(level_res.begin(), level_res.end(), a) == level_res.end()) {
      std::string have;
      for (const auto r : level_res) have += (have.empty() ? "" : ", ") + std::to_string(r);
      throw Error("gm: UNet attention at " + std::to_string(a) + ": no level of this UNet has that resolution (its " +
                  "levels on " + std::to_string(o_.image_size()) + " x " + std::to_string(o_.image_size()) +
                  " inputs: " + have + ")");
    }
  }
  auto attn_at = [&](int64_t level) {
    const auto& a = o_.attention_resolutions();
    return std::find(a.begin(), a.end(), level_res[static_cast<size_t>(level)]) != a.end();
  };
  std::vector<int64_t> skips{ch};
  int64_t cur = ch;
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t out = ch * o_.channel_mult()[static_cast<size_t>(l)];
    for (int64_t i = 0; i < o_.res_blocks(); ++i) {
      down_->push_back(nn::ResBlock(cur, out, emb, o_.dropout(), g));
      down_attn_at_.push_back(attn_at(l) ? static_cast<int>(down_attn_->size()) : -1);
      if (attn_at(l)) down_attn_->push_back(nn::AttentionBlock(out, o_.head_channels(), g));
      cur = out;
      skips.push_back(cur);
    }
    if (l + 1 < levels) {
      downsample_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(cur, cur, 3).stride(2).padding(1)));
      skips.push_back(cur);
    }
  }
  mid1_ = register_module("mid1", nn::ResBlock(cur, cur, emb, o_.dropout(), g));
  mid_attn_ = register_module("mid_attn", nn::AttentionBlock(cur, o_.head_channels(), g));
  mid2_ = register_module("mid2", nn::ResBlock(cur, cur, emb, o_.dropout(), g));
  for (int64_t l = levels - 1; l >= 0; --l) {
    const int64_t out = ch * o_.channel_mult()[static_cast<size_t>(l)];
    for (int64_t i = 0; i <= o_.res_blocks(); ++i) {
      const int64_t skip = skips.back();
      skips.pop_back();
      up_->push_back(nn::ResBlock(cur + skip, out, emb, o_.dropout(), g));
      up_attn_at_.push_back(attn_at(l) ? static_cast<int>(up_attn_->size()) : -1);
      if (attn_at(l)) up_attn_->push_back(nn::AttentionBlock(out, o_.head_channels(), g));
      cur = out;
    }
    if (l > 0) {
      upsample_->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(cur, cur, 3).padding(1)));
    }
  }
  register_module("down", down_);
  register_module("down_attn", down_attn_);
  register_module("downsample", downsample_);
  register_module("up", up_);
  register_module("up_attn", up_attn_);
  register_module("upsample", upsample_);
  out_norm_ = register_module("out_norm", nn::group_norm(g, cur));
  out_ = register_module("out", torch::nn::Conv2d(torch::nn::Conv2dOptions(cur, o_.in_channels(), 3).padding(1)));
  nn::zero_(*out_);
}

GM_INLINE auto UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y)
    -> torch::Tensor {
  return forward(x, t, y, {});
}

GM_INLINE auto UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                                 const torch::Tensor& cond) -> torch::Tensor {
  return forward(x, t, y, cond, {});
}

GM_INLINE auto UNetImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                                 const torch::Tensor& cond, const torch::Tensor& aug) -> torch::Tensor {
  const auto dt = x.scalar_type();
  const int64_t b = x.size(0);
  if (x.dim() != 4 || x.size(1) != o_.in_channels()) {
    throw Error("gm: UNet expects [B, " + std::to_string(o_.in_channels()) + ", H, W] input, not " + shape(x));
  }
  torch::Tensor features;
  if (t.dim() == 2) {
    if (o_.times() != 2 || t.size(1) != 2) {
      throw Error("gm: this UNet takes one time, not " + shape(t) + " (build it with times(2) for a flow map)");
    }
    features = time_->forward(t.select(1, 0), b, dt) +
               interval_map_->forward(interval_->forward(t.select(1, 0) - t.select(1, 1), b, dt)).to(dt);
  } else {
    features = time_->forward(t, b, dt);
    if (interval_) features = features + interval_map_->forward(interval_->forward(torch::zeros_like(t), b, dt)).to(dt);
  }
  if (aug.defined()) {
    if (!augment_ || aug.dim() != 2 || aug.size(1) != o_.augment_dim()) {
      throw Error("gm: this UNet takes " + std::to_string(o_.augment_dim()) + " augmentation labels, not " + shape(aug));
    }
    features = features + augment_->forward(aug.to(features.scalar_type())).to(dt);
  }
  auto emb = t2_->forward(torch::silu(t1_->forward(features).to(dt))).to(dt);
  if (label_) emb = emb + label_->forward(y, b, x.device()).to(dt);
  auto h = x;
  if (o_.cond_channels() > 0) {
    if (!cond.defined() || cond.size(1) != o_.cond_channels()) {
      throw Error("gm: this UNet needs an image condition of " + std::to_string(o_.cond_channels()) + " channels");
    }
    h = torch::cat({x, cond.to(dt)}, 1);
  }
  h = in_->forward(h).to(dt);
  std::vector<torch::Tensor> skips{h};
  size_t d = 0;
  for (size_t i = 0; i < down_->size(); ++i) {
    h = down_[i]->as<nn::ResBlock>()->forward(h, emb);
    if (down_attn_at_[i] >= 0) h = down_attn_[static_cast<size_t>(down_attn_at_[i])]->as<nn::AttentionBlock>()->forward(h);
    skips.push_back(h);
    if ((i + 1) % static_cast<size_t>(o_.res_blocks()) == 0 && d < downsample_->size()) {
      h = downsample_[d++]->as<torch::nn::Conv2d>()->forward(h).to(dt);
      skips.push_back(h);
    }
  }
  h = mid2_->forward(mid_attn_->forward(mid1_->forward(h, emb)), emb);
  size_t u = 0;
  const auto per = static_cast<size_t>(o_.res_blocks() + 1);
  for (size_t i = 0; i < up_->size(); ++i) {
    h = up_[i]->as<nn::ResBlock>()->forward(torch::cat({h, skips.back()}, 1), emb);
    skips.pop_back();
    if (up_attn_at_[i] >= 0) h = up_attn_[static_cast<size_t>(up_attn_at_[i])]->as<nn::AttentionBlock>()->forward(h);
    if ((i + 1) % per == 0 && u < upsample_->size()) {
      const auto& next = skips.back();
      h = torch::nn::functional::interpolate(
          h, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{next.size(2), next.size(3)})
                 .mode(torch::kNearest));
      h = upsample_[u++]->as<torch::nn::Conv2d>()->forward(h).to(dt);
    }
  }
  return out_->forward(torch::silu(out_norm_->forward(h))).to(dt);
}

GM_INLINE auto UNetImpl::describe() const -> std::string {
  std::string mult, attn;
  for (auto m : o_.channel_mult()) mult += (mult.empty() ? "" : "-") + std::to_string(m);
  for (auto a : o_.attention_resolutions()) attn += (attn.empty() ? "" : ",") + std::to_string(a);
  return "UNet " + nn::count_text(nn::parameter_count(*this)) + " params (" + std::to_string(o_.channels()) +
         " ch, " + mult + ", " + std::to_string(o_.res_blocks()) + " blocks, attention at " +
         (attn.empty() ? "none" : attn) +
         (o_.num_classes() > 0 ? ", " + std::to_string(o_.num_classes()) + " classes" : "") + ")";
}

GM_INLINE auto UNetImpl::shape(const torch::Tensor& x) -> std::string {
  std::string s = "[";
  for (int64_t i = 0; i < x.dim(); ++i) s += (i ? ", " : "") + std::to_string(x.size(i));
  return s + "]";
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(UNet);

}  // namespace gm
