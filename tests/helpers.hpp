#pragma once
// Shared test helpers.

#include <gm/core.hpp>

#include <doctest/doctest.h>
#include <torch/types.h>

#include <string>
#include <tuple>

namespace gm::test {

/// Every schedule gm ships, for TEST_CASE_TEMPLATE.
#define GM_ALL_SCHEDULES gm::Linear, gm::VP, gm::SubVP, gm::VPCosine, gm::Trig, gm::VE, gm::EDM

inline torch::TensorOptions f64() { return torch::TensorOptions().dtype(torch::kFloat64); }

/// max |a - b|.
inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().template item<double>();
}

/// max |a - b| / max(1, |b|).
inline double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs() / b.abs().clamp_min(1)).max().template item<double>();
}

/// Interior times, away from the endpoints where some conversions are singular.
inline torch::Tensor interior_times(int64_t n = 9) { return torch::linspace(0.05, 0.95, n, f64()); }

/// Call f.template operator()<T>() for each T of a tuple type.
template <class Tuple, class F>
void for_each_type(F&& f) {
  [&]<size_t... I>(std::index_sequence<I...>) {
    (f.template operator()<std::tuple_element_t<I, Tuple>>(), ...);
  }(std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}

}  // namespace gm::test
