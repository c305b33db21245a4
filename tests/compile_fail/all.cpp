// The combinations that must not compile, in one translation unit: the suite then parses torch's headers
// once for all of them instead of once each (29 s against 128 s on 2 cores).  Each file is a complete
// example on its own; here its main is renamed.  tests/CMakeLists.txt checks that the compiler's output
// holds each one's sentence.
#define main noise_on_linear_main
#include "noise_on_linear.cpp"
#undef main
#define main schedule_without_sigma_main
#include "schedule_without_sigma.cpp"
#undef main
#define main inpaint_adaptive_main
#include "inpaint_adaptive.cpp"
#undef main
#define main logvar_without_head_main
#include "logvar_without_head.cpp"
#undef main
#define main flow_map_on_velocity_main
#include "flow_map_on_velocity.cpp"
#undef main

int main() { return 0; }
