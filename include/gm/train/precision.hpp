#pragma once
/// @file
/// Mixed precision: bf16 matrix products with fp32 weights, activations and optimiser state; and the
/// thread setting that suits each precision on CPU.

#include <gm/error.hpp>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/Device.h>

#include <algorithm>
#include <string>
#include <thread>

namespace gm {

/// The arithmetic of the training step's matrix products.
enum class Precision {
  fp32,  ///< everything in float32
  bf16,  ///< matrix products in bfloat16 through torch's autocast; weights, gradients, Adam state in fp32
};

/// "fp32" or "bf16"; anything else is an error naming the value.
inline Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::fp32;
  if (s == "bf16") return Precision::bf16;
  throw Error("gm: precision must be fp32 or bf16, not '" + s + "'");
}

/// While alive, matrix products (linear, addmm, matmul, convolutions) on `device` run in bfloat16 under
/// torch's autocast (Micikevicius et al. 2018, "Mixed Precision Training"; bf16 needs no loss scaling).
/// Networks cast each product's result back to their input's dtype (gm::MLP does), so activations and
/// elementwise work stay in fp32: on this project's AVX-512 CPU, libtorch 1.13's bf16 elementwise kernels
/// (silu and its backward) measured 3-6x slower than fp32, while a bf16 GEMM ran 2-4x faster.
/// With Precision::fp32 the guard does nothing.
class Autocast {
 public:
  Autocast(Precision p, const c10::Device& device) : active_(p == Precision::bf16) {
    if (!active_) return;
    cpu_ = device.is_cpu();
    if (cpu_) {
      was_enabled_ = at::autocast::is_cpu_enabled();
      was_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    } else {
      was_enabled_ = at::autocast::is_enabled();
      was_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    }
    at::autocast::increment_nesting();
  }
  ~Autocast() {
    if (!active_) return;
    // Leaving the outermost region drops the cached bf16 copies of the weights, as torch.autocast does.
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cpu_) {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(was_dtype_);
    } else {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(was_dtype_);
    }
  }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool active_ = false, cpu_ = true, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

/// The intra-op thread count for a training run.  `threads > 0` sets it.  `threads == 0` (auto) leaves
/// torch's default for fp32, whose products run in OpenBLAS's own thread pool (an OpenMP pool beside it
/// measured 1.4x slower per step here, the two pools spinning against each other on 2 cores), and uses
/// every core for bf16 on CPU, whose products run in oneDNN on the OpenMP pool (2 threads: 48 ms per
/// step against 78 ms with 1, MLP 4096 x 512 x 4 layers).  `all_cores` asks for every core in fp32 too:
/// convolutional networks run their convolutions and normalisations on the intra-op pool (gm's UNet at
/// batch 128 on 28x28: 1233 ms per fp32 step with 2 threads against 1660 ms with 1).  Returns the count.
inline int configure_threads(int threads, Precision p, const c10::Device& device, bool all_cores = false) {
  if (threads > 0) {
    at::set_num_threads(threads);
  } else if ((p == Precision::bf16 || all_cores) && device.is_cpu()) {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  return at::get_num_threads();
}

}  // namespace gm
