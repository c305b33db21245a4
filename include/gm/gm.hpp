#pragma once
/// @file
/// Everything in gm.  Include narrower headers (gm/core.hpp, gm/process/vp.hpp, ...) to compile faster.

#include <gm/core.hpp>
#include <gm/sampler/all.hpp>
#include <gm/trainer.hpp>
