#pragma once
/// @file
/// Mixed precision: bf16 or fp16 matrix products with fp32 weights, activations and optimiser state, the
/// dynamic loss scale that fp16 needs, the choice of precision by device ("auto"), and the thread setting
/// that suits each precision on CPU.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/runtime.hpp>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/Device.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

namespace gm {

/// The arithmetic of the training step's matrix products.
enum class Precision {
  fp32,  ///< everything in float32
  bf16,  ///< matrix products in bfloat16 through torch's autocast; weights, gradients, Adam state in fp32
  fp16,  ///< matrix products in float16 through torch's autocast, with a dynamic loss scale (gm::LossScaler)
};

const char* precision_name(Precision p);
#if GM_HEADER_DEFINITIONS
GM_INLINE const char* precision_name(Precision p) {
  switch (p) {
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
    default: return "fp32";
  }
}
#endif

/// What "auto" chose, and why (for the log).
struct PrecisionChoice {
  Precision precision = Precision::fp32;
  std::string reason;
};

/// Whether `device` runs bf16 products fast: a CUDA GPU of compute capability 8.0 or later (Ampere on,
/// whose tensor cores take bf16), or a CPU with AVX-512 BF16 or AMX-BF16 (gm::cpu_has_bf16). Elsewhere bf16
/// is emulated: fashion_mnist's UNet step measured 47 s in bf16 against 2.4 s in fp32 on an AVX2-only CPU.
///
/// The environment variable GM_AUTO_PRECISION=bf16 (or fp32) makes "auto" resolve to that on any device, so
/// a machine without bf16 instructions runs what a user's machine with them runs (emulated: slower, not
/// wrong); the suite uses it to run its comparisons of numbers where auto is bf16.  Another value is an error.
PrecisionChoice auto_precision(const c10::Device& device);
#if GM_HEADER_DEFINITIONS
GM_INLINE PrecisionChoice auto_precision(const c10::Device& device) {
  if (const char* forced = std::getenv("GM_AUTO_PRECISION"); forced && *forced) {
    const std::string f = forced;
    if (f == "bf16") return {Precision::bf16, "GM_AUTO_PRECISION=bf16 in the environment"};
    if (f == "fp32") return {Precision::fp32, "GM_AUTO_PRECISION=fp32 in the environment"};
    throw Error("gm: GM_AUTO_PRECISION must be bf16 or fp32 (or unset), not '" + f + "'");
  }
  if (device.is_cuda()) {
    if (at::detail::getCUDAHooks().supportsBFloat16ConvolutionWithCuDNNv8()) {
      return {Precision::bf16, "a CUDA GPU with bf16 tensor cores (compute capability >= 8.0)"};
    }
    return {Precision::fp32, "a CUDA GPU without bf16 tensor cores (compute capability < 8.0; fp16 is an option)"};
  }
  if (device.is_cpu()) {
    if (cpu_has_bf16()) return {Precision::bf16, "a CPU with " + cpu_bf16_features()};
    return {Precision::fp32, "a CPU without AVX-512 BF16 or AMX, where bf16 products are emulated (~20x slower)"};
  }
  return {Precision::fp32, "a " + device.str() + " device, whose bf16 speed gm does not know"};
}
#endif

/// "fp32", "bf16", "fp16" or "auto" (resolved for `device`, see gm::auto_precision); anything else is an
/// error naming the value.
Precision parse_precision(const std::string& s, const c10::Device& device = c10::kCPU);
#if GM_HEADER_DEFINITIONS
GM_INLINE Precision parse_precision(const std::string& s, const c10::Device& device) {
  if (s == "fp32") return Precision::fp32;
  if (s == "bf16") return Precision::bf16;
  if (s == "fp16") {
    if (!device.is_cuda()) throw Error("gm: precision fp16 needs a CUDA device (it is " + device.str() + "); use bf16 or fp32");
    return Precision::fp16;
  }
  if (s == "auto") return auto_precision(device).precision;
  throw Error("gm: precision must be auto, fp32, bf16 or fp16, not '" + s + "'");
}
#endif

/// While alive, matrix products (linear, addmm, matmul, convolutions) on `device` run in bfloat16 or
/// float16 under torch's autocast, through the device-typed API of LibTorch 2.x (Micikevicius et al. 2018,
/// "Mixed Precision Training"; bf16 needs no loss scaling, fp16 a gm::LossScaler). gm's networks cast each
/// product's result back to their input's dtype and run their normalisations in fp32, so activations and
/// elementwise work stay in fp32: on an AVX-512 CPU, libtorch's bf16 elementwise kernels (silu and its
/// backward) measured 3-6x slower than fp32, while a bf16 GEMM ran 2-4x faster. With Precision::fp32 the
/// guard does nothing.
class Autocast {
 public:
  Autocast(Precision p, const c10::Device& device);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE Autocast::Autocast(Precision p, const c10::Device& device)
    : active_(p != Precision::fp32), type_(device.type()) {
  if (!active_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(type_);
  was_dtype_ = at::autocast::get_autocast_dtype(type_);
  at::autocast::set_autocast_enabled(type_, true);
  at::autocast::set_autocast_dtype(type_, p == Precision::fp16 ? at::kHalf : at::kBFloat16);
  at::autocast::increment_nesting();
}

GM_INLINE Autocast::~Autocast() {
  if (!active_) return;
  // Leaving the outermost region drops the cached low-precision copies of the weights, as torch.autocast does.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(type_, was_enabled_);
  at::autocast::set_autocast_dtype(type_, was_dtype_);
}
#endif  // GM_HEADER_DEFINITIONS

/// The dynamic loss scale of fp16 training, as torch.amp.GradScaler keeps it (Micikevicius et al. 2018,
/// section 3.2): the loss is multiplied by `scale` before backward so small gradients survive float16; the
/// gradient is divided by it before clipping and the optimiser step. A step whose gradient overflowed is
/// skipped and the scale halved; after `growth_interval` finite steps in a row the scale doubles.
struct LossScaler {
  double scale = 65536.0;        ///< 2^16, torch's initial scale
  int64_t growth_interval = 2000;
  int64_t good_steps = 0;        ///< finite steps since the last change of scale
  int64_t skipped = 0;           ///< steps skipped for an overflow, in all

  /// After a step: `finite` says whether the unscaled gradient was finite. Returns whether to apply it.
  bool update(bool finite);
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto LossScaler::update(bool finite) -> bool {
  if (!finite) {
    scale = std::max(scale * 0.5, 1.0);
    good_steps = 0;
    ++skipped;
    return false;
  }
  if (++good_steps >= growth_interval) {
    scale = std::min(scale * 2.0, 16777216.0 * 65536.0);
    good_steps = 0;
  }
  return true;
}
#endif  // GM_HEADER_DEFINITIONS

/// The intra-op thread count for a training run.  `threads > 0` sets it.  `threads == 0` (auto) leaves
/// torch's default for fp32, and uses every core for bf16 on CPU, whose products run in oneDNN on the
/// OpenMP pool (2 threads: 48 ms per step against 78 ms with 1, MLP 4096 x 512 x 4 layers, LibTorch 1.13).
/// `all_cores` asks for every core in fp32 too: convolutional networks run their convolutions and
/// normalisations on the intra-op pool (gm's UNet at batch 128 on 28x28: 1233 ms per fp32 step with 2
/// threads against 1660 ms with 1).  Returns the count.
int configure_threads(int threads, Precision p, const c10::Device& device, bool all_cores = false);
#if GM_HEADER_DEFINITIONS
GM_INLINE int configure_threads(int threads, Precision p, const c10::Device& device, bool all_cores) {
  if (threads > 0) {
    at::set_num_threads(threads);
  } else if ((p == Precision::bf16 || all_cores) && device.is_cpu()) {
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  }
  return at::get_num_threads();
}
#endif

}  // namespace gm
