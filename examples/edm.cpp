// EDM's recipe (Karras et al. 2022) on images: the EDM process (sigma from 0.002 to 80 on the rho = 7 warp),
// EDM's preconditioned denoiser, log-normal noise levels, EDM's loss weighting, Heun sampling, and EDM's
// non-leaky augmentation (data.augment) with its 9 labels going into the UNet.
//
//   build/examples/edm --config configs/cifar10_edm.toml      # EDM's CIFAR-10 settings (a GPU's work)
//   build/examples/edm --data.name=fashion_mnist --data.root=/usr/share/datasets/fashion-mnist
//
// examples/edm2.cpp is the same recipe with EDM2's magnitude-preserving UNet.
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/experiment/edm.hpp>
#include <gm/nn/keys.hpp>

using EDMTrainer = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::UNet, gm::HeunSampler,
                               gm::EDMLogNormalTime, gm::EDMWeight>;

int main(int argc, char** argv) {
  gm::Experiment ex("edm", "EDM's recipe on images: EDM preconditioning, log-normal noise levels, Heun, augmentation.");
  auto& cfg = ex.config();
  gm::data::ImageData::add_keys(cfg, "cifar10", "data/cifar-10-batches-bin");
  gm::add_unet_keys(cfg, gm::UNetOptions().channels(32).channel_mult({1, 2, 2}).res_blocks(1).attention_resolutions({}));
  gm::add_guidance_keys(cfg, 0.0, 1.0);
  gm::add_edm_keys(cfg);
  cfg.set_default("training.steps", 2000).set_default("training.batch_size", 128).set_default("training.lr", 1e-3);
  cfg.set_default("training.checkpoint_every", 500).set_default("training.log_every", 50);
  cfg.set_default("sampling.n", 100).set_default("sampling.nfe", 36).set_default("sampling.t_end", 0.0);
  return ex.main(argc, argv, [&] {
    auto data = gm::data::ImageData::from_config(cfg, ex.device());
    EDMTrainer trainer(gm::make_unet(cfg, data.sample_shape(), data.num_classes(), 0, data.augment_dim()),
                       ex.train_options(), gm::edm_process(cfg), gm::edm_precond(cfg), gm::edm_time(cfg), gm::edm_weight(cfg));
    ex.run(trainer, data);
  });
}
