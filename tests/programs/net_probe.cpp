// Writes a gm UNet or DiT with random weights and its output on a fixed input, for the Python twin of gm's
// networks (python/gm_nets.py; program test python_nets_match):
//   net_probe unet|unet2|dit OUTDIR C H CLASSES [--model.KEY=VALUE ...]
// unet2 is a UNet of two times (a flow map u(x, t, r)), probed at [B, 2] times (t, r).
// OUTDIR gets config.toml (the model.* keys, as a run folder has), weights.safetensors (every parameter
// and buffer by name, as a run exports them) and probe.safetensors (x, t, y and the network's output).
#include <gm/io/config.hpp>
#include <gm/io/export.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/keys.hpp>
#include <gm/nn/unet.hpp>
#include <gm/random.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {
// Every weight drawn at random: the zero-initialised output layers would hide the network's inside.
template <class Net>
void randomise(Net& net) {
  torch::NoGradGuard ng;
  auto gen = gm::make_generator(7);
  for (auto& p : net->parameters()) p.copy_(0.2 * torch::randn(p.sizes(), gen));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: net_probe unet|unet2|dit OUTDIR C H CLASSES [--model.KEY=VALUE ...]\n");
    return 2;
  }
  const std::string kind = argv[1];
  const std::filesystem::path out = argv[2];
  const int64_t c = std::atoll(argv[3]), h = std::atoll(argv[4]), classes = std::atoll(argv[5]);
  try {
    gm::Config cfg("net_probe");
    if (kind == "unet" || kind == "unet2") gm::add_unet_keys(cfg);
    else gm::add_dit_keys(cfg);
    argv[5] = argv[0];  // the flags after the positional arguments
    if (auto code = cfg.parse(argc - 5, argv + 5)) return *code;
    torch::manual_seed(3);
    auto gen = gm::make_generator(11);
    const int64_t b = 3;
    auto x = torch::randn({b, c, h, h}, gen);
    auto t = torch::rand({b}, gen);
    if (kind == "unet2") t = torch::stack({t, t * torch::rand({b}, gen)}, 1);  // (t, r) with r <= t
    auto y = classes > 0 ? torch::tensor({0L, classes - 1, classes}, torch::kInt64) : torch::Tensor();  // classes: the null class
    torch::Tensor result;
    std::vector<std::pair<std::string, torch::Tensor>> weights;
    torch::NoGradGuard ng;
    auto run = [&](auto net) {
      randomise(net);
      net->eval();
      result = net->forward(x, t, y);
      weights = gm::io::named_tensors(*net);
      std::printf("%s\n", net->describe().c_str());
    };
    if (kind == "unet") run(gm::make_unet(cfg, {c, h, h}, classes));
    else if (kind == "unet2") run(gm::make_unet(cfg, {c, h, h}, classes, 0, 0, 2));
    else run(gm::make_dit(cfg, {c, h, h}, classes));
    std::filesystem::create_directories(out);
    gm::io::write_safetensors(out / "weights.safetensors", weights);
    std::vector<std::pair<std::string, torch::Tensor>> probe{{"x", x}, {"t", t}, {"out", result}};
    if (y.defined()) probe.emplace_back("y", y);
    gm::io::write_safetensors(out / "probe.safetensors", probe);
    std::FILE* f = std::fopen((out / "config.toml").c_str(), "w");
    if (!f) throw gm::Error("gm: cannot write " + (out / "config.toml").string());
    std::fputs(cfg.to_toml().c_str(), f);
    std::fclose(f);
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
