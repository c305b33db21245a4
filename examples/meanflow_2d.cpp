// One- and few-step generation on 2-D data: a flow map u(x, t, r) trained by MeanFlow (Geng et al. 2025),
// a shortcut model (Frans et al. 2025) or consistency training (ECT, Geng et al. 2025), sampled in 1 step.
//
//   build/examples/meanflow_2d --config configs/meanflow_2d.toml                  # MeanFlow, 1 step
//   build/examples/meanflow_2d --config configs/meanflow_2d.toml --training.objective=shortcut --sampling.nfe=2
//   build/examples/meanflow_2d --config configs/meanflow_2d.toml --training.objective=consistency
//       --sampling.sampler=consistency
//
// The data defaults to the ring of 8 Gaussians (configs/mixtures/ring8.toml), whose log-density scores the
// samples exactly; benchmarks/bench_fewstep.cpp measures each objective against the mixture's exact flow map.
#include <gm/experiment.hpp>
#include <gm/experiment/few_step.hpp>

template <class Objective>
using FlowMapTrainer = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<Objective>, gm::MLP, gm::FlowMapSampler,
                                   gm::LogitNormalTime>;

int main(int argc, char** argv) {
  gm::Experiment ex("meanflow_2d", "One- and few-step flow maps (MeanFlow, shortcut, consistency) on 2-D data.");
  auto& cfg = ex.config();
  gm::data::VectorData::add_keys(cfg, "mixture", "configs/mixtures/ring8.toml");
  gm::add_mlp_keys(cfg);
  gm::add_flow_map_keys(cfg);
  return ex.main(argc, argv, [&] {
    const auto data = gm::data::VectorData::from_config(cfg);
    gm::visit_flow_map_objective(cfg, [&]<class Objective>(Objective objective) {
      FlowMapTrainer<Objective> trainer(gm::make_mlp(cfg, data.dim(), 2), ex.train_options(), {},
                                        gm::Predict<Objective>(objective), gm::flow_map_time(cfg));
      ex.run<gm::FewStepSamplers>(trainer, data, [&](const torch::Tensor& x) { return data.score(x); });
    });
  });
}
