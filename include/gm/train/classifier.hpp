#pragma once
/// @file
/// Training `gm::ImageClassifier` on an image data set (examples/classifier.cpp), the feature network of
/// `--mode=eval`; gm/eval/classifier.hpp tests it.

#include <gm/detail/compiled.hpp>
#include <gm/data/images.hpp>
#include <gm/nn/classifier.hpp>
#include <gm/random.hpp>
#include <gm/train/lr_schedule.hpp>

#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <functional>

namespace gm {

/// Train `net` on `data` (its batches: images in [-1, 1], labels) with Adam, cross-entropy, a linear warmup
/// and cosine decay over `steps` steps of `batch` images; `log(step, loss)` every `every` steps.
void fit_classifier(ImageClassifier& net, const data::ImageData& data, int64_t steps, int64_t batch, double lr,
                    uint64_t seed, torch::Device device, int64_t every,
                    const std::function<void(int64_t, double)>& log);
#if GM_HEADER_DEFINITIONS
GM_INLINE void fit_classifier(ImageClassifier& net, const data::ImageData& data, int64_t steps, int64_t batch,
                              double lr, uint64_t seed, torch::Device device, int64_t every,
                                  const std::function<void(int64_t, double)>& log) {
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(lr));
  LRSchedule schedule;
  schedule.kind = "cosine", schedule.lr = lr, schedule.warmup = std::min<int64_t>(100, steps / 10), schedule.total = steps;
  auto gen = make_generator(seed);
  double running = 0;
  net->train();
  for (int64_t step = 0; step < steps; ++step) {
    torch::manual_seed(mix_seed(seed, static_cast<uint64_t>(step)));  // dropout
    const Batch b = data.batch(step, batch, gen);
    auto loss = torch::nn::functional::cross_entropy(net->forward(b.x.to(device)), b.y.to(device));
    opt.zero_grad();
    loss.backward();
    for (auto& g : opt.param_groups()) g.options().set_lr(schedule.at(step));
    opt.step();
    running += loss.item<double>();
    if ((step + 1) % every == 0 || step + 1 == steps) {
      log(step + 1, running / static_cast<double>((step + 1) % every == 0 ? every : (step + 1) % every));
      running = 0;
    }
  }
  net->eval();
}
#endif

}  // namespace gm
