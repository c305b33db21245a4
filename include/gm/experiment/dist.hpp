#pragma once
/// @file
/// Data parallelism in an experiment: the `dist.*` keys, and the ranks joined into one run once each has
/// restored its checkpoint (torchrun, Slurm: see docs/distributed.md).

#include <gm/detail/compiled.hpp>
#include <gm/dist/group.hpp>
#include <gm/error.hpp>
#include <gm/io/config.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/run_dir.hpp>

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace gm::experiment {

/// Declare `dist.*`.
void add_dist_keys(Config& cfg);
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_dist_keys(Config& cfg) {
  cfg.add<int64_t>("dist.timeout", 300, "seconds a data-parallel rank waits for the others before failing",
                   check::at_least(1));
}
#endif

/// Make `trainer` and `ckpt` data-parallel over `group` once every rank has restored: each must stand at
/// the same step (else a one-line error naming the checkpoint folder every rank must see); rank 0 writes
/// the checkpoints, the others wait for it.  Nothing for a group of one.
template <class T>
void join_ranks(dist::Group& group, T& trainer, Checkpointer& ckpt, RunDir& run, const std::filesystem::path& checkpoints,
                int64_t global_batch) {
  if (!group.distributed()) return;
  auto step = torch::full({1}, static_cast<double>(trainer.step()), torch::kFloat64);
  group.all_reduce_sum(step);
  if (step.item<double>() != static_cast<double>(trainer.step() * group.world())) {
    throw Error("gm: the ranks restored different checkpoints (rank " + std::to_string(group.rank()) + " is at step " +
                std::to_string(trainer.step()) + "); every rank must see " + checkpoints.string());
  }
  trainer.set_data_parallel(dist::data_parallel(group));
  ckpt.set_data_parallel(group.rank() == 0, [&group] { group.barrier(); }, [&group](bool f) { return group.any(f); });
  run.log("rank " + std::to_string(group.rank()) + " of " + std::to_string(group.world()) + " (" + group.env().launcher +
          "), global batch " + std::to_string(global_batch));
}

}  // namespace gm::experiment
