// Class-conditional rectified flow on Fashion-MNIST: a UNet, label dropout, classifier-free guidance.
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/nn/keys.hpp>

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::HeunSampler>;

int main(int argc, char** argv) {
  gm::Experiment ex("fashion_mnist", "Class-conditional rectified flow on Fashion-MNIST with a UNet and guidance.");
  gm::data::ImageData::add_keys(ex.config());
  gm::add_unet_keys(ex.config(), gm::UNetOptions().channels(32).res_blocks(1));
  gm::add_guidance_keys(ex.config(), 0.1, 2.0);
  ex.config().set_default("training.steps", 1500).set_default("training.batch_size", 128).set_default("training.lr", 1e-3);
  ex.config().set_default("training.precision", "bf16").set_default("training.checkpoint_every", 250);
  ex.config().set_default("training.log_every", 50).set_default("sampling.n", 100).set_default("sampling.nfe", 40);
  return ex.main(argc, argv, [&] {
    auto data = gm::data::ImageData::from_config(ex.config(), ex.device());
    Flow trainer(gm::make_unet(ex.config(), data.sample_shape(), data.num_classes()), ex.train_options());
    ex.run(trainer, data);
  });
}
