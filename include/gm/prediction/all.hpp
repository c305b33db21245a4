#pragma once
/// @file
/// Every parameterisation, `Predict<P>` and the loss weightings.

#include <gm/prediction/concepts.hpp>
#include <gm/prediction/edm_precond.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/prediction/tags.hpp>
#include <gm/prediction/weighting.hpp>
