// libFuzzer target: image files of image folders (PNG, JPEG, BMP, decoded by stb_image, then resized and
// centre-cropped).  Bad input must be a gm::Error; any other exception, crash or sanitizer report is a bug.
#include <gm/data/image_files.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    // At most 4 Mpixels, so a forged header cannot ask for more memory than libFuzzer allows.
    gm::data::decode_image(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.png", 16, 3,
                           int64_t{1} << 22);
  } catch (const gm::Error&) {
  }
  return 0;
}
