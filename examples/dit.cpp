// A class-conditional Diffusion Transformer (flow matching, guidance) on Fashion-MNIST, CIFAR-10 binary files
// or an image folder (data.name), in pixels or in a TorchScript autoencoder's latents (data.encoder).
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/nn/keys.hpp>

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::DiT, gm::HeunSampler>;

int main(int argc, char** argv) {
  gm::Experiment ex("dit", "A class-conditional DiT with classifier-free guidance on images.");
  gm::data::ImageData::add_keys(ex.config());
  gm::add_dit_keys(ex.config(), "tiny", 4);
  gm::add_guidance_keys(ex.config(), 0.1, 2.0);
  ex.config().set_default("training.steps", 3000).set_default("training.batch_size", 128).set_default("training.lr", 5e-4);
  ex.config().set_default("training.checkpoint_every", 500).set_default("training.log_every", 100);
  ex.config().set_default("training.precision", "bf16");
  ex.config().set_default("sampling.n", 100).set_default("sampling.nfe", 40).set_default("optim.name", "adamw");
  return ex.main(argc, argv, [&] {
    auto data = gm::data::ImageData::from_config(ex.config(), ex.device());
    Flow trainer(gm::make_dit(ex.config(), data.sample_shape(), data.num_classes()), ex.train_options());
    ex.run(trainer, data);
  });
}
