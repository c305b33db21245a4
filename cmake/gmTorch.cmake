# What gm's target needs from the LibTorch that find_package(Torch) found; called by gm's own CMakeLists and
# by the installed gmConfig.cmake, so it follows the consumer's LibTorch, not the one gm was installed with.
#   gm_torch_settings(<target> [BUILD_INTERFACE])
# (with BUILD_INTERFACE the settings hold for the build tree only, so no path of this machine goes into an
# installed package).
#
# - GM_WITH_CUDA=1 when LibTorch has CUDA: gm compiles its NCCL process group (gm/dist/group.hpp).
# - libstdc++ first among a program's libraries (see the end: torch 2.11's libtorch.so exports std::filesystem).
# - LibTorch from PyPI's torch wheel: libtorch_cuda.so finds its CUDA libraries (cuDNN, NCCL, cuBLAS...) in the
#   nvidia-* wheels beside it through its RPATH ($ORIGIN/../../nvidia/*/lib).  The dynamic loader follows
#   that, but the link editor resolves libtorch_cuda.so's own dependencies through the system's library
#   paths and takes an older copy there (the CUDA toolkit's libnccl.so.2: "undefined reference to
#   ncclCommGrow").  Point the link editor at the wheel's copies.
function(gm_torch_settings target)
  set(_wrap "")
  if(ARGV1 STREQUAL "BUILD_INTERFACE")
    set(_wrap BUILD_INTERFACE)
  endif()
  macro(_gm_add property value)
    if(_wrap)
      set_property(TARGET ${target} APPEND PROPERTY ${property} "$<BUILD_INTERFACE:${value}>")
    else()
      set_property(TARGET ${target} APPEND PROPERTY ${property} "${value}")
    endif()
  endmacro()
  if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
    _gm_add(INTERFACE_COMPILE_DEFINITIONS GM_WITH_CUDA=1)
  endif()
  if(TORCH_LIBRARY)
    get_filename_component(_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
    file(GLOB _nvidia_libs LIST_DIRECTORIES true "${_lib_dir}/../../nvidia/*/lib")
    foreach(_dir IN LISTS _nvidia_libs)
      get_filename_component(_dir "${_dir}" REALPATH)
      _gm_add(INTERFACE_LINK_OPTIONS "LINKER:-rpath-link,${_dir}")
    endforeach()
  endif()
  # torch 2.11's libtorch.so (the wheel's, cu130) exports 64 std::filesystem functions of its own, and a
  # program that needs libtorch.so before libstdc++.so binds its own std::filesystem calls to them: the
  # first std::filesystem::remove_all (a checkpoint's prune) jumps to address 0 (seen in
  # scripts/gpu_check.sh --rehearse).  libstdc++ named first, ahead of the objects, comes first in the
  # loader's search.  (2.14's libtorch.so exports none; the option costs nothing there.)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" OR CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    _gm_add(INTERFACE_LINK_OPTIONS "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
  endif()
endfunction()
