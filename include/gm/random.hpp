#pragma once
/// @file
/// Seeded random generators on any device.

#include <gm/detail/compiled.hpp>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <mutex>
#include <vector>

namespace gm {

/// A fresh generator for `device`, seeded with `seed`, independent of torch's global one.
///
/// Pass it to any gm draw (time samplers, `GaussianMixture::sample`) for reproducible results.  On the CPU
/// it is a new `CPUGeneratorImpl`; on other devices a clone of the device's default generator, so it works
/// wherever LibTorch has the device.  (LibTorch 1.13's `Generator::clone` leaks the clone, 2.6 KB each,
/// as LeakSanitizer showed; the CPU path avoids it.)
at::Generator make_generator(uint64_t seed, torch::Device device = torch::kCPU);
#if GM_HEADER_DEFINITIONS
GM_INLINE at::Generator make_generator(uint64_t seed, torch::Device device) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Generator def = at::globalContext().defaultGenerator(device);  // shares the default's state
  at::Generator gen;
  {
    std::lock_guard<std::mutex> lock(def.mutex());
    gen = def.clone();
  }
  gen.set_current_seed(seed);
  return gen;
}
#endif

/// The options of a draw from `gen`: `o` on the generator's device.  A CUDA generator draws only CUDA
/// tensors and a CPU one only CPU tensors, so every draw in gm that takes a generator takes its options from
/// here (scripts/check_random.py checks it) and moves the result where it is needed after.  An undefined
/// generator (torch's default for `o`'s device) keeps `o`.
inline torch::TensorOptions on_generator(const at::Generator& gen, const torch::TensorOptions& o = {}) {
  return gen.defined() ? o.device(gen.device()) : o;
}

/// Rows `rows` of a draw `v` made for a whole batch (a data-parallel rank's share; undefined: all of it).
/// Keep `rows` on `v`'s device: a copy from the host would wait for the device.
inline torch::Tensor keep_rows(const torch::Tensor& v, const torch::Tensor& rows) {
  return rows.defined() ? v.index_select(0, rows.to(v.device())) : v;
}

/// A splitmix64 mix of two numbers: the seed of stream `b` under seed `a`.
uint64_t mix_seed(uint64_t a, uint64_t b);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
#endif

/// The seeds of samples first .. first + n - 1 of a run seeded `seed`: sample i's seed depends on (seed, i)
/// alone, so the i-th sample is the same whatever the batch size or the number of processes.
std::vector<uint64_t> sample_seeds(uint64_t seed, int64_t first, int64_t n);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<uint64_t> sample_seeds(uint64_t seed, int64_t first, int64_t n) {
  std::vector<uint64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = mix_seed(seed, static_cast<uint64_t>(first + i));
  return out;
}
#endif

/// Standard normal draws [seeds.size(), row_shape...], row i from a generator seeded by mix_seed(seeds[i],
/// stream) alone: drawn on the CPU in float32, so they are the same on every device, then moved to `options`.
torch::Tensor row_randn(const std::vector<uint64_t>& seeds, uint64_t stream, at::IntArrayRef row_shape,
                        const torch::TensorOptions& options);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor row_randn(const std::vector<uint64_t>& seeds, uint64_t stream, at::IntArrayRef row_shape,
                                  const torch::TensorOptions& options) {
  std::vector<int64_t> shape{static_cast<int64_t>(seeds.size())};
  shape.insert(shape.end(), row_shape.begin(), row_shape.end());
  auto out = torch::empty(shape, torch::kFloat32);
  for (size_t i = 0; i < seeds.size(); ++i) {
    auto gen = make_generator(mix_seed(seeds[i], stream));
    out[static_cast<int64_t>(i)].copy_(torch::randn(row_shape, gen, on_generator(gen, torch::kFloat32)));
  }
  return out.to(options);
}
#endif

}  // namespace gm
