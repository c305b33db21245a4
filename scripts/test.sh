#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs gm's whole test suite.  Extra arguments go to ctest.
#   scripts/test.sh                 the suite, in build/
#   scripts/test.sh --sanitize      the same built with AddressSanitizer and UBSan, in build-sanitize/
#   scripts/test.sh --quick         the inner loop: builds only gm_tests and runs the label `quick` (the unit
#                                   tests and the include rule; under 2 minutes of tests on 2 cores)
#   scripts/test.sh -L program      any ctest selection: labels unit, program, compile, install, slow, gpu
set -euo pipefail
cd "$(dirname "$0")/.."
targets=()
if [ "${1:-}" = "--quick" ]; then
  shift
  targets=(gm_tests)
  set -- -L quick "$@"
fi
if [ "${1:-}" = "--sanitize" ]; then
  shift
  export GM_BUILD_DIR=build-sanitize GM_CMAKE_ARGS="-DGM_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo"
  # LibTorch itself is not instrumented; these settings keep reports to gm's code and stop at the first.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export GM_TEST_SLOWDOWN=10  # long program tests (the kill storm) do less work under the sanitizers
fi
scripts/setup.sh "${targets[@]}"
# ctest runs 2 tests at once on 2 cores, and each uses torch's OpenMP pool: idle OpenMP threads that spin
# (libgomp's default) take the core from the other test.  Passive waiting changes no result, only who waits.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
cd "${GM_BUILD_DIR:-build}"
ctest -j"$(nproc)" --output-on-failure "$@"
