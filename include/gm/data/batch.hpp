#pragma once
/// @file
/// `gm::Batch`: a training batch of data and, for conditional models, labels.

#include <torch/types.h>

namespace gm {

/// A batch: data x [B, ...] and, for class-conditional training, int64 labels y [B] (undefined when the
/// data has none or the model ignores them).  A data source may return a plain tensor instead.
struct Batch {
  torch::Tensor x;  ///< data, [B, ...]
  torch::Tensor y;  ///< int64 labels [B], or undefined
};

}  // namespace gm
