// Flow matching with minibatch optimal-transport couplings (Tong et al. 2023's OT-CFM): each batch's data and
// noise are paired by exact OT (the Hungarian method on squared distances) or by the entropic plan
// (Sinkhorn), which straightens the paths the network learns, so fewer steps reach the same error;
// schrodinger_bridge is SB-CFM (Tong et al. 2024): the entropic coupling with Brownian-bridge paths between the
// pairs (training.bridge_sigma), sampled with an ODE sampler on its probability flow.
//
//   build/examples/ot_flow_2d --config configs/ot_flow_2d.toml                        # exact OT, Euler 4 steps
//   build/examples/ot_flow_2d --config configs/ot_flow_2d.toml --training.coupling=independent
//   build/examples/ot_flow_2d --config configs/ot_flow_2d.toml --training.coupling=schrodinger_bridge --sampling.nfe=20
//
// data.source starts the flow from a second data set instead of Gaussian noise (a data-to-data flow, as torchcfm's
// moons -> 8gaussians):
//   build/examples/ot_flow_2d --config configs/ot_flow_2d.toml --data.name=8gaussians --data.source=moons
//
// Under data parallelism every rank draws the global batch, so the coupling covers it, the same on every rank.
// benchmarks/bench_fewstep.cpp measures transport cost, straightness and NFE for a fixed error on the oracle.
#include <gm/experiment.hpp>
#include <gm/experiment/few_step.hpp>

// The coupling is chosen at run time (gm::AnyCoupling): one Trainer for each objective, not for each coupling too.
template <class P>
using CoupledFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<P>, gm::MLP, gm::EulerSampler, gm::UniformTime,
                                gm::UniformWeight, gm::AnyCoupling>;

int main(int argc, char** argv) {
  gm::Experiment ex("ot_flow_2d", "Flow matching with minibatch optimal-transport couplings on 2-D data.");
  auto& cfg = ex.config();
  gm::data::VectorData::add_keys(cfg, "mixture", "configs/mixtures/ring8.toml");
  gm::data::VectorData::add_source_keys(cfg);
  gm::add_mlp_keys(cfg);
  gm::add_coupling_keys(cfg);
  return ex.main(argc, argv, [&] {
    const auto data = gm::data::VectorData::from_config(cfg);
    const auto source = gm::data::VectorData::source_from_config(cfg, data.dim());
    gm::visit_coupling(cfg, [&]<class P>(const gm::AnyCoupling& coupling, P objective) {
      CoupledFlow<P> trainer(gm::make_mlp(cfg, data.dim()), ex.train_options(), {}, gm::Predict<P>(objective), {},
                                      {}, coupling);
      if (source) trainer.set_source([&](int64_t n, const at::Generator& gen) { return (*source)(n, gen); });
      ex.run(trainer, data, [&](const torch::Tensor& x) { return data.score(x); });
    });
  });
}
