# gm_precompile_headers(<target> [REUSE_FROM <other target>] [HEADERS <header>...]): the edit-compile loop of
# an experiment.  Precompiles LibTorch's and gm's headers for <target>, so a one-line edit of an experiment
# recompiles the experiment alone, not the headers it includes.  Several experiments of one project share
# one precompiled header with REUSE_FROM (the targets must have the same compile options).  HEADERS replaces
# the default, <gm/experiment.hpp> (it brings the LibTorch headers it needs; add <torch/torch.h> when the
# experiment includes it: each header in the set costs every compilation the time to load it).  Installed with gm; find_package(gm) loads it.
#
#   find_package(gm REQUIRED)
#   add_executable(my_flow my_flow.cpp)
#   target_link_libraries(my_flow PRIVATE gm::runtime)  # or gm::gm, header-only
#   gm_precompile_headers(my_flow)
#   add_executable(my_vdm my_vdm.cpp)
#   target_link_libraries(my_vdm PRIVATE gm::runtime)
#   gm_precompile_headers(my_vdm REUSE_FROM my_flow)
function(gm_precompile_headers target)
  cmake_parse_arguments(ARG "" "REUSE_FROM" "HEADERS" ${ARGN})
  if(ARG_REUSE_FROM)
    target_precompile_headers(${target} REUSE_FROM ${ARG_REUSE_FROM})
    return()
  endif()
  if(NOT ARG_HEADERS)
    set(ARG_HEADERS <gm/experiment.hpp>)
  endif()
  target_precompile_headers(${target} PRIVATE ${ARG_HEADERS})
endfunction()
