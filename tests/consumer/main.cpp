#include <gm/process/linear.hpp>
int main() { return gm::Linear{}.alpha(torch::zeros({1})).item<float>() == 1.0f ? 0 : 1; }
