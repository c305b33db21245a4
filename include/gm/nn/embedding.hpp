#pragma once
/// @file
/// Shared pieces of gm's image networks: time features, the class-label embedding with its null class, and
/// scaled dot-product attention through torch's fused kernels, with the plain-product form as its reference.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/nn/jvp.hpp>

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/scaled_dot_product_attention.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <numbers>
#include <string>

namespace gm::nn {

/// Sinusoidal features of t in [0, 1] (Vaswani et al. 2017, as DDPM and DiT embed their step index): t is
/// scaled by 1000 so it plays the step index, with frequencies 1 / 10000^(i / half).  Or random Fourier
/// features (Tancik et al. 2020; the Gaussian Fourier projection of Song et al. 2021), frequencies drawn
/// once with std `fourier_scale` and kept as a buffer.  Returns [B, dim].
class TimeFeaturesImpl : public torch::nn::Module {
 public:
  TimeFeaturesImpl(int64_t dim, const std::string& kind = "sinusoidal", double fourier_scale = 16.0);
  /// t: [B] or 0-d (broadcast to `batch`).
  torch::Tensor forward(const torch::Tensor& t, int64_t batch, torch::ScalarType dtype) const;

 private:
  std::string kind_;
  torch::Tensor freqs_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE TimeFeaturesImpl::TimeFeaturesImpl(int64_t dim, const std::string& kind, double fourier_scale) : kind_(kind) {
  if (dim < 2 || dim % 2) throw Error("gm: time features need an even size >= 2");
  if (kind != "sinusoidal" && kind != "fourier") {
    throw Error("gm: time embedding must be sinusoidal or fourier, not '" + kind + "'");
  }
  const int64_t half = dim / 2;
  torch::Tensor freqs;
  if (kind == "sinusoidal") {
    freqs = 1000.0 * torch::exp(-std::log(10000.0) * torch::arange(half, torch::kFloat32) / half);
  } else {
    freqs = 2 * std::numbers::pi * fourier_scale * torch::randn({half});
  }
  freqs_ = register_buffer("freqs", freqs);
}

GM_INLINE auto TimeFeaturesImpl::forward(const torch::Tensor& t, int64_t batch, torch::ScalarType dtype) const
    -> torch::Tensor {
  auto tt = (t.dim() == 0 ? t.expand({batch}) : t).to(dtype).unsqueeze(1);
  auto arg = tt * freqs_.to(dtype).unsqueeze(0);
  return torch::cat({torch::cos(arg), torch::sin(arg)}, 1);
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(TimeFeatures);

/// Class labels must lie in 0..`null` (`null`: the null class), or a one-line `gm::Error`.  Checked where
/// reading them is free, on the CPU; labels already on a GPU are not read (that would stop the device each
/// step): gm checks them where they enter, the data set's labels when it loads and sampling labels once per
/// `Trainer::sample`.
void check_labels(const torch::Tensor& y, int64_t null);
#if GM_HEADER_DEFINITIONS
GM_INLINE void check_labels(const torch::Tensor& y, int64_t null) {
  if (!y.defined() || y.numel() == 0 || !y.device().is_cpu()) return;
  const auto lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
  if (lo < 0 || hi > null) {
    throw Error("gm: class label " + std::to_string(lo < 0 ? lo : hi) + " is outside 0.." + std::to_string(null) + " (" +
                std::to_string(null) + " is the null class)");
  }
}
#endif

/// Class labels to vectors, with one extra row for the null class `num_classes` that classifier-free
/// guidance's unconditional branch uses (Ho & Salimans 2022; DiT's LabelEmbedder has the same +1 row).
/// Undefined labels are the null class; a label outside [0, num_classes] is a one-line error.
class LabelEmbeddingImpl : public torch::nn::Module {
 public:
  LabelEmbeddingImpl(int64_t num_classes, int64_t dim);
  /// y: int64 [batch], or undefined for `batch` null labels on `device`.
  torch::Tensor forward(const torch::Tensor& y, int64_t batch, torch::Device device);
  int64_t null_class() const { return num_classes_; }

 private:
  int64_t num_classes_;
  torch::nn::Embedding table_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE LabelEmbeddingImpl::LabelEmbeddingImpl(int64_t num_classes, int64_t dim)
    : num_classes_(num_classes), table_(register_module("table", torch::nn::Embedding(num_classes + 1, dim))) {
  torch::NoGradGuard ng;
  table_->weight.normal_(0, 0.02);
}

GM_INLINE auto LabelEmbeddingImpl::forward(const torch::Tensor& y, int64_t batch, torch::Device device)
    -> torch::Tensor {
  if (!y.defined()) {
    return table_->forward(torch::full({batch}, num_classes_,
                           torch::TensorOptions().dtype(torch::kInt64).device(device)));
  }
  check_labels(y, num_classes_);
  return table_->forward(y);
}
#endif  // GM_HEADER_DEFINITIONS
TORCH_MODULE(LabelEmbedding);

/// Scaled dot-product attention written with plain products, softmax(q k^T / sqrt(d)) v over [B, heads, T, d]
/// queries, keys and values, with the softmax in at least float32 (products may run in bf16 under
/// gm::Autocast).  It builds the whole [T, T] matrix: the reference that the fused kernel of
/// gm::nn::attention is tested against.
torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor attention_reference(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto w = torch::matmul(q * scale, k.transpose(-2, -1));
  w = w.to(at::promote_types(w.scalar_type(), torch::kFloat32)).softmax(-1);
  return torch::matmul(w.to(v.scalar_type()), v).to(q.scalar_type());
}
#endif

/// Scaled dot-product attention over [B, heads, T, d] queries, keys and values (Vaswani et al. 2017):
/// softmax(q k^T / sqrt(d)) v through `at::scaled_dot_product_attention`, which dispatches to a fused kernel
/// (FlashAttention-2, Dao 2023, or memory-efficient attention, Rabe & Staats 2021, on CUDA; a blocked flash
/// kernel on the CPU) that never holds the [T, T] matrix: at ImageNet sizes (T = 1024 tokens, 16 heads,
/// batch 256) that matrix alone is 16 GiB in fp32.  Returns q's dtype; tested against
/// gm::nn::attention_reference, which it runs itself inside `gm::jvp` (the fused kernels have no
/// forward-mode or second derivative).
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  // LibTorch's fused kernels have no forward-mode or second derivative: inside gm::jvp, the plain form.
  if (gm::detail::jvp_depth() > 0) return attention_reference(q, k, v);
  // The fused kernels take only inputs whose last dimension is contiguous; a transposed view (the UNets'
  // [B, heads, d, HW] -> [B, heads, HW, d]) would send CUDA to the math path, which holds the [T, T] matrix.
  //
  // On a CPU, LibTorch's flash kernel backward runs many times slower in bf16 than in fp32 for short
  // sequences (2.14, 2 threads, forward + backward: [128, 2, 49, 32] 25.2 ms in bf16 against 4.2 ms in fp32;
  // [128, 4, 196, 32] 127 against 74; [16, 4, 1024, 64] 175 against 277), so where a gradient will be taken
  // through sequences of up to 256 tokens the kernel runs in fp32, outside autocast.
  const bool low = q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kHalf ||
                   (at::autocast::is_autocast_enabled(q.device().type()) &&
                    at::autocast::get_autocast_dtype(q.device().type()) != torch::kFloat32);
  const bool grad = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  const bool fp32 = q.device().is_cpu() && low && grad && q.size(-2) <= 256 && k.size(-2) <= 256;
  const auto dtype = fp32 ? torch::kFloat32 : q.scalar_type();
  auto packed = [&](const torch::Tensor& t) {
    auto u = t.to(dtype);
    return u.stride(-1) == 1 ? u : u.contiguous();
  };
  if (!fp32) return at::scaled_dot_product_attention(packed(q), packed(k), packed(v)).to(q.scalar_type());
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCPU);
  return at::scaled_dot_product_attention(packed(q), packed(k), packed(v)).to(q.scalar_type());
}
#endif

/// Dropout (Srivastava et al. 2014): in training, each element is zeroed with probability p and the rest
/// scaled by 1 / (1 - p), as `torch::dropout` does, drawing from LibTorch's default generator as it does.
/// On a CPU the keep mask comes from 16 random bits per element, four to each 64-bit draw, against p rounded
/// to a multiple of 2^-16 (0.1 -> 0.100006; the scale uses the rounded p, so the expectation is kept exactly):
/// LibTorch's bernoulli_ draws a double per element, and the UNet's 11 dropouts took 87 ms of a 757 ms
/// fashion_mnist step (2.14, 2 threads; [128, 64, 14, 14]: 3.4 ms against 9.4 ms).  Elsewhere torch::dropout.
torch::Tensor dropout(const torch::Tensor& x, double p, bool train);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor dropout(const torch::Tensor& x, double p, bool train) {
  if (!train || p <= 0) return x;
  if (p >= 1) return x * 0;
  if (!x.device().is_cpu()) return torch::dropout(x, p, true);
  const int64_t n = x.numel(), threshold = std::llround(p * 65536.0);
  if (threshold == 0) return x;
  const double keep = 1.0 - static_cast<double>(threshold) / 65536.0;
  auto words = torch::empty({(n + 3) / 4}, x.options().dtype(torch::kLong))
                   .random_(std::numeric_limits<int64_t>::min(), std::optional<int64_t>());
  auto bits = words.view(torch::kShort).narrow(0, 0, n).view(x.sizes());
  auto mask = torch::where(bits >= static_cast<int64_t>(-32768 + threshold), 1.0 / keep, 0.0).to(x.scalar_type());
  return x * mask;
}
#endif

/// The number of trainable parameters of a module.
int64_t parameter_count(const torch::nn::Module& m);
#if GM_HEADER_DEFINITIONS
GM_INLINE int64_t parameter_count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
#endif

/// "1.23M", "845k".
std::string count_text(int64_t n);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string count_text(int64_t n) {
  char buf[32];
  if (n >= 1000000) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0fk", n / 1e3);
  return buf;
}
#endif

}  // namespace gm::nn
