// The same installed gm, linked as gm::runtime: the config, its command line and the .npy writer come from
// libgm_runtime instead of being compiled here.
#include <gm/io/config.hpp>
#include <gm/io/npy.hpp>

#include <torch/types.h>

int main(int argc, char** argv) {
  gm::Config cfg("gm::runtime consumer");
  cfg.add<int64_t>("n", 3, "rows", gm::check::at_least(1));
  if (auto code = cfg.parse(argc, argv)) return *code;
  const auto bytes = gm::io::encode_npy(torch::ones({cfg.get<int64_t>("n"), 2}), "consumer");
  return bytes.size() > 128 && cfg.get<int64_t>("n") == 3 ? 0 : 1;
}
