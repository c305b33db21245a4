// Must NOT compile: a noise prediction cannot give E[x0 | x_t] at t = 1 on the linear interpolant, where
// alpha(1) = 0.  tests/CMakeLists.txt checks that the compiler's message is gm's sentence.
#include <gm/sampler.hpp>

int main() {
  gm::Interpolant<gm::Linear> flow;
  auto model = [](const torch::Tensor& x, const torch::Tensor&) { return x; };
  gm::Field field(flow, gm::Predict<gm::Noise>{}, model);
  return static_cast<int>(field.nfe());
}
