// libFuzzer target: Gaussian-mixture TOML files (gm::GaussianMixture::from_toml_text).
#include <gm/data/gaussian_mixture.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = gm::GaussianMixture::from_toml_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
    (void)g.log_prob(g.means());
  } catch (const gm::Error&) {
  }
  return 0;
}
