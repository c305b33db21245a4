#pragma once
/// @file
/// The one exception type gm throws for bad user input.

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

}  // namespace gm
