// One- and two-step class-conditional generation on Fashion-MNIST: a UNet flow map u(x, t, r) trained by
// MeanFlow (Geng et al. 2025), or by the shortcut or consistency objective (training.objective).
//
//   build/examples/fashion_mnist_meanflow --config configs/fashion_mnist_meanflow.toml            # 1 step
//   build/examples/fashion_mnist_meanflow --workdir runs/fmnist_mf --mode=sample --sampling.nfe=2
//   build/examples/fashion_mnist_meanflow --workdir runs/fmnist_mf --mode=sample --sampling.sampler=heun --sampling.nfe=40
//
// The same model runs Heun and the other ODE samplers at r = t, so one run compares 1, 2 and 40 evaluations.
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/experiment/few_step.hpp>
#include <gm/nn/keys.hpp>

template <class Objective>
using FlowMapTrainer = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<Objective>, gm::UNet, gm::FlowMapSampler,
                                   gm::LogitNormalTime>;

int main(int argc, char** argv) {
  gm::Experiment ex("fashion_mnist_meanflow", "One-step class-conditional MeanFlow on Fashion-MNIST with a UNet.");
  auto& cfg = ex.config();
  gm::data::ImageData::add_keys(cfg);
  gm::add_unet_keys(cfg, gm::UNetOptions().channels(32).res_blocks(1));
  gm::add_guidance_keys(cfg, 0.1, 1.0);
  gm::add_flow_map_keys(cfg);
  cfg.set_default("training.steps", 1500).set_default("training.batch_size", 128).set_default("training.lr", 1e-3);
  // fp32: the JVP runs in forward-mode AD, which gm has not checked under bf16 autocast.
  cfg.set_default("training.precision", "fp32").set_default("training.checkpoint_every", 250);
  cfg.set_default("training.log_every", 50).set_default("sampling.n", 100);
  return ex.main(argc, argv, [&] {
    auto data = gm::data::ImageData::from_config(cfg, ex.device());
    gm::visit_flow_map_objective(cfg, [&]<class Objective>(Objective objective) {
      FlowMapTrainer<Objective> trainer(gm::make_unet(cfg, data.sample_shape(), data.num_classes(), 0, 0, 2),
                                        ex.train_options(), {}, gm::Predict<Objective>(objective), gm::flow_map_time(cfg));
      ex.run<gm::FewStepSamplers>(trainer, data);
    });
  });
}
