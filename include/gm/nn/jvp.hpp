#pragma once
/// @file
/// `gm::jvp`: the Jacobian-vector product of a network, by forward-mode AD or by the double-backward trick.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <ATen/ops/_make_dual.h>
#include <ATen/ops/_unpack_dual.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

namespace gm {

/// How `gm::jvp` differentiates.
enum class JVPMode {
  /// Forward-mode AD (LibTorch's dual tensors, `at::_make_dual` under a dual level): one pass that carries
  /// the tangent beside the value, as `torch.func.jvp` does; what MeanFlow and sCM use.
  forward,
  /// The double-backward trick (Pearlmutter 1994's reverse-of-reverse): J v = d/du <J^T u, v>, two reverse
  /// passes through a graph built with create_graph; for operations without a forward-mode formula.
  double_backward,
};

/// The value f(x) and the directional derivative J_f(x) v.
struct JVP {
  torch::Tensor output;   ///< f(x), with its graph (gradients flow to the network's parameters)
  torch::Tensor tangent;  ///< J v, detached unless `create_graph`
};

/// A function of several tensors, as `gm::jvp` differentiates it.
using JVPFunction = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

/// The Jacobian-vector product of `f` at `inputs` along `tangents` (one per input, same shapes; an
/// undefined tangent is zero): f(x) and sum_i (d f / d x_i) v_i.  MeanFlow (Geng et al. 2025) differentiates
/// u(z, r, t) along (v, 0, 1) this way; consistency models (sCM, Lu & Song 2024) along (dx/dt, 1).
///
/// The output keeps its graph to the parameters, so a loss on it trains the network; the tangent is
/// detached (MeanFlow's and sCM's stop-gradient target) unless `create_graph`.  Inside `gm::jvp`
/// `gm::nn::attention` uses its plain-product form, since LibTorch's fused attention kernels have neither a
/// forward-mode derivative nor a second derivative.  Tested against central differences and between the two modes.
JVP jvp(const JVPFunction& f, const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& tangents,
        JVPMode mode = JVPMode::forward, bool create_graph = false);

/// One input: f(x) and J_f(x) v.
JVP jvp(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x, const torch::Tensor& v,
        JVPMode mode = JVPMode::forward, bool create_graph = false);

namespace detail {
/// How many `gm::jvp` calls are running on this thread (they nest).
int& jvp_depth();
}  // namespace detail

#if GM_HEADER_DEFINITIONS
GM_INLINE int& detail::jvp_depth() {
  thread_local int depth = 0;
  return depth;
}

namespace detail {
/// Counts a running gm::jvp on this thread for its scope, also on an exception.
struct JVPScope {
  JVPScope() { ++jvp_depth(); }
  ~JVPScope() { --jvp_depth(); }
  JVPScope(const JVPScope&) = delete;
  JVPScope& operator=(const JVPScope&) = delete;
};
/// Enters a dual level and leaves it on scope exit, also on an exception.
struct DualLevel {
  uint64_t level;
  DualLevel() : level(torch::autograd::forward_ad::enter_dual_level()) {}
  ~DualLevel() { torch::autograd::forward_ad::exit_dual_level(level); }
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;
};
}  // namespace detail

GM_INLINE JVP jvp(const JVPFunction& f, const std::vector<torch::Tensor>& inputs, const std::vector<torch::Tensor>& tangents,
                  JVPMode mode, bool create_graph) {
  if (inputs.size() != tangents.size()) {
    throw Error("gm: jvp: " + std::to_string(inputs.size()) + " inputs but " + std::to_string(tangents.size()) +
                " tangents");
  }
  std::vector<torch::Tensor> v(tangents.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    v[i] = tangents[i].defined() ? tangents[i].to(inputs[i].options()) : torch::zeros_like(inputs[i]);
    if (v[i].sizes() != inputs[i].sizes()) throw Error("gm: jvp: a tangent's shape differs from its input's");
  }
  detail::JVPScope scope;
  if (mode == JVPMode::forward) {
    detail::DualLevel dual;
    std::vector<torch::Tensor> xs;
    xs.reserve(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) xs.push_back(at::_make_dual(inputs[i], v[i], static_cast<int64_t>(dual.level)));
    auto out = f(xs);
    auto [primal, tangent] = at::_unpack_dual(out, static_cast<int64_t>(dual.level));
    if (!tangent.defined()) tangent = torch::zeros_like(primal);  // f does not depend on the inputs
    // The tangent must outlive the level (exiting it clears dual state): copy both out as plain tensors.
    JVP r{primal.view_as(primal), create_graph ? tangent.clone() : tangent.detach().clone()};
    return r;
  }
  std::vector<torch::Tensor> xs;
  for (const auto& x : inputs) xs.push_back(x.detach().requires_grad_(true));
  auto out = f(xs);
  auto u = torch::zeros_like(out).requires_grad_(true);
  auto vjp = torch::autograd::grad({out}, xs, {u}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true);
  torch::Tensor inner = torch::zeros({}, out.options());
  for (size_t i = 0; i < xs.size(); ++i) {
    if (vjp[i].defined()) inner = inner + (vjp[i] * v[i]).sum();
  }
  torch::Tensor tangent;
  if (!inner.requires_grad()) {
    tangent = torch::zeros_like(out);
  } else {
    tangent = torch::autograd::grad({inner}, {u}, {}, /*retain_graph=*/true, create_graph, /*allow_unused=*/true)[0];
    if (!tangent.defined()) tangent = torch::zeros_like(out);
  }
  return {out, create_graph ? tangent : tangent.detach()};
}

GM_INLINE JVP jvp(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x,
                  const torch::Tensor& v, JVPMode mode, bool create_graph) {
  return jvp([&](const std::vector<torch::Tensor>& xs) { return f(xs[0]); }, {x}, {v}, mode, create_graph);
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
