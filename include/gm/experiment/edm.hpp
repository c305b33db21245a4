#pragma once
/// @file
/// EDM's training recipe from config keys: the process, the preconditioning, the noise-level distribution
/// and the loss weighting that examples/edm.cpp and examples/edm2.cpp share.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/config.hpp>
#include <gm/prediction/edm_precond.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/prediction/weighting.hpp>
#include <gm/process/edm.hpp>
#include <gm/process/interpolant.hpp>
#include <gm/time/samplers.hpp>

namespace gm {

/// Declare EDM's keys (Karras et al. 2022, table 1): `process.sigma_min` (0.002), `process.sigma_max` (80),
/// `process.rho` (7), `process.sigma_data` (0.5), and the log-normal noise levels' `training.p_mean` and
/// `training.p_std` (EDM: -1.2 and 1.2; EDM2: -0.4 and 1.0).
void add_edm_keys(Config& cfg, double p_mean = -1.2, double p_std = 1.2);

/// The EDM process of the keys.
Interpolant<EDM> edm_process(const Config& cfg);
/// EDM's preconditioning with the keys' sigma_data.
Predict<EDMPrecond> edm_precond(const Config& cfg);
/// ln sigma ~ N(p_mean, p_std^2).
EDMLogNormalTime edm_time(const Config& cfg);
/// EDM's lambda(sigma) with the keys' sigma_data.
EDMWeight edm_weight(const Config& cfg);

#if GM_HEADER_DEFINITIONS
GM_INLINE void add_edm_keys(Config& cfg, double p_mean, double p_std) {
  cfg.add<double>("process.sigma_min", 0.002, "EDM: the smallest noise level", check::positive());
  cfg.add<double>("process.sigma_max", 80.0, "EDM: the largest noise level", check::positive());
  cfg.add<double>("process.rho", 7.0, "EDM: the time warp's exponent (a uniform grid in t is EDM's rho-spaced one)",
                  check::positive());
  cfg.add<double>("process.sigma_data", 0.5, "EDM: the data's standard deviation in the preconditioning and weighting",
                  check::positive());
  cfg.add<double>("training.p_mean", p_mean, "mean of ln(sigma) in training (EDM: -1.2, EDM2: -0.4)");
  cfg.add<double>("training.p_std", p_std, "std of ln(sigma) in training (EDM: 1.2, EDM2: 1.0)", check::positive());
}

GM_INLINE Interpolant<EDM> edm_process(const Config& cfg) {
  const double lo = cfg.get<double>("process.sigma_min"), hi = cfg.get<double>("process.sigma_max");
  if (!(lo < hi)) {
    throw Error("gm: process.sigma_min = " + std::to_string(lo) + " must be below process.sigma_max = " + std::to_string(hi));
  }
  return Interpolant<EDM>(EDM(EDM::Options().sigma_min(lo).sigma_max(hi).rho(cfg.get<double>("process.rho"))));
}

GM_INLINE Predict<EDMPrecond> edm_precond(const Config& cfg) {
  return Predict<EDMPrecond>(EDMPrecond(EDMPrecond::Options().sigma_data(cfg.get<double>("process.sigma_data"))));
}

GM_INLINE EDMLogNormalTime edm_time(const Config& cfg) {
  return EDMLogNormalTime(EDMLogNormalTime::Options().p_mean(cfg.get<double>("training.p_mean"))
                              .p_std(cfg.get<double>("training.p_std")));
}

GM_INLINE EDMWeight edm_weight(const Config& cfg) {
  return EDMWeight(EDMWeight::Options().sigma_data(cfg.get<double>("process.sigma_data")));
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
