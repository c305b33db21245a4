#pragma once
/// @file
/// What an experiment binary includes: the trainer and its callbacks, the shared experiment layer
/// (`gm::Experiment`, gm/experiment/), vector data and the MLP from config keys.

#include <gm/data/vectors.hpp>
#include <gm/experiment/experiment.hpp>
#include <gm/nn/keys.hpp>
#include <gm/trainer.hpp>
