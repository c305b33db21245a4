#!/usr/bin/env bash
# Installs what gm needs if it is missing, then configures and builds into build/.
#   scripts/setup.sh [ninja targets...]      (no targets: build everything)
#   scripts/setup.sh --deps                  (install only)
#
# Two kinds of dependency:
#  - Debian packages (apt-get): the compiler, CMake, Eigen, doctest, CLI11, toml++, stb, zlib, Gloo's headers,
#    Fashion-MNIST, protoc and Slurm;
#  - Python packages (pip, pinned in scripts/requirements.txt) in a virtual environment: the torch wheel, whose
#    LibTorch (headers, libraries, CMake package) gm builds against, and the Python peers that the benchmarks
#    and tests run gm beside (numpy, scipy, diffusers, flow_matching, torchdiffeq, tensorboard, safetensors).
#
# The environment lives outside the checkout, in ${XDG_CACHE_HOME:-~/.cache}/gm/venv-<hash of requirements.txt>,
# so a second clone on the same machine (CI's) reuses it instead of downloading the CUDA wheels
# again; .venv in the checkout links to it.  GM_VENV names another folder.
#
# Your own LibTorch (the official zip, a conda or pip install): GM_TORCH_DIR=/path/to/libtorch (the folder
# with share/cmake/Torch, or that folder itself) is used instead of the venv's for a new build folder.
#
# GM_BUILD_DIR (default build) and GM_CMAKE_ARGS (extra cmake arguments for a new build folder) let
# scripts/test.sh --sanitize and scripts/fuzz.sh build elsewhere.
# Cheap to run again: installs nothing that is present, and rebuilds only what changed (ninja + ccache).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build ccache libeigen3-dev doctest-dev libcli11-dev libgloo-dev libtomlplusplus-dev
          zlib1g-dev libstb-dev dataset-fashion-mnist python3 python3-venv protobuf-compiler slurmctld slurmd
          slurm-client munge)
# libgloo-dev: the headers that torch's ProcessGroupGloo.hpp includes (the wheel ships Gloo's code inside
# libtorch_cpu but not its headers).  protobuf-compiler's protoc --decode_raw cross-checks gm's TensorBoard
# files in the tests.  libstb-dev reads image folders; dataset-fashion-mnist is the image examples' default
# data (/usr/share/datasets/fashion-mnist).  slurmctld, slurmd, slurm-client and munge (Debian's Slurm) let
# tests/programs/slurm_requeue.sh start a real one-node cluster (scripts/slurm/cluster.sh).

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A python3 outside Debian's (pyenv's, say) already has venv; Debian's python3-venv is only needed for its own.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
  kept=()
  for p in "${missing[@]}"; do [[ "$p" == python3 || "$p" == python3-venv ]] || kept+=("$p"); done
  missing=("${kept[@]}")
fi
if ((${#missing[@]})); then
  echo "gm setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the Python environment: torch (LibTorch) and the peers ---------------------------------------------
req=scripts/requirements.txt
py_tag=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
hash=$( (cat "$req"; echo "$py_tag") | sha256sum | cut -c1-12)
venv=${GM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/gm/venv-$hash}
if [ ! -f "$venv/.gm-complete" ]; then
  echo "gm setup: installing $req into $venv (torch with CUDA: 5.8 GB installed, about 2 minutes the first time)"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.gm-complete"
fi
nodeps=scripts/requirements-nodeps.txt
if ! cmp -s "$nodeps" "$venv/.gm-nodeps"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$nodeps"
  cp "$nodeps" "$venv/.gm-nodeps"
fi
if [ "$(readlink .venv 2>/dev/null)" != "$venv" ]; then
  if [ -e .venv ] && [ ! -L .venv ]; then
    echo "gm setup: .venv exists and is not gm's link; leaving it, the build uses $venv" >&2
  else
    ln -sfn "$venv" .venv
  fi
fi
python="$venv/bin/python"

if [ "${1:-}" = "--deps" ]; then exit 0; fi

if [ -n "${GM_TORCH_DIR:-}" ]; then
  torch_prefix=$GM_TORCH_DIR
  if [ -d "$GM_TORCH_DIR/share/cmake/Torch" ]; then torch_prefix=$GM_TORCH_DIR/share/cmake; fi
else
  torch_prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
fi
build_dir=${GM_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ]; then
  # shellcheck disable=SC2086
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$torch_prefix" \
        "-DGM_PYTHON=$python" ${GM_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -- "$@"
