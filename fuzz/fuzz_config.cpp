// libFuzzer target: an experiment's TOML config (gm::Config::load_text over every standard key, data and
// model keys), the LR schedule parser, and the run-folder comparison's text forms.
#include <gm/data/vectors.hpp>
#include <gm/nn/keys.hpp>
#include <gm/experiment/experiment.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gm::Experiment ex("fuzz", "fuzz");
  gm::data::VectorData::add_keys(ex.config());
  gm::add_mlp_keys(ex.config());
  try {
    ex.config().load_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    (void)ex.train_options();  // parses optim.schedule
    gm::Config again = ex.config();
    again.load_text(ex.config().to_toml(), "saved.toml");  // what a run saves loads back
    for (const auto& k : ex.config().keys()) {
      if (again.text(k) != ex.config().text(k)) __builtin_trap();
    }
  } catch (const gm::Error&) {
  }
  return 0;
}
