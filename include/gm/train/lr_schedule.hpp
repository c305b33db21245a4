#pragma once
/// @file
/// Learning-rate schedules: linear warmup, then constant, cosine or piecewise-constant.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

namespace gm {

/// The learning rate as a function of the step: `warmup` steps of linear ramp from 0, then
///  - "constant": `lr`;
///  - "cosine": cosine decay from `lr` to `min_lr` at `total` steps (Loshchilov & Hutter, SGDR, 2017);
///  - "piecewise": `pieces` = [[until_step, lr], ...]: each lr holds for steps below its until_step, the
///    last one after it (the seed projects' `--lr_schedule "[[3000, 1e-3], [6000, 1e-4]]"`).
struct LRSchedule {
  std::string kind = "constant";
  double lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup = 0;
  int64_t total = 1;
  std::vector<std::pair<int64_t, double>> pieces;

  double at(int64_t step) const;

  /// Parse "[[3000, 1e-3], [6000, 1e-4]]" (TOML array syntax) into `pieces`; a `gm::Error` naming `what`
  /// otherwise.  Until-steps must increase and rates be positive.
  static std::vector<std::pair<int64_t, double>> parse_pieces(const std::string& text, const std::string& what);
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto LRSchedule::at(int64_t step) const -> double {
  double base = lr;
  if (kind == "cosine") {
    const double u = std::clamp(static_cast<double>(step - warmup) / std::max<int64_t>(1, total - warmup), 0.0, 1.0);
    base = min_lr + 0.5 * (lr - min_lr) * (1 + std::cos(std::numbers::pi * u));
  } else if (kind == "piecewise") {
    base = pieces.empty() ? lr : pieces.back().second;
    for (const auto& [until, v] : pieces) {
      if (step < until) {
        base = v;
        break;
      }
    }
  }
  if (warmup > 0 && step < warmup) return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  return base;
}

GM_INLINE auto LRSchedule::parse_pieces(const std::string& text, const std::string& what)
    -> std::vector<std::pair<int64_t, double>> {
  std::vector<std::pair<int64_t, double>> out;
  const std::string expected = ": expected [[until_step, lr], ...] with increasing steps and finite lr > 0";
  toml::table tbl;
  try {
    tbl = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    throw Error("gm: " + what + ": '" + text + "'" + expected);
  }
  const auto* arr = tbl["v"].as_array();
  if (!arr) throw Error("gm: " + what + ": '" + text + "'" + expected);
  for (const auto& el : *arr) {
    const auto* pair = el.as_array();
    if (!pair || pair->size() != 2) throw Error("gm: " + what + ": '" + text + "'" + expected);
    auto step = (*pair)[0].value_exact<int64_t>();
    auto rate = (*pair)[1].value<double>();
    if (!step || !rate || !std::isfinite(*rate) || *rate <= 0 || *rate > 3.4e38 ||
        (!out.empty() && *step <= out.back().first)) {
      throw Error("gm: " + what + ": '" + text + "'" + expected);
    }
    out.emplace_back(*step, *rate);
  }
  return out;
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
