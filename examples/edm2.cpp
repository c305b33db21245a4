// EDM2's network and loss (Karras et al. 2024) on EDM's recipe: the magnitude-preserving UNet (forced weight
// normalisation, mp_silu, mp_sum, mp_cat, MPFourier, no biases or GroupNorm) and the learned log-variance
// weighting loss = w / e^u * ||D - x0||^2 + u, with EDM2's noise levels ln sigma ~ N(-0.4, 1.0).
//
//   build/examples/edm2 --config configs/edm2.toml            # Fashion-MNIST, about 1.2M parameters
//
// examples/edm.cpp is the same recipe with ADM's UNet; scripts/compare_edm2.sh trains both side by side.
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/experiment/edm.hpp>
#include <gm/nn/edm2_unet.hpp>
#include <gm/nn/keys.hpp>

using EDM2Trainer = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::EDM2UNet, gm::HeunSampler,
                                gm::EDMLogNormalTime, gm::LearnedLogVar<gm::EDMWeight>>;

int main(int argc, char** argv) {
  gm::Experiment ex("edm2", "EDM2's magnitude-preserving UNet with the learned log-variance weighting, on images.");
  auto& cfg = ex.config();
  gm::data::ImageData::add_keys(cfg);
  gm::add_edm2_unet_keys(cfg, gm::EDM2UNetOptions().channels(32).channel_mult({1, 2, 2}).res_blocks(1)
                                  .attention_resolutions({}));
  gm::add_guidance_keys(cfg, 0.0, 1.0);
  gm::add_edm_keys(cfg, -0.4, 1.0);
  cfg.set_default("training.steps", 2000).set_default("training.batch_size", 128).set_default("training.lr", 1e-2);
  cfg.set_default("training.checkpoint_every", 500).set_default("training.log_every", 50);
  cfg.set_default("sampling.n", 100).set_default("sampling.nfe", 36).set_default("sampling.t_end", 0.0);
  return ex.main(argc, argv, [&] {
    auto data = gm::data::ImageData::from_config(cfg, ex.device());
    if (data.augment_dim() > 0) {
      throw gm::Error("gm: data.augment needs augmentation labels in the network; EDM2's UNet takes none (EDM2 trains "
                      "without augmentation): use examples/edm for data.augment > 0");
    }
    EDM2Trainer trainer(gm::make_edm2_unet(cfg, data.sample_shape(), data.num_classes()), ex.train_options(),
                        gm::edm_process(cfg), gm::edm_precond(cfg), gm::edm_time(cfg),
                        gm::LearnedLogVar<gm::EDMWeight>(gm::edm_weight(cfg)));
    ex.run(trainer, data);
  });
}
