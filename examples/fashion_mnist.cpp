// Class-conditional rectified flow on Fashion-MNIST: a UNet, label dropout, classifier-free guidance.
//
// training.coupling pairs each batch's images with its noise by minibatch optimal transport (OT-CFM, Tong et al.
// 2023, as torchcfm's CIFAR-10 example `--model otcfm`; coupling_sample=plan draws the pairs as its sample_plan),
// over the whole global batch under data parallelism, and within each class (training.coupling_classes: the
// class-conditional model keeps its conditioning; `across` is torchcfm's one plan over the batch):
//   build/examples/fashion_mnist --training.coupling=exact_ot
//
// data.source starts the flow from a second image set instead of Gaussian noise (an image-to-image flow):
//   build/examples/fashion_mnist --data.source=folder --data.source_root=my_28px_images --data.channels=1 --data.resolution=28
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/experiment/few_step.hpp>
#include <gm/nn/keys.hpp>

// The coupling is chosen at run time (gm::AnyCoupling): one Trainer, not one for each coupling.
using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::HeunSampler, gm::UniformTime,
                         gm::UniformWeight, gm::AnyCoupling>;

int main(int argc, char** argv) {
  gm::Experiment ex("fashion_mnist", "Class-conditional rectified flow on Fashion-MNIST with a UNet and guidance.");
  gm::data::ImageData::add_keys(ex.config());
  gm::data::ImageData::add_source_keys(ex.config());
  gm::add_unet_keys(ex.config(), gm::UNetOptions().channels(32).res_blocks(1));
  gm::add_guidance_keys(ex.config(), 0.1, 2.0);
  gm::add_coupling_keys(ex.config(), "independent", gm::CouplingKeys::pairings);
  ex.config().set_default("training.steps", 1500).set_default("training.batch_size", 128).set_default("training.lr", 1e-3);
  ex.config().set_default("training.precision", "bf16").set_default("training.checkpoint_every", 250);
  ex.config().set_default("training.log_every", 50).set_default("sampling.n", 100).set_default("sampling.nfe", 40);
  return ex.main(argc, argv, [&] {
    auto data = gm::data::ImageData::from_config(ex.config(), ex.device());
    const auto source = gm::data::ImageData::source_from_config(ex.config(), data);
    Flow trainer(gm::make_unet(ex.config(), data.sample_shape(), data.num_classes()), ex.train_options(), {}, {}, {}, {},
                 gm::pairing_from_config(ex.config()));
    if (source) {  // under data parallelism each rank draws and encodes its own rows of the source
      trainer.set_source([&](int64_t n, const at::Generator& gen) { return source->draw(n, gen); },
                         [&](int64_t n, const at::Generator& gen, const torch::Tensor& rows) { return source->draw(n, gen, rows); });
    }
    ex.run(trainer, data);
  });
}
