#pragma once
/// @file
/// Exponential moving average of a network's weights.

#include <gm/detail/compiled.hpp>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace gm {

/// An EMA of a module's parameters, theta_ema <- d theta_ema + (1 - d) theta (one `_foreach_lerp_`), with warmup
/// d_k = min(decay, (1 + k) / (10 + k)) as in TensorFlow's ExponentialMovingAverage with num_updates and
/// in DDPM/score_sde practice, so early averages are not dominated by the random initialisation.
///
/// As a trainer callback it updates after every optimiser step.  `Swap` puts the averaged weights into the
/// module for sampling and restores the trained ones after.
class EMA {
 public:
  explicit EMA(double decay = 0.999, bool warmup = true) : decay_(decay), warmup_(warmup) {}

  /// Start averaging from the module's current weights.
  void attach(torch::nn::Module& m);

  /// One update from the module's current weights.
  void update(torch::nn::Module& m);

  /// Trainer hook: update after each step.
  template <class T, class Stats>
  void on_step_end(T& trainer, const Stats&) {
    update(*trainer.net());
  }

  /// While alive, the module holds the averaged weights.
  class Swap {
   public:
    Swap(EMA& ema, torch::nn::Module& m) : ema_(ema), m_(m) { exchange(); }
    ~Swap() { exchange(); }
    Swap(const Swap&) = delete;
    Swap& operator=(const Swap&) = delete;

   private:
    void exchange() {
      torch::NoGradGuard ng;
      auto params = m_.parameters();
      if (ema_.shadow_.size() != params.size()) return;
      for (size_t i = 0; i < params.size(); ++i) {
        auto tmp = params[i].detach().clone();
        params[i].detach().copy_(ema_.shadow_[i]);
        ema_.shadow_[i].copy_(tmp);
      }
    }
    EMA& ema_;
    torch::nn::Module& m_;
  };

  /// Restore averaged weights and the update count from a checkpoint.
  void restore(std::vector<torch::Tensor> shadow, int64_t updates);

  const std::vector<torch::Tensor>& shadow() const { return shadow_; }
  int64_t updates() const { return updates_; }
  double decay() const { return decay_; }

 private:
  double decay_;
  bool warmup_;
  int64_t updates_ = 0;
  std::vector<torch::Tensor> shadow_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void EMA::attach(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  shadow_.clear();
  for (const auto& p : m.parameters()) shadow_.push_back(p.detach().clone());
  updates_ = 0;
}

GM_INLINE void EMA::update(torch::nn::Module& m) {
  torch::NoGradGuard ng;
  auto params = m.parameters();
  if (shadow_.size() != params.size()) attach(m);
  const double d = warmup_ ? std::min(decay_, (1.0 + updates_) / (10.0 + updates_)) : decay_;
  // One multi-tensor lerp over every parameter: a handful of kernels on CUDA instead of two per tensor.
  torch::_foreach_lerp_(shadow_, params, 1 - d);
  ++updates_;
}

GM_INLINE void EMA::restore(std::vector<torch::Tensor> shadow, int64_t updates) {
  shadow_ = std::move(shadow);
  updates_ = updates;
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
