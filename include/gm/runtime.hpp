#pragma once
/// @file
/// Process-wide CPU settings gm makes for speed: the allocator's memory reuse, and AVX-512 kernels.

#include <malloc.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include <cstdlib>
#include <string>

namespace gm {

/// glibc serves blocks above M_MMAP_THRESHOLD with mmap and unmaps them on free, so a training step that
/// allocates and frees megabyte activations pays page faults and zeroing for each of them every step.
/// Measured here (MLP 2-256x3-2, batch 1024, 1 thread): 30.9 ms a step by default, 7.9 ms with a 256 MiB
/// threshold.  The Trainer calls it (TrainOptions::keep_freed_memory); call it yourself before sampling or
/// evaluating outside a Trainer.  Idempotent; the memory stays reserved for reuse.  No effect on CUDA
/// memory, which torch's caching allocator already keeps.
inline void keep_freed_memory() {
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    return true;
  }();
  (void)done;
}

namespace detail {
/// LibTorch 1.13 ships AVX-512 kernels but runs AVX2 ones unless ATEN_CPU_CAPABILITY=avx512 is set (opt-in
/// since pytorch/pytorch#80252: on some Intel CPUs of 2017-2019 AVX-512 lowers the clock).  On CPUs with
/// AVX-512 BF16 (Cooper Lake, Sapphire Rapids and later, AMD Zen 4 and later), which do not slow down so,
/// gm opts in: on this project's machine silu and its backward ran 2.0x and 2.2x faster, and the
/// flow_2d training step 5% faster.  The variable must be set before torch runs its first kernel, so this
/// runs during static initialisation, and never overrides a value the user set (ATEN_CPU_CAPABILITY=avx2
/// keeps AVX2).
inline bool opt_in_avx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (std::getenv("ATEN_CPU_CAPABILITY") != nullptr) return false;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16")) {
    return setenv("ATEN_CPU_CAPABILITY", "avx512", 0) == 0;
  }
#endif
  return false;
}
/// True when gm set ATEN_CPU_CAPABILITY=avx512 at start-up.
inline const bool avx512_opted_in = opt_in_avx512();
}  // namespace detail

namespace detail {
/// AVX-512 BF16 (CPUID leaf 7 subleaf 1, EAX bit 5) and AMX-BF16 (leaf 7 subleaf 0, EDX bit 22), read
/// directly: GCC 12's __builtin_cpu_supports does not know AMX.
inline void cpu_bf16_bits(bool& avx512bf16, bool& amxbf16) {
  avx512bf16 = amxbf16 = false;
#if defined(__x86_64__) && defined(__GNUC__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) amxbf16 = (d >> 22) & 1u;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512bf16 = (a >> 5) & 1u;
#endif
}
}  // namespace detail

/// Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX-BF16).  Without them LibTorch's bf16
/// products fall back to slow kernels: fashion_mnist's UNet step measured 47 s in bf16 against 2.4 s in fp32
/// on an AVX2-only AMD EPYC, so training.precision = "auto" chooses fp32 there and gm warns when bf16 is
/// asked for.
inline bool cpu_has_bf16() {
#if defined(__x86_64__) && defined(__GNUC__)
  bool avx512, amx;
  detail::cpu_bf16_bits(avx512, amx);
  return avx512 || amx;
#else
  return true;  // other architectures: not known to gm; no warning
#endif
}

/// "AVX-512 BF16", "AMX-BF16", "AVX-512 BF16 and AMX-BF16" or "no bf16 instructions", for logs.
inline std::string cpu_bf16_features() {
  bool avx512, amx;
  detail::cpu_bf16_bits(avx512, amx);
  if (avx512 && amx) return "AVX-512 BF16 and AMX-BF16";
  if (avx512) return "AVX-512 BF16";
  if (amx) return "AMX-BF16";
  return "no bf16 instructions";
}

}  // namespace gm
