#pragma once
/// @file
/// `gm::DiT`: the Diffusion Transformer of Peebles & Xie (2023).

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/nn/embedding.hpp>
#include <gm/nn/unet.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace gm {

/// Options of `DiT`.  `preset` sets width, depth and heads as the paper's table 1 does.
struct DiTOptions {
  TORCH_ARG(int64_t, in_channels) = 1;  ///< image (or latent) channels
  TORCH_ARG(int64_t, image_size) = 28;  ///< input height and width
  TORCH_ARG(int64_t, patch) = 2;        ///< patch size (must divide image_size)
  TORCH_ARG(int64_t, hidden) = 384;     ///< token width
  TORCH_ARG(int64_t, depth) = 12;       ///< transformer blocks
  TORCH_ARG(int64_t, heads) = 6;        ///< attention heads
  TORCH_ARG(double, mlp_ratio) = 4.0;   ///< MLP width / token width
  TORCH_ARG(int64_t, num_classes) = 0;  ///< 0: unconditional; else labels 0..num_classes-1 plus the null class

  // (TORCH_ARG leaves the access private.)
 public:
  /// "tiny" (128 wide, 4 deep, 4 heads: for a CPU), "S" (384, 12, 6), "B" (768, 12, 12), "L" (1024, 24, 16),
  /// "XL" (1152, 28, 16).  Anything else is a one-line error.
  DiTOptions& preset(const std::string& name) {
    if (name == "tiny") hidden(128).depth(4).heads(4);
    else if (name == "S") hidden(384).depth(12).heads(6);
    else if (name == "B") hidden(768).depth(12).heads(12);
    else if (name == "L") hidden(1024).depth(24).heads(16);
    else if (name == "XL") hidden(1152).depth(28).heads(16);
    else throw Error("gm: DiT preset must be tiny, S, B, L or XL, not '" + name + "'");
    return *this;
  }
};

namespace nn {

/// The fixed 2-D sine-cosine position embedding of MAE and DiT for a grid x grid of tokens: [grid^2, dim],
/// half of each token's features from its row and half from its column.
torch::Tensor sincos_position_embedding(int64_t dim, int64_t grid);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor sincos_position_embedding(int64_t dim, int64_t grid) {
  if (dim % 4) throw Error("gm: DiT hidden size must be a multiple of 4");
  auto omega = 1.0 / torch::pow(10000.0, torch::arange(dim / 4, torch::kFloat64) / (dim / 4.0));  // [dim/4]
  auto pos = torch::arange(grid, torch::kFloat64);
  auto gy = pos.repeat_interleave(grid), gx = pos.repeat({grid});  // row-major tokens
  auto embed = [&](const torch::Tensor& p) {
    auto out = p.unsqueeze(1) * omega.unsqueeze(0);
    return torch::cat({torch::sin(out), torch::cos(out)}, 1);
  };
  return torch::cat({embed(gx), embed(gy)}, 1).to(torch::kFloat32);  // MAE: width half first, then height
}
#endif

/// x (1 + scale) + shift, per sample, over tokens [B, T, D].
torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}
#endif

/// A DiT block with adaLN-Zero conditioning: LayerNorm without affine parameters, modulated by shift and
/// scale regressed from the conditioning vector, self-attention and an MLP, each gated by a regressed gate
/// that starts at zero (so each block starts as the identity).
class DiTBlockImpl : public torch::nn::Module {
 public:
  DiTBlockImpl(int64_t hidden, int64_t heads, double mlp_ratio)
      : heads_(heads),
        norm1_(register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).elementwise_affine(false).eps(1e-6)))),
        qkv_(register_module("qkv", torch::nn::Linear(hidden, 3 * hidden))),
        proj_(register_module("proj", torch::nn::Linear(hidden, hidden))),
        norm2_(register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).elementwise_affine(false).eps(1e-6)))),
        fc1_(register_module("fc1", torch::nn::Linear(hidden, static_cast<int64_t>(hidden * mlp_ratio)))),
        fc2_(register_module("fc2", torch::nn::Linear(static_cast<int64_t>(hidden * mlp_ratio), hidden))),
        ada_(register_module("ada", torch::nn::Linear(hidden, 6 * hidden))) {
    if (hidden % heads) throw Error("gm: DiT hidden size must divide into heads");
    zero_(*ada_);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c) {
    const auto dt = x.scalar_type();
    const int64_t b = x.size(0), n = x.size(1), d = x.size(2);
    auto m = ada_->forward(torch::silu(c)).to(dt).chunk(6, 1);  // shift, scale, gate for attention, then MLP
    auto h = modulate(norm1_->forward(x), m[0], m[1]);
    // Between the products the activations stay in the products' dtype (bf16 under gm::Autocast: q, k, v
    // into the attention kernel, the MLP's GELU), as PyTorch's autocast leaves them; the residual stream
    // stays in dt, where the gated sums promote.
    auto qkv = qkv_->forward(h).reshape({b, n, 3, heads_, d / heads_}).permute({2, 0, 3, 1, 4});
    auto a = attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape({b, n, d});
    auto out = x + m[2].unsqueeze(1) * proj_->forward(a);
    h = modulate(norm2_->forward(out), m[3], m[4]);
    h = fc2_->forward(torch::gelu(fc1_->forward(h), "tanh"));
    return out + m[5].unsqueeze(1) * h;
  }

 private:
  int64_t heads_;
  torch::nn::LayerNorm norm1_;
  torch::nn::Linear qkv_, proj_;
  torch::nn::LayerNorm norm2_;
  torch::nn::Linear fc1_, fc2_, ada_;
};
TORCH_MODULE(DiTBlock);

}  // namespace nn

/// The Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers").
///
/// The image is cut into patch x patch patches, each linearly embedded (a strided convolution) and given a
/// fixed 2-D sine-cosine position embedding; `depth` adaLN-Zero blocks attend over the tokens, conditioned
/// on the sum of the time embedding (sinusoidal features and an MLP) and the class embedding (a table with
/// a null class for classifier-free guidance); a final adaLN layer and a zero-initialised linear map each
/// token back to its patch.  The output has the input's shape (no learned variance: gm's losses are MSE).
///
/// `gm::DiT net(gm::DiTOptions().preset("S").patch(2).image_size(32).in_channels(4).num_classes(1000))` is
/// DiT-S/2 on 256x256 ImageNet latents; `preset("tiny")` fits a CPU.
class DiTImpl : public torch::nn::Module {
 public:
  /// Convolutions and normalisations run on the intra-op pool: use every core (gm::configure_threads).
  static constexpr bool prefers_all_cores = true;

  explicit DiTImpl(DiTOptions o = {});

  /// x: [B, C, H, W]; t: [B] or 0-d in [0, 1].  A conditional DiT sees the null class.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t) { return forward(x, t, {}); }
  /// With class labels y: int64 [B] in 0..num_classes (num_classes: the null class); undefined y is the null class.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y);

  /// The null class of guidance (num_classes), or -1 for an unconditional DiT.
  int64_t null_class() const { return o_.num_classes() > 0 ? o_.num_classes() : -1; }
  const DiTOptions& options() const { return o_; }
  /// "DiT 1.23M params (128 wide, 4 blocks, 4 heads, patch 2, 10 classes)", for logs.
  std::string describe() const;

 private:
  DiTOptions o_;
  torch::nn::Conv2d embed_{nullptr};
  torch::Tensor pos_;
  nn::TimeFeatures time_{nullptr};
  torch::nn::Linear t1_{nullptr}, t2_{nullptr};
  nn::LabelEmbedding label_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm final_norm_{nullptr};
  torch::nn::Linear final_ada_{nullptr}, final_{nullptr};
};

#if GM_HEADER_DEFINITIONS
GM_INLINE DiTImpl::DiTImpl(DiTOptions o) : o_(std::move(o)) {
  if (o_.patch() < 1 || o_.image_size() % o_.patch()) throw Error("gm: DiT patch size must divide image_size");
  if (o_.in_channels() < 1 || o_.hidden() < 4 || o_.depth() < 1 || o_.heads() < 1 || o_.num_classes() < 0) {
    throw Error("gm: DiT needs in_channels, hidden, depth, heads >= 1");
  }
  const int64_t d = o_.hidden(), p = o_.patch(), grid = o_.image_size() / p;
  embed_ = register_module("embed", torch::nn::Conv2d(torch::nn::Conv2dOptions(o_.in_channels(), d, p).stride(p)));
  pos_ = register_buffer("pos", nn::sincos_position_embedding(d, grid).unsqueeze(0));
  time_ = register_module("time", nn::TimeFeatures(256));
  t1_ = register_module("t1", torch::nn::Linear(256, d));
  t2_ = register_module("t2", torch::nn::Linear(d, d));
  if (o_.num_classes() > 0) label_ = register_module("label", nn::LabelEmbedding(o_.num_classes(), d));
  for (int64_t i = 0; i < o_.depth(); ++i) blocks_->push_back(nn::DiTBlock(d, o_.heads(), o_.mlp_ratio()));
  register_module("blocks", blocks_);
  final_norm_ = register_module("final_norm",
                                torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).elementwise_affine(false).eps(1e-6)));
  final_ada_ = register_module("final_ada", torch::nn::Linear(d, 2 * d));
  final_ = register_module("final", torch::nn::Linear(d, p * p * o_.in_channels()));
  // DiT's initialisation: Xavier-uniform linear layers, zero biases; adaLN and the output at zero.
  torch::NoGradGuard ng;
  for (auto& m : modules(false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(lin->weight);
      lin->bias.zero_();
    }
  }
  auto w = embed_->weight.view({d, -1});
  torch::nn::init::xavier_uniform_(w);
  embed_->bias.zero_();
  t1_->weight.normal_(0, 0.02);
  t2_->weight.normal_(0, 0.02);
  for (const auto& b : *blocks_) {
    for (auto& item : b->named_parameters()) {
      if (item.key().rfind("ada.", 0) == 0) item.value().zero_();
    }
  }
  nn::zero_(*final_ada_);
  nn::zero_(*final_);
}

GM_INLINE auto DiTImpl::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y)
    -> torch::Tensor {
  const auto dt = x.scalar_type();
  const int64_t b = x.size(0), p = o_.patch(), c = o_.in_channels(), g = o_.image_size() / p;
  if (x.dim() != 4 || x.size(1) != c || x.size(2) != o_.image_size() || x.size(3) != o_.image_size()) {
    throw Error("gm: DiT expects [B, " + std::to_string(c) + ", " + std::to_string(o_.image_size()) + ", " +
                std::to_string(o_.image_size()) + "] input");
  }
  auto h = embed_->forward(x).to(dt).flatten(2).transpose(1, 2) + pos_.to(dt);  // [B, T, D]
  auto cond = t2_->forward(torch::silu(t1_->forward(time_->forward(t, b, dt)).to(dt))).to(dt);
  if (label_) cond = cond + label_->forward(y, b, x.device()).to(dt);
  for (const auto& blk : *blocks_) h = blk->as<nn::DiTBlock>()->forward(h, cond);
  auto m = final_ada_->forward(torch::silu(cond)).to(dt).chunk(2, 1);
  h = final_->forward(nn::modulate(final_norm_->forward(h), m[0], m[1])).to(dt);  // [B, T, p*p*C]
  // Unpatchify: [B, g, g, p, p, C] -> [B, C, g*p, g*p].
  return h.reshape({b, g, g, p, p, c}).permute({0, 5, 1, 3, 2, 4}).reshape({b, c, g * p, g * p});
}

GM_INLINE auto DiTImpl::describe() const -> std::string {
  return "DiT " + nn::count_text(nn::parameter_count(*this)) + " params (" + std::to_string(o_.hidden()) +
         " wide, " + std::to_string(o_.depth()) + " blocks, " + std::to_string(o_.heads()) + " heads, patch " +
         std::to_string(o_.patch()) + (o_.num_classes() > 0 ? ", " + std::to_string(o_.num_classes()) + " classes" : "") +
         ")";
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(DiT);

}  // namespace gm
