// libFuzzer target: the CIFAR-10 binary batch reader.  Bad input must be a gm::Error; any other exception,
// crash or sanitizer report is a bug.
#include <gm/data/image_files.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::vector<uint8_t> images;
    std::vector<int64_t> labels;
    gm::data::parse_cifar10(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.bin", images, labels);
  } catch (const gm::Error&) {
  }
  return 0;
}
