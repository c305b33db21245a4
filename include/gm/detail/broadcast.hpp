#pragma once
/// @file
/// Broadcasting of per-sample times over data of any shape.

#include <torch/types.h>

#include <vector>

namespace gm::detail {

/// Reshape a time tensor `t` so it broadcasts against `like`.
///
/// A 0-d `t` is returned as is. A 1-d `t` of length B (the batch) becomes [B, 1, ..., 1] with as many
/// trailing ones as `like` has further dimensions.
inline torch::Tensor bcast(const torch::Tensor& t, const torch::Tensor& like) {
  if (t.dim() == 0 || like.dim() <= 1) return t;
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = t.size(0);
  return t.reshape(shape);
}

}  // namespace gm::detail
