// libFuzzer target: the TensorBoard event-file reader (gm::io::read_events), which a resumed run uses to
// cut its event stream back to the checkpoint.
#include <gm/io/tensorboard.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path =
      std::filesystem::temp_directory_path() / ("gm_fuzz_tfevents_" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  try {
    (void)gm::io::read_events(path);
  } catch (const gm::Error&) {
  }
  return 0;
}
