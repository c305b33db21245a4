// libFuzzer target: the IDX reader (gzip or plain) of MNIST-style files.  Bad input must be a gm::Error;
// any other exception, crash or sanitizer report is a bug.
#include <gm/data/image_files.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string bytes(reinterpret_cast<const char*>(data), size);
    gm::data::parse_idx(gm::data::detail::maybe_gunzip(bytes, "fuzz.idx", size_t{1} << 24), "fuzz.idx");
  } catch (const gm::Error&) {
  }
  return 0;
}
