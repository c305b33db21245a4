#pragma once
/// @file
/// Few-step objectives and minibatch couplings from config keys: what examples/meanflow_2d.cpp,
/// examples/ot_flow_2d.cpp and examples/fashion_mnist_meanflow.cpp share.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/experiment/check.hpp>
#include <gm/io/config.hpp>
#include <gm/time/samplers.hpp>
#include <gm/train/coupling.hpp>
#include <gm/train/flow_map.hpp>

#include <string>

namespace gm {

/// Declare the flow-map keys: `training.objective` (meanflow, shortcut or consistency), the logit-normal
/// times `training.t_mean`, `training.t_std` (MeanFlow's -0.4, 1.0), MeanFlow's `training.ratio` (rows with
/// r != t) and `training.adaptive_p`, the shortcut's `training.shortcut_levels`, consistency training's
/// `training.ect_every` (steps per halving of its step); and default the sampler to `flow_map` at 1 NFE
/// down to t = 0.
void add_flow_map_keys(Config& cfg, const std::string& objective = "meanflow");

/// The logit-normal time sampler of the keys.
LogitNormalTime flow_map_time(const Config& cfg);

/// Call `f(objective)` with the gm::MeanFlow, gm::Shortcut or gm::Consistency that `training.objective`
/// names, its options from the keys.
template <class F>
void visit_flow_map_objective(const Config& cfg, F&& f) {
  const auto name = cfg.get<std::string>("training.objective");
  if (name == "meanflow") {
    f(MeanFlow(MeanFlow::Options().ratio(cfg.get<double>("training.ratio")).power(cfg.get<double>("training.adaptive_p"))));
  } else if (name == "shortcut") {
    f(Shortcut(Shortcut::Options().levels(cfg.get<int64_t>("training.shortcut_levels"))));
  } else if (name == "consistency") {
    f(Consistency(Consistency::Options().every(cfg.get<int64_t>("training.ect_every"))));
  } else {
    throw Error("gm: training.objective must be meanflow, shortcut or consistency, not '" + name + "'");
  }
}

/// Declare `training.coupling` (independent, exact_ot, sinkhorn or schrodinger_bridge), `training.sinkhorn_reg`
/// and `training.bridge_sigma`.
void add_coupling_keys(Config& cfg, const std::string& coupling = "exact_ot");

/// Call `f(coupling, objective)` with what `training.coupling` names: gm::IndependentCoupling,
/// gm::ExactOTCoupling or gm::SinkhornCoupling with plain velocity matching (gm::Velocity), or for
/// schrodinger_bridge SB-CFM: the Sinkhorn coupling at reg = 2 sigma^2 (absolute) with gm::SchrodingerBridge's
/// Brownian-bridge paths, sigma = `training.bridge_sigma`.
template <class F>
void visit_coupling(const Config& cfg, F&& f) {
  const auto name = cfg.get<std::string>("training.coupling");
  if (name == "independent") {
    f(IndependentCoupling{}, Velocity{});
  } else if (name == "exact_ot") {
    f(ExactOTCoupling{}, Velocity{});
  } else if (name == "sinkhorn") {
    f(SinkhornCoupling(SinkhornCoupling::Options().reg(cfg.get<double>("training.sinkhorn_reg"))), Velocity{});
  } else if (name == "schrodinger_bridge") {
    const double sigma = cfg.get<double>("training.bridge_sigma");
    f(SinkhornCoupling(SinkhornCoupling::Options().reg(2 * sigma * sigma).relative(false)),
      SchrodingerBridge(SchrodingerBridge::Options().sigma(sigma)));
  } else {
    throw Error("gm: training.coupling must be independent, exact_ot, sinkhorn or schrodinger_bridge, not '" + name + "'");
  }
}

#if GM_HEADER_DEFINITIONS
GM_INLINE void add_flow_map_keys(Config& cfg, const std::string& objective) {
  cfg.add<std::string>("training.objective", objective,
                       "meanflow (Geng et al. 2025), shortcut (Frans et al. 2025) or consistency (ECT, Geng et al. 2025)",
                       check::one_of({"meanflow", "shortcut", "consistency"}));
  cfg.add<double>("training.t_mean", -0.4, "mean of logit(t) in training (MeanFlow: -0.4)", check::finite());
  cfg.add<double>("training.t_std", 1.0, "std of logit(t) in training (MeanFlow: 1.0)", check::positive());
  cfg.add<double>("training.ratio", 0.25, "meanflow: share of rows with r != t (the rest is flow matching)",
                  check::in_range(0, 1));
  cfg.add<double>("training.adaptive_p", 1.0, "meanflow: adaptive loss weight 1 / (err + 1e-3)^p; 0 plain squared error",
                  check::in_range(0, 4));
  cfg.add<int64_t>("training.shortcut_levels", 7, "shortcut: smallest step 2^-levels (7: 128 steps)", check::in_range(1, 20));
  cfg.add<int64_t>("training.ect_every", 1000, "consistency: training steps per halving of ECT's step",
                   check::in_range(1, 1'000'000'000));
  cfg.set_default("sampling.sampler", std::string("flow_map"))
      .set_default("sampling.nfe", int64_t{1})
      .set_default("sampling.t_end", 0.0);
}

GM_INLINE LogitNormalTime flow_map_time(const Config& cfg) {
  return LogitNormalTime(LogitNormalTime::Options().mean(cfg.get<double>("training.t_mean")).std(cfg.get<double>("training.t_std")));
}

GM_INLINE void add_coupling_keys(Config& cfg, const std::string& coupling) {
  cfg.add<std::string>("training.coupling", coupling,
                       "pairs of data and noise in a batch: independent, exact_ot (OT-CFM, Tong et al. 2023), sinkhorn, "
                       "or schrodinger_bridge (SB-CFM, Tong et al. 2024)",
                       check::one_of({"independent", "exact_ot", "sinkhorn", "schrodinger_bridge"}));
  cfg.add<double>("training.sinkhorn_reg", 0.05, "sinkhorn: entropic regularisation, relative to the mean cost",
                  check::positive());
  cfg.add<double>("training.bridge_sigma", 0.5, "schrodinger_bridge: the Brownian bridge's sigma (coupling reg 2 sigma^2)",
                  check::positive());
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
