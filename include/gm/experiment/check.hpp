#pragma once
/// @file
/// What an experiment checks before it writes anything, and what its errors become: the exit codes, the
/// device check, the one-line error of every exception, and `--mode=check`'s line.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace gm {

/// Exit codes of an experiment binary.
namespace exit_code {
inline constexpr int ok = 0;         ///< finished
inline constexpr int failure = 1;    ///< an error inside the run (LibTorch, the file system)
inline constexpr int bad_input = 2;  ///< a bad flag, key, value, file, path or device; nothing was written
inline constexpr int non_finite = 3; ///< training or sampling went non-finite (the line says where); checkpoints are intact
inline constexpr int io_error = 4;   ///< a write failed (a full disk); earlier outputs and checkpoints are intact
/// Stopped early by SIGTERM, SIGINT or SIGUSR1 (on any rank) with a checkpoint saved: run the same command
/// again to continue.  A launcher reads it as "requeue me" (scripts/slurm/train.sbatch does); 75 is
/// sysexits.h's EX_TEMPFAIL, "a temporary failure: retry later".
inline constexpr int requeue = 75;
}  // namespace exit_code

namespace experiment {

/// A message as one line starting with "gm: " (LibTorch's messages span several).
std::string one_line(std::string s);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s) {
    if (c == '\n') c = ' ';
  }
  return s.rfind("gm:", 0) == 0 ? s : "gm: " + s;
}
#endif

/// Run `body`, turning every exception into one line on stderr and its exit code: `gm::Error` (bad input)
/// 2, `gm::NonFiniteError` 3, `gm::IoError` 4, anything else 1.  No stack trace reaches the user.
int guarded(const std::function<int()>& body);
#if GM_HEADER_DEFINITIONS
GM_INLINE int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return exit_code::bad_input;
  } catch (const NonFiniteError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return exit_code::non_finite;
  } catch (const IoError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return exit_code::io_error;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "%s\n", one_line(e.what_without_backtrace()).c_str());
    return exit_code::failure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", one_line(e.what()).c_str());
    return exit_code::failure;
  }
}
#endif

/// The device `name` names, if this LibTorch and machine have it; else a one-line `gm::Error` naming it.
torch::Device checked_device(const std::string& name);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Device checked_device(const std::string& name) {
  std::optional<torch::Device> d;
  try {
    d.emplace(name);
  } catch (const c10::Error&) {
    throw Error("gm: device '" + name + "' is not a device (expected cpu, cuda or cuda:N)");
  }
  if (d->is_cuda()) {
    if (!torch::cuda::is_available()) {
      throw Error("gm: device '" + name + "' is not available (this LibTorch has no CUDA, or no GPU is visible)");
    }
    if (d->has_index() && d->index() >= static_cast<int>(torch::cuda::device_count())) {
      throw Error("gm: device '" + name + "' is not available (" + std::to_string(torch::cuda::device_count()) +
                  " GPU(s) visible)");
    }
  } else if (!d->is_cpu()) {
    throw Error("gm: device '" + name + "' is not supported (gm runs on cpu and cuda)");
  }
  return *d;
}
#endif

/// `x.describe()` and ", " where `x` has one (data, networks), else nothing: the run's first log line.
template <class X>
std::string describe(const X& x) {
  if constexpr (requires { x.describe(); }) return x.describe() + ", ";
  else return "";
}

/// A number as `%g` prints it, for names and log lines.
std::string number(double x);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string number(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", x);
  return b;
}
#endif

/// `--mode=check`: every key, the data, the network and the sampler were built and checked, and nothing was
/// written; one line says so (a sweep checks its lines this way before submitting them).
template <class Data, class Net>
void report_check(const std::string& name, const Data& data, const Net& net, int64_t steps) {
  std::printf("%s: config ok: %s%s%lld steps\n", name.c_str(), describe(data).c_str(), describe(net).c_str(),
              static_cast<long long>(steps));
}

}  // namespace experiment
}  // namespace gm
