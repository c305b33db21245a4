// libFuzzer target: the CSV reader (gm::data::parse_csv, BOM and header rule) and the value check.
#include <gm/data/features.hpp>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  try {
    std::string header;
    auto x = gm::data::parse_csv(in, "fuzz.csv", &header);
    gm::data::check_values(x, "fuzz.csv");
  } catch (const gm::Error&) {
  }
  return 0;
}
