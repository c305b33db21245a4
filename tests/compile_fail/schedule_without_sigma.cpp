// Must NOT compile: a schedule with alpha but no sigma.  tests/CMakeLists.txt checks the sentence.
#include <gm/process/interpolant.hpp>

struct OnlyAlpha {
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
};
static_assert(gm::check_schedule<OnlyAlpha>());

int main() { return 0; }
