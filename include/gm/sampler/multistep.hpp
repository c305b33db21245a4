#pragma once
/// @file
/// History shared by the multistep solvers (DPM-Solver++, UniPC).

#include <gm/detail/compiled.hpp>

#include <torch/types.h>

#include <cmath>
#include <deque>

namespace gm::detail {

/// One past evaluation: the data prediction D at a node with log-SNR lambda.
struct Past {
  double lambda;
  torch::Tensor data;
};

/// The most recent evaluations, newest first.  Nodes with lambda = -inf (t = 1 where alpha(1) = 0) are not
/// usable as history for higher-order terms: a divided difference over an infinite lambda-step is 0/inf, so
/// they are dropped, and the order drops with them, explicitly rather than through NaNs.
struct History {
  std::deque<Past> past;
  void push(double lambda, torch::Tensor data, size_t keep);
  /// How many of the newest entries are usable (finite lambda).
  int usable() const;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void History::push(double lambda, torch::Tensor data, size_t keep) {
  past.push_front({lambda, std::move(data)});
  while (past.size() > keep) past.pop_back();
}

GM_INLINE auto History::usable() const -> int {
  int n = 0;
  for (const auto& p : past) {
    if (!std::isfinite(p.lambda)) break;
    ++n;
  }
  return n;
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::detail
