#pragma once
// Shared test helpers.

#include <gm/core.hpp>
#include <gm/error.hpp>
#include <gm/type_list.hpp>

#include <doctest/doctest.h>
#include <torch/types.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace gm::test {

/// A heavy test case runs in a ctest test of its own, under its own name: `TEST_CASE("..." *
/// gm::test::own_process)`.  The others run 8 to a process (cmake/gm_test_groups.py), which saves starting
/// LibTorch (about 0.4 s) for each.  For a case over about 2.5 s on 2 cores.
inline const doctest::test_suite own_process("own_process");

/// Every schedule gm ships, for TEST_CASE_TEMPLATE.
#define GM_ALL_SCHEDULES gm::Linear, gm::VP, gm::SubVP, gm::VPCosine, gm::Trig, gm::VE, gm::EDM, gm::LearnedSchedule

inline torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// max |a - b|.
inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().template item<double>();
}

/// max |a - b| / max(1, |b|).
inline double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs() / b.abs().clamp_min(1)).max().template item<double>();
}

/// The error message of `f`, or "" when it does not throw gm::Error.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const gm::Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Interior times, away from the endpoints where some conversions are singular.
inline torch::Tensor interior_times(int64_t n = 9) { return torch::linspace(0.05, 0.95, n, f64()); }

/// A path for a scratch folder named after `name` and the process, removed if it exists (not created).
inline std::filesystem::path fresh_dir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() / ("gm_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d;
}

/// A temporary file holding `text`, removed at scope exit; `tag` and `ext` make its name.
struct TempFile {
  std::filesystem::path path;
  TempFile(const std::string& text, const std::string& tag, const std::string& ext = ".toml") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("gm_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ext);
    std::ofstream(path) << text;
  }
  ~TempFile() { std::filesystem::remove(path); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

#ifndef GM_PYTHON
#define GM_PYTHON "python3"
#endif
/// The source tree, from the environment ctest sets (GM_SOURCE_DIR), else the working directory's: not a
/// compile-time path, so the compiled tests are the same in every clone and ccache serves them.
inline std::filesystem::path source_dir() {
  const char* d = std::getenv("GM_SOURCE_DIR");
  return d && *d ? std::filesystem::path(d) : std::filesystem::current_path();
}

/// The Python with torch, numpy, scipy and the peers: scripts/setup.sh's environment (CMake's GM_PYTHON).
inline const char* python() { return GM_PYTHON; }

/// Write `script` to `dir`/`name` (creating `dir`) and run it with gm::test::python() and `args`; false when
/// it fails, with its error output in `dir`/`name`.err.
inline bool run_python(const std::filesystem::path& dir, const std::string& name, const std::string& script,
                       const std::string& args) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name) << script;
  const std::string cmd = std::string(python()) + " " + (dir / name).string() + " " + args + " 2>" +
                          (dir / (name + ".err")).string();
  return std::system(cmd.c_str()) == 0;
}

}  // namespace gm::test
