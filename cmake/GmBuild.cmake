# Build settings for gm's own tests, examples and benchmarks (not exported to users).
#
# A LibTorch translation unit costs 10-20 s on 2 cores, nearly all of it in torch's headers and in the
# templates they instantiate.  So:
#  - tests compile at -O0 (their work happens inside libtorch, which is optimised anyway) against a
#    narrow precompiled header (torch/types.h, autograd, toml++, doctest): gm_pch_tests;
#  - examples and benchmarks compile at -O3 against the full torch/torch.h: gm_pch;
#  - ccache (when installed) caches whole compilations across builds and clean checkouts: CCACHE_BASEDIR
#    makes paths inside the source tree relative, so a second clone (CI's) hits the first one's cache.
#  - The two cannot be had together: a precompiled header embeds its clone's paths, so each clone's differs
#    and ccache, which hashes it, misses every compilation in a new clone.  GM_PCH therefore defaults to ON
#    only without ccache; with it off the same headers are included (-include) rather than precompiled.
#    Measured on 2 cores: loading torch/torch.h's precompiled header took 11 s of a translation unit, parsing
#    it 18 s; a cold build costs about a minute more, a second clone's build drops from ~14 min to ~1.

find_program(GM_CCACHE ccache)
if(GM_CCACHE)
  option(GM_PCH "Precompile the headers of gm's tests, examples and benchmarks (misses ccache across clones)" OFF)
else()
  option(GM_PCH "Precompile the headers of gm's tests, examples and benchmarks (misses ccache across clones)" ON)
endif()
if(GM_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # ccache must be told that precompiled headers are safe to cache.
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      "CCACHE_BASEDIR=${PROJECT_SOURCE_DIR}"
      ${GM_CCACHE})
endif()

if(TARGET gm_runtime AND CMAKE_CXX_COMPILER_LAUNCHER)
  # libgm_runtime is defined before this file: give it ccache too (its one unit is the build's longest).
  set_target_properties(gm_runtime PROPERTIES CXX_COMPILER_LAUNCHER "${CMAKE_CXX_COMPILER_LAUNCHER}")
endif()


find_package(doctest REQUIRED)

# scripts/test.sh --sanitize: every test, example and benchmark with ASan and UBSan (errors abort).
if(GM_SANITIZE)
  set(_gm_sanitize -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_compile_options(${_gm_sanitize})
  add_link_options(-fsanitize=address,undefined)
  if(TARGET gm_runtime)  # defined before this file: instrument libgm_runtime too
    target_compile_options(gm_runtime PRIVATE ${_gm_sanitize})
  endif()
endif()

# _gm_pch(<name> <header> <extra compile options>...): an object library that builds one precompiled header
# (GM_PCH), or, without it, whose users include the same header first.
function(_gm_pch name header gm_target)
  if(GM_PCH)
    set(_scope PUBLIC)
    add_library(${name} OBJECT "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/gm_pch.cpp")
    target_precompile_headers(${name} PUBLIC "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${header}")
  else()
    set(_scope INTERFACE)
    add_library(${name} INTERFACE)
    target_compile_options(${name} INTERFACE -include "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/${header}")
  endif()
  target_link_libraries(${name} ${_scope} ${gm_target})
  target_compile_options(${name} ${_scope} -Wall -Wextra -Wno-unused-parameter ${ARGN})
endfunction()

# _gm_use_pch(<target> <pch object library>): <target> reuses the library's precompiled header (GM_PCH).
function(_gm_use_pch target pch)
  target_link_libraries(${target} PRIVATE ${pch})
  if(GM_PCH)
    target_precompile_headers(${target} REUSE_FROM ${pch})
  endif()
endfunction()

if(GM_BUILD_EXAMPLES OR GM_BUILD_BENCHMARKS)
  # Examples and benchmarks link gm::runtime, as a user's experiment would; the unit tests (below) and the
  # fuzzers stay header-only, so both modes are built and run.
  if(NOT GM_BUILD_RUNTIME)
    message(FATAL_ERROR "gm: the examples and benchmarks link gm::runtime; configure with -DGM_BUILD_RUNTIME=ON")
  endif()
  _gm_pch(gm_pch gm_pch.hpp gm::runtime)
endif()
if(GM_BUILD_TESTS)
  # What the unit tests build against.  They run on the CPU (tests/gpu/gpu_check.cpp holds the CUDA checks),
  # so they link LibTorch without libtorch_cuda, whose static initialisers took 0.17 s of every test
  # process's start (0.46 s against 0.29 s); ctest starts one process per test case, about 260 of them.
  add_library(gm_cpu_only INTERFACE)
  target_include_directories(gm_cpu_only INTERFACE "${PROJECT_SOURCE_DIR}/include")
  target_include_directories(gm_cpu_only SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  target_compile_features(gm_cpu_only INTERFACE cxx_std_20)
  target_compile_options(gm_cpu_only INTERFACE ${TORCH_CXX_FLAGS})
  target_link_libraries(gm_cpu_only INTERFACE torch_cpu_library c10 Eigen3::Eigen tomlplusplus::tomlplusplus ZLIB::ZLIB
                                              stb::stb doctest::doctest)
  # libstdc++ ahead of torch 2.11's libtorch_cpu.so, which exports std::filesystem functions (cmake/gmTorch.cmake).
  target_link_options(gm_cpu_only INTERFACE "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
  _gm_pch(gm_pch_tests gm_pch_tests.hpp gm_cpu_only -O0)
endif()

# gm_add_binary(<target> <sources>...): an example or benchmark, optimised, on the full torch PCH.
function(gm_add_binary target)
  add_executable(${target} ${ARGN})
  _gm_use_pch(${target} gm_pch)
endfunction()

# gm_add_test_binary(<target> <sources>...): a test executable, at -O0, on the narrow test PCH.
function(gm_add_test_binary target)
  add_executable(${target} ${ARGN})
  _gm_use_pch(${target} gm_pch_tests)
endfunction()

# The Python with torch and the peers (scripts/setup.sh's environment, linked as .venv): the tests read gm's
# files with it and compute reference values in it, and the benchmarks run their PyTorch baselines in it.
if(NOT GM_PYTHON)
  if(EXISTS "${PROJECT_SOURCE_DIR}/.venv/bin/python")
    set(_gm_python "${PROJECT_SOURCE_DIR}/.venv/bin/python")
  else()
    find_program(_gm_python NAMES python3 python)
  endif()
  set(GM_PYTHON "${_gm_python}" CACHE FILEPATH "Python with torch, numpy and scipy, for gm's tests and benchmarks" FORCE)
endif()
message(STATUS "gm: Python for tests and benchmarks: ${GM_PYTHON}")
