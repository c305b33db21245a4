#pragma once
/// @file
/// What an experiment binary includes: the trainer and its callbacks, the shared experiment layer
/// (`gm::Experiment`), vector data and the MLP from config keys.

#include <gm/data/vectors.hpp>
#include <gm/nn/keys.hpp>
#include <gm/train/experiment.hpp>
#include <gm/trainer.hpp>
