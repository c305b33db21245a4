// Rectified flow (Linear + Velocity) on 2-D toys with an MLP, sampled with Heun: gm's embedded default.
//
//   build/examples/flow_2d --config configs/flow_2d.toml [--training.steps=3000] [--workdir runs/my_run]
//
// gm::Experiment owns the standard keys, the run folder (config.toml, meta.json, log.txt, history.csv,
// loss.png, TensorBoard events, checkpoints/, samples/), resume, signals, export and --mode=sample.  This
// file declares the types, the data and model keys, and scores samples by what the data knows exactly:
// the fraction inside the checkerboard's support (0.5 for noise), or a mixture's log-likelihood.
#include <gm/experiment.hpp>

using RectifiedFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

int main(int argc, char** argv) {
  gm::Experiment ex("flow_2d", "Rectified flow on a 2-D toy with an MLP.");
  gm::data::VectorData::add_keys(ex.config(), "checkerboard");
  gm::add_mlp_keys(ex.config());
  return ex.main(argc, argv, [&] {
    const auto data = gm::data::VectorData::from_config(ex.config());
    RectifiedFlow trainer(gm::make_mlp(ex.config(), data.dim()), ex.train_options());
    ex.run(trainer, data, [&](const torch::Tensor& x) { return data.score(x); });
  });
}
