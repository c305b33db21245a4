#pragma once
// The training configurations and steps that bench_train (gm against Python) and bench_dist (data-parallel
// layouts) share: the 2-D MLP of configs/flow_2d.toml and its variants, and the image networks of
// examples/fashion_mnist (UNet) and examples/dit (DiT), each as gm's Trainer stepping on a fixed batch.

#include "bench_util.hpp"

#include <gm/data/batch.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/nn/unet.hpp>
#include <gm/process/linear.hpp>
#include <gm/trainer.hpp>

#include <torch/cuda.h>

#include <memory>
#include <string>
#include <vector>

namespace gm::bench {

/// One benchmark configuration; the same numbers go to gm and to the Python script.
struct Config {
  std::string name;
  int64_t batch, hidden, layers;
  std::string precision = "fp32";         // gm's precision
  std::string python_precision = "fp32";  // the baseline's precision (the bf16 target is against fp32)
  double clip = 0, ema = 0, lr = 1e-3;
  std::string net = "mlp";  // mlp, or unet / dit: the image networks of examples/fashion_mnist and examples/dit
  std::string device = "cpu";  // both sides run here
};

/// Wait for the work queued on `device` (a CUDA device runs asynchronously), so a timing covers it.
inline void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

inline const std::vector<Config>& known_configs() {
  static const std::vector<Config> all = {
      // configs/flow_2d.toml: MLP 2-[256]x4-2, batch 1024, Adam 2e-3, clipping at 1, EMA 0.999.
      {"flow_2d", 1024, 256, 4, "fp32", "fp32", 1.0, 0.999, 2e-3},
      {"overhead", 256, 256, 2},
      {"compute", 4096, 512, 4},
      {"compute_bf16", 4096, 512, 4, "bf16", "fp32"},
      {"compute_bf16_autocast", 4096, 512, 4, "bf16", "bf16"},
      // configs/fashion_mnist.toml's UNet (32 channels, 1-2-2, 1 block, attention at 7; 1.19M parameters) and
      // examples/dit's DiT-tiny/2 (128 wide, 4 blocks; 1.27M), class-conditional, on 28x28 at batch 128, Adam
      // 1e-3, clipping at 1, EMA 0.999.  Both sides run on every core.
      {"unet", 128, 32, 1, "fp32", "fp32", 1.0, 0.999, 1e-3, "unet"},
      {"unet_bf16", 128, 32, 1, "bf16", "fp32", 1.0, 0.999, 1e-3, "unet"},
      {"unet_bf16_autocast", 128, 32, 1, "bf16", "bf16", 1.0, 0.999, 1e-3, "unet"},
      {"dit", 128, 128, 4, "fp32", "fp32", 1.0, 0.999, 1e-3, "dit"},
      {"dit_bf16", 128, 128, 4, "bf16", "fp32", 1.0, 0.999, 1e-3, "dit"},
      // A DiT a tenth of the step: 64 wide, 2 blocks, batch 32 (the smoke test's image row).
      {"dit_small", 32, 64, 2, "fp32", "fp32", 1.0, 0.999, 1e-3, "dit"},
      // GPU sizes (scripts/gpu_check.sh), bf16 autocast on both sides: an MLP 2-[1024]x4-2 at batch 65536;
      // the UNet at 128 channels (1-2-2, 2 blocks, attention at 7) and a DiT 384 wide with 12 blocks (DiT-S's
      // size, the tiny preset's heads) on 28x28 at batch 512.
      {"mlp_gpu_bf16", 65536, 1024, 4, "bf16", "bf16", 1.0, 0.999, 1e-3},
      {"unet_gpu_bf16", 512, 128, 2, "bf16", "bf16", 1.0, 0.999, 1e-3, "unet"},
      {"dit_gpu_bf16", 512, 384, 12, "bf16", "bf16", 1.0, 0.999, 1e-3, "dit"},
  };
  return all;
}

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;

/// gm's side of a configuration: the trainer and its callbacks, stepping on a fixed batch.
struct GmStep {
  GmStep(const Config& c, uint64_t seed, int64_t threads)
      : trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(c.hidden).layers(c.layers).time_embedding("raw")),
                gm::TrainOptions()
                    .batch_size(c.batch)
                    .lr(c.lr)
                    .clip_norm(c.clip)
                    .seed(seed)
                    .precision(c.precision)
                    .threads(threads)
                    .device(torch::Device(c.device))),
        ema(c.ema > 0 ? c.ema : 0.999, false),
        use_ema(c.ema > 0),
        x0(torch::randn({c.batch, 2}).to(torch::Device(c.device))) {}
  /// Milliseconds per step over n steps.
  double run(int64_t n) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
      trainer.train_step(x0);
      if (use_ema) ema.update(*trainer.net());
    }
    sync(x0.device());
    return ms_since(start) / static_cast<double>(n);
  }
  Flow trainer;
  gm::EMA ema;
  bool use_ema;
  torch::Tensor x0;
};

using UNetFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler>;
using DiTFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::DiT, gm::EulerSampler>;

inline gm::TrainOptions image_options(const Config& c, uint64_t seed, int64_t threads) {
  return gm::TrainOptions().batch_size(c.batch).lr(c.lr).clip_norm(c.clip).seed(seed).precision(c.precision)
      .threads(threads).label_dropout(0.1).device(torch::Device(c.device));
}

/// gm's side of an image configuration: fashion_mnist's UNet or dit's DiT on a fixed labelled batch.
template <class Flow>
struct ImageStep {
  ImageStep(typename Flow::net_type net, const Config& c, uint64_t seed, int64_t threads)
      : trainer(std::move(net), image_options(c, seed, threads)), ema(c.ema, false),
        batch{torch::randn({c.batch, 1, 28, 28}).to(torch::Device(c.device)),
              torch::randint(10, {c.batch}, torch::kInt64).to(torch::Device(c.device))} {}
  double run(int64_t n) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
      trainer.train_step(batch);
      ema.update(*trainer.net());
    }
    sync(batch.x.device());
    return ms_since(start) / static_cast<double>(n);
  }
  Flow trainer;
  gm::EMA ema;
  gm::Batch batch;
};

inline gm::UNet bench_unet(const Config& c) {
  return gm::UNet(gm::UNetOptions().channels(c.hidden).res_blocks(c.layers).num_classes(10));
}
inline gm::DiT bench_dit(const Config& c) {
  return gm::DiT(gm::DiTOptions().preset("tiny").hidden(c.hidden).depth(c.layers).num_classes(10));
}

/// gm's side of any configuration.
struct AnyStep {
  AnyStep(const Config& c, uint64_t seed, int64_t threads) {
    if (c.net == "unet") unet = std::make_unique<ImageStep<UNetFlow>>(bench_unet(c), c, seed, threads);
    else if (c.net == "dit") dit = std::make_unique<ImageStep<DiTFlow>>(bench_dit(c), c, seed, threads);
    else mlp = std::make_unique<GmStep>(c, seed, threads);
  }
  double run(int64_t n) { return unet ? unet->run(n) : dit ? dit->run(n) : mlp->run(n); }
  /// f(trainer) on whichever trainer this is.
  template <class F>
  void visit(F&& f) {
    if (unet) f(unet->trainer);
    else if (dit) f(dit->trainer);
    else f(mlp->trainer);
  }
  std::unique_ptr<GmStep> mlp;
  std::unique_ptr<ImageStep<UNetFlow>> unet;
  std::unique_ptr<ImageStep<DiTFlow>> dit;
};


}  // namespace gm::bench
