#pragma once
/// @file
/// What a user includes to sample: the core plus every sampler, grid, `Field` and `gm::integrate`.

#include <gm/core.hpp>
#include <gm/sampler/all.hpp>
