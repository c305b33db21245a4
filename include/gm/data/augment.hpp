#pragma once
/// @file
/// `gm::data::AugmentPipe`: EDM's non-leaky geometric augmentation, whose parameters become labels that the
/// network is conditioned on.

#include <gm/detail/compiled.hpp>
#include <gm/random.hpp>
#include <gm/error.hpp>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/nn/functional/padding.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <utility>
#include <vector>

namespace gm::data {

/// EDM's augmentation pipeline (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
/// Generative Models", appendix F.2; NVlabs/edm training/augment.py, built on Karras et al. 2020's ADA), at
/// the settings of EDM's `--augment` runs: an x-flip with probability 1/2 always, and with probability
/// `p` each a y-flip, an isotropic scale (log2 std 0.2), a rotation (uniform over the full circle), an
/// anisotropic scale (log2 std 0.2, about a random axis half of the time) and a fractional translation
/// (std 1/8 of the size).  The geometric part resamples through a 2x upsampling with the sym6 wavelet
/// filter, bilinear sampling and reflect padding, as ADA does, so that it does not alias.
///
/// Augmentation without leaks: every transform's parameters are returned as 9 labels per image (x-flip,
/// y-flip, scale, cos - 1 and sin of the rotation, the anisotropy's two components, the translation's two),
/// which go into the network (`UNetOptions::augment_dim`).  At sampling the labels are zero (no
/// augmentation), so the model generates un-augmented images while it trained on `1 / (1 - p)`-fold more
/// varied ones.  EDM's CIFAR-10 runs use p = 0.12.
struct AugmentPipe {
  struct Options {
    TORCH_ARG(double, p) = 0.12;  ///< probability of each transform but the x-flip
    TORCH_ARG(double, scale_std) = 0.2;           ///< log2 std of the isotropic scale
    TORCH_ARG(double, aniso_std) = 0.2;           ///< log2 std of the anisotropic scale
    TORCH_ARG(double, translate_std) = 0.125;     ///< std of the translation, as a fraction of the size
  };
  /// Labels per image.
  static constexpr int64_t label_dim = 9;

  Options options{};
  AugmentPipe() = default;
  explicit AugmentPipe(Options o) : options(o) {}

  /// Augment images [N, C, H, W] (any value range; float) with draws from `gen` (on `gen`'s device; the
  /// result on the images' device): the images and their labels [N, 9] (float32).  With `rows`, the images
  /// are those rows of a batch of `n` (a data-parallel rank's share): every parameter is drawn for all n
  /// images and cut to them, so each image gets the transform it would get in the whole batch (equal to
  /// float rounding: the reflect padding follows the images at hand).
  std::pair<torch::Tensor, torch::Tensor> operator()(const torch::Tensor& images, const at::Generator& gen,
                                                     const torch::Tensor& rows = {}, int64_t n = 0) const;

  /// The geometric part alone: resample images [N, C, H, W] by the inverse transforms `g_inv` [N, 3, 3]
  /// (output pixel coordinates, centred, to input ones), with ADA's anti-aliased resampling.  The images are
  /// padded (reflect) by as far as the batch's transforms reach, as ADA does, on the CPU; on another device
  /// by the most any transform may reach (H - 1 and W - 1 each side, ADA's cap), since the batch's reach
  /// would have to be read back to the host, which waits for the device once a batch.
  static torch::Tensor transform(const torch::Tensor& images, const torch::Tensor& g_inv);
  /// The same with the padding chosen: `full_margin` pads by H - 1 and W - 1 each side.  Where the batch's
  /// reach is less, the padding beyond it is never read: the images are the same to float rounding
  /// (tests/test_images.cpp), the work larger (up to 9 times the pixels filtered before the resampling).
  static torch::Tensor transform(const torch::Tensor& images, const torch::Tensor& g_inv, bool full_margin);
};

#if GM_HEADER_DEFINITIONS
namespace detail {
/// Rows of 3x3 matrices [N, 3, 3] from per-image entries (each [N] or a number).
GM_INLINE torch::Tensor affine(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c,
                               const torch::Tensor& d, const torch::Tensor& e, const torch::Tensor& f) {
  auto zero = torch::zeros_like(a), one = torch::ones_like(a);
  return torch::stack({a, b, c, d, e, f, zero, zero, one}, 1).view({-1, 3, 3});
}
GM_INLINE torch::Tensor scale_inv(const torch::Tensor& sx, const torch::Tensor& sy) {
  auto z = torch::zeros_like(sx);
  return affine(1 / sx, z, z, z, 1 / sy, z);
}
GM_INLINE torch::Tensor rotate_inv(const torch::Tensor& theta) {  // rotate2d(-theta)
  auto z = torch::zeros_like(theta);
  return affine(torch::cos(theta), torch::sin(theta), z, -torch::sin(theta), torch::cos(theta), z);
}
GM_INLINE torch::Tensor translate(const torch::Tensor& tx, const torch::Tensor& ty) {
  auto o = torch::ones_like(tx), z = torch::zeros_like(tx);
  return affine(o, z, tx, z, o, ty);
}
GM_INLINE torch::Tensor scale(double sx, double sy, int64_t n, const torch::TensorOptions& opts) {
  return scale_inv(torch::full({n}, 1 / sx, opts), torch::full({n}, 1 / sy, opts));
}
GM_INLINE torch::Tensor translate(double tx, double ty, int64_t n, const torch::TensorOptions& opts) {
  return translate(torch::full({n}, tx, opts), torch::full({n}, ty, opts));
}
/// The sym6 wavelet's low-pass filter (Daubechies 1992), ADA's resampling filter.
GM_INLINE torch::Tensor sym6() {
  return torch::tensor({0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
                        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
                        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148},
                       torch::kFloat64);
}
}  // namespace detail

GM_INLINE torch::Tensor AugmentPipe::transform(const torch::Tensor& images, const torch::Tensor& g_inv) {
  return transform(images, g_inv, !images.device().is_cpu());
}

GM_INLINE torch::Tensor AugmentPipe::transform(const torch::Tensor& images, const torch::Tensor& g_inv_in,
                                               bool full_margin) {
  namespace F = torch::nn::functional;
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(images.device());
  auto g_inv = g_inv_in.to(opts);
  // Pad (reflect) by as much as the transformed corners reach outside the image, plus the filter's margin,
  // at most the image's size less one; or by that most, with no read from the device.
  const int64_t taps = 12, pad = taps / 4;
  int64_t mx0 = w - 1, my0 = h - 1, mx1 = w - 1, my1 = h - 1;
  if (!full_margin) {
    const double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
    auto corners = torch::tensor({-cx, cx, cx, -cx, -cy, -cy, cy, cy, 1.0, 1.0, 1.0, 1.0}, opts).view({3, 4});
    auto cp = torch::matmul(g_inv, corners);                                          // [N, 3, 4]
    auto xy = cp.slice(1, 0, 2).permute({1, 0, 2}).flatten(1);                        // [2, N*4]
    auto margin = torch::cat({-xy, xy}).amax(1).cpu().to(torch::kFloat64);           // x0, y0, x1, y1
    auto off = torch::tensor({2 * pad - cx, 2 * pad - cy, 2 * pad - cx, 2 * pad - cy}, torch::kFloat64);
    auto hi = torch::tensor({double(w - 1), double(h - 1), double(w - 1), double(h - 1)}, torch::kFloat64);
    margin = torch::minimum(torch::clamp_min(margin + off, 0), hi).ceil().to(torch::kInt64);
    const auto* m = margin.data_ptr<int64_t>();
    mx0 = m[0], my0 = m[1], mx1 = m[2], my1 = m[3];
  }
  auto x = images.to(torch::kFloat32);
  x = F::pad(x, F::PadFuncOptions({mx0, mx1, my0, my1}).mode(torch::kReflect));
  g_inv = torch::matmul(detail::translate((mx0 - mx1) / 2.0, (my0 - my1) / 2.0, n, opts), g_inv);
  // Upsample 2x: zeros between samples, then the filter along each axis.
  auto filt = detail::sym6().to(opts);
  auto conv = [c](const torch::Tensor& in, const torch::Tensor& weight, std::vector<int64_t> stride, std::vector<int64_t> padding) {
    return torch::conv2d(in, weight, std::optional<torch::Tensor>{}, stride, padding, std::vector<int64_t>{1, 1}, c);
  };
  auto up = filt.flip(0).view({1, 1, 1, taps}).repeat({c, 1, 1, 1});
  x = torch::stack({x, torch::zeros_like(x)}, 4).reshape({n, c, x.size(2), -1}).slice(3, 0, -1);
  x = conv(x, up, {1, 1}, {0, (taps + 1) / 2});
  x = torch::stack({x, torch::zeros_like(x)}, 3).reshape({n, c, -1, x.size(3)}).slice(2, 0, -1);
  x = conv(x, up.view({c, 1, taps, 1}), {1, 1}, {(taps + 1) / 2, 0});
  g_inv = torch::matmul(torch::matmul(detail::scale(2, 2, n, opts), g_inv), detail::scale(0.5, 0.5, n, opts));
  g_inv = torch::matmul(torch::matmul(detail::translate(-0.5, -0.5, n, opts), g_inv), detail::translate(0.5, 0.5, n, opts));
  // Sample the transform on the 2x grid (in affine_grid's [-1, 1] coordinates), bilinear, zeros outside.
  const int64_t oh = (h + 2 * pad) * 2, ow = (w + 2 * pad) * 2;
  g_inv = torch::matmul(torch::matmul(detail::scale(2.0 / x.size(3), 2.0 / x.size(2), n, opts), g_inv),
                        detail::scale(ow / 2.0, oh / 2.0, n, opts));
  auto grid = torch::affine_grid_generator(g_inv.slice(1, 0, 2), {n, c, oh, ow}, false);
  x = torch::grid_sampler(x, grid, 0, 0, false);  // bilinear, zeros, align_corners = false
  // Downsample 2x through the filter and crop the margin.
  auto down = filt.view({1, 1, 1, taps}).repeat({c, 1, 1, 1});
  x = conv(x, down, {1, 2}, {0, (taps - 1) / 2}).slice(3, pad, -pad);
  x = conv(x, down.view({c, 1, taps, 1}), {2, 1}, {(taps - 1) / 2, 0}).slice(2, pad, -pad);
  return x.to(images.scalar_type());
}

GM_INLINE std::pair<torch::Tensor, torch::Tensor> AugmentPipe::operator()(const torch::Tensor& images,
                                                                         const at::Generator& gen,
                                                                         const torch::Tensor& rows, int64_t total) const {
  if (images.dim() != 4) throw Error("gm: AugmentPipe expects images [N, C, H, W]");
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  const double p = options.p();
  const auto gopts = on_generator(gen, torch::kFloat32);
  // Every draw covers the whole batch (total rows, or n) and keeps the images' rows.
  const int64_t drawn = rows.defined() ? total : n;
  const auto keep = rows.defined() ? rows.to(gopts.device()) : torch::Tensor();
  auto uniform = [&] { return keep_rows(torch::rand({drawn}, gen, gopts), keep); };
  auto normal = [&] { return keep_rows(torch::randn({drawn}, gen, gopts), keep); };
  auto chance = [&](double q) { return uniform() < q; };
  auto zero = torch::zeros({n}, gopts);
  auto x = images;
  auto flip_rows = [&](const torch::Tensor& on, int64_t dim) {
    return torch::where(on.to(x.device()).view({n, 1, 1, 1}), x.flip({dim}), x);
  };
  // Pixel blitting: the x-flip always at 1/2 (EDM's xflip = 1e8 times p), the y-flip with probability p/2.
  auto xf = torch::where(chance(1.0), (uniform() < 0.5).to(torch::kFloat32), zero);
  x = flip_rows(xf > 0, 3);
  auto yf = torch::where(chance(p), (uniform() < 0.5).to(torch::kFloat32), zero);
  x = flip_rows(yf > 0, 2);
  // Geometric transforms, composed as inverse matrices (output coordinates to input ones).
  auto sw = torch::where(chance(p), normal(), zero);
  auto s = torch::exp2(sw * options.scale_std());
  auto g = detail::scale_inv(s, s);
  auto rw = torch::where(chance(p), (uniform() * 2 - 1) * std::numbers::pi, zero);
  g = torch::matmul(g, detail::rotate_inv(-rw));
  auto aw = normal(), ar = (uniform() * 2 - 1) * std::numbers::pi;
  aw = torch::where(chance(p), aw, zero);
  ar = torch::where(chance(0.5), ar, zero);
  auto as = torch::exp2(aw * options.aniso_std());
  g = torch::matmul(torch::matmul(torch::matmul(g, detail::rotate_inv(ar)), detail::scale_inv(as, 1 / as)),
                    detail::rotate_inv(-ar));
  auto tw0 = normal(), tw1 = normal();
  auto t_on = chance(p);
  tw0 = torch::where(t_on, tw0, zero), tw1 = torch::where(t_on, tw1, zero);
  g = torch::matmul(g, detail::translate(-tw0 * (w * options.translate_std()), -tw1 * (h * options.translate_std())));
  x = transform(x, g.to(x.device()));
  auto labels = torch::stack({xf, yf, sw, torch::cos(rw) - 1, torch::sin(rw), aw * torch::cos(ar), aw * torch::sin(ar),
                              tw0, tw1}, 1);
  return {x, labels.to(images.device())};
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::data
