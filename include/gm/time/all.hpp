#pragma once
/// @file
/// Every time sampler.

#include <gm/time/concepts.hpp>
#include <gm/time/samplers.hpp>
