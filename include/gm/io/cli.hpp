#pragma once
/// @file
/// Command-line parsing with gm's error convention: one line, exit code 2.

#include <gm/detail/compiled.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>

namespace gm::io {

/// Parse `argv` into `app`.  Returns nothing when the program should go on; otherwise the exit code:
/// 0 after printing --help, 2 after printing a one-line error naming the bad flag or value.
std::optional<int> parse_args(CLI::App& app, int argc, char** argv);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::optional<int> parse_args(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "%s: %s (see --help)\n", argc > 0 ? argv[0] : "gm", e.what());
    return 2;
  }
  return std::nullopt;
}
#endif

}  // namespace gm::io
