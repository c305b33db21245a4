#pragma once
/// @file
/// gm's version. CMake reads the three numbers below; keep their form.

#include <gm/detail/compiled.hpp>
#define GM_VERSION_MAJOR 0
#define GM_VERSION_MINOR 2
#define GM_VERSION_PATCH 0

namespace gm {

/// The library version as "major.minor.patch".
inline constexpr const char* version_string = "0.1.0";

}  // namespace gm
