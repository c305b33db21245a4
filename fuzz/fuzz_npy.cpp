// libFuzzer target: the .npy reader (gm::data::parse_npy) and the value check of training data.  Bad input
// must be a gm::Error; any other exception, crash or sanitizer report is a bug.
#include <gm/data/features.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto x = gm::data::parse_npy(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.npy");
    gm::data::check_values(x, "fuzz.npy");
  } catch (const gm::Error&) {
  }
  return 0;
}
