#pragma once
/// @file
/// `gm::DataParallel`: how a `Trainer` shares a step with other data-parallel processes, as two collectives.
/// `gm::dist::data_parallel(group)` (gm/dist/group.hpp) makes one from a c10d process group.

#include <gm/detail/compiled.hpp>

#include <torch/types.h>

#include <cstdint>
#include <functional>

namespace gm {

/// This process's rank among `world` data-parallel processes and the collectives the trainer needs.
///
/// Every rank is given the same global batch and draws the same times, noise and label dropout for all of
/// it from the same generator state; it then computes the loss and gradient of its own shard of rows
/// [rank B / world, (rank + 1) B / world), scaled so the all-reduced sum is the gradient of the global mean.
/// So a step at world size W equals the single-process step up to the order of floating-point sums, every
/// rank keeps the same generator, weights, optimiser state and EMA, and a checkpoint resumes at any world
/// size.  A network's own randomness (dropout) is seeded from (seed, step, rank), so shards differ.
struct DataParallel {
  int64_t rank = 0;
  int64_t world = 1;
  std::function<void(torch::Tensor&)> all_reduce_sum;  ///< sum over the ranks, in place
  std::function<void(torch::Tensor&)> broadcast;       ///< rank 0's value to every rank, in place
  bool active() const { return world > 1; }
};

}  // namespace gm
