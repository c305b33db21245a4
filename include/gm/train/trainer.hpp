#pragma once
/// @file
/// `Trainer<Interpolant<S>, Predict<P>, Net, Sampler, TimeSampler, Weighting, Coupling>`: one training step and
/// sampling from the trained network; everything else is a callback.

#include <gm/data/batch.hpp>
#include <gm/error.hpp>
#include <gm/nn/embedding.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/prediction/weighting.hpp>
#include <gm/runtime.hpp>
#include <gm/process/check.hpp>
#include <gm/process/interpolant.hpp>
#include <gm/prediction/vdm_elbo.hpp>
#include <gm/process/vdm.hpp>
#include <gm/random.hpp>
#include <gm/sampler/field.hpp>
#include <gm/dist/data_parallel.hpp>
#include <gm/sampler/grids.hpp>
#include <gm/sampler/integrate.hpp>
#include <gm/time/samplers.hpp>
#include <gm/train/coupling.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/flow_map.hpp>
#include <gm/train/flat_adam.hpp>
#include <gm/train/lr_schedule.hpp>
#include <gm/train/precision.hpp>

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <concepts>
#include <cstdint>
#include <limits>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace gm {

/// What one training step reports to callbacks.
struct StepStats {
  int64_t step = 0;       ///< steps completed, this one included
  double loss = 0;        ///< the weighted loss of the step (summed over accumulated micro-batches)
  double lr = 0;          ///< learning rate used
  double grad_norm = 0;   ///< gradient norm before clipping
  double ms = 0;          ///< wall time of the step (host time: with `values` pending, the time to queue it)
  bool skipped = false;   ///< the loss or gradient norm was not finite and the update was skipped
  /// Defined while the step's numbers are still on the device (`TrainOptions::sync_every` > 1, between
  /// reads): float64 [loss, gradient norm, 1 if skipped]; `loss` and `grad_norm` are NaN until
  /// `resolved()` or `resolve()` reads them.
  torch::Tensor values;

  /// This step with its numbers read from the device (a host synchronisation where they are pending).
  StepStats resolved() const {
    std::vector<StepStats> one{*this};
    resolve(one);
    return one.front();
  }
  /// Read the pending numbers of all `stats` with one host synchronisation.
  static void resolve(std::vector<StepStats>& stats) {
    std::vector<torch::Tensor> pending;
    for (const auto& s : stats) {
      if (s.values.defined()) pending.push_back(s.values);
    }
    if (pending.empty()) return;
    const auto host = torch::stack(pending).to(torch::kCPU, torch::kFloat64).contiguous();
    const auto* v = host.data_ptr<double>();
    for (auto& s : stats) {
      if (!s.values.defined()) continue;
      s.loss = v[0], s.grad_norm = v[1], s.skipped = v[2] != 0;
      s.values = torch::Tensor();
      v += 3;
    }
  }
};

/// A trainer callback implements at least one hook: `on_train_begin(trainer)`, `on_step_end(trainer,
/// stats)` (returning void, or bool where true stops training), `on_train_end(trainer)`.  Requiring one
/// closes the gap where a misspelt hook is silently never called.
template <class C, class T>
concept Callback = requires(C& c, T& t, const StepStats& s) { c.on_train_begin(t); } ||
                   requires(C& c, T& t, const StepStats& s) { c.on_step_end(t, s); } ||
                   requires(C& c, T& t) { c.on_train_end(t); };

/// A network: a `torch::nn::ModuleHolder` whose module is called as `forward(x, t)` or, for a
/// class-conditional one, `forward(x, t, y)`.
template <class N>
concept Network = requires(N& n, const torch::Tensor& x) { n->parameters(); } &&
                  (requires(N& n, const torch::Tensor& x) {
                    { n->forward(x, x) } -> std::convertible_to<torch::Tensor>;
                  } || requires(N& n, const torch::Tensor& x) {
                    { n->forward(x, x, x) } -> std::convertible_to<torch::Tensor>;
                  });

/// A class-conditional network: `forward(x, t, y)` with int64 labels y, and `null_class()`, the label of
/// the unconditional branch (num_classes; negative when the network was built without classes).  gm's
/// UNet and DiT are both.
template <class N>
concept ConditionalNetwork = Network<N> && requires(N& n, const torch::Tensor& x) {
  { n->forward(x, x, x) } -> std::convertible_to<torch::Tensor>;
  { n->null_class() } -> std::convertible_to<int64_t>;
};

/// Optional trait of a network module: `static constexpr bool prefers_all_cores = true` asks the trainer's
/// automatic thread setting for every CPU core in fp32 too (see gm::configure_threads); gm's UNet and DiT
/// declare it.
template <class N>
constexpr bool prefers_all_cores() {
  if constexpr (requires { N::ContainedType::prefers_all_cores; }) {
    return N::ContainedType::prefers_all_cores;
  } else {
    return false;
  }
}

/// A second network's output at (x, t, labels y, image condition c) in the same parameterisation: the
/// weak model of autoguidance (`Trainer::weights_guide`).
using GuideModel = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                                               const torch::Tensor& c)>;

/// What to sample: class labels (one per sample; undefined: the null class, i.e. unconditional), the
/// classifier-free guidance scale w, out_null + w (out_cond - out_null): 1 is the conditional model, 0 the
/// unconditional one (Ho & Salimans 2022), an image condition for a network with `forward(x, t, y, c)`
/// (a coarse field to downscale), and optionally per-sample seeds.
struct Conditioning {
  torch::Tensor labels;   ///< int64 [n], or undefined
  double guidance = 1.0;  ///< w: classifier-free guidance, or autoguidance's scale when `guide` is set
  double guidance_low = 0.0;   ///< classifier-free guidance only for t in [low, high] (gm::Guidance)
  double guidance_high = 1.0;
  double guidance_rescale = 0.0;  ///< CFG rescale phi (gm::Guidance)
  /// Autoguidance (Karras et al. 2024): when set, the network is guided by this weaker model instead of by
  /// its unconditional branch, out_guide + w (out - out_guide), both with the same labels.
  GuideModel guide{};
  torch::Tensor image{};  ///< [n, Cc, H, W] image condition, or undefined
  /// One seed per sample (`gm::sample_seeds`), or empty: then sample i's prior draw and SDE noise come from
  /// seeds[i] alone, whatever the batch; else from the trainer's sampling generator.
  std::vector<uint64_t> seeds{};
};

/// What `Trainer::sample` draws, as LibTorch's Options are written:
/// @code
/// auto x = trainer.sample(gm::SampleOptions().n(1000).nfe(20).grid("edm").ema(&ema), gm::DPMSolverPP2M{});
/// @endcode
/// The sampler takes `steps_for_nfe(sampler, nfe)` steps of the grid called `grid` (`gm::grid_names`) from
/// t = 1 to `t_end`, or the explicit decreasing `times` (1 first; they replace nfe, grid and t_end).
struct SampleOptions {
  using EMAPointer = EMA*;  // TORCH_ARG writes `const T&`: a named pointer type keeps the setter's const on the pointer
  TORCH_ARG(int64_t, n) = 1000;                  ///< samples
  TORCH_ARG(int64_t, nfe) = 20;                  ///< model evaluations per sample (rounded down to whole steps)
  TORCH_ARG(std::string, grid) = "uniform";      ///< uniform, logsnr, edm or quadratic
  TORCH_ARG(double, t_end) = 1e-3;               ///< the last time; 0 reaches the data where the process allows it
  TORCH_ARG(double, shift) = 1.0;                ///< SD3's time shift of the named grid (gm::shift_times)
  TORCH_ARG(std::vector<double>, times) = {};    ///< explicit nodes from t = 1 down (e.g. a gm::OptimizedGrid's)
  TORCH_ARG(EMAPointer, ema) = nullptr;          ///< sample from these averaged weights (swapped in, then back)
  TORCH_ARG(torch::Tensor, noise) = {};          ///< the prior draw x_1; undefined: drawn (per-sample seeds or the trainer's)
  TORCH_ARG(Conditioning, conditioning) = {};    ///< labels, guidance, image condition, per-sample seeds
  /// Check x after every step and stop at the first that is not finite (`Trainer::first_non_finite` says
  /// where); one device synchronisation a step, so for diagnosis, not for every draw.
  TORCH_ARG(bool, check_steps) = false;
  /// Measure the paths' kinetic energy, the mean over samples of sum_k ||x_{k+1} - x_k||^2 / (t_k - t_{k+1})
  /// (`Trainer::last_path_energy`): for a deterministic sampler, integral ||v||^2 dt along its steps, Tong et
  /// al. 2024's path energy (OT-CFM lowers it towards W2^2).  One subtraction and a copy of x a step.
  TORCH_ARG(bool, path_energy) = false;
  /// The network's products while sampling: fp32, bf16, fp16 (CUDA), auto (`gm::auto_precision` for the
  /// device) or training (the trainer's own training precision), through torch's autocast as in training.
  TORCH_ARG(std::string, precision) = "fp32";
};

/// A network that takes an image condition: `forward(x, t, y, c)` with c [B, Cc, H, W] (gm's UNet with
/// `cond_channels`).
template <class N>
concept ImageConditionalNetwork = Network<N> && requires(N& n, const torch::Tensor& x) {
  { n->forward(x, x, x, x) } -> std::convertible_to<torch::Tensor>;
};

/// A network conditioned on augmentation labels (EDM's non-leaky augmentation, `gm::data::AugmentPipe`):
/// `forward(x, t, y, c, a)` with a [B, augment_dim()] (c may be undefined), and `augment_dim()`, 0 when it
/// was built without them.  At sampling the labels are left out, which means no augmentation.
template <class N>
concept AugmentedNetwork = Network<N> && requires(N& n, const torch::Tensor& x) {
  { n->forward(x, x, x, x, x) } -> std::convertible_to<torch::Tensor>;
  { n->augment_dim() } -> std::convertible_to<int64_t>;
};

/// Options of the optimisation, shared by every trainer.
struct TrainOptions {
  TORCH_ARG(int64_t, batch_size) = 256;
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(std::string, optimizer) = "adam";  ///< adam or adamw
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(double, clip_norm) = 0.0;          ///< 0: no clipping
  TORCH_ARG(int64_t, accumulate) = 1;          ///< micro-batches per optimiser step
  TORCH_ARG(LRSchedule, schedule) = {};
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  /// Keep freed memory in glibc's heap (see gm::keep_freed_memory): 3.9x faster steps measured here.
  TORCH_ARG(bool, keep_freed_memory) = true;
  /// "fp32"; "bf16" or "fp16": the network's matrix products in bfloat16 or float16 (gm::Autocast; fp16 on
  /// CUDA, with a gm::LossScaler), all else in fp32; or "auto": bf16 where the device runs it fast, else fp32
  /// (gm::auto_precision).
  TORCH_ARG(std::string, precision) = "fp32";
  /// Intra-op threads; 0 chooses per precision (see gm::configure_threads).
  TORCH_ARG(int64_t, threads) = 0;
  /// Steps whose loss or gradient norm is not finite that may be skipped (no update) before training
  /// stops with a `gm::NonFiniteError`; 0 (the default) stops at the first.
  TORCH_ARG(int64_t, max_nonfinite_skips) = 0;
  /// Probability that a training label is replaced by the null class, so one network learns the
  /// conditional and the unconditional model that classifier-free guidance combines (DiT uses 0.1).
  TORCH_ARG(double, label_dropout) = 0.0;
  /// With a minibatch coupling and a class-conditional network given labels: pair each image with noise of
  /// its own class's rows only (gm::pair_within_classes, conditional OT), so the pairs cannot stand in for
  /// the label; false: one plan over the whole batch, as torchcfm's `sample_plan_with_labels`.
  TORCH_ARG(bool, couple_within_classes) = true;
  /// CUDA: float32 matrix products and convolutions on TF32 tensor cores (torch's
  /// set_float32_matmul_precision("high") and cudnn.allow_tf32), 10-bit mantissas in the products with fp32
  /// accumulation, as PyTorch's own training recipes set it.  Ignored on the CPU.
  TORCH_ARG(bool, tf32) = true;
  /// CUDA: cuDNN times its convolution algorithms at each new shape and keeps the fastest (cudnn.benchmark).
  /// The chosen algorithm may differ between runs, so convolutional networks resume on CUDA to float
  /// rounding rather than bit for bit; set false for bit-exact resumes.  Ignored on the CPU.
  TORCH_ARG(bool, cudnn_benchmark) = true;
  /// The update as one fused kernel (LibTorch's _fused_adam_, as torch.optim.Adam(fused=True)) where the
  /// device has it (CPU, CUDA); false: seven whole-buffer kernels.  Equal to float rounding (gm::FlatAdam).
  TORCH_ARG(bool, fused_adam) = true;
  /// Read the loss, the gradient norm and the non-finite check on the host every N steps (with the fused
  /// update; fp16's loss scaler reads every step).  Between reads a step queues its work and returns: the
  /// clipping factor and the skip of a non-finite step are decided on the device, `StepStats::values` holds
  /// the numbers, and a run past `max_nonfinite_skips` stops at the next read.  1 (the default) reads every
  /// step, which costs nothing on a CPU; on a GPU each read waits for the queue to drain.
  TORCH_ARG(int64_t, sync_every) = 1;
};

template <class Process, class Pred, class Net, class Sampler, class TimeS = UniformTime, class Weight = UniformWeight,
          class Pairing = IndependentCoupling>
class Trainer;

/// Trains `Net` to predict in P under the process `Interpolant<S>`, and samples from it with `Smp`.
///
/// One step: draw t from `TS` and noise from the trainer's seeded generator, form x_t, let the network
/// predict in P (through P's input and time preconditioning), take the `W`-weighted MSE against P's target,
/// backpropagate, clip, and step the optimiser (Adam or AdamW) at the scheduled learning rate.  Logging,
/// EMA, checkpoints, previews and early stopping are callbacks; data comes from outside as a callable that
/// returns the next batch.
///
/// @tparam S the schedule; @tparam P the parameterisation; @tparam Net the network (a ModuleHolder with
/// forward(x, t)); @tparam Smp the default sampler; @tparam TS the time sampler; @tparam W the loss weighting;
/// @tparam Pair the coupling of data and noise rows in a batch (`gm::ExactOTCoupling` for OT-CFM).
///
/// Example:
/// @code
/// using RectifiedFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;
/// RectifiedFlow trainer(gm::MLP(gm::MLPOptions().hidden(256)), gm::TrainOptions().lr(1e-3).batch_size(1024));
/// gm::EMA ema(0.999);
/// trainer.fit([&](int64_t) { return gm::data::checkerboard(1024); }, 5000, ema);
/// auto x = trainer.sample(gm::SampleOptions().n(2000).nfe(40).ema(&ema));  // 20 Heun steps
/// @endcode
template <Schedule S, class P, class Net, class Smp, class TS, class W, class Pair>
class Trainer<Interpolant<S>, Predict<P>, Net, Smp, TS, W, Pair> {
  static_assert(Network<Net>,
                "gm: Trainer's Net must be a torch::nn::ModuleHolder whose module has forward(x, t) or forward(x, t, y).");
  static_assert(check_sampler<Smp>(), "gm: Trainer's Sampler must be a gm::Sampler.");
  static_assert(check_time_sampler<TS>(), "gm: Trainer's TimeSampler must be a gm::TimeSampler.");
  static_assert(LossWeighting<W>, "gm: Trainer's weighting must be a gm::LossWeighting.");
  static_assert(Coupling<Pair>, "gm: Trainer's coupling must be a gm::Coupling: pair(x0, x1, gen) and a name.");
  static_assert(!LearnsLogVar<W> || requires(Net& n, const torch::Tensor& t) { n->logvar(t); },
                "gm: a LearnedLogVar weighting needs a network that predicts the log-variance, logvar(t), as "
                "gm::EDM2UNet does.");
  static_assert(!AverageVelocityParameterization<P> || FlowMapObjective<P>,
                "gm: an average-velocity parameterisation trains only as a flow-map objective: give it times(t, "
                "more, gen, step) and loss(u, x0, eps, t2, process, step), as gm::MeanFlow does.");
  static_assert(!Objective<P> || !(ELBOObjective<W> || LearnsLogVar<W>),
                "gm: a training objective (MeanFlow, Shortcut, Consistency, SchrodingerBridge) has its own loss; use "
                "the uniform weighting with it.");
  static_assert(!(alpha_vanishes_at_one<S>() && (std::same_as<P, Noise> || std::same_as<P, Score>)),
                "gm: a Noise or Score prediction cannot give E[x0 | x_t] at t = 1, where this process has "
                "alpha(1) = 0 and x_1 is pure noise; predict Velocity, Data or EDMPrecond instead.");

 public:
  using process_type = Interpolant<S>;
  using predict_type = Predict<P>;
  using sampler_type = Smp;
  using net_type = Net;

  Trainer(Net net, TrainOptions options, process_type process = {}, predict_type predict = {}, TS time_sampler = {},
          W weighting = {}, Pair coupling = {})
      : net_(std::move(net)), options_(std::move(options)), process_(std::move(process)),
        predict_(std::move(predict)), time_sampler_(std::move(time_sampler)), weighting_(std::move(weighting)),
        coupling_(std::move(coupling)),
        generator_(make_generator(options_.seed(), options_.device())),
        sampling_generator_(make_generator(options_.seed() ^ 0x5eed5a3b1e5ull, options_.device())),
        precision_(parse_precision(options_.precision(), options_.device())) {
    TORCH_CHECK(options_.accumulate() >= 1, "gm: accumulate must be >= 1");
    if (!(options_.label_dropout() >= 0 && options_.label_dropout() <= 1)) {
      throw Error("gm: label_dropout must be in [0, 1]");
    }
    check_prediction_at_one<P>(process_);
    (void)check_process(process_);  // a process no sampler survives is a one-line error (warnings: Training::run)
    if (options_.keep_freed_memory()) keep_freed_memory();
    configure_threads(static_cast<int>(options_.threads()), precision_, options_.device(), prefers_all_cores<Net>());
    if (options_.device().is_cuda()) {  // process-wide settings of LibTorch, as torch.backends sets them
      at::globalContext().setFloat32MatmulPrecision(options_.tf32() ? "high" : "highest");
      at::globalContext().setAllowTF32CuDNN(options_.tf32());
      at::globalContext().setBenchmarkCuDNN(options_.cudnn_benchmark());
    }
    net_->to(options_.device());
    TORCH_CHECK(options_.optimizer() == "adam" || options_.optimizer() == "adamw",
                "gm: optimizer must be adam or adamw, not '", options_.optimizer(), "'");
    TORCH_CHECK(options_.sync_every() >= 1, "gm: sync_every must be >= 1");
    optimizer_ = std::make_unique<FlatAdam>(net_->parameters(),
                                            torch::optim::AdamOptions(options_.lr()).weight_decay(options_.weight_decay()),
                                            options_.optimizer() == "adamw", options_.fused_adam());
  }

  Net& net() { return net_; }
  /// Train data-parallel with other processes (see `gm::DataParallel`): rank 0's parameters and buffers are
  /// broadcast to every rank first, then each step all-reduces the flat gradient and the loss.
  void set_data_parallel(DataParallel dp) {
    dp_ = std::move(dp);
    if (!dp_.active()) return;
    torch::NoGradGuard ng;
    for (auto& p : net_->parameters()) {
      auto t = p.detach();
      dp_.broadcast(t);
    }
    for (auto& b : net_->buffers()) dp_.broadcast(b);
  }
  const DataParallel& data_parallel() const { return dp_; }
  /// The rows of a global batch of `n` that this rank trains on, in the order `train_step` takes them: each
  /// of the `accumulate` micro-batches (as `torch::chunk` splits the batch) gives its rows
  /// [rank m / W, (rank + 1) m / W) of its m.  Undefined in one process, where every row is this one's.  A
  /// data source that takes these rows (`gm::data::ImageData::batch`) gathers, encodes and augments only them,
  /// draws its randomness for all n rows (so the generator moves on as for the whole batch), and marks the
  /// batch `Batch::global = n`; every rank then trains on exactly the rows it would have cut from the global
  /// batch.  With a coupling, which pairs the whole global micro-batch, the ranks' prepared rows are summed
  /// into it (one all-reduce of the data a micro-batch, zeros elsewhere: exact) before the pairing.
  torch::Tensor shard_rows(int64_t n) const {
    if (!dp_.active()) return {};
    std::vector<int64_t> rows;
    for (const auto& [offset, m] : micro_batches(n)) {
      const auto [lo, hi] = share(m);
      for (int64_t r = lo; r < hi; ++r) rows.push_back(offset + r);
    }
    return torch::tensor(rows, torch::kInt64);
  }
  const process_type& process() const { return process_; }
  const predict_type& predict() const { return predict_; }
  const Pair& coupling() const { return coupling_; }
  FlatAdam& optimizer() { return *optimizer_; }
  /// The training generator: time, noise and (through the data callable) data draws; saved in checkpoints.
  at::Generator& generator() { return generator_; }
  /// The sampling generator: prior draws and SDE noise of `sample`, seeded from the seed but separate, so
  /// sampling (previews included) never shifts the training stream.
  at::Generator& sampling_generator() { return sampling_generator_; }
  const TrainOptions& options() const { return options_; }
  /// Whether a coupling pairs each batch within its classes whenever it has labels: a network built with
  /// classes and `TrainOptions::couple_within_classes` (gm::pair_within_classes).
  bool couples_within_classes() const {
    if constexpr (ConditionalNetwork<Net>) {
      return options_.couple_within_classes() && net_->null_class() >= 0;
    } else {
      return false;
    }
  }
  Precision precision() const { return precision_; }
  /// The dynamic loss scale of fp16 training (unused in fp32 and bf16); checkpoints keep it.
  LossScaler& loss_scaler() { return scaler_; }
  int64_t step() const { return step_; }
  /// Set the step count, when restoring a checkpoint.
  void set_step(int64_t step) { step_ = step; }

  /// The weighted regression loss on a batch x0 with labels y, image condition c and augmentation labels a
  /// (undefined: none) (a graph, for backward).  A conditional network's labels are replaced by its null class with probability
  /// `label_dropout`.  With an ELBO weighting (`gm::ELBOObjective`, e.g. `gm::VDMELBO`) the loss is its
  /// objective: the ELBO in bits per dimension, with its prior and reconstruction terms.
  /// Paired noise `z` (reflow's pairs) replaces the drawn noise row for row, and no coupling applies to it.
  ///
  /// With a source distribution (`set_source`) its draws replace the Gaussian noise, coupling included.  A
  /// coupling with `pairs` (`gm::PlanCoupling`) may draw data rows with replacement: x0 and its labels,
  /// condition and augmentation follow its row indices.
  torch::Tensor loss(torch::Tensor x0, torch::Tensor y = {}, torch::Tensor c = {}, torch::Tensor a = {},
                     const torch::Tensor& z = {}) {
    return loss_of(std::move(x0), std::move(y), std::move(c), std::move(a), z, 0);
  }
  /// The loss on this rank's rows of a global micro-batch of `global` rows (data parallel, `shard_rows`):
  /// x0, y, c, a and z hold only those rows, every draw is made for all `global` rows and cut to them, so the
  /// value is the one `loss` gives on the whole micro-batch.  `global` = 0: x0 is the whole micro-batch.
  /// With a coupling the ranks' rows (and a row source's draws) are first gathered into the whole
  /// micro-batch, which the coupling pairs.
  torch::Tensor loss_of(torch::Tensor x0, torch::Tensor y, torch::Tensor c, torch::Tensor a, const torch::Tensor& z,
                        int64_t global) {
    if (a.defined()) {
      if constexpr (AugmentedNetwork<Net>) {
        if (net_->augment_dim() != (a.dim() == 2 ? a.size(1) : -1)) {
          throw Error("gm: the data carries " + std::to_string(a.dim() == 2 ? a.size(1) : 0) +
                      " augmentation labels a sample, but the network takes " + std::to_string(net_->augment_dim()) +
                      " (build it with augment_dim = data.augment_dim())");
        }
      } else {
        throw Error("gm: augmented data (data.augment > 0) needs a network that takes augmentation labels, as gm::UNet "
                    "with augment_dim");
      }
    }
    const auto opts = x0.options();
    const int64_t n = global > 0 ? global : x0.size(0);  // the global micro-batch: every draw covers its rows
    auto shape = x0.sizes().vec();
    shape[0] = n;
    const auto mine = share(n);  // this rank's rows [lo, hi) of the micro-batch
    const int64_t lo = mine.first, hi = mine.second;
    if (global > 0 && dp_.active() && x0.size(0) != hi - lo) {
      throw Error("gm: this rank's share of a micro-batch of " + std::to_string(n) + " rows is " +
                  std::to_string(hi - lo) + " rows, and the batch holds " + std::to_string(x0.size(0)));
    }
    bool own_source = global > 0 && row_source_;  // the source draws (and encodes) this rank's rows alone
    auto t = time_sampler_.sample(n, process_, generator_, opts);
    // The rows made on the generator's device, where the source's draws are cut: no copy from the host.
    auto eps = own_source ? draw_source(n, generator_, shape, opts, torch::arange(lo, hi, on_generator(generator_, torch::kInt64)))
               : source_  ? draw_source(n, generator_, shape, opts)
                          : torch::randn(shape, generator_, on_generator(generator_, opts));
    if (couples(coupling_) && global > 0 && dp_.active()) {  // the coupling pairs the whole micro-batch: every rank's rows, gathered
      x0 = gather_rows(x0, n), y = gather_rows(y, n), c = gather_rows(c, n), a = gather_rows(a, n);
      if (own_source) eps = gather_rows(eps, n);
      global = 0, own_source = false;  // from here on, as if every rank had been given the whole micro-batch
    }
    torch::Tensor eps0;  // the reconstruction term's z_0 noise
    if constexpr (ELBOObjective<W> || wants_extra_noise<P>()) eps0 = torch::randn(shape, generator_, on_generator(generator_, opts));
    // Pair each data row with a noise row by the coupling (OT-CFM: the minibatch's optimal transport).  Every
    // rank holds the global micro-batch's data and noise, so the pairing covers it, the same on all.
    if (z.defined()) {
      if (!z.sizes().equals(x0.sizes())) throw Error("gm: the paired noise z must have the data's shape");
      if (couples(coupling_)) {
        throw Error("gm: paired noise (reflow) comes with its coupling; train it with the independent coupling");
      }
      if (global == 0) eps = z.to(opts);  // else after the cut below: z holds this rank's rows
    } else if (couples(coupling_)) {
      if constexpr (PlanCoupling<Pair>) {
        const auto p = within_classes(y) ? pairs_within_classes(coupling_, x0, eps, y, generator_)
                                         : coupling_.pairs(x0, eps, generator_);
        auto rows = [&](const torch::Tensor& v) { return v.defined() ? v.index_select(0, p.rows.to(v.device())) : v; };
        x0 = rows(x0), y = rows(y), c = rows(c), a = rows(a);
        eps = eps.index_select(0, p.cols.to(eps.device()));
      } else {
        eps = eps.index_select(0, within_classes(y) ? pair_within_classes(coupling_, x0, eps, y, generator_)
                                                    : coupling_.pair(x0, eps, generator_));
      }
    }
    // An objective's times (pairs (t, r) for a flow map) are drawn here for the global batch like every draw.
    if constexpr (Objective<P>) {
      t = predict_.param().times(t, [&] { return time_sampler_.sample(n, process_, generator_, opts); },
                                 generator_, step_);
    }
    torch::Tensor drop;  // label dropout
    if constexpr (ConditionalNetwork<Net>) {
      if (y.defined() && options_.label_dropout() > 0 && net_->null_class() >= 0) {
        drop = torch::rand({n}, generator_, on_generator(generator_, opts)) < options_.label_dropout();
      }
    }
    torch::Tensor x = x0, labels = y, cond = c, aug = a;
    double scale = 1.0;
    if (dp_.active()) {  // every rank drew the global batch's draws; it trains on its own rows
      auto rows = [&](const torch::Tensor& v) { return v.defined() && v.dim() > 0 && v.size(0) == n ? v.slice(0, lo, hi) : v; };
      t = rows(t), eps0 = rows(eps0), drop = rows(drop);
      if (!own_source) eps = rows(eps);
      if (global == 0) {
        x = rows(x0), labels = rows(labels), cond = rows(cond), aug = rows(aug);
      } else if (z.defined()) {
        eps = z.to(opts);
      }
      scale = static_cast<double>(hi - lo) / static_cast<double>(n);
    } else if (global > 0 && global != x0.size(0)) {
      throw Error("gm: a batch of one rank's rows (Batch::global) needs data parallelism (set_data_parallel)");
    }
    if constexpr (ConditionalNetwork<Net>) {
      if (drop.defined()) labels = torch::where(drop.to(labels.device()), torch::full_like(labels, net_->null_class()), labels);
    }
    auto per_sample = per_sample_loss(x, t, eps, labels, cond, aug, eps0);
    if constexpr (ELBOObjective<W>) per_sample = weighting_.objective(per_sample, x, eps0, process_, true);
    // A shard with no rows (a micro-batch smaller than the world) adds 0 to the sum, not mean()'s NaN.
    if (per_sample.numel() == 0) return per_sample.sum();
    return per_sample.mean() * scale;
  }

  /// The ELBO of `x0` per sample in bits per dimension ([B], no gradient), under the current weights, with
  /// one time per sample from the time sampler and the noise from `gen`; the mean over many samples
  /// estimates the data's negative ELBO.  Only with an ELBO weighting (`gm::ELBOObjective`).
  torch::Tensor elbo(const torch::Tensor& x0, at::Generator& gen, const torch::Tensor& y = {})
    requires ELBOObjective<W>
  {
    torch::NoGradGuard ng;
    if (source_) throw Error("gm: the ELBO needs the Gaussian prior, and this trainer's prior is a data source");
    const auto opts = x0.options();
    auto t = time_sampler_.sample(x0.size(0), process_, gen, opts);
    auto eps = torch::randn(x0.sizes(), gen, on_generator(gen, opts)).to(x0.device());
    auto eps0 = torch::randn(x0.sizes(), gen, on_generator(gen, opts)).to(x0.device());
    return weighting_.objective(per_sample_loss(x0, t, eps, y, {}), x0, eps0, process_, false);
  }

  /// One optimiser step on `x0`, split into `accumulate` micro-batches, each weighted by its share of the
  /// batch (chunks may be uneven).  A step whose loss or gradient norm is not finite changes no weight:
  /// it is skipped while fewer than `max_nonfinite_skips` were, and otherwise a `gm::NonFiniteError`
  /// stops training before anything non-finite reaches the weights.  The loss, the gradient norm, the
  /// clipping factor and the skip stay on the device; the host reads them every `sync_every` steps.
  StepStats train_step(const torch::Tensor& batch) { return train_step(Batch{batch, {}}); }
  /// One optimiser step on a batch with labels (see above).
  ///
  /// The network's own randomness (dropout) draws from torch's default generators, which the step seeds
  /// from (seed, step) first, so a resumed run repeats it exactly.
  StepStats train_step(const Batch& batch) {
    const auto start = std::chrono::steady_clock::now();
    net_->train();
    torch::manual_seed((options_.seed() * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(step_) + 0x5151)) +
                       static_cast<uint64_t>(dp_.rank) * 0xD1B54A32D192ED03ull);
    if constexpr (ConditionalNetwork<Net>) {  // once per batch, where it is free: labels still on the host
      if (net_->null_class() >= 0) nn::check_labels(batch.y, net_->null_class());
    }
    auto x0 = batch.x.to(options_.device());
    auto y = batch.y.defined() ? batch.y.to(options_.device()) : torch::Tensor();
    auto c = batch.c.defined() ? batch.c.to(options_.device()) : torch::Tensor();
    auto a = batch.a.defined() ? batch.a.to(options_.device()) : torch::Tensor();
    const auto z = batch.z.defined() ? batch.z.to(options_.device()) : torch::Tensor();
    // The micro-batches (offset, rows) of the global batch; a sharded batch (`shard_rows`) holds this rank's
    // rows of each, in order.
    const int64_t global = batch.global > 0 ? batch.global : x0.size(0);
    const auto parts = micro_batches(global);
    std::vector<int64_t> sizes;
    for (const auto& [offset, m] : parts) {
      const auto [lo, hi] = share(m);
      sizes.push_back(batch.global > 0 ? hi - lo : m);
    }
    if (batch.global > 0) {
      if (!dp_.active()) throw Error("gm: a batch of one rank's rows (Batch::global) needs data parallelism");
      if (const auto share = std::accumulate(sizes.begin(), sizes.end(), int64_t{0}); share != x0.size(0)) {
        throw Error("gm: the batch holds " + std::to_string(x0.size(0)) + " rows; this rank's share of a global batch of " +
                    std::to_string(global) + " is " + std::to_string(share) + " (Trainer::shard_rows)");
      }
    }
    auto split = [&](const torch::Tensor& v) {
      return v.defined() ? v.split_with_sizes(sizes, 0) : std::vector<torch::Tensor>(sizes.size());
    };
    const auto xs = split(x0), ys = split(y), cs = split(c), as = split(a), zs = split(z);
    const auto n = static_cast<double>(global);
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(options_.device());
    auto total = torch::zeros({1}, f64);  // the loss, summed on the device
    const bool scaled = precision_ == Precision::fp16;  // fp16: backward on the loss times the scale
    for (size_t i = 0; i < xs.size(); ++i) {
      const int64_t m = parts[i].second;
      auto l = loss_of(xs[i], ys[i], cs[i], as[i], zs[i], batch.global > 0 ? m : 0) * (static_cast<double>(m) / n);
      (scaled ? l * scaler_.scale : l).backward();
      total.add_(l.detach().reshape({1}));
    }
    torch::NoGradGuard ng;
    const auto& grad = optimizer_->flat_grad();
    if (dp_.active()) {  // the sum of the shards' gradients is the global batch's; the same for the loss
      auto g = grad;  // a handle on the buffer: reduced in place
      dp_.all_reduce_sum(g);
      dp_.all_reduce_sum(total);
    }
    if (scaled) grad.mul_(1.0 / scaler_.scale);  // unscale before clipping
    const double lr = options_.schedule().at(step_);
    const auto norm = grad.norm().to(torch::kFloat64).reshape({1});
    const auto bad = torch::logical_not(torch::isfinite(total) & torch::isfinite(norm));
    // Clipping as the fused update's divisor: (norm + 1e-6) / max_norm where the norm is above max_norm.
    torch::Tensor divisor;
    if (const double max_norm = options_.clip_norm(); max_norm > 0) {
      divisor = torch::where(norm > max_norm, (norm + 1e-6) / max_norm, torch::ones_like(norm)).to(torch::kFloat32).reshape({});
    }
    const auto found_inf = bad.to(torch::kFloat32).reshape({});
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
    optimizer_->step(divisor, found_inf);
    optimizer_->zero_grad();
    auto values = torch::cat({total, norm, bad.to(torch::kFloat64)});
    const bool read = scaled || !optimizer_->fused() || (step_ + 1) % options_.sync_every() == 0;
    StepStats stats{step_ + 1, std::nan(""), lr, std::nan(""), 0, false, values};
    if (options_.sync_every() > 1 && !scaled) {  // keep the first non-finite step's numbers for the read
      if (!pending_bad_.defined()) pending_bad_ = torch::zeros({4}, f64);
      const auto first = (pending_bad_.narrow(0, 0, 1) == 0) & bad;
      auto record = torch::cat({torch::full({1}, static_cast<double>(step_ + 1), f64), total, norm});
      pending_bad_.narrow(0, 1, 3).copy_(torch::where(first, record, pending_bad_.narrow(0, 1, 3)));
      pending_bad_.narrow(0, 0, 1).add_(bad);
    }
    if (read && !pending_bad_.defined()) {  // this step decides at once (the error before the step counts)
      stats = stats.resolved();
      const bool overflow = scaled && std::isfinite(stats.loss) && !scaler_.update(!stats.skipped);
      // fp16 gradient overflow: the scale was too large (now halved), not the step wrong; skipped as torch.amp
      // skips it, without counting against max_nonfinite_skips.
      if (stats.skipped && !overflow) {
        if (skipped_ >= options_.max_nonfinite_skips()) throw non_finite(step_ + 1, stats.loss, stats.grad_norm);
        ++skipped_;
      }
    }
    ++step_;
    if (read && pending_bad_.defined()) {  // steps queued since the last read: this one has been taken
      stats = stats.resolved();
      check_pending();
    }
    stats.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return stats;
  }
  /// Read the non-finite steps queued since the last read (`sync_every` > 1): past `max_nonfinite_skips`,
  /// a `gm::NonFiniteError` naming the first of them.  `fit` calls it at its end.
  void check_pending() {
    if (!pending_bad_.defined()) return;
    const auto v = pending_bad_.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);  // a copy: zeroed next
    pending_bad_.zero_();
    const auto* p = v.data_ptr<double>();
    const auto count = static_cast<int64_t>(p[0]);
    if (count == 0) return;
    if (skipped_ + count > options_.max_nonfinite_skips()) {
      skipped_ += count;
      throw non_finite(static_cast<int64_t>(p[1]), p[2], p[3]);
    }
    skipped_ += count;
  }
  /// Steps skipped so far (in this process) for a non-finite loss or gradient norm.
  int64_t skipped_steps() const { return skipped_; }

  /// Train until `steps` steps are done (counting steps already taken) or a callback stops it.
  /// `next_batch(step)` returns the batch for a step.
  template <class Data, class... Cb>
  void fit(Data&& next_batch, int64_t steps, Cb&... callbacks) {
    static_assert((Callback<Cb, Trainer> && ...),
                  "gm: a Trainer callback must implement at least one of on_train_begin(trainer), "
                  "on_step_end(trainer, stats), on_train_end(trainer); check for a misspelt hook name.");
    (begin(callbacks), ...);
    while (step_ < steps) {
      [[maybe_unused]] const StepStats stats = train_step(next_batch(step_));
      bool stop = false;
      ((stop = end_step(callbacks, stats) || stop), ...);
      if (stop) break;
    }
    check_pending();
    (finish(callbacks), ...);
  }

  /// `o.n()` samples from the network with the trainer's sampler (or `sampler`) on `sample_times(o, sampler)`,
  /// from the EMA weights when `o.ema()` is set, starting from `o.noise()` or fresh draws of the prior, with
  /// the labels, guidance and image condition of `o.conditioning()` (and its per-sample seeds: then the prior
  /// draw is `initial_noise(shape, seeds)` when `noise` is undefined).  `last_nfe()` tells the evaluations it
  /// took (a guided step evaluates the conditional and the unconditional model in one batch and counts once).
  template <class Samp = Smp>
  torch::Tensor sample(const SampleOptions& o, const Samp& sampler = Samp{}) {
    const auto times = sample_times(o, sampler);
    torch::NoGradGuard ng;
    const Precision products = o.precision() == "training" ? precision_ : parse_precision(o.precision(), options_.device());
    Autocast autocast(products, options_.device());
    net_->eval();
    std::unique_ptr<EMA::Swap> swap;
    if (o.ema()) swap = std::make_unique<EMA::Swap>(*o.ema(), *net_);
    const auto start = std::chrono::steady_clock::now();
    const Conditioning& cond = o.conditioning();
    auto field = make_field(cond);
    torch::Tensor x1;
    if (o.noise().defined()) x1 = o.noise().to(options_.device());
    else if (!cond.seeds.empty()) x1 = initial_noise({o.n(), data_dim()}, cond.seeds);
    else x1 = initial_noise(o.n());
    const auto* seeds = cond.seeds.empty() ? nullptr : &cond.seeds;
    torch::Tensor out;
    first_non_finite_ = {-1, 0.0};
    last_path_energy_ = std::nan("");
    if (o.check_steps() || o.path_energy()) {
      torch::Tensor x_prev = x1.clone(), energy = torch::zeros({x1.size(0)}, x1.options().dtype(torch::kFloat64));
      double t_prev = times.front();
      auto watch = [&](const StepEvent& e) {
        if (o.path_energy() && t_prev > e.t) {
          energy += (e.x - x_prev).flatten(1).to(torch::kFloat64).pow(2).sum(1) / (t_prev - e.t);
          x_prev.copy_(e.x);
          t_prev = e.t;
        }
        if (!o.check_steps() || torch::isfinite(e.x).all().template item<bool>()) return false;
        first_non_finite_ = {e.index + 1, e.t};
        return true;
      };
      out = integrate(sampler, field, x1, times, watch, sampling_generator_, seeds);
      if (o.path_energy()) last_path_energy_ = energy.mean().template item<double>();
    } else {
      out = integrate(sampler, field, x1, times, NoObserver{}, sampling_generator_, seeds);
    }
    last_nfe_ = field.nfe();
    last_model_seconds_ = field.model_seconds();
    if (out.is_cuda()) torch::cuda::synchronize(out.device().index());  // the time covers the queued work
    last_sample_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  }
  /// The nodes `sample(o, sampler)` runs on: `o.times()` (checked), or `steps_for_nfe(sampler, o.nfe())`
  /// steps of the grid `o.grid()` names, from t = 1 to `o.t_end()` on this trainer's process.
  template <class Samp = Smp>
  std::vector<double> sample_times(const SampleOptions& o, const Samp& sampler = Samp{}) const {
    if constexpr (std::same_as<typename Samp::category, sde_tag>) {
      if (source_) {
        throw Error("gm: sampler " + std::string(Samp::name) + " is stochastic: its noise and score assume the Gaussian "
                    "prior, and this trainer's prior is a data source (data.source); use an ODE sampler");
      }
    }
    if (!o.times().empty()) return check_times(o.times()), o.times();
    return shift_times(grid_nodes(o.grid(), steps_for_nfe(sampler, o.nfe()), o.t_end(), process_), o.shift());
  }
  int64_t last_nfe() const { return last_nfe_; }
  /// After a `sample` with `check_steps`: the first step (1-based) whose state was not finite and the time
  /// it reached, or step -1 when every step was finite.
  std::pair<int64_t, double> first_non_finite() const { return first_non_finite_; }
  /// After a `sample` with `path_energy`: the mean over samples of sum_k ||x_{k+1} - x_k||^2 / (t_k - t_{k+1});
  /// NaN otherwise.
  double last_path_energy() const { return last_path_energy_; }
  /// Wall time of the last `sample`, and the part of it spent inside the network (the rest is the
  /// sampler's own work: its arithmetic, the prior draw, the EMA swap).
  double last_sample_seconds() const { return last_sample_seconds_; }
  double last_model_seconds() const { return last_model_seconds_; }

  /// A `Field` of the current network, for `gm::integrate` with any sampler; for a conditional network,
  /// with `cond`'s labels (the null class when undefined) and classifier-free guidance; for a network with
  /// an image condition, with `cond.image` (repeated for the guided batch of twice the rows).
  auto make_field(const Conditioning& cond = {}) {
    if (cond.image.defined() && !ImageConditionalNetwork<Net>) throw Error("gm: an image condition given to a network without one");
    auto image = cond.image.defined() ? cond.image.to(options_.device()) : torch::Tensor();
    if constexpr (ConditionalNetwork<Net>) {
      auto model = [this, image, guide = cond.guide, w = cond.guidance](const torch::Tensor& x, const torch::Tensor& t,
                                                                         const torch::Tensor& y) {
        // A guided call stacks [cond; null] rows: the image condition repeats the same way.
        auto c = image.defined() && image.size(0) != x.size(0) ? torch::cat({image, image}, 0) : image;
        auto out = model_output(x, t, y, c);
        return guide ? autoguide(out, guide(x, t, y, c), w) : out;  // autoguidance: the weak model guides
      };
      const int64_t null = net_->null_class();
      if (null < 0 && cond.labels.defined()) throw Error("gm: labels given to a network built without classes");
      Guidance g;  // no labels: the null class (the network's default), one evaluation per step
      if (cond.labels.defined()) {
        const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(options_.device());
        g.scale = cond.guide ? 1.0 : cond.guidance;  // autoguidance replaces the unconditional branch
        g.low = cond.guidance_low, g.high = cond.guidance_high, g.rescale = cond.guidance_rescale;
        g.cond = cond.labels.to(opts);
        g.null_cond = torch::full({cond.labels.size(0)}, null, opts);
        if (cond.labels.numel() > 0 &&
            (g.cond.min().template item<int64_t>() < 0 || g.cond.max().template item<int64_t>() > null)) {
          throw Error("gm: sampling labels must be in 0.." + std::to_string(null) + " (" + std::to_string(null) +
                      ": the null class)");
        }
      }
      return Field(process_, predict_, model, std::move(g));
    } else {
      if (cond.labels.defined()) throw Error("gm: labels given to an unconditional network");
      auto model = [this, image, guide = cond.guide, w = cond.guidance](const torch::Tensor& x, const torch::Tensor& t) {
        auto out = model_output(x, t, {}, image);
        return guide ? autoguide(out, guide(x, t, {}, image), w) : out;
      };
      return Field(process_, predict_, model);
    }
  }

  /// Autoguidance's weak model as this trainer's own network with other weights (one per parameter, in
  /// `net()->parameters()` order: an earlier checkpoint's EMA weights, say): each call swaps them in,
  /// evaluates, and swaps the current weights back, so no second network is built.  Weights that do not fit
  /// are a one-line `gm::Error`.
  GuideModel weights_guide(std::vector<torch::Tensor> weights) {
    const auto params = net_->parameters();
    if (weights.size() != params.size()) {
      throw Error("gm: autoguidance weights: " + std::to_string(weights.size()) + " tensors for a network of " +
                  std::to_string(params.size()) + " parameters");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      if (!weights[i].sizes().equals(params[i].sizes())) {
        throw Error("gm: autoguidance weights: tensor " + std::to_string(i) + " does not fit the network's parameter");
      }
      weights[i] = weights[i].to(params[i].options()).clone();
    }
    auto held = std::make_shared<EMA>();  // EMA::Swap exchanges weights in and back, even on a throw
    held->restore(std::move(weights), 0);
    return [this, held](const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y, const torch::Tensor& c) {
      EMA::Swap weak(*held, *net_);
      return model_output(x, t, y, c);
    };
  }

  /// n draws of the prior at t = 1: sigma(1) eps (alpha(1) x0 is negligible for the processes gm ships),
  /// from the sampling generator.
  torch::Tensor initial_noise(int64_t n) { return initial_noise({n, data_dim()}); }
  /// Draws of the prior of the given shape ([n, ...] as one data batch).
  torch::Tensor initial_noise(at::IntArrayRef shape) {
    auto opts = torch::TensorOptions().device(options_.device());
    if (source_) return sigma_one() * draw_source(shape[0], sampling_generator_, shape, opts);
    return sigma_one() * torch::randn(shape, sampling_generator_, on_generator(sampling_generator_, opts));
  }
  /// Draws of the prior with row i from `seeds[i]` alone (`gm::sample_seeds`); shape[0] = seeds.size().
  torch::Tensor initial_noise(at::IntArrayRef shape, const std::vector<uint64_t>& seeds) {
    if (static_cast<int64_t>(seeds.size()) != shape[0]) throw Error("gm: initial_noise needs one seed per sample");
    const auto opts = torch::TensorOptions().device(options_.device());
    if (source_) {
      std::vector<torch::Tensor> rows;
      std::vector<int64_t> one(shape.begin(), shape.end());
      one[0] = 1;
      for (const auto seed : seeds) rows.push_back(draw_source(1, make_generator(mix_seed(seed, 0)), one, opts));
      return sigma_one() * torch::cat(rows);
    }
    return sigma_one() * row_randn(seeds, 0, shape.slice(1), opts);
  }

  /// Draws of a source distribution: n rows [n, ...] of the data's row shape from the generator.
  using Source = std::function<torch::Tensor(int64_t n, const at::Generator& gen)>;
  /// Train and sample from `source` in place of the Gaussian prior: its draws are the t = 1 end of every path
  /// (the "noise" the coupling pairs and the sampler starts from), a data-to-data flow as torchcfm's moons ->
  /// 8gaussians (Tong et al. 2024; Albergo & Vanden-Eijnden 2023's stochastic interpolants between two
  /// densities).  Draws come from the trainer's generators, so resume and per-sample seeds stay exact.  Only
  /// for objectives that regress a velocity or a data-free target: the Gaussian prior's likelihood, ELBO and SDE
  /// samplers do not apply.  An empty function restores the Gaussian prior.
  void set_source(Source source) { set_source(std::move(source), {}); }
  /// Rows `rows` of the n draws a source would make from the generator's state, leaving the generator where
  /// those n draws leave it: a data-parallel rank's share, drawn (and encoded) alone.
  using RowSource = std::function<torch::Tensor(int64_t n, const at::Generator& gen, const torch::Tensor& rows)>;
  /// A source that can also draw a rank's rows alone (`gm::data::ImageData::draw(n, gen, rows)`): with a batch
  /// of this rank's rows (`shard_rows`, `Batch::global`) the trainer asks `rows` for its share instead of
  /// drawing every row of `source`.
  void set_source(Source source, RowSource rows) {
    source_ = std::move(source);
    row_source_ = source_ ? std::move(rows) : RowSource{};
  }
  bool has_source() const { return static_cast<bool>(source_); }

 private:
  /// The weighted squared error of the network's prediction per sample, [B], for data x0 at times t with
  /// noise eps.
  torch::Tensor per_sample_loss(const torch::Tensor& x0, const torch::Tensor& t, const torch::Tensor& eps,
                                const torch::Tensor& labels, const torch::Tensor& cond, const torch::Tensor& aug = {},
                                const torch::Tensor& extra = {}) {
    if constexpr (Objective<P>) {  // t holds the objective's times (pairs (t, r) for a flow map)
      auto u = [&](const torch::Tensor& x, const torch::Tensor& t2) {
        Autocast autocast(precision_, x0.device());
        return model_output(x, t2, labels, cond, aug);
      };
      return predict_.param().loss(u, x0, eps, t, process_, step_, extra);
    }
    auto xt = process_.sample(x0, eps, t);
    auto target = predict_.target(x0, eps, t, process_);
    auto w = weighting_.weight(t, process_, predict_);
    torch::Tensor out;
    {
      Autocast autocast(precision_, x0.device());
      out = model_output(xt, t, labels, cond, aug);
    }
    auto error = w * (out.to(target.scalar_type()) - target).pow(2).flatten(1).mean(1);
    if constexpr (LearnsLogVar<W>) {
      return W::combine(error, net_->logvar(predict_.network_time(t, process_)).to(error.scalar_type()));
    } else {
      return error;
    }
  }

  /// The network's output in P at x_t = x: its input and time through P's preconditioning, and labels y
  /// when the network is conditional and y is given (else the network's own default, the null class).
  torch::Tensor model_output(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& y,
                             const torch::Tensor& c = {}, const torch::Tensor& a = {}) {
    auto in = predict_.network_input(x, t, process_);
    auto time = predict_.network_time(t, process_);
    if constexpr (AugmentedNetwork<Net>) {
      if (a.defined()) return net_->forward(in, time, y, c, a);
    }
    if constexpr (ImageConditionalNetwork<Net>) {
      if (c.defined()) return net_->forward(in, time, y, c);
    }
    if constexpr (ConditionalNetwork<Net>) {
      if (y.defined() && net_->null_class() >= 0) return net_->forward(in, time, y);
    }
    if constexpr (requires { net_->forward(in, time); }) {
      return net_->forward(in, time);
    } else {
      return net_->forward(in, time, y);
    }
  }

  static NonFiniteError non_finite(int64_t step, double loss, double grad_norm) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "gm: step %lld: the loss (%g) or the gradient norm (%g) is not finite",
                  static_cast<long long>(step), loss, grad_norm);
    return NonFiniteError(buf, step, loss, grad_norm);
  }

  double sigma_one() const { return process_.sigma(torch::tensor(1.0, torch::kFloat64)).template item<double>(); }
  int64_t data_dim() {
    if constexpr (requires { net_->options().dim(); }) {
      return net_->options().dim();
    } else {
      TORCH_CHECK(false, "gm: pass the initial noise to Trainer::sample for networks without options().dim()");
    }
  }
  template <class C>
  void begin(C& c) {
    if constexpr (requires { c.on_train_begin(*this); }) c.on_train_begin(*this);
  }
  template <class C>
  bool end_step(C& c, const StepStats& s) {
    if constexpr (requires { c.on_step_end(*this, s); }) {
      if constexpr (std::is_same_v<decltype(c.on_step_end(*this, s)), bool>) {
        return c.on_step_end(*this, s);
      } else {
        c.on_step_end(*this, s);
      }
    }
    return false;
  }
  template <class C>
  void finish(C& c) {
    if constexpr (requires { c.on_train_end(*this); }) c.on_train_end(*this);
  }

  Net net_;
  TrainOptions options_;
  DataParallel dp_;
  process_type process_;
  predict_type predict_;
  TS time_sampler_;
  W weighting_;
  Pair coupling_;
  at::Generator generator_;
  at::Generator sampling_generator_;
  Precision precision_;
  LossScaler scaler_;
  std::unique_ptr<FlatAdam> optimizer_;
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  torch::Tensor pending_bad_;  // sync_every > 1: [non-finite steps since the last read, the first's step, loss, norm]
  int64_t last_nfe_ = 0;
  std::pair<int64_t, double> first_non_finite_{-1, 0.0};
  double last_sample_seconds_ = 0, last_model_seconds_ = 0, last_path_energy_ = 0;
  Source source_;
  RowSource row_source_;

  /// This rank's rows [lo, hi) of a (micro-)batch of m rows; all of them in one process.
  std::pair<int64_t, int64_t> share(int64_t m) const {
    return dp_.active() ? std::pair{dp_.rank * m / dp_.world, (dp_.rank + 1) * m / dp_.world} : std::pair{int64_t{0}, m};
  }
  /// The whole micro-batch of n rows from every rank's rows [lo, hi) of it (`v`; undefined stays so): each
  /// rank puts its rows among zeros and the ranks' tensors are summed, which adds only zeros to each value.
  torch::Tensor gather_rows(const torch::Tensor& v, int64_t n) const {
    if (!v.defined()) return v;
    auto shape = v.sizes().vec();
    shape[0] = n;
    auto whole = torch::zeros(shape, v.options());
    const auto [lo, hi] = share(n);
    whole.slice(0, lo, hi).copy_(v);
    dp_.all_reduce_sum(whole);
    return whole;
  }
  /// Whether the coupling pairs within classes for a batch with labels y (`couples_within_classes`).
  bool within_classes(const torch::Tensor& y) const { return y.defined() && couples_within_classes(); }
  /// The micro-batches of a batch of n rows, (offset, rows) each, as `torch::chunk(accumulate)` cuts it.
  std::vector<std::pair<int64_t, int64_t>> micro_batches(int64_t n) const {
    std::vector<std::pair<int64_t, int64_t>> out;
    const int64_t k = options_.accumulate(), size = std::max<int64_t>(1, (n + k - 1) / k);
    for (int64_t o = 0; o < n; o += size) out.emplace_back(o, std::min(size, n - o));
    if (out.empty()) out.emplace_back(0, 0);
    return out;
  }
  /// n rows of the source from `gen`, checked to have the data's row shape and to be finite, as `opts`; with
  /// `rows` (and a row source), only those rows of the n.
  torch::Tensor draw_source(int64_t n, const at::Generator& gen, at::IntArrayRef shape, const torch::TensorOptions& opts,
                            const torch::Tensor& rows = {}) {
    auto s = rows.defined() ? row_source_(n, gen, rows) : source_(n, gen);
    const int64_t expect = rows.defined() ? rows.numel() : n;
    if (s.dim() != static_cast<int64_t>(shape.size()) || s.size(0) != expect || !s.sizes().slice(1).equals(shape.slice(1))) {
      throw Error("gm: the source distribution drew a batch of shape " + shape_string(s.sizes()) + " where " +
                  shape_string(shape) + " was needed (its rows must have the data's shape)");
    }
    return s.to(opts);
  }
  static std::string shape_string(at::IntArrayRef s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
  }
};

/// Stops training when the loss has not improved by `min_delta` for `patience` steps.  It reads every
/// step's loss, so with `sync_every` > 1 it synchronises each step.
struct EarlyStop {
  int64_t patience = 1000;
  double min_delta = 0;
  double best = std::numeric_limits<double>::infinity();
  int64_t since = 0;
  template <class T>
  bool on_step_end(T&, const StepStats& stats) {
    const double loss = stats.resolved().loss;  // a copy where the numbers are already on the host
    if (loss < best - min_delta) {
      best = loss;
      since = 0;
    } else {
      ++since;
    }
    return since >= patience;
  }
};

}  // namespace gm
