#pragma once
/// @file
/// Few-step objectives and minibatch couplings from config keys: what examples/meanflow_2d.cpp,
/// examples/ot_flow_2d.cpp, examples/fashion_mnist.cpp and examples/fashion_mnist_meanflow.cpp share.

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
    f(Consistency(Consistency::Options().every(cfg.get<int64_t>("training.ect_every")).c(cfg.get<double>("training.ect_c"))));
  } else {
    throw Error("gm: training.objective must be meanflow, shortcut or consistency, not '" + name + "'");
  }
}

/// Which coupling keys an experiment declares: every coupling with its paths (`all`: the 2-D flows), or the
/// plain pairings alone (`pairings`: independent, exact_ot and sinkhorn with straight paths, what an image
/// experiment offers, as torchcfm's CIFAR-10 example trains I-CFM and OT-CFM).
enum class CouplingKeys { all, pairings };

/// Declare `training.coupling` (independent, exact_ot, sinkhorn, or with `CouplingKeys::all` also
/// schrodinger_bridge), `training.sinkhorn_reg`, `training.sinkhorn_units`, `training.coupling_sample` and, with
/// `CouplingKeys::all`, `training.sigma_min`, `training.bridge_sigma` and `training.bridge_plan`, or with
/// `CouplingKeys::pairings` `training.coupling_classes` (within or across: `TrainOptions::couple_within_classes`).
void add_coupling_keys(Config& cfg, const std::string& coupling = "exact_ot", CouplingKeys keys = CouplingKeys::all);

/// Call `f(coupling)` with the plain pairing `training.coupling` names: gm::IndependentCoupling,
/// gm::ExactOTCoupling or gm::SinkhornCoupling (reg in `training.sinkhorn_units`); `training.coupling_sample =
/// "plan"` draws the pairs from the plan with replacement, as torchcfm's `sample_plan`.  Returns false, calling
/// nothing, for another name (schrodinger_bridge, which `visit_coupling` adds).
template <class F>
bool visit_pairing(const Config& cfg, F&& f) {
  const auto name = cfg.get<std::string>("training.coupling");
  const bool replace = cfg.get<std::string>("training.coupling_sample") == "plan";
  if (name == "independent") {
    f(IndependentCoupling{});
  } else if (name == "exact_ot") {
    f(ExactOTCoupling(ExactOTCoupling::Options().replace(replace)));
  } else if (name == "sinkhorn") {
    const bool relative = cfg.get<std::string>("training.sinkhorn_units") == "relative";
    f(SinkhornCoupling(
        SinkhornCoupling::Options().reg(cfg.get<double>("training.sinkhorn_reg")).relative(relative).replace(replace)));
  } else {
    return false;
  }
  return true;
}

/// The plain pairing `training.coupling` names (independent, exact_ot or sinkhorn, with the keys
/// `visit_pairing` reads) as one type, gm::AnyCoupling: an experiment that takes its coupling from the config
/// instantiates its Trainer once with it, where `visit_pairing` instantiates one per coupling.  Throws, naming
/// the key, for another name.
AnyCoupling pairing_from_config(const Config& cfg);

/// Call `f(coupling, objective)` with what `training.coupling` names, the coupling as gm::AnyCoupling (so f is
/// instantiated once for each objective, not for each coupling as well): gm::IndependentCoupling,
/// gm::ExactOTCoupling or gm::SinkhornCoupling (reg in `training.sinkhorn_units`) with plain velocity matching
/// (gm::Velocity) or, for `training.sigma_min` > 0, torchcfm's Gaussian paths (gm::GaussianPath); or for
/// schrodinger_bridge SB-CFM: gm::SchrodingerBridge's Brownian-bridge paths, sigma = `training.bridge_sigma`,
/// paired by the Sinkhorn coupling at reg = 2 sigma^2 (absolute) or, with `training.bridge_plan = "exact"`,
/// by the exact plan as torchcfm's default.  `training.coupling_sample = "plan"` draws the pairs from the plan
/// with replacement, as torchcfm's `sample_plan`.
template <class F>
void visit_coupling(const Config& cfg, F&& f) {
  const auto name = cfg.get<std::string>("training.coupling");
  const double sigma_min = cfg.get<double>("training.sigma_min");
  AnyCoupling coupling;
  // Plain velocity matching, or torchcfm's Gaussian paths of width sigma_min around each pair's line.
  if (visit_pairing(cfg, [&](auto c) { coupling = c; })) {
    if (sigma_min > 0) f(coupling, GaussianPath(GaussianPath::Options().sigma_min(sigma_min)));
    else f(coupling, Velocity{});
    return;
  }
  if (name == "schrodinger_bridge") {
    if (sigma_min > 0) throw Error("gm: training.sigma_min is for independent, exact_ot and sinkhorn; schrodinger_bridge's "
                                   "width is training.bridge_sigma");
    const double sigma = cfg.get<double>("training.bridge_sigma");
    const bool replace = cfg.get<std::string>("training.coupling_sample") == "plan";
    // torchcfm's SchrodingerBridgeConditionalFlowMatcher pairs on the exact plan by default (ot_method="exact"),
    // its "sinkhorn" at reg = 2 sigma^2 in the cost's own units.
    if (cfg.get<std::string>("training.bridge_plan") == "exact") coupling = ExactOTCoupling(ExactOTCoupling::Options().replace(replace));
    else coupling = SinkhornCoupling(SinkhornCoupling::Options().reg(2 * sigma * sigma).relative(false).replace(replace));
    f(coupling, SchrodingerBridge(SchrodingerBridge::Options().sigma(sigma)));
  } else {
    throw Error("gm: training.coupling must be independent, exact_ot, sinkhorn or schrodinger_bridge, not '" + name + "'");
  }
}

#if GM_HEADER_DEFINITIONS
GM_INLINE AnyCoupling pairing_from_config(const Config& cfg) {
  AnyCoupling out;
  if (!visit_pairing(cfg, [&](auto coupling) { out = AnyCoupling(coupling); })) {
    throw Error("gm: training.coupling must be independent, exact_ot or sinkhorn here, not '" +
                cfg.get<std::string>("training.coupling") + "'");
  }
  return out;
}

GM_INLINE void add_flow_map_keys(Config& cfg, const std::string& objective) {
  cfg.add<std::string>("training.objective", objective,
                       "meanflow (Geng et al. 2025), shortcut (Frans et al. 2025) or consistency (ECT, Geng et al. 2025)",
                       check::one_of({"meanflow", "shortcut", "consistency"}));
  cfg.add<double>("training.t_mean", -0.4, "mean of logit(t) in training (MeanFlow: -0.4)", check::finite());
  cfg.add<double>("training.t_std", 1.0, "std of logit(t) in training (MeanFlow: 1.0)", check::positive());
  cfg.add<double>("training.ratio", 0.25, "meanflow: share of rows with r != t (the rest is flow matching)",
                  check::in_range(0, 1));
  cfg.add<double>("training.adaptive_p", 1.0, "meanflow: adaptive loss weight 1 / (err + 0.01)^p, err each sample's sum of squares (the official code's); 0 plain",
                  check::in_range(0, 4));
  cfg.add<int64_t>("training.shortcut_levels", 7, "shortcut: smallest step 2^-levels (7: 128 steps)", check::in_range(1, 20));
  cfg.add<int64_t>("training.ect_every", 1000, "consistency: training steps per halving of ECT's step",
                   check::in_range(1, 1'000'000'000));
  cfg.add<double>("training.ect_c", 0.0, "consistency: ECT's pseudo-Huber constant c (0: the L2 distance)",
                  check::at_least(0));
  cfg.set_default("sampling.sampler", std::string("flow_map"))
      .set_default("sampling.nfe", int64_t{1})
      .set_default("sampling.t_end", 0.0);
}

GM_INLINE LogitNormalTime flow_map_time(const Config& cfg) {
  return LogitNormalTime(LogitNormalTime::Options().mean(cfg.get<double>("training.t_mean")).std(cfg.get<double>("training.t_std")));
}

GM_INLINE void add_coupling_keys(Config& cfg, const std::string& coupling, CouplingKeys keys) {
  const bool all = keys == CouplingKeys::all;
  cfg.add<std::string>("training.coupling", coupling,
                       all ? "pairs of data and noise in a batch: independent, exact_ot (OT-CFM, Tong et al. 2023), "
                             "sinkhorn, or schrodinger_bridge (SB-CFM, Tong et al. 2024)"
                           : "pairs of data and noise in a batch: independent (I-CFM), exact_ot (OT-CFM, Tong et al. "
                             "2023) or sinkhorn (entropic OT), over the whole global batch",
                       all ? check::one_of({"independent", "exact_ot", "sinkhorn", "schrodinger_bridge"})
                           : check::one_of({"independent", "exact_ot", "sinkhorn"}));
  cfg.add<double>("training.sinkhorn_reg", 0.05, "sinkhorn: entropic regularisation (units: training.sinkhorn_units)",
                  check::positive());
  cfg.add<std::string>("training.sinkhorn_units", "relative",
                       "sinkhorn: reg relative to the batch's mean cost, or absolute (the cost's own units, as POT and "
                       "torchcfm take it)", check::one_of({"relative", "absolute"}));
  cfg.add<std::string>("training.coupling_sample", "permutation",
                       "a coupling with a plan: every data row once with a partner (permutation), or the batch's "
                       "pairs drawn from the plan with replacement (plan: torchcfm's sample_plan)",
                       check::one_of({"permutation", "plan"}));
  if (!all) {  // image experiments: class-conditional networks
    cfg.add<std::string>("training.coupling_classes", "within",
                         "a coupling on a class-conditional model: pair each image with noise within its own class "
                         "(conditional OT, Kerrigan et al. 2024), or across the whole batch (torchcfm's "
                         "sample_plan_with_labels), which weakens the conditioning", check::one_of({"within", "across"}));
    return;
  }
  cfg.add<double>("training.sigma_min", 0.0, "independent, exact_ot, sinkhorn: the constant width of the Gaussian "
                  "paths around each pair's line (torchcfm's sigma); 0: plain flow matching", check::at_least(0));
  cfg.add<double>("training.bridge_sigma", 0.5, "schrodinger_bridge: the Brownian bridge's sigma (coupling reg 2 sigma^2)",
                  check::positive());
  cfg.add<std::string>("training.bridge_plan", "sinkhorn",
                       "schrodinger_bridge: pairs from Sinkhorn's plan at reg 2 sigma^2, or from the exact OT plan "
                       "(torchcfm's default)", check::one_of({"sinkhorn", "exact"}));
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
