// libFuzzer target: gm's safetensors parser (gm::io::parse_safetensors), which reads every checkpoint file;
// what it accepts must encode back to a file it reads the same.
#include <gm/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::map<std::string, std::string> meta;
    const auto ts = gm::io::parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz", &meta);
    const auto again = gm::io::parse_safetensors(gm::io::encode_safetensors(ts, meta), "again");
    if (again.size() != ts.size()) __builtin_trap();
    for (size_t i = 0; i < ts.size(); ++i) {
      if (again[i].first != ts[i].first || !again[i].second.sizes().equals(ts[i].second.sizes())) __builtin_trap();
    }
  } catch (const gm::Error&) {
  }
  return 0;
}
