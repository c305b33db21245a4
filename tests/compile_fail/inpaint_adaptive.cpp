// Must NOT compile: inpainting re-imposes the known values after each step, which an adaptive sampler
// (Dormand-Prince) does not expose.  tests/CMakeLists.txt checks that the compiler's message is gm's sentence.
#include <gm/sampler.hpp>

int main() {
  gm::Inpaint<gm::DopriSampler> inpaint({}, torch::zeros({1, 2}), torch::ones({2}));
  return static_cast<int>(inpaint.evals_per_step());
}
