#!/usr/bin/env bash
# Installs what gm needs on Debian (bookworm) if it is missing, then configures and builds into build/.
#   scripts/setup.sh [ninja targets...]      (no targets: build everything)
#   scripts/setup.sh --deps                  (install only)
# GM_BUILD_DIR (default build) and GM_CMAKE_ARGS (extra cmake arguments for a new build folder) let
# scripts/test.sh --sanitize and scripts/fuzz.sh build elsewhere.
# Cheap to run again: installs nothing that is present, and rebuilds only what changed (ninja + ccache).
set -euo pipefail
cd "$(dirname "$0")/.."

# libopenblas0-pthread matters: without it LibTorch's GEMM falls back to the reference BLAS (~20x slower).
packages=(g++ cmake ninja-build ccache libtorch-dev libopenblas0-pthread libeigen3-dev doctest-dev libcli11-dev
          libgloo-dev libtomlplusplus-dev zlib1g-dev libstb-dev dataset-fashion-mnist python3-torch
          python3-scipy protobuf-compiler slurmctld slurmd slurm-client munge)
# python3-torch is Debian's Python build of the same libtorch: the baseline bench_train measures gm against,
# and the reader the export test checks gm's files with; protobuf-compiler's protoc --decode_raw cross-checks
# gm's TensorBoard files in the tests.  libstb-dev reads image folders; dataset-fashion-mnist is the image
# examples' default data (/usr/share/datasets/fashion-mnist).  python3-scipy gives the tests reference values
# (scipy.linalg.sqrtm for the Fréchet distance).  slurmctld, slurmd, slurm-client and munge (Debian's Slurm)
# let tests/programs/slurm_requeue.sh start a real one-node cluster (scripts/slurm/cluster.sh).

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "gm setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "gm setup: warning: libblas.so.3 is $blas, not OpenBLAS; LibTorch will be slow" >&2 ;;
esac

if [ "${1:-}" = "--deps" ]; then exit 0; fi
build_dir=${GM_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${GM_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -- "$@"
