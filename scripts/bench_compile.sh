#!/usr/bin/env bash
# The edit-compile loop of a user's experiment, measured as a new user meets it: gm installed into a prefix,
# a project of its own on find_package(gm) holding a copy of examples/<name>.cpp, built in Release; then a
# one-line edit (a comment on main's line: the file recompiles whole either way) and the rebuild (compile and
# link), timed.  Four builds side by side, without ccache: on gm::runtime (libgm_runtime, the non-template
# code compiled once) and header-only (gm::gm), each with and without gm_precompile_headers().  Prints one
# table.
#   scripts/bench_compile.sh [example=flow_2d] [out=build/bench_compile]
# Needs gm built first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
example=${1:-flow_2d}
out=$(realpath -m "${2:-build/bench_compile}")
[ -f "examples/$example.cpp" ] || { echo "bench_compile: no examples/$example.cpp" >&2; exit 2; }
[ -f build/build.ninja ] || { echo "bench_compile: build gm first (scripts/setup.sh)" >&2; exit 2; }
torch_dir=$(sed -n 's/^Torch_DIR:PATH=//p' build/CMakeCache.txt)
rm -rf "$out"
mkdir -p "$out"
cmake --install build --prefix "$out/prefix" > /dev/null

now() { date +%s.%N; }
row() {  # row FOLDER LABEL PCH(ON/OFF) TARGET
  local dir="$out/$1"
  mkdir -p "$dir/src"
  cp "examples/$example.cpp" "$dir/src/main.cpp"
  cat > "$dir/src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.21)
project(user_experiment LANGUAGES CXX)
find_package(gm REQUIRED)
add_executable(experiment main.cpp)
target_link_libraries(experiment PRIVATE $4)
if($3)
  gm_precompile_headers(experiment)
endif()
CMAKE
  cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$out/prefix" \
    "-DTorch_DIR=$torch_dir" > "$dir/configure.log" 2>&1
  local t0 t1 t2
  t0=$(now)
  cmake --build "$dir/build" > "$dir/first.log"
  t1=$(now)
  # The one-line edit.
  sed -i '0,/int main(int argc, char\*\* argv) {/s//int main(int argc, char** argv) {  \/\/ edited/' "$dir/src/main.cpp"
  cmake --build "$dir/build" > "$dir/edit.log"
  t2=$(now)
  printf '| %s | %s | %.1f | %.1f |\n' "$example" "$2" "$(awk "BEGIN { print $t1 - $t0 }")" "$(awk "BEGIN { print $t2 - $t1 }")"
}
echo "bench_compile: examples/$example.cpp in a find_package(gm) project, Release, $(nproc) core(s), no ccache"
echo
echo "| experiment | build | first build s | one-line edit s |"
echo "|---|---|---:|---:|"
row runtime_pch "gm::runtime, gm_precompile_headers" ON gm::runtime
row runtime "gm::runtime, no precompiled header" OFF gm::runtime
row header_pch "header-only gm::gm, gm_precompile_headers" ON gm::gm
row header "header-only gm::gm, no precompiled header" OFF gm::gm
