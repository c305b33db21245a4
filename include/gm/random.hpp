#pragma once
/// @file
/// Seeded random generators on any device.

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <mutex>

namespace gm {

/// A fresh generator for `device`, seeded with `seed`, independent of torch's global one.
///
/// Pass it to any gm draw (time samplers, `GaussianMixture::sample`) for reproducible results.  On the CPU
/// it is a new `CPUGeneratorImpl`; on other devices a clone of the device's default generator, so it works
/// wherever LibTorch has the device.  (LibTorch 1.13's `Generator::clone` leaks the clone, 2.6 KB each,
/// as LeakSanitizer showed; the CPU path avoids it.)
inline at::Generator make_generator(uint64_t seed, torch::Device device = torch::kCPU) {
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

}  // namespace gm
