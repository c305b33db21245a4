// libFuzzer target: the checkpoint reader (gm::Checkpointer::restore_latest) on a checkpoint folder built
// from the input.  Input: one mode byte, then the files COMMIT, model.safetensors, optimizer.safetensors, state.safetensors and
// config.toml separated by "\n@@gm@@\n".  Mode even: the COMMIT marker as given (fuzzes the marker check);
// odd: a marker recomputed to match the files (fuzzes the loading of damaged or foreign archives).  Every
// checkpoint that fails must be skipped with a reason and the trainer left as it was.
#include <gm/train/checkpoint.hpp>
#include <gm/trainer.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {
using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;
constexpr std::string_view sep = "\n@@gm@@\n";
const char* const names[] = {"COMMIT", "model.safetensors", "optimizer.safetensors", "state.safetensors", "config.toml"};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Flow trainer = [] {
    torch::manual_seed(0);
    return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(8).layers(1)), gm::TrainOptions().seed(1));
  }();
  static const auto dir = std::filesystem::temp_directory_path() / ("gm_fuzz_ckpt_" + std::to_string(::getpid()));
  if (size < 1) return 0;
  const bool recompute = data[0] & 1;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::vector<std::string> files;
  while (files.size() < 4) {
    const auto at = rest.find(sep);
    if (at == std::string_view::npos) break;
    files.emplace_back(rest.substr(0, at));
    rest.remove_prefix(at + sep.size());
  }
  files.emplace_back(rest);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "step_1");
  std::string marker;
  for (size_t i = 0; i < files.size(); ++i) {
    std::ofstream(dir / "step_1" / names[i], std::ios::binary) << files[i];
    if (i > 0) marker += std::string(names[i]) + " " + std::to_string(files[i].size()) + " " +
                         std::to_string(gm::detail::crc_of(files[i])) + "\n";
  }
  if (recompute) std::ofstream(dir / "step_1" / "COMMIT", std::ios::binary | std::ios::trunc) << marker;
  gm::EMA ema(0.9);
  gm::Checkpointer ck(dir, 1, 1, "", &ema);
  const auto before = trainer.net()->parameters()[0].detach().clone();
  const auto restored = ck.restore_latest(trainer);
  if (!restored && !torch::equal(before, trainer.net()->parameters()[0])) __builtin_trap();  // not undone
  return 0;
}
