#!/usr/bin/env bash
# gm's GPU check: one run of at most ~8 minutes on a machine with a CUDA GPU and PyTorch installed, no network.
#   scripts/gpu_check.sh OUTDIR            build gm against this machine's torch, run the GPU checks and the
#                                          GPU benchmarks, print one table, keep every log in OUTDIR
#   scripts/gpu_check.sh --stage           (here, with network) copy the header-only dependencies that a bare
#                                          GPU machine may lack into .gpu_deps/, to carry there with the tree
# It uses the machine's own torch (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'), or
# GM_PYTHON's.  Where no GPU is visible (as on the project's CPU machines) it builds, then says so and skips
# the GPU parts: a dry run.
#
# The table: each check of tests/gpu/gpu_check.cpp (every deterministic sampler on CUDA against the CPU,
# training steps in fp32/bf16/fp16, exact resume on CUDA, a 1-rank NCCL group, pinned-memory batches), and
# bench_train's UNet and DiT rows on the GPU beside the same networks in PyTorch eager and under torch.compile.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [ "${1:-}" = "--stage" ]; then
  d=.gpu_deps
  rm -rf "$d" && mkdir -p "$d/include" "$d/lib" "$d/share"
  for h in eigen3 toml++ CLI doctest stb gloo; do [ -e "/usr/include/$h" ] && cp -rL "/usr/include/$h" "$d/include/"; done
  cp -rL /usr/share/eigen3/cmake "$d/share/eigen3-cmake" 2>/dev/null
  cp -rL /usr/lib/x86_64-linux-gnu/cmake/tomlplusplus "$d/lib/tomlplusplus-cmake" 2>/dev/null
  cp -L /usr/lib/x86_64-linux-gnu/libtomlplusplus.so* "$d/lib/" 2>/dev/null
  cp -rL /usr/lib/x86_64-linux-gnu/cmake/doctest "$d/lib/doctest-cmake" 2>/dev/null
  du -sh "$d"
  echo "staged: carry .gpu_deps with the tree; scripts/gpu_check.sh uses it when present"
  exit 0
fi

out=${1:?usage: scripts/gpu_check.sh OUTDIR | --stage}
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
log() { echo "gpu_check: $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"

python=${GM_PYTHON:-}
if [ -z "$python" ]; then
  for p in "$root/.venv/bin/python" python3 python; do
    if "$p" -c 'import torch' 2>/dev/null; then python=$p; break; fi
  done
fi
[ -n "$python" ] || { log "no Python with torch found (set GM_PYTHON)"; exit 2; }
prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
tinfo=$("$python" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")')
log "torch: $tinfo ($python)"
gpus=$("$python" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')

# Header-only dependencies staged by --stage, for a GPU machine without Debian's packages.
extra=()
if [ -d .gpu_deps ]; then
  extra+=("-DCMAKE_INCLUDE_PATH=$root/.gpu_deps/include" "-DEigen3_DIR=$root/.gpu_deps/share/eigen3-cmake"
          "-Dtomlplusplus_DIR=$root/.gpu_deps/lib/tomlplusplus-cmake" "-Ddoctest_DIR=$root/.gpu_deps/lib/doctest-cmake")
  export CPATH="$root/.gpu_deps/include${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$root/.gpu_deps/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$root/.gpu_deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
build=build-gpu
jobs=$(nproc)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" "-DGM_PYTHON=$python" \
      -DGM_BUILD_TESTS=ON -DGM_BUILD_EXAMPLES=ON -DGM_BUILD_BENCHMARKS=ON "${extra[@]}" > "$out/configure.log" 2>&1 \
  || { log "configure failed: see $out/configure.log"; tail -5 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target gpu_check bench_train > "$out/build.log" 2>&1 \
  || { log "build failed: see $out/build.log"; grep -m5 -E "error|Error" "$out/build.log"; exit 1; }
log "built gpu_check and bench_train in $(( $(date +%s) - start )) s"

if [ "$gpus" -eq 0 ]; then
  GM_SOURCE_DIR=$root "$build/tests/gpu_check" > "$out/gpu_check.log" 2>&1
  rc=$?
  log "no CUDA GPU visible: GPU checks skipped (gpu_check exit $rc: $(head -1 "$out/gpu_check.log")); benchmarks skipped"
  [ "$rc" -eq 77 ] || exit 1
  exit 0
fi

GM_SOURCE_DIR=$root timeout 300 "$build/tests/gpu_check" > "$out/gpu_check.log" 2>&1
check_rc=$?
timeout 330 "$build/benchmarks/bench_train" --device cuda --configs unet,unet_bf16_autocast,dit,dit_bf16 --rounds 3 \
  --block-seconds 0.5 --loss-steps 0 --out "$out/bench_train" --force > "$out/bench_train.log" 2> "$out/bench_train.err"
bench_rc=$?

{
  echo
  echo "| check | result |"
  echo "|---|---|"
  grep -E '^(ok|FAIL): ' "$out/gpu_check.log" | sed -E 's/^(ok|FAIL): (.*)$/| \2 | \1 |/'
  echo
  echo "gpu_check exit $check_rc; bench_train exit $bench_rc"
  echo
  grep -E '^\|' "$out/bench_train.log" || { echo "bench_train printed no table:"; tail -5 "$out/bench_train.err"; }
  echo
  echo "total $(( $(date +%s) - start )) s; logs in $out"
} | tee -a "$out/summary.txt"
[ "$check_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
