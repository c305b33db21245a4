#pragma once
/// @file
/// Process-wide CPU settings gm makes for speed: the allocator's memory reuse, and AVX-512 kernels.

#include <malloc.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

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

/// How many cores other work keeps busy now: the busy share of every core's time over `seconds`, from
/// /proc/stat, times the cores (the calling process should be idle meanwhile); -1 where there is none to read.
/// The load average would not do: it trails by a minute, and counts the build that just finished.
inline double busy_cores(double seconds = 0.25) {
  auto read = [](double& busy, double& total) {
    FILE* f = std::fopen("/proc/stat", "r");
    if (!f) return false;
    unsigned long long v[8] = {};
    const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                              &v[6], &v[7]);
    std::fclose(f);
    if (n < 5) return false;
    total = 0;
    for (auto x : v) total += static_cast<double>(x);
    busy = total - static_cast<double>(v[3]) - static_cast<double>(v[4]);  // less idle and iowait
    return true;
  };
  double b0 = 0, t0 = 0, b1 = 0, t1 = 0;
  if (!read(b0, t0)) return -1;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  if (!read(b1, t1) || t1 <= t0) return -1;
  return (b1 - b0) / (t1 - t0) * static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
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
