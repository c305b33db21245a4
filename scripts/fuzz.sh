#!/usr/bin/env bash
# Builds gm's libFuzzer targets (fuzz/*.cpp) with clang, AddressSanitizer and UBSan into build-fuzz/, and
# runs each on a copy of its seed corpus (fuzz/corpus/<target>/).  Any crash, leak, sanitizer report or
# exception other than gm::Error stops that target with a reproducer in build-fuzz/artifacts/.
#   scripts/fuzz.sh [SECONDS per target, default 30] [TARGET...]      (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_npy fuzz_csv fuzz_config fuzz_mixture fuzz_tfevents fuzz_safetensors fuzz_checkpoint
                                fuzz_idx fuzz_cifar fuzz_image)
scripts/setup.sh --deps
if ! command -v clang++ >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
if [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGM_BUILD_FUZZERS=ON \
    -DGM_BUILD_TESTS=OFF -DGM_BUILD_EXAMPLES=OFF -DGM_BUILD_BENCHMARKS=OFF >/dev/null
fi
cmake --build build-fuzz -- "${targets[@]}"
mkdir -p build-fuzz/artifacts
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  cp -n fuzz/corpus/"$t"/* "build-fuzz/corpus/$t/" 2>/dev/null || true
  echo "== $t: $seconds s"
  asan="detect_leaks=1"
  # The checkpoint reader goes through LibTorch, whose frames need the slow unwinder for suppressions.
  [ "$t" = fuzz_checkpoint ] && asan="$asan:fast_unwind_on_malloc=0"
  if ASAN_OPTIONS="$asan" LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp" \
       "build-fuzz/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=4096 \
       -artifact_prefix="build-fuzz/artifacts/$t-" -print_final_stats=1 "build-fuzz/corpus/$t" \
       >"build-fuzz/$t.log" 2>&1; then
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "build-fuzz/$t.log" | tr '\n' ' '
    echo
  else
    status=1
    echo "$t FAILED: see build-fuzz/$t.log and build-fuzz/artifacts/"
    tail -n 30 "build-fuzz/$t.log"
  fi
done
exit $status
