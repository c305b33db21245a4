#pragma once
/// @file
/// `FlatAdam`: Adam and AdamW over one flat buffer of parameters, one of gradients and one per moment.

#include <gm/detail/compiled.hpp>

#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <c10/util/string_utils.h>
#include <torch/optim/adam.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace gm {

/// Adam (Kingma & Ba 2015) or, with `decoupled`, AdamW (Loshchilov & Hutter 2019), the same update as
/// `torch::optim::Adam`/`AdamW` with the parameters, their gradients and both moments each living in one
/// contiguous buffer.  The module's parameters become views of the flat parameter buffer and their
/// gradients views of the flat gradient buffer (autograd accumulates into them in place), so an update is
/// seven whole-buffer kernels instead of seven per tensor, and the gradient norm for clipping is one
/// reduction.  Measured here on the 2-256-256-2 MLP (6 tensors): 110 us a step for torch::optim::Adam.
///
/// It is a `torch::optim::Optimizer`: param_groups()[0].options() is an AdamOptions (set_lr works), state()
/// holds an AdamParamState per parameter whose moments are views of the flat moments, and save()/load()
/// read and write torch::optim::Adam's format.  If something rebinds a parameter or gradient (a checkpoint
/// load uses set_), the next step notices and copies it back into the buffer.
///
/// `fused` (the default, on the CPU and CUDA) makes the update one kernel: LibTorch's `_fused_adam_` /
/// `_fused_adamw_` (torch.optim.Adam(fused=True)) over the flat buffers, which reads the gradient once and
/// writes the parameters and both moments in the same pass.  Measured on a 1.2M-element float32 buffer, one
/// thread of a 2-core Xeon, the two side by side: 1.08 ms against 4.65 ms for the seven kernels.  It
/// also takes the clipping factor and the skip decision as device tensors (`step(grad_scale, found_inf)`), so
/// a training step needs no host read of its loss or gradient norm.  The fused update equals the unfused one
/// to float rounding (the same formula, evaluated in one pass: 1.2e-7 apart after three steps).
class FlatAdam : public torch::optim::Optimizer {
 public:
  /// Parameters with `requires_grad = false` (frozen) are left out: never moved, not in the buffers.
  FlatAdam(std::vector<torch::Tensor> all, torch::optim::AdamOptions options, bool decoupled = false, bool fused = true)
      : FlatAdam(trainable(std::move(all)), options, decoupled, fused, 0) {}

 private:
  static std::vector<torch::Tensor> trainable(std::vector<torch::Tensor> all);
  FlatAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options, bool decoupled, bool fused, int);

 public:
  /// The flat gradient buffer: every parameter's gradient is a view of it.
  const torch::Tensor& flat_grad();
  /// The flat parameter buffer.
  const torch::Tensor& flat_params() const { return flat_; }

  /// Zero the gradients: one kernel on the flat buffer.
  void zero_grad();

  torch::Tensor step(LossClosure closure = nullptr) override;
  /// One update with the gradient divided by `grad_scale` (a float32 scalar on the parameters' device, >= 1
  /// to clip; undefined: 1) and skipped where `found_inf` (the same kind of scalar) is 1: parameters, moments
  /// and the step count then stay as they were.  Fused, neither is read on the host; unfused, `found_inf` is.
  void step(const torch::Tensor& grad_scale, const torch::Tensor& found_inf);
  /// Whether updates run as LibTorch's fused kernel.
  bool fused() const { return fused_; }
  /// Updates taken (skipped ones not counted); fused, a host read of the device's count.
  int64_t steps() const;

  /// The optimiser's state as named tensors (`exp_avg`, `exp_avg_sq`: the flat moments; `step`), for
  /// gm's checkpoints.
  std::vector<std::pair<std::string, torch::Tensor>> state_tensors() const;
  /// Check `state` against this optimiser's buffers (names, sizes, dtypes): an empty string when it fits,
  /// else why not.  `load_state_tensors` loads it.
  std::string check_state_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& state) const;
  void load_state_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& state);

  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  const std::vector<torch::Tensor>& params() const { return param_groups_.front().params(); }

  torch::Tensor view(const torch::Tensor& flat, size_t i) const;
  /// The state torch's Optimizer keeps for `p` (keyed by its TensorImpl), created if missing.
  torch::optim::AdamParamState& state_of(const torch::Tensor& p);
  /// Point each parameter's state at views of the flat moments, and cache the states for step().
  void attach_states();

  /// Make each parameter (and gradient) a view of the flat buffers again where it is not, copying its
  /// current values in.
  void bind();

  /// Point the per-parameter states' step at `steps()` (for torch's save format).
  void sync_states() const;

  bool decoupled_, fused_;
  std::vector<int64_t> offsets_;
  std::vector<torch::optim::AdamParamState*> states_;  // state_'s entries, in parameter order
  torch::Tensor flat_, grad_, exp_avg_, exp_avg_sq_, denom_;
  torch::Tensor step_t_;  // fused: the step count as the kernel reads it (float32 on the device)
  int64_t step_ = 0;      // unfused: the step count
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto FlatAdam::trainable(std::vector<torch::Tensor> all) -> std::vector<torch::Tensor> {
  std::vector<torch::Tensor> out;
  for (auto& p : all) {
    if (p.requires_grad()) out.push_back(std::move(p));
  }
  return out;
}

GM_INLINE FlatAdam::FlatAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options, bool decoupled,
                             bool fused, int)
    : Optimizer({torch::optim::OptimizerParamGroup(params)}, std::make_unique<torch::optim::AdamOptions>(options)),
      decoupled_(decoupled), fused_(fused) {
  TORCH_CHECK(!params.empty(), "gm: FlatAdam needs trainable parameters");
  TORCH_CHECK(!options.amsgrad(), "gm: FlatAdam does not implement amsgrad");
  TORCH_CHECK(options.lr() >= 0 && options.eps() >= 0 && options.weight_decay() >= 0,
              "gm: FlatAdam needs lr, eps, weight_decay >= 0");
  const auto& p0 = params.front();
  int64_t total = 0;
  for (const auto& p : params) {
    TORCH_CHECK(p.scalar_type() == p0.scalar_type() && p.device() == p0.device(),
                "gm: FlatAdam needs all parameters of one dtype and device");
    offsets_.push_back(total);
    total += p.numel();
  }
  const auto opts = p0.options().requires_grad(false);
  flat_ = torch::empty({total}, opts);
  grad_ = torch::zeros({total}, opts);
  exp_avg_ = torch::zeros({total}, opts);
  exp_avg_sq_ = torch::zeros({total}, opts);
  // LibTorch's fused Adam has CPU and CUDA kernels for floating types; elsewhere the seven kernels run.
  fused_ = fused_ && (p0.is_cpu() || p0.is_cuda()) && at::isFloatingType(p0.scalar_type());
  if (!fused_) denom_ = torch::empty({total}, opts);
  step_t_ = torch::zeros({}, opts.dtype(torch::kFloat32));
  bind();
  attach_states();
}

GM_INLINE auto FlatAdam::flat_grad() -> const torch::Tensor& {
  bind();
  return grad_;
}

GM_INLINE void FlatAdam::zero_grad() {
  bind();
  grad_.zero_();
}

GM_INLINE auto FlatAdam::step(LossClosure closure) -> torch::Tensor {
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable(true);
    loss = closure();
  }
  step(torch::Tensor(), torch::Tensor());
  return loss;
}

GM_INLINE void FlatAdam::step(const torch::Tensor& grad_scale, const torch::Tensor& found_inf) {
  torch::NoGradGuard ng;
  bind();
  auto& o = static_cast<torch::optim::AdamOptions&>(param_groups_.front().options());
  const auto [beta1, beta2] = o.betas();
  if (fused_) {
    // As torch.optim's _fused_adam: the count goes up before the kernel and back down where it skipped.
    step_t_.add_(1);
    const std::optional<torch::Tensor> scale = grad_scale.defined() ? std::optional(grad_scale) : std::nullopt;
    const std::optional<torch::Tensor> inf = found_inf.defined() ? std::optional(found_inf) : std::nullopt;
    if (decoupled_) {
      at::_fused_adamw_({flat_}, {grad_}, {exp_avg_}, {exp_avg_sq_}, {}, {step_t_}, o.lr(), beta1, beta2,
                        o.weight_decay(), o.eps(), false, false, scale, inf);
    } else {
      at::_fused_adam_({flat_}, {grad_}, {exp_avg_}, {exp_avg_sq_}, {}, {step_t_}, o.lr(), beta1, beta2,
                       o.weight_decay(), o.eps(), false, false, scale, inf);
    }
    if (found_inf.defined()) step_t_.sub_(found_inf);
    return;
  }
  if (found_inf.defined() && found_inf.item<float>() != 0) return;
  const int64_t step = ++step_;
  for (auto* s : states_) s->step(step);  // kept per parameter for torch's save format
  const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  torch::Tensor g = grad_scale.defined() ? grad_.div(grad_scale) : grad_;
  if (o.weight_decay() != 0) {
    if (decoupled_) {
      flat_.mul_(1 - o.lr() * o.weight_decay());
    } else {
      g = g.add(flat_, o.weight_decay());
    }
  }
  exp_avg_.mul_(beta1).add_(g, 1 - beta1);
  exp_avg_sq_.mul_(beta2).addcmul_(g, g, 1 - beta2);
  torch::sqrt_out(denom_, exp_avg_sq_);
  denom_.div_(std::sqrt(bc2)).add_(o.eps());
  flat_.addcdiv_(exp_avg_, denom_, -o.lr() / bc1);
}

GM_INLINE auto FlatAdam::steps() const -> int64_t {
  return fused_ ? static_cast<int64_t>(step_t_.item<float>()) : step_;
}

GM_INLINE void FlatAdam::sync_states() const {
  const int64_t n = steps();
  for (auto* s : states_) s->step(n);
}

GM_INLINE auto FlatAdam::state_tensors() const -> std::vector<std::pair<std::string, torch::Tensor>> {
  return {{"exp_avg", exp_avg_}, {"exp_avg_sq", exp_avg_sq_}, {"step", torch::tensor(steps(), torch::kLong)}};
}

GM_INLINE auto FlatAdam::check_state_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& state) const
    -> std::string {
  if (state.size() != 3) return "expected exp_avg, exp_avg_sq and step";
  for (const auto& [name, t] : state) {
    if (name == "step") {
      if (t.dim() != 0 || t.scalar_type() != torch::kLong || t.item<int64_t>() < 0) return "step must be an int64 >= 0";
    } else if (name == "exp_avg" || name == "exp_avg_sq") {
      if (!t.sizes().equals(exp_avg_.sizes()) || t.scalar_type() != exp_avg_.scalar_type()) {
        return name + " does not fit the model's " + std::to_string(exp_avg_.numel()) + " parameters";
      }
    } else {
      return "unknown tensor '" + name + "'";
    }
  }
  return "";
}

GM_INLINE void FlatAdam::load_state_tensors(const std::vector<std::pair<std::string, torch::Tensor>>& state) {
  const auto why = check_state_tensors(state);
  TORCH_CHECK(why.empty(), "gm: FlatAdam state: ", why);
  torch::NoGradGuard ng;
  for (const auto& [name, t] : state) {
    if (name == "exp_avg") exp_avg_.copy_(t);
    else if (name == "exp_avg_sq") exp_avg_sq_.copy_(t);
    else step_ = t.item<int64_t>();
  }
  step_t_.fill_(static_cast<double>(step_));
  for (auto* st : states_) st->step(step_);
}

GM_INLINE void FlatAdam::save(torch::serialize::OutputArchive& archive) const {
  sync_states();
  torch::optim::serialize<torch::optim::AdamParamState, torch::optim::AdamOptions>(archive, *this);
}

GM_INLINE void FlatAdam::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<torch::optim::AdamParamState, torch::optim::AdamOptions>(archive, *this);
  // The loaded moments are fresh tensors: copy them into the flat buffers and keep views.
  torch::NoGradGuard ng;
  step_ = 0;
  for (size_t i = 0; i < params().size(); ++i) {
    auto& s = state_of(params()[i]);
    for (auto [flat, saved] : {std::pair(exp_avg_, s.exp_avg()), std::pair(exp_avg_sq_, s.exp_avg_sq())}) {
      if (saved.defined()) {
        view(flat, i).copy_(saved);
      } else {
        view(flat, i).zero_();
      }
    }
    step_ = s.step();
  }
  step_t_.fill_(static_cast<double>(step_));
  attach_states();  // the loaded states replaced ours
}

GM_INLINE auto FlatAdam::view(const torch::Tensor& flat, size_t i) const -> torch::Tensor {
  const auto& p = params()[i];
  return flat.narrow(0, offsets_[i], p.numel()).view(p.sizes());
}

GM_INLINE auto FlatAdam::state_of(const torch::Tensor& p) -> torch::optim::AdamParamState& {
  auto& s = state_[p.unsafeGetTensorImpl()];
  if (!s) s = std::make_unique<torch::optim::AdamParamState>();
  return static_cast<torch::optim::AdamParamState&>(*s);
}

GM_INLINE void FlatAdam::attach_states() {
  states_.clear();
  for (size_t i = 0; i < params().size(); ++i) {
    auto& s = state_of(params()[i]);
    s.exp_avg(view(exp_avg_, i));
    s.exp_avg_sq(view(exp_avg_sq_, i));
    states_.push_back(&s);
  }
}

GM_INLINE void FlatAdam::bind() {
  torch::NoGradGuard ng;
  auto* base = static_cast<char*>(flat_.data_ptr());
  auto* gbase = static_cast<char*>(grad_.data_ptr());
  const auto item = static_cast<int64_t>(flat_.element_size());
  for (size_t i = 0; i < params().size(); ++i) {
    auto p = params()[i];  // shares the TensorImpl: set_ below rebinds the module's parameter itself
    if (p.data_ptr() != base + offsets_[i] * item || !p.is_contiguous()) {
      auto v = view(flat_, i);
      v.copy_(p.detach());
      p.set_(v);
    }
    auto& g = p.mutable_grad();
    if (!g.defined() || g.data_ptr() != gbase + offsets_[i] * item) {
      auto v = view(grad_, i);
      if (g.defined()) {
        v.copy_(g);
      } else {
        v.zero_();
      }
      g = v;
    }
  }
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
