#pragma once
// A 2-D MLP whose output is zero everywhere: on the linear interpolant its velocity loss is then the batch's
// transport cost mean |eps - x0|^2, whatever the times (the coupling and reflow tests read pairs through it).

#include <gm/nn/mlp.hpp>

#include <torch/types.h>

namespace gm::test {

inline gm::MLP zero_mlp() {
  gm::MLP net(gm::MLPOptions().dim(2).hidden(8).layers(1));
  torch::NoGradGuard ng;
  for (auto& p : net->parameters()) p.zero_();
  net->to(torch::kFloat64);
  return net;
}

}  // namespace gm::test
