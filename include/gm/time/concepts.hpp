#pragma once
/// @file
/// The `TimeSampler` concept: how training draws t.

#include <gm/prediction/concepts.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <concepts>
#include <cstdint>

namespace gm {

/// A time sampler draws n training times in [0, 1].
///
/// `sample(n, process, generator, options)`; the process lets a sampler be defined on log-SNR or on
/// sigma (EDM's lognormal) and map back to t.  An undefined generator (`at::Generator{}`) means torch's
/// global one; pass `gm::make_generator(seed)` for reproducible draws.
template <class T>
concept TimeSampler = std::copy_constructible<T> &&
    requires(const T& s, int64_t n, const detail::ProcessArchetype& ip, const at::Generator& gen,
             const torch::TensorOptions& o) {
      { s.sample(n, ip, gen, o) } -> std::convertible_to<torch::Tensor>;
    };

/// Explains why `T` is not a `TimeSampler`.
template <class T>
consteval bool check_time_sampler() {
  static_assert(TimeSampler<T>,
                "gm: a TimeSampler needs `template <gm::Process I> torch::Tensor sample(int64_t n, const I&, "
                "const at::Generator&, const torch::TensorOptions&) const` returning n times in [0, 1]; see "
                "docs/concepts.md#timesampler.");
  return TimeSampler<T>;
}

}  // namespace gm
