#pragma once
/// @file
/// The training part of an experiment: the `training.*` and `optim.*` keys, the trainer's options, and the
/// driver of `--mode=train` inside the run folder: resume, signals, history.csv, TensorBoard, previews,
/// failure.json, and the export of the EMA weights.

#include <gm/detail/compiled.hpp>
#include <gm/data/batch.hpp>
#include <gm/error.hpp>
#include <gm/experiment/check.hpp>
#include <gm/experiment/outputs.hpp>
#include <gm/io/config.hpp>
#include <gm/io/export.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/runtime.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/lr_schedule.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/precision.hpp>
#include <gm/train/profiler.hpp>
#include <gm/train/run_dir.hpp>
#include <gm/train/trainer.hpp>

#include <toml++/toml.h>
#include <torch/types.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace gm::experiment {

/// Training in the run folder, from the `training.*` and `optim.*` keys.
class Training {
 public:
  /// Declare `training.*` and `optim.*`.
  static void add_keys(Config& cfg);

  /// The keys that may change when a run resumes (everything else defines the run).
  static std::vector<std::string> resumable_keys();

  /// The trainer's options from the `training.*` and `optim.*` keys and `device`; a bad LR schedule is a
  /// one-line `gm::Error`.
  static TrainOptions options(const Config& cfg, torch::Device device);

  /// optim.horizon = 0 means training.steps when the run was created: the saved run's horizon when the
  /// folder holds one (so raising training.steps never bends the schedule), else training.steps.
  static void resolve_horizon(Config& cfg, const std::filesystem::path& workdir);

  /// training.threads = 0 (auto) for a new run on the CPU of a busy machine becomes the cores that other work
  /// leaves free (at least 1; gm::busy_cores over a quarter second, 0.75 of a core counted as one), saved
  /// with the run so that its resumes run as it did (fp32 products differ in their last bits between 1 and 2
  /// threads).  On 2 cores beside two compilers and a PyTorch training, flow_2d's step took 29 ms (fp32) and
  /// 17 ms (bf16) on 1 thread against 121 ms and 46 ms on 2, whose OpenMP threads wait for each other at
  /// every parallel region (README, "A busy machine").  Returns the line to log, or "".
  static std::string resolve_threads(Config& cfg, const std::filesystem::path& workdir);

  /// One line for each way the LR schedule of `training.*` and `optim.*` cannot do what the keys suggest: a
  /// warmup as long as the run (the peak LR is never reached), or a run longer than the schedule's horizon
  /// (the steps past it train at the schedule's last LR, 0 for cosine).  Logged as warnings when training starts.
  static std::vector<std::string> schedule_warnings(const Config& cfg);

  /// The warning for sampling that uses the null class (`sampling.guidance` other than 1, or `sampling.class =
  /// "none"`) of a model that `training.label_dropout = 0` never trains on it: classifier-free guidance
  /// (Ho & Salimans 2022) then extrapolates from an untrained unconditional branch.  "" otherwise, and for an
  /// experiment without the guidance keys.  Logged when training starts.
  static std::string guidance_warning(const Config& cfg);

  /// The sigma_rel values of a comma-separated key (`training.phema`, `eval.phema`; empty: none), each
  /// checked; a bad one is a one-line `gm::Error` naming the key.
  static std::vector<double> sigma_rels(const Config& cfg, const std::string& key);

  /// What the driver needs besides the trainer: the run's folder and events, the EMA, post-hoc EMA and
  /// checkpoints, `sample(step)` (draws, writes and scores samples), and whether this rank leads.
  struct Context {
    RunDir& run;
    io::EventWriter& events;
    EMA& ema;
    PowerEMA& phema;
    Checkpointer& ckpt;
    std::function<void(int64_t)> sample;
    bool lead = true;
  };

  /// "meanflow objective, " for a training objective (gm::Objective) and "exact_ot coupling, " for a minibatch coupling
  /// ("exact_ot coupling within classes, " on a class-conditional network); "" for plain training.
  template <class T>
  static std::string describe_objective(const T& trainer) {
    std::string s;
    using P = typename T::predict_type::parameterization;
    if constexpr (Objective<P>) s += std::string(P::name) + " objective, ";
    if (couples(trainer.coupling())) {
      s += std::string(coupling_name(trainer.coupling())) +
           (trainer.couples_within_classes() ? " coupling within classes, " : " coupling, ");
    }
    return s;
  }

  Training(const Config& cfg, torch::Device device, std::string name) : cfg_(cfg), device_(device), name_(std::move(name)) {}

  /// Train `trainer` on `data` to `training.steps` (from its restored step), then on the lead rank export the
  /// EMA weights (weights.safetensors, state_dict.pt), sample, and for 2-D data draw the log-density map.
  /// `one_point`: one draw of the data (its shape; training.debug's point).  Returns false when a signal
  /// stopped training with a checkpoint saved (run the same command again to resume).
  template <class T, class Data>
  bool run(Context ctx, T& trainer, const Data& data, const Batch& one_point, bool restored) {
    RunDir& run = ctx.run;
    const int64_t steps = cfg_.get<int64_t>("training.steps");
    run.log(name_ + ": " + describe(data) + describe(*trainer.net()) + describe_objective(trainer) + std::to_string(steps) + " steps on " +
            device_.str() + ", " + precision_name(trainer.precision()) + ", " + std::to_string(torch::get_num_threads()) +
            " thread(s)" + (restored ? ", resuming at step " + std::to_string(trainer.step()) : ""));
    if (cfg_.get<std::string>("training.precision") == "auto") {
      const auto choice = auto_precision(device_);
      run.log(std::string("precision auto: ") + precision_name(choice.precision) + ", for " + choice.reason);
    }
    if (trainer.precision() == Precision::bf16 && device_.is_cpu() && !cpu_has_bf16()) {
      run.log("warning: this CPU has no bfloat16 instructions (AVX-512 BF16), where bf16 runs many times slower "
              "than fp32 (fashion_mnist's UNet: 47 s a step against 2.4 s); consider --training.precision=fp32");
    }
    for (const auto& w : schedule_warnings(cfg_)) run.log("warning: " + w);
    if constexpr (ConditionalNetwork<typename T::net_type>) {
      if (trainer.net()->null_class() >= 0) {
        if (const auto w = guidance_warning(cfg_); !w.empty()) run.log("warning: " + w);
      }
    }
    {
      using P = typename T::predict_type::parameterization;
      for (const auto& w : check_process(trainer.process(), std::same_as<P, Noise> || std::same_as<P, Score>)) {
        run.log("warning: " + w);
      }
    }
    const bool debug = cfg_.get<bool>("training.debug");
    const int64_t batch = cfg_.get<int64_t>("training.batch_size");
    if (debug) write_debug_target(run, one_point, data);
    torch::Tensor rows;  // this rank's rows of each batch: the only ones it gathers, encodes and augments
    if constexpr (ShardedImageSource<Data>) {
      rows = trainer.shard_rows(batch);
      if (rows.defined()) {
        run.log("this rank prepares " + std::to_string(rows.numel()) + " of each batch's " + std::to_string(batch) +
                " rows (gathered, encoded and augmented here alone)");
      }
    }
    auto next = [&](int64_t step) -> Batch {
      if (debug) {
        auto rows = [&](const torch::Tensor& one) {
          auto s = one.sizes().vec();
          s[0] = batch;
          return one.expand(s).contiguous();
        };
        return {rows(one_point.x), one_point.y.defined() ? rows(one_point.y) : torch::Tensor(),
                one_point.c.defined() ? rows(one_point.c) : torch::Tensor(),
                one_point.a.defined() ? rows(one_point.a) : torch::Tensor()};
      }
      // Under data parallelism each rank prepares only its rows (undefined rows: the whole batch).
      if constexpr (ShardedImageSource<Data>) return data.batch(step, batch, trainer.generator(), rows);
      else if constexpr (ImageSource<Data>) return data.batch(step, batch, trainer.generator());
      else return {data(batch, trainer.generator()), {}};
    };
    History history(run, cfg_.get<int64_t>("training.log_every"), steps);
    StepEvents tb{ctx.events, cfg_.get<int64_t>("training.log_every")};
    Previews previews{cfg_.get<int64_t>("sampling.every"), steps, ctx.sample};
    StepProfiler profiler(run.path(), ctx.lead ? cfg_.get<int64_t>("training.profile") : 0, device_, 3,
                          [&](const std::string& text) { run.log(text); });
    StopSignal::install();
    try {
      trainer.fit(next, steps, ctx.ema, ctx.phema, history, tb, ctx.ckpt, previews, profiler);
    } catch (const NonFiniteError& e) {
      fail(run, ctx.ckpt, e);
      throw;
    }
    if (ctx.ckpt.stopped_by_signal()) return false;  // checkpoint saved; run the same command again to resume
    if (!ctx.lead) return true;                      // rank 0 exports and samples
    {
      EMA::Swap swap(ctx.ema, *trainer.net());  // export what samples are drawn from: the EMA weights
      const auto named = io::named_tensors(*trainer.net());
      if (!detail::all_finite(trainer.net()->parameters())) {
        throw NonFiniteError("gm: the EMA weights are not finite; nothing exported", trainer.step(), 0, 0);
      }
      io::write_safetensors(run.path() / "weights.safetensors", named);
      io::write_state_dict(run.path() / "state_dict.pt", named);
    }
    ctx.sample(trainer.step());
    if constexpr (!ImageSource<Data>) {
      bool gaussian = true;  // a data source's density is unknown, so the change of variables has no start
      if constexpr (requires { trainer.has_source(); }) gaussian = !trainer.has_source();
      if (gaussian && one_point.x.dim() == 2 && one_point.x.size(1) == 2 && cfg_.get<bool>("eval.density_map")) {
        const auto seed = static_cast<uint64_t>(cfg_.get<int64_t>("seed"));
        log_density_map(run, ctx.events, trainer, ctx.ema, device_, data(4096, make_generator(mix_seed(seed, 0xD3A5))));
      }
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "mean training step %.3f ms", history.mean_ms());
    run.log(buf);
    return true;
  }

 private:
  /// Trainer callback: loss, lr, grad_norm and ms_per_step into the event file for every step; a resumed run
  /// first drops what was logged after its checkpoint.  Steps whose numbers are still on the device
  /// (`training.sync_every`) are written `every` at a time, after one read.
  struct StepEvents {
    io::EventWriter& w;
    int64_t every = 1;
    std::vector<StepStats> pending{};
    template <class T>
    void on_train_begin(T& t) {
      w.truncate_after(t.step());
    }
    template <class T>
    void on_step_end(T&, const StepStats& s) {
      pending.push_back(s);
      if (!s.values.defined() || static_cast<int64_t>(pending.size()) >= every) flush();
    }
    template <class T>
    void on_train_end(T&) {
      flush();
    }
    void flush() {
      StepStats::resolve(pending);
      for (const auto& p : pending) {
        w.scalars(p.step, {{"loss", p.loss}, {"lr", p.lr}, {"grad_norm", p.grad_norm}, {"ms_per_step", p.ms}});
      }
      pending.clear();
    }
  };
  /// Trainer callback: samples every `every` steps (before the last; the end samples anyway).
  struct Previews {
    int64_t every, total;
    std::function<void(int64_t)> take;
    template <class T>
    void on_step_end(T&, const StepStats& s) {
      if (every > 0 && s.step % every == 0 && s.step < total) take(s.step);
    }
  };

  /// Record a non-finite stop: failure.json (step, loss, gradient norm, last good checkpoint) and a log line.
  static void fail(RunDir& run, const Checkpointer& ckpt, const NonFiniteError& e);

  const Config& cfg_;
  torch::Device device_;
  std::string name_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void Training::add_keys(Config& cfg) {
  cfg.add<int64_t>("training.steps", 8000, "optimiser steps", check::at_least(1));
  cfg.add<int64_t>("training.batch_size", 1024, "batch size", check::at_least(1));
  cfg.add<double>("training.lr", 2e-3, "peak learning rate", check::positive());
  cfg.add<int64_t>("training.accumulate", 1, "micro-batches per optimiser step", check::at_least(1));
  cfg.add<double>("training.clip_norm", 1.0, "gradient clipping by norm (0: off)", check::at_least(0));
  cfg.add<double>("training.ema_decay", 0.999, "EMA decay; samples use the EMA weights", check::in_range(0, 1));
  cfg.add<int64_t>("training.log_every", 500, "progress line every N steps", check::at_least(1));
  cfg.add<bool>("training.debug", false, "overfit a single data point to check the wiring");
  cfg.add<int64_t>("training.profile", 0, "record N training steps (after 3 warm-up steps) with LibTorch's profiler: "
                   "profile.txt (operators by self time) and profile.json (a Chrome trace) in the run directory; 0: off",
                   check::at_least(0));
  cfg.add<int64_t>("training.checkpoint_every", 1000, "checkpoint every N steps", check::at_least(1));
  cfg.add<int64_t>("training.keep_checkpoints", 3, "checkpoints kept", check::at_least(1));
  cfg.add<std::string>("training.phema", "", "post-hoc EMA (EDM2): power-function EMA profiles to track, as "
                       "sigma_rel values, e.g. 0.05,0.10; snapshots go to <workdir>/phema/ (empty: off)");
  cfg.add<int64_t>("training.phema_every", 0, "post-hoc EMA snapshot every N steps (0: at each checkpoint)",
                   check::at_least(0));
  cfg.add<std::string>("training.precision", "auto",
                       "auto (bf16 where the device runs it fast, else fp32), fp32, bf16 (matrix products in "
                       "bfloat16, weights in fp32) or fp16 (CUDA: float16 products with a dynamic loss scale)",
                       check::one_of({"auto", "fp32", "bf16", "fp16"}));
  cfg.add<int64_t>("training.threads", 0, "intra-op threads (0: per precision, see gm::configure_threads)",
                   check::at_least(0));
  cfg.add<bool>("training.tf32", true, "CUDA: fp32 products and convolutions on TF32 tensor cores");
  cfg.add<bool>("training.cudnn_benchmark", true,
                "CUDA: cuDNN picks the fastest convolution algorithm per shape (resumes then match to rounding, "
                "not bit for bit)");
  cfg.add<std::string>("optim.name", "adam", "optimiser", check::one_of({"adam", "adamw"}));
  cfg.add<double>("optim.weight_decay", 0.0, "weight decay", check::at_least(0));
  cfg.add<std::string>("optim.schedule", "cosine", "constant, cosine, or [[until_step, lr], ...]");
  cfg.add<int64_t>("optim.warmup", 200, "linear warmup steps", check::at_least(0));
  cfg.add<int64_t>("optim.horizon", 0,
                   "steps over which the LR schedule runs (0: training.steps when the run is created; fixed "
                   "for the run, so raising training.steps later extends it at the final LR)",
                   check::at_least(0));
  cfg.add<int64_t>("training.max_nonfinite_skips", 0,
                   "steps with a non-finite loss or gradient that may be skipped before the run stops",
                   check::at_least(0));
  cfg.add<bool>("optim.fused", true,
                "the Adam update as LibTorch's one fused kernel (CPU, CUDA; false: seven kernels, equal to rounding)");
  cfg.add<int64_t>("training.sync_every", 0,
                   "read the loss, gradient norm and non-finite check on the host every N steps; between reads "
                   "the step stays on the device (0: training.log_every on CUDA, 1 on a CPU)",
                   check::at_least(0));
}

GM_INLINE auto Training::resumable_keys() -> std::vector<std::string> {
  return {"mode", "workdir", "device", "training.steps", "training.log_every", "training.checkpoint_every",
          "training.keep_checkpoints", "training.threads", "training.max_nonfinite_skips", "training.tf32",
          "training.cudnn_benchmark", "training.sync_every", "optim.fused", "sampling.", "eval.",
              "dist."};
}

GM_INLINE auto Training::options(const Config& cfg, torch::Device device) -> TrainOptions {
  LRSchedule schedule;
  const auto sched = cfg.get<std::string>("optim.schedule");
  schedule.lr = cfg.get<double>("training.lr");
  schedule.warmup = cfg.get<int64_t>("optim.warmup");
  schedule.total = cfg.get<int64_t>("optim.horizon") > 0 ? cfg.get<int64_t>("optim.horizon") : cfg.get<int64_t>("training.steps");
  if (sched == "constant" || sched == "cosine") schedule.kind = sched;
  else schedule.kind = "piecewise", schedule.pieces = LRSchedule::parse_pieces(sched, "optim.schedule");
  return TrainOptions()
      .batch_size(cfg.get<int64_t>("training.batch_size"))
      .lr(schedule.lr)
      .clip_norm(cfg.get<double>("training.clip_norm"))
      .accumulate(cfg.get<int64_t>("training.accumulate"))
      .optimizer(cfg.get<std::string>("optim.name"))
      .weight_decay(cfg.get<double>("optim.weight_decay"))
      .schedule(schedule)
      .seed(static_cast<uint64_t>(cfg.get<int64_t>("seed")))
      .precision(cfg.get<std::string>("training.precision"))
      .threads(cfg.get<int64_t>("training.threads"))
      .max_nonfinite_skips(cfg.get<int64_t>("training.max_nonfinite_skips"))
      .label_dropout(cfg.has("training.label_dropout") ? cfg.get<double>("training.label_dropout") : 0.0)
      .couple_within_classes(!cfg.has("training.coupling_classes") || cfg.get<std::string>("training.coupling_classes") == "within")
      .tf32(cfg.get<bool>("training.tf32"))
      .cudnn_benchmark(cfg.get<bool>("training.cudnn_benchmark"))
      .fused_adam(cfg.get<bool>("optim.fused"))
      .sync_every(cfg.get<int64_t>("training.sync_every") > 0 ? cfg.get<int64_t>("training.sync_every")
                  : device.is_cuda()                          ? cfg.get<int64_t>("training.log_every")
                                                              : 1)
      .device(device);
}

GM_INLINE auto Training::schedule_warnings(const Config& cfg) -> std::vector<std::string> {
  std::vector<std::string> out;
  const auto s = options(cfg, torch::kCPU).schedule();
  const int64_t steps = cfg.get<int64_t>("training.steps");
  auto lr_text = [](double lr) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", lr);
    return std::string(b);
  };
  if (s.kind != "piecewise" && s.warmup > 0 && s.warmup >= steps) {
    out.push_back("optim.warmup (" + std::to_string(s.warmup) + ") >= training.steps (" + std::to_string(steps) +
                  "): the LR never reaches training.lr (" + lr_text(s.lr) + "; it ends at " + lr_text(s.at(steps - 1)) +
                  "); lower optim.warmup");
  }
  if (s.kind == "cosine" && steps > s.total) {
    out.push_back("training.steps (" + std::to_string(steps) + ") runs past the LR horizon (" +
                  std::to_string(s.total) + ", optim.horizon): steps " + std::to_string(s.total) + " to " +
                  std::to_string(steps) + " train at lr " + lr_text(s.at(s.total)) +
                  "; set --optim.horizon to stretch the schedule");
  }
  return out;
}

GM_INLINE std::string Training::guidance_warning(const Config& cfg) {
  if (!cfg.has("training.label_dropout") || !cfg.has("sampling.guidance") || cfg.get<double>("training.label_dropout") > 0) {
    return "";
  }
  const double w = cfg.get<double>("sampling.guidance");
  const bool unconditional = cfg.has("sampling.class") && cfg.get<std::string>("sampling.class") == "none";
  if (w == 1.0 && !unconditional) return "";
  char b[32];
  std::snprintf(b, sizeof b, "%g", w);
  return (unconditional ? std::string("sampling.class = none") : "sampling.guidance = " + std::string(b)) +
         " uses the unconditional model (the null class), which training.label_dropout = 0 never trains; set "
         "training.label_dropout (0.1, as DiT) or sample with --sampling.guidance=1";
}

GM_INLINE void Training::resolve_horizon(Config& cfg, const std::filesystem::path& workdir) {
  if (cfg.get<int64_t>("optim.horizon") != 0) return;
  int64_t horizon = cfg.get<int64_t>("training.steps");
  std::error_code ec;
  if (std::filesystem::is_regular_file(workdir / "config.toml", ec)) {
    try {
      const auto saved = toml::parse_file((workdir / "config.toml").string());
      if (auto h = saved["optim"]["horizon"].value<int64_t>(); h && *h > 0) horizon = *h;
    } catch (const toml::parse_error&) {
    }  // RunDir reports a damaged config.toml
  }
  cfg.set_default("optim.horizon", horizon);
}

GM_INLINE auto Training::resolve_threads(Config& cfg, const std::filesystem::path& workdir) -> std::string {
  std::error_code ec;
  if (cfg.get<int64_t>("training.threads") != 0 || cfg.get<std::string>("device") != "cpu" ||
      std::filesystem::exists(workdir / "config.toml", ec)) {
    return "";
  }
  const unsigned cores = std::thread::hardware_concurrency();
  const double others = busy_cores();
  if (cores < 2 || others < 0) return "";
  // Whole cores taken by others, counting 0.75 of one as one: 0.3 (a shell, a monitor) leaves every core.
  const int64_t spare = std::max<int64_t>(1, static_cast<int64_t>(cores) - static_cast<int64_t>(std::floor(others + 0.25)));
  if (spare >= static_cast<int64_t>(cores)) return "";
  cfg.set_default("training.threads", spare);
  char buf[220];
  std::snprintf(buf, sizeof buf, "the machine is busy (other work keeps %.1f of %u cores busy): training.threads = %lld for "
                "this run (--training.threads=N sets another count)", others, cores, static_cast<long long>(spare));
  return buf;
}

GM_INLINE auto Training::sigma_rels(const Config& cfg, const std::string& key) -> std::vector<double> {
  std::vector<double> out;
  std::stringstream in(cfg.get<std::string>(key));
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" \t", used) != std::string::npos) {
      throw Error("gm: " + key + ": '" + item + "' is not a number (expected sigma_rel values such as 0.05,0.10)");
    }
    try {
      sigma_rel_to_gamma(v);
    } catch (const Error& e) {
      throw Error("gm: " + key + ": " + std::string(e.what()).substr(4));
    }
    out.push_back(v);
  }
  return out;
}

GM_INLINE void Training::fail(RunDir& run, const Checkpointer& ckpt, const NonFiniteError& e) {
  std::string last = "null";
  for (const auto& [step, path] : ckpt.list()) {
    std::string why;
    if (Checkpointer::valid(path, why)) {
      last = "\"" + path.string() + "\"";
      break;
    }
  }
  auto num = [](double x) {
    char b[40];
    std::snprintf(b, sizeof b, "%.9g", x);
    return std::isfinite(x) ? std::string(b) : "\"" + std::string(b) + "\"";
  };
  run.write("failure.json", "{\n  \"reason\": \"non-finite\",\n  \"step\": " + std::to_string(e.step) +
                                ",\n  \"loss\": " + num(e.loss) + ",\n  \"grad_norm\": " + num(e.grad_norm) +
                                ",\n  \"last_good_checkpoint\": " + last + "\n}\n");
  run.log(std::string(e.what()) + "; stopped, see failure.json (last good checkpoint: " + last + ")");
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::experiment
