#pragma once
/// @file
/// `gm::Metric`: one number computed on samples (a support fraction, a log-likelihood, later FID and
/// bits/dim), as experiments log it and write it to TensorBoard.

#include <string>
#include <vector>

namespace gm {

/// One number computed on samples, with an optional note for the log ("noise: 0.5").
struct Metric {
  std::string name;
  double value = 0;
  std::string note;
};
/// What an experiment's evaluation returns.
using Metrics = std::vector<Metric>;

}  // namespace gm
