// bench_jvp: the cost of gm::jvp against one forward pass of the same network, side by side in one run.
//
// MeanFlow and sCM need J v of the network at every training step.  For each network (the 2-D MLP of
// configs/flow_2d.toml at batch 4096, and Fashion-MNIST's 1.2M-parameter UNet and EDM2UNet and a tiny DiT at
// batch 32) it times, alternating for --rounds rounds after a warm-up, the medians of:
//   forward     the output alone, no graph (sampling's cost);
//   train       the output with its graph and a backward pass (a plain training step's network cost);
//   jvp fwd     gm::jvp in forward mode (dual tensors), then backward through the output (MeanFlow's step);
//   jvp 2xbwd   gm::jvp by the double-backward trick, then backward through the output.
// Ratios are to `forward`, measured in the same run, so they hold across machines better than the times.
//
//   bench_jvp --rounds 5 --threads 2

#include "bench_util.hpp"

#include <gm/io/cli.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/edm2_unet.hpp>
#include <gm/nn/jvp.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/nn/unet.hpp>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

struct Case {
  std::string name;
  std::vector<torch::Tensor> params;
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)> net;  // (x, t)
  torch::Tensor x, t;
};

double time_ms(const std::function<void()>& f) {
  const auto start = gm::bench::Clock::now();
  f();
  return gm::bench::ms_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("bench_jvp: gm::jvp's cost against one forward pass");
  int rounds = 5, threads = 0;
  app.add_option("--rounds", rounds, "timed rounds (each times every variant once)")->check(CLI::Range(1, 1000));
  app.add_option("--threads", threads, "intra-op threads (0: LibTorch's default)")->check(CLI::Range(0, 256));
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) at::set_num_threads(threads);
  torch::manual_seed(0);
  auto mlp = gm::MLP(gm::MLPOptions().dim(2).hidden(256).layers(4).time_embedding("raw"));
  auto unet = gm::UNet(gm::UNetOptions().channels(32).res_blocks(1).attention_resolutions({7}));
  auto edm2 = gm::EDM2UNet(gm::EDM2UNetOptions().channels(32).channel_mult({1, 2, 2}).res_blocks(1)
                               .attention_resolutions({7}).head_channels(32));
  auto dit = gm::DiT(gm::DiTOptions().preset("tiny").image_size(28).patch(4));
  std::vector<Case> cases{
      {"MLP 2-D (batch 4096)", mlp->parameters(), [&](auto& x, auto& t) { return mlp->forward(x, t); },
       torch::randn({4096, 2}), torch::rand({4096})},
      {"UNet 1.2M (batch 32)", unet->parameters(), [&](auto& x, auto& t) { return unet->forward(x, t); },
       torch::randn({32, 1, 28, 28}), torch::rand({32})},
      {"EDM2UNet 1.2M (batch 32)", edm2->parameters(), [&](auto& x, auto& t) { return edm2->forward(x, t); },
       torch::randn({32, 1, 28, 28}), torch::rand({32})},
      {"DiT-tiny/4 (batch 32)", dit->parameters(), [&](auto& x, auto& t) { return dit->forward(x, t); },
       torch::randn({32, 1, 28, 28}), torch::rand({32})}};
  std::printf("| network | forward ms | train ms (x forward) | jvp fwd ms (x forward) | jvp 2xbwd ms (x forward) |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  for (auto& c : cases) {
    auto zero_grads = [&] {
      for (auto& p : c.params) p.mutable_grad() = torch::Tensor();
    };
    auto v = torch::randn_like(c.x);
    gm::JVPFunction f = [&](const std::vector<torch::Tensor>& a) { return c.net(a[0], a[1]); };
    const std::vector<std::function<void()>> variants{
        [&] {
          torch::NoGradGuard ng;
          c.net(c.x, c.t);
        },
        [&] {
          c.net(c.x, c.t).pow(2).mean().backward();
          zero_grads();
        },
        [&] {
          auto r = gm::jvp(f, {c.x, c.t}, {v, torch::ones_like(c.t)}, gm::JVPMode::forward);
          (r.output - r.tangent).pow(2).mean().backward();
          zero_grads();
        },
        [&] {
          auto r = gm::jvp(f, {c.x, c.t}, {v, torch::ones_like(c.t)}, gm::JVPMode::double_backward);
          (r.output - r.tangent).pow(2).mean().backward();
          zero_grads();
        }};
    for (const auto& run : variants) run();  // warm-up
    std::vector<std::vector<double>> ms(variants.size());
    for (int k = 0; k < rounds; ++k) {
      for (size_t i = 0; i < variants.size(); ++i) ms[i].push_back(time_ms(variants[i]));
    }
    std::vector<double> med;
    for (auto& m : ms) med.push_back(gm::bench::median(m));
    std::printf("| %s | %.1f | %.1f (%.2fx) | %.1f (%.2fx) | %.1f (%.2fx) |\n", c.name.c_str(), med[0], med[1],
                med[1] / med[0], med[2], med[2] / med[0], med[3], med[3] / med[0]);
    std::fflush(stdout);
  }
  return 0;
}
