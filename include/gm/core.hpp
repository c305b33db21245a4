#pragma once
/// @file
/// The mathematical core: schedules and `Interpolant<S>`, parameterisations and `Predict<P>`, loss
/// weightings, time samplers, and the Gaussian-mixture oracle.

#include <gm/data/gaussian_mixture.hpp>
#include <gm/error.hpp>
#include <gm/prediction/all.hpp>
#include <gm/process/all.hpp>
#include <gm/random.hpp>
#include <gm/runtime.hpp>
#include <gm/time/all.hpp>
#include <gm/version.hpp>
