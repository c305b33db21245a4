// Must NOT compile: the one-step flow-map sampler x_r = x_t - (t - r) u(x_t, t, r) needs a model of the
// average velocity (gm::MeanFlow, gm::Shortcut, gm::Consistency); a plain velocity model has no r.
// tests/CMakeLists.txt checks for gm's sentence.
#include <gm/trainer.hpp>

int main() {
  using RectifiedFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::FlowMapSampler>;
  RectifiedFlow trainer{gm::MLP(gm::MLPOptions()), gm::TrainOptions()};
  return static_cast<int>(trainer.sample(gm::SampleOptions().n(4).nfe(1)).size(0));
}
