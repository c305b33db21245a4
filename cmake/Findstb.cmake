# Finds stb (Debian's libstb-dev: headers in <stb/...> and libstb.so with the implementations) and defines
# the imported target stb::stb.  gm reads image folders with stb_image and resizes with stb_image_resize.
find_path(stb_INCLUDE_DIR stb/stb_image.h)
find_library(stb_LIBRARY stb)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(stb REQUIRED_VARS stb_INCLUDE_DIR stb_LIBRARY)
if(stb_FOUND AND NOT TARGET stb::stb)
  add_library(stb::stb UNKNOWN IMPORTED)
  set_target_properties(stb::stb PROPERTIES IMPORTED_LOCATION "${stb_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${stb_INCLUDE_DIR}")
endif()
