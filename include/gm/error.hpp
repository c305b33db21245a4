#pragma once
/// @file
/// The exceptions gm throws, one per kind of failure, each with a one-line message; `gm::Experiment` maps
/// each to its own exit code.

#include <cstdint>
#include <stdexcept>
#include <string>

namespace gm {

/// Raised for bad input: a malformed file, an unknown key, an out-of-range value.
///
/// The message is one line that names the culprit (file, key, value) and what was expected, so a
/// program can print `e.what()` and exit with a non-zero code.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Raised when the file system fails a write that gm needed (a full disk, an I/O error): one line naming
/// the path and the reason, e.g. `gm: runs/a/checkpoints/.tmp_step_300/model.pt: no space left on device
/// while writing checkpoint step_300`.  What was written before stays intact.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Raised when training produces a non-finite loss, gradient norm or weights: what the step was, so a run
/// can stop before anything non-finite reaches a checkpoint or an export.
class NonFiniteError : public std::runtime_error {
 public:
  NonFiniteError(const std::string& what, int64_t step, double loss, double grad_norm)
      : std::runtime_error(what), step(step), loss(loss), grad_norm(grad_norm) {}
  int64_t step;      ///< the step that went non-finite (1-based, as in history.csv)
  double loss;       ///< its loss
  double grad_norm;  ///< its gradient norm before clipping
};

/// The first line of a message (LibTorch's carry a stack trace after it), for one-line errors.
inline std::string first_line(std::string s) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace gm
