#pragma once
/// @file
/// Every schedule and `Interpolant<S>`.

#include <gm/process/concepts.hpp>
#include <gm/process/edm.hpp>
#include <gm/process/interpolant.hpp>
#include <gm/process/linear.hpp>
#include <gm/process/schedule.hpp>
#include <gm/process/trig.hpp>
#include <gm/process/vdm.hpp>
#include <gm/process/ve.hpp>
#include <gm/process/vp.hpp>
#include <gm/process/vp_cosine.hpp>
#include <gm/process/zero_snr.hpp>
