#pragma once
/// @file
/// `gm::Batch`: a training batch of data and, for conditional models, labels.

#include <torch/types.h>

#include <cstdint>

namespace gm {

/// A batch: data x [B, ...] and, for class-conditional training, int64 labels y [B] (undefined when the
/// data has none or the model ignores them), and for image-conditional training an image condition c
/// [B, Cc, H, W] (a coarse field to downscale), and augmentation labels a [B, A] when the data was augmented
/// (`gm::data::AugmentPipe`, EDM's non-leaky augmentation), and for reflow the paired noise z.  A data source may return a plain tensor instead.
struct Batch {
  torch::Tensor x;  ///< data, [B, ...]
  torch::Tensor y{};  ///< int64 labels [B], or undefined
  torch::Tensor c{};  ///< image condition [B, Cc, H, W], or undefined
  torch::Tensor a{};  ///< augmentation labels [B, A], or undefined (not augmented)
  /// The noise paired with each data row, [B, ...] like x, or undefined (the trainer draws it): reflow's
  /// pairs (x0, x1) of a trained flow (`gm::reflow_pairs`, Liu et al. 2022).
  torch::Tensor z{};
  /// 0: the batch is the whole global batch.  n > 0: under data parallelism it holds only this rank's rows
  /// of a global batch of n (`Trainer::shard_rows`), gathered, encoded and augmented by this rank alone.
  int64_t global = 0;
};

}  // namespace gm
