// Must NOT compile: EDM2's learned log-variance weighting needs a network that predicts the log-variance
// (logvar(t), as gm::EDM2UNet); ADM's UNet has none.  tests/CMakeLists.txt checks for gm's sentence.
#include <gm/nn/unet.hpp>
#include <gm/trainer.hpp>

int main() {
  using T = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::UNet, gm::HeunSampler,
                        gm::EDMLogNormalTime, gm::LearnedLogVar<gm::EDMWeight>>;
  T trainer(gm::UNet(gm::UNetOptions().image_size(8)), gm::TrainOptions());
  return static_cast<int>(trainer.step());
}
