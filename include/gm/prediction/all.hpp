#pragma once
/// @file
/// Every parameterisation, `Predict<P>` and the loss weightings (VDM's ELBO included).

#include <gm/prediction/concepts.hpp>
#include <gm/prediction/edm_precond.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/prediction/tags.hpp>
#include <gm/prediction/vdm_elbo.hpp>
#include <gm/prediction/weighting.hpp>
