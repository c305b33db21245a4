#!/usr/bin/env bash
# gm's GPU check: one command of at most 8 minutes on a machine with a CUDA GPU, python3's torch, nvcc, CMake,
# ninja and g++, and nothing else (no Debian -dev packages, no network).
#   scripts/gpu_check.sh --stage           here (Debian, scripts/setup.sh --deps done): put the other
#                                          dependencies into .gpu_deps/, a prefix that travels with the tree
#   scripts/gpu_check.sh OUTDIR            there: preflight, build gm's GPU targets against the machine's torch,
#                                          run the checks and the benchmarks, writing OUTDIR/summary.md as it goes
#   scripts/gpu_check.sh --rehearse OUTDIR here: the same build in a clean Debian root that has only what the
#                                          accelerator's image has (debootstrap: g++, CMake, ninja, python3 with
#                                          PyPI's torch 2.11.0 on CUDA 13.0, this machine's CUDA toolkit bound in),
#                                          ending in gpu_check's skip, then every check on the CPU
# Where no GPU is visible the build runs, gpu_check says so and exits 77, and the GPU parts are skipped; with
# GM_GPU_CHECK_ON_CPU=1 the checks then run on the CPU (GM_GPU_CHECK_DEVICE=cpu).
#
# .gpu_deps/ holds Eigen, toml++ (and its library), CLI11, doctest, stb (and libstb), Gloo's headers and zlib
# (header and library) as a prefix with CMake package files of its own, each locating itself from its own
# folder, so it works wherever the tree lands (about 14 MB; carry it: `carry: [".gpu_deps"]`).
#
# What runs on the GPU, each printed as it finishes and appended to OUTDIR/summary.md:
#  - tests/gpu/gpu_check.cpp: samplers on CUDA against the CPU, UNet/DiT/EDM2UNet/MeanFlow steps in fp32, bf16
#    and fp16, 2-D data from a CUDA generator, exact resume with EMA, CPU<->CUDA resume, guided dpmpp_2m_sde,
#    dequantised and flipped image batches, the SDPA kernel chosen, a 1-rank NCCL group;
#  - flow_2d --device=cuda trained, stopped and resumed; a CPU run resumed on CUDA (no restart, no prune);
#  - bench_train: gm against PyTorch eager and torch.compile on the same GPU, bf16, at GPU sizes.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

stage() {
  local d=.gpu_deps lib=/usr/lib/x86_64-linux-gnu
  for f in /usr/include/eigen3 /usr/include/toml++ /usr/include/CLI /usr/include/doctest/doctest.h \
           /usr/include/stb/stb_image.h /usr/include/gloo /usr/include/zlib.h "$lib/libstb.so.0" "$lib/libz.so.1" \
           "$lib/libtomlplusplus.so.3"; do
    [ -e "$f" ] || { echo "gpu_check --stage: $f is missing; run scripts/setup.sh --deps first" >&2; exit 2; }
  done
  rm -rf "$d" && mkdir -p "$d/include" "$d/lib/cmake/Eigen3" "$d/lib/cmake/tomlplusplus" "$d/lib/cmake/doctest"
  cp -rL /usr/include/eigen3 /usr/include/toml++ /usr/include/CLI /usr/include/doctest /usr/include/stb \
         /usr/include/gloo /usr/include/zlib.h /usr/include/zconf.h "$d/include/"
  # Shared libraries under their SONAME and their link name (the loader reads the first, the linker the second).
  cp -L "$lib/libstb.so.0" "$lib/libz.so.1" "$lib/libtomlplusplus.so.3" "$d/lib/"
  ln -s libstb.so.0 "$d/lib/libstb.so"
  ln -s libz.so.1 "$d/lib/libz.so"
  ln -s libtomlplusplus.so.3 "$d/lib/libtomlplusplus.so"
  local eigen_version
  eigen_version=$(awk '/#define EIGEN_(WORLD|MAJOR|MINOR)_VERSION/ {printf "%s%s", sep, $3; sep="."}' \
                  "$d/include/eigen3/Eigen/src/Core/util/Macros.h")
  # Package files that find their prefix from their own folder (lib/cmake/<name>/ is two levels below it).
  # header_package NAME TARGET INCLUDE: lib/cmake/NAME/NAMEConfig.cmake, an interface target on include/INCLUDE.
  header_package() {
    cat > "$d/lib/cmake/$1/$1Config.cmake" <<EOF
get_filename_component(_gm_deps "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET $2)
  add_library($2 INTERFACE IMPORTED)
  set_target_properties($2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${_gm_deps}/include$3")
endif()
EOF
  }
  header_package Eigen3 Eigen3::Eigen /eigen3
  header_package doctest doctest::doctest ""
  cat > "$d/lib/cmake/Eigen3/Eigen3ConfigVersion.cmake" <<EOF
set(PACKAGE_VERSION "$eigen_version")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
EOF
  cat > "$d/lib/cmake/tomlplusplus/tomlplusplusConfig.cmake" <<'EOF'
get_filename_component(_gm_deps "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET tomlplusplus::tomlplusplus)
  add_library(tomlplusplus::tomlplusplus UNKNOWN IMPORTED)
  set_target_properties(tomlplusplus::tomlplusplus PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_gm_deps}/include"
                        IMPORTED_LOCATION "${_gm_deps}/lib/libtomlplusplus.so"
                        INTERFACE_COMPILE_OPTIONS "-DTOML_HEADER_ONLY=0;-DTOML_SHARED_LIB=1")
endif()
EOF
  du -sh "$d"
  echo "staged: carry .gpu_deps with the tree; scripts/gpu_check.sh uses it when present"
}

# --- rehearsal: a clean root with only what the accelerator's image has -------------------------------------
rehearse() {
  local out=${1:?usage: scripts/gpu_check.sh --rehearse OUTDIR}
  mkdir -p "$out" && out=$(cd "$out" && pwd)
  local jail=${GM_REHEARSE_ROOT:-/var/tmp/gm-rehearse-root} t0
  t0=$(date +%s)
  [ "$(id -u)" -eq 0 ] || { echo "gpu_check --rehearse: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
  [ -d /usr/local/cuda/bin ] || { echo "gpu_check --rehearse: no CUDA toolkit at /usr/local/cuda" >&2; exit 2; }
  [ -d .gpu_deps ] || stage
  if [ ! -f "$jail/.gm-rehearse-complete" ]; then
    command -v debootstrap > /dev/null || apt-get install -y -qq debootstrap > /dev/null
    # The mirror this machine's apt uses (deb822 sources or a sources.list line).
    local mirror
    mirror=$(grep -hoE '^URIs: *[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/URIs: *//')
    [ -n "$mirror" ] || mirror=$(grep -hoE '^deb +[^ ]+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
    echo "gpu_check --rehearse: making a minimal root in $jail"
    rm -rf "$jail"
    debootstrap --variant=minbase bookworm "$jail" "$mirror" > "$out/debootstrap.log" 2>&1 \
      || { echo "debootstrap failed: see $out/debootstrap.log"; exit 1; }
    cp /etc/resolv.conf "$jail/etc/resolv.conf"
    chroot "$jail" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build python3 python3-venv ca-certificates > "$out/apt.log" 2>&1 \
      || { echo "apt-get in the root failed: see $out/apt.log"; exit 1; }
    # The image's python3 holds torch 2.11.0 built on CUDA 13.0 (PyPI's default wheel for 2.11.0): the wheels
    # are fetched here, by this machine's pip and its settings, and installed in the root with no index.
    local py
    py=$(chroot "$jail" python3 -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
    python3 -m pip download -q --only-binary=:all: --python-version "$py" \
      -d "$jail/var/tmp/wheels" torch==2.11.0 > "$out/pip.log" 2>&1 \
      || { echo "pip download failed: see $out/pip.log"; exit 1; }
    chroot "$jail" sh -c 'python3 -m venv /opt/torch/.venv && /opt/torch/.venv/bin/pip install -q --no-index \
      --find-links /var/tmp/wheels torch==2.11.0 && rm -rf /var/tmp/wheels' >> "$out/pip.log" 2>&1 \
      || { echo "pip in the root failed: see $out/pip.log"; exit 1; }
    touch "$jail/.gm-rehearse-complete"
  fi
  echo "gpu_check --rehearse: root ready ($(( $(date +%s) - t0 )) s); -dev packages there (the toolchain's own):" \
       "$(chroot "$jail" dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' '*-dev' 2>/dev/null | awk '/^ii/ {printf "%s ", $2}')"
  # The working tree as the device tool sends it: tracked and untracked-not-ignored files, and .gpu_deps.
  rm -rf "$jail/gm" && mkdir -p "$jail/gm" "$jail/out" "$jail/usr/local/cuda-13.0" "$jail/proc" "$jail/dev"
  { git ls-files -co --exclude-standard; find .gpu_deps \( -type f -o -type l \); } | sort -u | \
    tar -cf - -T - | tar -xf - -C "$jail/gm"
  local cuda
  cuda=$(readlink -f /usr/local/cuda)
  mount --bind "$cuda" "$jail/usr/local/cuda-13.0"
  ln -sfn cuda-13.0 "$jail/usr/local/cuda"
  mount --bind "$out" "$jail/out"
  mount -t proc proc "$jail/proc"
  mount --rbind /dev "$jail/dev"
  local rc=0
  chroot "$jail" env -i HOME=/root PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GM_GPU_CHECK_ON_CPU="${GM_GPU_CHECK_ON_CPU:-1}" bash -c 'cd /gm && scripts/gpu_check.sh /out' || rc=$?
  umount -l "$jail/dev" "$jail/proc" "$jail/out" "$jail/usr/local/cuda-13.0" 2>/dev/null
  echo "gpu_check --rehearse: exit $rc in $(( $(date +%s) - t0 )) s; logs in $out"
  return "$rc"
}

if [ "${1:-}" = "--stage" ]; then stage; exit 0; fi
if [ "${1:-}" = "--rehearse" ]; then rehearse "${2:-}"; exit $?; fi

out=${1:?usage: scripts/gpu_check.sh OUTDIR | --stage | --rehearse OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
: > "$out/summary.md"
say() { echo "gpu_check: $*" | tee -a "$out/summary.md"; }
row() { echo "| $1 | $2 |" | tee -a "$out/summary.md"; }
# gpu_check's "ok: ..." and "FAIL: ..." lines as table rows, the moment each arrives; other lines as they are.
rows() {
  while IFS= read -r line; do
    case "$line" in ok:*|FAIL:*) row "${line#*: }" "${line%%:*}" ;; *) echo "$line" ;; esac
  done
}
elapsed() { echo "$(( $(date +%s) - start )) s"; }

# --- preflight (seconds): what the machine has -------------------------------------------------------------
python=${GM_PYTHON:-}
if [ -z "$python" ]; then
  for p in python3 "$root/.venv/bin/python" python; do
    if timeout 60 "$p" -c 'import torch' 2>/dev/null; then python=$p; break; fi
  done
fi
[ -n "$python" ] || { say "no Python with torch found (set GM_PYTHON)"; exit 2; }
tinfo=$(timeout 60 "$python" -W ignore -c 'import torch; print(torch.__version__, "| CUDA", torch.version.cuda, "| GPUs", torch.cuda.device_count(), "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU visible")')
prefix=$("$python" -W ignore -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
gpus=$("$python" -W ignore -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
say "torch $tinfo ($python)"
say "$(command -v nvcc > /dev/null && nvcc --version | tail -2 | head -1 || echo 'no nvcc')"
say "$(cmake --version | head -1); ninja $(ninja --version 2>/dev/null || echo missing); $(g++ --version | head -1); $(nproc) cores"

# --- build ---------------------------------------------------------------------------------------------------
extra=()
if [ -d .gpu_deps ]; then
  prefix="$prefix;$root/.gpu_deps"
  export CPATH="$root/.gpu_deps/include${CPATH:+:$CPATH}"  # CLI11 and Gloo's headers, included by path
  export LD_LIBRARY_PATH="$root/.gpu_deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  extra+=("-DZLIB_ROOT=$root/.gpu_deps")
fi
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
build=${GM_GPU_BUILD_DIR:-build-gpu}
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" "-DGM_PYTHON=$python" \
      -DGM_BUILD_TESTS=ON -DGM_BUILD_EXAMPLES=ON -DGM_BUILD_BENCHMARKS=ON "${extra[@]}" > "$out/configure.log" 2>&1 \
  || { say "configure failed ($(elapsed)): see configure.log"; grep -m5 -iE "error" "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" --target gpu_check flow_2d bench_train > "$out/build.log" 2>&1 \
  || { say "build failed ($(elapsed)): see build.log"; grep -m5 -E "error" "$out/build.log"; exit 1; }
say "built gpu_check, flow_2d and bench_train in $(elapsed)"

if [ "$gpus" -eq 0 ]; then
  GM_SOURCE_DIR=$root "$build/tests/gpu_check" > "$out/gpu_check.log" 2>&1
  rc=$?
  say "no CUDA GPU visible: GPU checks skipped (gpu_check exit $rc: $(head -1 "$out/gpu_check.log")); benchmarks skipped"
  [ "$rc" -eq 77 ] || exit 1
  if [ "${GM_GPU_CHECK_ON_CPU:-0}" = 1 ]; then
    say "the same checks on the CPU (GM_GPU_CHECK_DEVICE=cpu):"
    echo "| check | result |" >> "$out/summary.md"
    echo "|---|---|" >> "$out/summary.md"
    GM_SOURCE_DIR=$root GM_GPU_CHECK_DEVICE=cpu timeout 400 "$build/tests/gpu_check" 2>&1 | tee "$out/gpu_check_cpu.log" | rows
    rc=${PIPESTATUS[0]}
    say "checks on the CPU: exit $rc ($(elapsed))"
    exit "$rc"
  fi
  exit 0
fi

# --- on the GPU: the checks, each row as it finishes -------------------------------------------------------
echo "| check | result |" >> "$out/summary.md"
echo "|---|---|" >> "$out/summary.md"
GM_SOURCE_DIR=$root timeout 240 "$build/tests/gpu_check" 2>&1 | tee "$out/gpu_check.log" | rows
check_rc=${PIPESTATUS[0]}
say "gpu_check exit $check_rc ($(elapsed))"

# flow_2d on CUDA: 300 steps stopped at 200 and resumed; then a CPU run resumed on CUDA.
f2d() { timeout 120 "$build/examples/flow_2d" --config configs/flow_2d.toml \
          --training.checkpoint_every=100 --training.log_every=100 --sampling.n=2000 "$@"; }
runs="$out/runs"
rm -rf "$runs"
f2d --device=cuda --training.steps=200 --eval.density_map=false --workdir "$runs/cuda" > "$out/flow_2d.log" 2>&1 &&
  f2d --device=cuda --training.steps=300 --eval.density_map=true --workdir "$runs/cuda" >> "$out/flow_2d.log" 2>&1
rc=$?
resumed=$(grep -c "resuming at step 200" "$runs/cuda/log.txt" 2>/dev/null)
row "flow_2d --device=cuda: 200 steps, then resumed to 300 with the log-density map ($(grep -oE 'support_fraction [0-9.]+' "$out/flow_2d.log" | tail -1))" \
    "$([ "$rc" -eq 0 ] && [ "${resumed:-0}" -ge 1 ] && echo ok || echo "FAIL (exit $rc)")"
f2d --device=cpu --training.steps=100 --eval.density_map=false --workdir "$runs/moved" >> "$out/flow_2d.log" 2>&1 &&
  f2d --device=cuda --training.steps=200 --eval.density_map=false --workdir "$runs/moved" >> "$out/flow_2d.log" 2>&1
rc=$?
moved=$(grep -c "random stream restarts" "$runs/moved/log.txt" 2>/dev/null)
kept=$(ls -d "$runs/moved/checkpoints/step_100" "$runs/moved/checkpoints/step_200" 2>/dev/null | wc -l)
row "flow_2d: a CPU run (100 steps) resumed on CUDA to 200, no restart at 0, checkpoints kept" \
    "$([ "$rc" -eq 0 ] && [ "${moved:-0}" -ge 1 ] && [ "$kept" -eq 2 ] && echo ok || echo "FAIL (exit $rc)")"
say "flow_2d runs done ($(elapsed))"

# --- benchmarks: gm against PyTorch eager and torch.compile on this GPU, bf16 ----------------------------------
timeout 300 "$build/benchmarks/bench_train" --device cuda \
  --configs mlp_gpu_bf16,unet_gpu_bf16,dit_gpu_bf16,unet_bf16_autocast,dit_bf16 --rounds 3 --block-seconds 0.5 \
  --loss-steps 0 --image-loss-steps 0 --out "$out/bench_train" --force > "$out/bench_train.log" 2> "$out/bench_train.err"
bench_rc=$?
{
  echo
  # bench_train rewrites results.md after each configuration: cut off by the timeout, it still has those rows.
  grep -E '^\|' "$out/bench_train.log" ||
    { grep -E '^\||^FAILED|baseline failed' "$out/bench_train/results.md" 2>/dev/null &&
        echo "bench_train was cut off (exit $bench_rc): the configurations above are those it finished"; } ||
    { echo "bench_train printed no table (exit $bench_rc):"; tail -5 "$out/bench_train.err"; }
  grep -E '^FAILED|baseline failed' "$out/bench_train.log" || true
  echo
  echo "gpu_check exit $check_rc; bench_train exit $bench_rc; total $(elapsed)"
} | tee -a "$out/summary.md"
[ "$check_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
