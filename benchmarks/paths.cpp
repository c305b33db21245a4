// gm's source tree and the Python of this build, for the benchmarks that run Python baselines.  Compiled
// apart: the benchmarks' own translation units then hold no path of their clone, and ccache serves them to
// every clone of the repository.
#include "bench_util.hpp"

const char* gm::bench::source_dir() { return GM_SOURCE_DIR; }
const char* gm::bench::python() { return GM_PYTHON; }
