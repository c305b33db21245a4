// Conditional generation from a coarse input (seed 003's downscaling): a UNet sees each Fashion-MNIST image's
// 7x7 average pooling as an extra channel and learns to generate 28x28 images that agree with it.
#include <gm/data/coarse.hpp>
#include <gm/experiment.hpp>
#include <gm/nn/keys.hpp>

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::HeunSampler>;

int main(int argc, char** argv) {
  gm::Experiment ex("downscale", "28x28 Fashion-MNIST images generated from their 7x7 average pooling.");
  gm::data::ImageData::add_keys(ex.config());
  gm::add_unet_keys(ex.config(), gm::UNetOptions().channels(32).res_blocks(1));
  ex.config().add<int64_t>("data.pool", 4, "average-pooling factor of the coarse input (28 / 4 = 7x7)", gm::check::at_least(2));
  ex.config().set_default("model.class_conditional", false).set_default("training.steps", 1500);
  ex.config().set_default("training.batch_size", 128).set_default("training.lr", 1e-3).set_default("training.precision", "bf16");
  ex.config().set_default("sampling.n", 100).set_default("sampling.nfe", 40).set_default("training.checkpoint_every", 250);
  return ex.main(argc, argv, [&] {
    gm::data::CoarseToFine data(gm::data::ImageData::from_config(ex.config(), ex.device()),
                                gm::data::ImageData::read(ex.config(), "test"), ex.config().get<int64_t>("data.pool"));
    Flow trainer(gm::make_unet(ex.config(), data.sample_shape(), 0, data.sample_shape()[0]), ex.train_options());
    ex.run(trainer, data, [&](const torch::Tensor& u8) { return data.closeness(u8); });
  });
}
