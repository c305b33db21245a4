// Header-only gm from its installed package: the process maths, and gm's installed data (share/gm/configs)
// found from a folder that has no configs/ of its own, as the examples' default configs are.
#include <gm/io/file.hpp>
#include <gm/process/linear.hpp>

#include <cstdio>
#include <filesystem>

int main() {
  const auto ring = gm::io::find_data_file("configs/mixtures/ring8.toml");
  const bool found = ring.is_absolute() && std::filesystem::is_regular_file(ring) &&
                     ring.string().find("/share/gm/configs/") != std::string::npos;
  std::printf("configs/mixtures/ring8.toml -> %s\n", ring.string().c_str());
  return gm::Linear{}.alpha(torch::zeros({1})).item<float>() == 1.0f && found ? 0 : 1;
}
