// Reflow (Liu, Gong & Liu, "Flow Straight and Fast", ICLR 2023) on a Gaussian mixture: train a flow, let it
// generate pairs (x1, x0 = its ODE solution from x1, Heun at 40 NFE), retrain from its weights on those
// pairs (gm::Batch::z carries each pair's noise), and measure on the oracle what changed: the paths'
// straightness E int |(x1 - x0) - v(x_t, t)|^2 dt and the one-step error against the exact flow map.
//
//   build/examples/reflow_2d [--mixture configs/mixtures/ring8.toml] [--steps 3000] [--pairs 20000]
//
// benchmarks/bench_fewstep.cpp puts reflow beside MeanFlow, shortcut and consistency models and OT couplings.
#include <gm/io/cli.hpp>
#include <gm/io/file.hpp>
#include <gm/trainer.hpp>

#include <cstdio>
#include <string>

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;

namespace {
/// Straightness along the flow's own Euler paths of 128 steps from x1.
double straightness(Flow& flow, const torch::Tensor& x1) {
  torch::NoGradGuard ng;
  auto field = flow.make_field();
  const int64_t k = 128;
  auto x = x1.clone();
  std::vector<torch::Tensor> vs;
  for (int64_t i = 0; i < k; ++i) {
    vs.push_back(field.velocity(x, 1.0 - static_cast<double>(i) / k));
    x = x - vs.back() / static_cast<double>(k);
  }
  double s = 0;
  for (const auto& v : vs) s += ((x1 - x) - v).pow(2).sum(1).mean().item<double>() / static_cast<double>(k);
  return s;
}
}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"Reflow on a Gaussian mixture: a flow, its own pairs, the 2-rectified flow, measured on the oracle."};
  std::string mixture = "configs/mixtures/ring8.toml";
  int64_t steps = 3000, pairs = 20000, batch = 1024, hidden = 256, layers = 4;
  app.add_option("--mixture", mixture, "Gaussian-mixture TOML file for the data");
  app.add_option("--steps", steps, "training steps of the flow, and again of the reflow")->check(CLI::Range(1, 10000000));
  app.add_option("--pairs", pairs, "pairs the flow generates for reflow")->check(CLI::Range(1, 100000000));
  app.add_option("--batch", batch, "batch size")->check(CLI::Range(1, 1 << 20));
  app.add_option("--hidden", hidden, "MLP width")->check(CLI::Range(1, 1 << 14));
  app.add_option("--layers", layers, "MLP hidden layers")->check(CLI::Range(1, 64));
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  const auto gmm = gm::GaussianMixture::from_toml(gm::io::find_data_file(mixture));
  if (gmm.dim() != 2) throw gm::Error("gm: " + mixture + " is not 2-D");
  const auto data = gmm.to(torch::kFloat32);
  auto options = gm::TrainOptions().lr(1e-3).batch_size(batch).clip_norm(1.0)
                     .schedule(gm::LRSchedule{"cosine", 1e-3, 0.0, std::min<int64_t>(200, steps / 10), steps, {}});
  auto net = [&] {
    torch::manual_seed(0);
    return gm::MLP(gm::MLPOptions().dim(2).hidden(hidden).layers(layers).time_embedding("raw"));
  };
  // 1. The flow (1-rectified), on fresh data.
  Flow flow(net(), options);
  auto gen = gm::make_generator(1);
  for (int64_t i = 0; i < steps; ++i) flow.train_step(data.sample(batch, gen));
  // 2. Its pairs, and the 2-rectified flow from its weights on them.
  auto z = torch::randn({pairs, 2}, gm::make_generator(2));
  auto x0 = flow.sample(gm::SampleOptions().n(pairs).nfe(40).t_end(0.0).noise(z), gm::HeunSampler{});
  Flow reflow(net(), options);
  {
    torch::NoGradGuard ng;
    auto src = flow.net()->parameters(), dst = reflow.net()->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  for (int64_t i = 0; i < steps; ++i) {
    auto rows = torch::randint(pairs, {batch}, gen, torch::kLong);
    reflow.train_step(gm::Batch{x0.index_select(0, rows), {}, {}, {}, z.index_select(0, rows)});
  }
  // 3. The oracle: the exact flow map from fresh noise, and each flow's one-step error and straightness.
  auto x1 = torch::randn({2000, 2}, gm::make_generator(3));
  auto v = [&](const torch::Tensor& x, const torch::Tensor& s) { return gmm.velocity(x, s, gm::Interpolant<gm::Linear>{}); };
  auto exact = gm::flow_map(v, x1.to(torch::kFloat64), torch::scalar_tensor(1.0, torch::kFloat64),
                            torch::scalar_tensor(0.0, torch::kFloat64), 400);
  std::printf("%-22s %12s %14s %14s %14s\n", "flow", "straightness", "error NFE 1", "error NFE 2", "error NFE 4");
  for (auto* f : {&flow, &reflow}) {
    std::printf("%-22s %12.4f", f == &flow ? "flow (1-rectified)" : "reflow (2-rectified)", straightness(*f, x1));
    for (int64_t nfe : {1, 2, 4}) {
      auto x = f->sample(gm::SampleOptions().n(2000).nfe(nfe).t_end(0.0).noise(x1)).to(torch::kFloat64);
      std::printf(" %14.3f", (x - exact).norm(2, 1).mean().item<double>());
    }
    std::printf("\n");
  }
  return 0;
} catch (const gm::Error& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
