#pragma once
/// @file
/// `gm::data::CoarseToFine`: image data for conditional generation from a coarse input (super-resolution,
/// or statistical downscaling of climate fields as in score_sde's application seed): every training image
/// comes with its average-pooled version, upsampled back to full size, as an image condition.

#include <gm/detail/compiled.hpp>
#include <gm/data/batch.hpp>
#include <gm/data/images.hpp>
#include <gm/error.hpp>
#include <gm/metric.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace gm::data {

/// Training batches of `ImageData` with an image condition: the image average-pooled by `factor` (28 x 28
/// -> 7 x 7 for factor 4) and upsampled back by repetition, one extra input channel per image channel of a
/// UNet built with `cond_channels` (`gm::Batch::c`).  Sampling is conditioned on the coarse versions of the
/// held-out images (`sampling_condition`), and `closeness` scores the samples against them.
class CoarseToFine {
 public:
  CoarseToFine(ImageData train, ImageSet held_out, int64_t factor);

  /// Batch `step`: the images (in [-1, 1]), no labels, and their coarse versions as the condition.
  Batch batch(int64_t step, int64_t n, const at::Generator& gen, const torch::Tensor& rows = {}) const;
  /// Samples back to uint8 images.
  torch::Tensor decode(const torch::Tensor& x) const { return train_.decode(x); }
  /// x [B, C, H, W] average-pooled by the factor and repeated back to H x W.
  torch::Tensor coarse(const torch::Tensor& x) const { return upsample(torch::avg_pool2d(x, factor_)); }
  /// The condition of sample i: the coarse version of held-out image i mod N, encoded, [n, C, H, W].
  torch::Tensor sampling_condition(int64_t n) const { return coarse(train_.encode(held_out(n))); }
  /// Held-out images i mod N for i < n (uint8).
  torch::Tensor held_out(int64_t n) const;

  /// How well uint8 samples [n, C, H, W] match their inputs, on the [0, 1] pixel scale:
  /// - `pool_rmse`: RMS difference between the samples' own pooling and the coarse input (0 is exact);
  /// - `pool_rmse_unrelated`: the same for held-out images paired with another image's input, the scale
  ///   of "not conditioned at all";
  /// - `pixel_rmse`: samples against the held-out full-resolution images, beside `pixel_rmse_upsampled`,
  ///   the coarse input itself as the guess (a sharp sample pays for detail the input cannot fix).
  Metrics closeness(const torch::Tensor& samples) const;

  const ImageData& train() const { return train_; }
  int64_t factor() const { return factor_; }
  const std::vector<int64_t>& sample_shape() const { return train_.sample_shape(); }
  std::string describe() const;
  /// The held-out split, for `--mode=eval`'s likelihood (`Data::read`).
  static ImageSet read(const Config& cfg, const std::string& split) { return ImageData::read(cfg, split); }

 private:
  torch::Tensor upsample(const torch::Tensor& x) const;

  ImageData train_;
  ImageSet held_out_;
  int64_t factor_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE CoarseToFine::CoarseToFine(ImageData train, ImageSet held_out, int64_t factor)
    : train_(std::move(train)), held_out_(std::move(held_out)), factor_(factor) {
  const auto& s = train_.sample_shape();
  if (!train_.pixels()) throw Error("gm: coarse-to-fine data works on pixels, not latents");
  if (factor_ < 2 || s[1] % factor_ != 0 || s[2] % factor_ != 0) {
    throw Error("gm: the pooling factor " + std::to_string(factor_) + " must be at least 2 and divide the image size " +
                std::to_string(s[1]) + "x" + std::to_string(s[2]));
  }
  if (held_out_.size() == 0) throw Error("gm: coarse-to-fine data needs held-out images to condition samples on");
}

GM_INLINE auto CoarseToFine::batch(int64_t step, int64_t n, const at::Generator& gen, const torch::Tensor& rows) const
    -> Batch {
  auto b = train_.batch(step, n, gen, rows);  // with rows: this rank's (see ImageData::batch)
  Batch out{b.x, {}, coarse(b.x)};
  out.global = b.global;
  return out;
}

GM_INLINE auto CoarseToFine::held_out(int64_t n) const -> torch::Tensor {
  return held_out_.images.index_select(0, torch::arange(n, torch::kInt64).remainder(held_out_.size()));
}

GM_INLINE auto CoarseToFine::closeness(const torch::Tensor& samples) const -> Metrics {
  const int64_t n = samples.size(0);
  auto truth = held_out(n).to(torch::kFloat64) / 255.0;
  auto s = samples.to(torch::kCPU, torch::kFloat64) / 255.0;
  auto pool = [&](const torch::Tensor& x) { return torch::avg_pool2d(x, factor_); };
  auto rms = [](const torch::Tensor& d) { return std::sqrt(d.pow(2).mean().item<double>()); };
  auto unrelated = truth.roll(1, 0);
  return {{"pool_rmse", rms(pool(s) - pool(truth)), "samples' " + std::to_string(factor_) + "x pooling vs the input"},
          {"pool_rmse_unrelated", rms(pool(unrelated) - pool(truth)), "another image vs the input"},
          {"pixel_rmse", rms(s - truth), "samples vs the full-resolution images"},
          {"pixel_rmse_upsampled", rms(upsample(pool(truth)) - truth),
                                       "the upsampled input vs the full-resolution images"}};
}

GM_INLINE auto CoarseToFine::describe() const -> std::string {
  return train_.describe() + ", conditioned on " + std::to_string(factor_) + "x average pooling";
}

GM_INLINE auto CoarseToFine::upsample(const torch::Tensor& x) const -> torch::Tensor {
  return x.repeat_interleave(factor_, 2).repeat_interleave(factor_, 3);
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::data
