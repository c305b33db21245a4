# Build settings for gm's own tests, examples and benchmarks (not exported to users).
#
# A LibTorch translation unit costs ~20 s on 2 cores, nearly all of it in torch's headers.  Every gm
# binary therefore reuses one precompiled header, built once by the object library gm_pch, and ccache
# (when installed) caches whole compilations across builds.

find_program(GM_CCACHE ccache)
if(GM_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # ccache must be told that precompiled headers are safe to cache.
  set(CMAKE_CXX_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${GM_CCACHE})
endif()

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE Release CACHE STRING "Build type" FORCE)
endif()

find_package(doctest REQUIRED)

add_library(gm_pch OBJECT "${CMAKE_CURRENT_LIST_DIR}/gm_pch.cpp")
target_link_libraries(gm_pch PUBLIC gm::gm doctest::doctest)
target_precompile_headers(gm_pch PUBLIC "${CMAKE_CURRENT_LIST_DIR}/gm_pch.hpp")
target_compile_options(gm_pch PUBLIC -Wall -Wextra -Wno-unused-parameter)

# gm_add_binary(<target> <kind> <sources>...): an executable that reuses gm's precompiled header.
function(gm_add_binary target)
  add_executable(${target} ${ARGN})
  target_link_libraries(${target} PRIVATE gm_pch)
  target_precompile_headers(${target} REUSE_FROM gm_pch)
endfunction()
