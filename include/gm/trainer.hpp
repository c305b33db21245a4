#pragma once
/// @file
/// What a user includes to train: the core, samplers, networks, toy data, the trainer and its callbacks,
/// configs and output helpers.

#include <gm/core.hpp>
#include <gm/data/features.hpp>
#include <gm/data/toy2d.hpp>
#include <gm/io/config.hpp>
#include <gm/io/export.hpp>
#include <gm/io/npy.hpp>
#include <gm/io/plot.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/sampler/all.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/profiler.hpp>
#include <gm/train/lr_schedule.hpp>
#include <gm/train/run_dir.hpp>
#include <gm/train/trainer.hpp>
#include <gm/type_list.hpp>
