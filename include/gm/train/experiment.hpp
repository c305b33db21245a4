#pragma once
/// @file
/// `gm::Experiment`: what every experiment binary shares, written once: the standard config keys and their
/// checks, the device, the run folder, checkpoints and resume, signals, history, TensorBoard, progress, the
/// weights export, `--mode=sample`, the samples writer and error handling.  An example adds only its own
/// keys, its types and its data.

#include <gm/data/batch.hpp>
#include <gm/data/encoders.hpp>
#include <gm/dist/group.hpp>
#include <gm/error.hpp>
#include <gm/eval/feature_net.hpp>
#include <gm/eval/frechet.hpp>
#include <gm/eval/likelihood.hpp>
#include <gm/eval/metrics.hpp>
#include <gm/io/config.hpp>
#include <gm/io/export.hpp>
#include <gm/io/file.hpp>
#include <gm/io/grid.hpp>
#include <gm/io/npy.hpp>
#include <gm/io/plot.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/sampler/all.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/lr_schedule.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/run_dir.hpp>
#include <gm/train/trainer.hpp>
#include <gm/type_list.hpp>

#include <c10/util/Exception.h>
#include <torch/cuda.h>
#include <torch/types.h>
#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace gm {

/// The samplers `sampling.sampler` chooses among in an experiment (adaptive Dormand-Prince, which picks
/// its own steps, is left to `bench_samplers`).
using ExperimentSamplers = type_list<HeunSampler, EulerSampler, MidpointSampler, RK4Sampler, DDIMSampler, DDPMSampler,
                                     DPMSolverPP2M, DPMSolverPP3M, DPMSolverPP3MRef, UniPC<2>, UniPC<3>, EulerMaruyamaSampler, PCSampler>;

/// Exit codes of an experiment binary.
namespace exit_code {
inline constexpr int ok = 0;         ///< finished
inline constexpr int failure = 1;    ///< an error inside the run (LibTorch, the file system)
inline constexpr int bad_input = 2;  ///< a bad flag, key, value, file, path or device; nothing was written
inline constexpr int non_finite = 3; ///< training went non-finite; failure.json says where, checkpoints are intact
inline constexpr int io_error = 4;   ///< a write failed (a full disk); earlier outputs and checkpoints are intact
/// Stopped early by SIGTERM, SIGINT or SIGUSR1 (on any rank) with a checkpoint saved: run the same command
/// again to continue.  A launcher reads it as "requeue me" (scripts/slurm/train.sbatch does); 75 is
/// sysexits.h's EX_TEMPFAIL, "a temporary failure: retry later".
inline constexpr int requeue = 75;
}  // namespace exit_code

/// A preview of samples as a picture: a density image of 2-D points over [-5, 5]^2; nothing for other
/// shapes (image grids come with image data).
inline std::optional<io::Image> preview_image(const torch::Tensor& x) {
  if (x.dim() != 2 || x.size(1) != 2) return std::nullopt;
  auto c = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return io::density_image(std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()), -5, 5);
}

/// Image data for `Experiment::run`: `batch(step, n, generator)` returns a `gm::Batch` (data encoded into
/// the model's space, labels), and `decode(x)` maps samples back to uint8 images [n, C, H, W].
template <class D>
concept ImageSource = requires(const D& d, const at::Generator& g, const torch::Tensor& x) {
  { d.batch(int64_t{}, int64_t{}, g) } -> std::convertible_to<Batch>;
  { d.decode(x) } -> std::convertible_to<torch::Tensor>;
};

/// Declare the keys of class-conditional experiments: `training.label_dropout`, `sampling.guidance` (the
/// classifier-free guidance scale w) and `sampling.class` ("rows": one grid row per class; "none": the
/// null class, i.e. unconditional; or one class number).  `Experiment::run` uses them when the network is
/// a `gm::ConditionalNetwork` built with classes.
inline void add_guidance_keys(Config& cfg, double label_dropout = 0.1, double guidance = 1.0) {
  cfg.add<double>("training.label_dropout", label_dropout, "probability of training on the null class instead of the label",
                  check::in_range(0, 1));
  cfg.add<double>("sampling.guidance", guidance, "classifier-free guidance scale w: 1 conditional, 0 unconditional",
                  [](const Config::Value& v) -> std::string {
                    const double* w = std::get_if<double>(&v);
                    return w && std::isfinite(*w) ? "" : "a finite number";
                  });
  cfg.add<std::string>("sampling.class", "rows", "rows (one row per class), none (unconditional), or a class number",
                       [](const Config::Value& v) -> std::string {
                         const auto* s = std::get_if<std::string>(&v);
                         if (!s) return "rows, none or a class number";
                         if (*s == "rows" || *s == "none") return "";
                         if (!s->empty() && s->size() < 10 && std::all_of(s->begin(), s->end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
                         return "rows, none or a class number";
                       });
}

/// The shared experiment layer.  It declares the standard keys (`seed`, `device`, `workdir`, `mode`,
/// `training.*`, `optim.*`, `sampling.*`), an example adds its own (data, model), and `main` runs the body
/// with every error turned into one line and an exit code.  `run(trainer, data, eval)` then does the rest:
/// it opens the run folder (only after every check passed), resumes from the newest valid checkpoint,
/// trains with EMA, history.csv, TensorBoard events, a progress line and checkpoints (SIGTERM/SIGINT save
/// and stop), exports the EMA weights (weights.safetensors, state_dict.pt), samples with
/// `sampling.sampler`, writes the samples (.npy, a .png preview) and logs `eval`'s metrics.
/// `--mode=sample` samples the newest checkpoint with the run's own config instead of training.
///
/// Example (examples/flow_2d.cpp is the whole of one):
/// @code
/// gm::Experiment ex("flow_2d", "Rectified flow on a 2-D toy with an MLP.");
/// gm::data::VectorData::add_keys(ex.config());
/// gm::add_mlp_keys(ex.config());
/// return ex.main(argc, argv, [&] {
///   auto data = gm::data::VectorData::from_config(ex.config());
///   RectifiedFlow trainer(gm::make_mlp(ex.config(), data.dim()), ex.train_options());
///   ex.run(trainer, data);
/// });
/// @endcode
class Experiment {
 public:
  /// `name` names the default run folder (runs/<name>) and the log; `description` heads --help.
  Experiment(std::string name, std::string description) : name_(std::move(name)), cfg_(std::move(description)) {
    cfg_.add<std::string>("mode", "train",
                          "train; sample or eval(uate) the newest checkpoint; check: build the data, model and sampler "
                          "from the config, write nothing",
                          check::one_of({"train", "sample", "eval", "check"}));
    cfg_.add<int64_t>("seed", 0, "random seed");
    cfg_.add<std::string>("device", "cpu", "torch device: cpu, cuda, cuda:1");
    cfg_.add<std::string>("workdir", "runs/" + name_, "folder of this run's outputs");
    cfg_.add<int64_t>("training.steps", 8000, "optimiser steps", check::at_least(1));
    cfg_.add<int64_t>("training.batch_size", 1024, "batch size", check::at_least(1));
    cfg_.add<double>("training.lr", 2e-3, "peak learning rate", check::positive());
    cfg_.add<int64_t>("training.accumulate", 1, "micro-batches per optimiser step", check::at_least(1));
    cfg_.add<double>("training.clip_norm", 1.0, "gradient clipping by norm (0: off)", check::at_least(0));
    cfg_.add<double>("training.ema_decay", 0.999, "EMA decay; samples use the EMA weights", check::in_range(0, 1));
    cfg_.add<int64_t>("training.log_every", 500, "progress line every N steps", check::at_least(1));
    cfg_.add<bool>("training.debug", false, "overfit a single data point to check the wiring");
    cfg_.add<int64_t>("training.checkpoint_every", 1000, "checkpoint every N steps", check::at_least(1));
    cfg_.add<int64_t>("training.keep_checkpoints", 3, "checkpoints kept", check::at_least(1));
    cfg_.add<std::string>("training.phema", "", "post-hoc EMA (EDM2): power-function EMA profiles to track, as "
                          "sigma_rel values, e.g. 0.05,0.10; snapshots go to <workdir>/phema/ (empty: off)");
    cfg_.add<int64_t>("training.phema_every", 0, "post-hoc EMA snapshot every N steps (0: at each checkpoint)",
                      check::at_least(0));
    cfg_.add<std::string>("training.precision", "auto",
                          "auto (bf16 where the device runs it fast, else fp32), fp32, bf16 (matrix products in "
                          "bfloat16, weights in fp32) or fp16 (CUDA: float16 products with a dynamic loss scale)",
                          check::one_of({"auto", "fp32", "bf16", "fp16"}));
    cfg_.add<int64_t>("training.threads", 0, "intra-op threads (0: per precision, see gm::configure_threads)",
                      check::at_least(0));
    cfg_.add<std::string>("optim.name", "adam", "optimiser", check::one_of({"adam", "adamw"}));
    cfg_.add<double>("optim.weight_decay", 0.0, "weight decay", check::at_least(0));
    cfg_.add<std::string>("optim.schedule", "cosine", "constant, cosine, or [[until_step, lr], ...]");
    cfg_.add<int64_t>("optim.warmup", 200, "linear warmup steps", check::at_least(0));
    cfg_.add<int64_t>("optim.horizon", 0,
                      "steps over which the LR schedule runs (0: training.steps when the run is created; fixed "
                      "for the run, so raising training.steps later extends it at the final LR)",
                      check::at_least(0));
    cfg_.add<int64_t>("training.max_nonfinite_skips", 0,
                      "steps with a non-finite loss or gradient that may be skipped before the run stops",
                      check::at_least(0));
    cfg_.add<std::string>("sampling.sampler", "heun", "sampler: " + names(ExperimentSamplers{}));
    cfg_.add<int64_t>("sampling.nfe", 20, "model evaluations per sample", check::at_least(1));
    cfg_.add<int64_t>("sampling.n", 20000, "samples to draw", check::at_least(1));
    cfg_.add<int64_t>("sampling.every", 0, "also sample every N training steps (0: only at the end)", check::at_least(0));
    cfg_.add<int64_t>("dist.timeout", 300, "seconds a data-parallel rank waits for the others before failing",
                      check::at_least(1));
    cfg_.add<std::string>("sampling.grid_file", "", "sample on the time grid in this file (gm::OptimizedGrid, e.g. "
                          "from bench_samplers --grid optimized; empty: uniform in t)");
    cfg_.add<std::string>("sampling.autoguide", "", "autoguidance (Karras et al. 2024): guide by a weaker model with "
                          "the same network, its EMA weights from a checkpoint folder, a run folder or a .safetensors "
                          "file (replaces classifier-free guidance; empty: off)");
    cfg_.add<double>("sampling.autoguidance", 2.0, "autoguidance scale w: out_weak + w (out - out_weak)",
                     [](const Config::Value& v) -> std::string {
                       const double* w = std::get_if<double>(&v);
                       return w && std::isfinite(*w) ? "" : "a finite number";
                     });
    cfg_.add<std::string>("eval.checkpoint", "", "--mode=eval: a checkpoint folder (empty: the newest)");
    cfg_.add<int64_t>("eval.n", 2000, "--mode=eval: samples drawn (sample i from (seed, i) alone)", check::at_least(2));
    cfg_.add<int64_t>("eval.batch", 250, "--mode=eval: samples per batch (does not change the samples)", check::at_least(1));
    cfg_.add<std::string>("eval.features", "", "feature network for the Fréchet distance and class agreement: a gm "
                          "classifier .safetensors (build/examples/classifier) or a TorchScript file (empty: none)");
    cfg_.add<std::string>("eval.reference", "train", "split whose feature statistics are the reference",
                          check::one_of({"train", "test"}));
    cfg_.add<std::string>("eval.cache", "runs/reference", "folder of cached reference statistics");
    cfg_.add<int64_t>("eval.likelihood_n", 256, "test points for bits/dim (images) or NLL (vectors); 0: skip",
                      check::at_least(0));
    cfg_.add<int64_t>("eval.likelihood_steps", 50, "Heun steps of the probability-flow ODE for the likelihood",
                      check::at_least(1));
    cfg_.add<std::string>("eval.likelihood_spacing", "auto", "the likelihood ODE's steps in t: log (dense near the "
                          "data), uniform, or auto (log for images, uniform for vectors)",
                          check::one_of({"auto", "log", "uniform"}));
    cfg_.add<int64_t>("eval.elbo_n", 10000, "test images for the ELBO in bits/dim of a model trained on an ELBO "
                      "(VDM; one draw per image); 0: skip", check::at_least(0));
    cfg_.add<int64_t>("eval.likelihood_probes", 1, "Hutchinson probes per image (vectors use the exact divergence)",
                      check::at_least(1));
    cfg_.add<bool>("eval.png", true, "--mode=eval: also write every sample as a PNG (images)");
    cfg_.add<std::string>("eval.phema", "", "--mode=eval: evaluate the post-hoc EMA reconstructed at each of these "
                          "sigma_rel values, e.g. 0.03,0.05,0.1,0.2 (from training.phema's snapshots; empty: the "
                          "ordinary EMA)");
  }

  Config& config() { return cfg_; }
  const Config& config() const { return cfg_; }
  /// The device `device` names, checked by `main`.
  const torch::Device& device() const { return device_; }

  /// Parse the command line (`--config FILE`, then `--key=value`), check the device and seed torch, then
  /// run `body`.  Returns the exit code: 0, `exit_code::requeue` when a signal stopped training early (a
  /// checkpoint was saved), or `exit_code::bad_input` after a one-line error on bad input, or
  /// `exit_code::failure` after a one-line error from inside the run.  No stack trace reaches the user.
  int main(int argc, char** argv, const std::function<void()>& body) {
    argc_ = argc, argv_ = argv;
    try {
      if (auto code = cfg_.parse(argc, argv)) return *code;
      const std::filesystem::path workdir = cfg_.get<std::string>("workdir");
      std::error_code ec;
      if (sample_only() && std::filesystem::exists(workdir / "config.toml", ec)) cfg_.rebase(workdir / "config.toml");
      resolve_horizon(workdir);
      device_ = checked_device(cfg_.get<std::string>("device"));
      if (device_.is_cuda() && !device_.has_index()) {  // under a launcher, one GPU per rank on each node
        if (const auto env = dist::environment(); env.distributed()) {
          device_ = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank % torch::cuda::device_count()));
        }
      }
      if (cfg_.get<std::string>("training.precision") == "fp16" && !device_.is_cuda()) {
        throw Error("gm: --training.precision=fp16 needs a CUDA device (device is " + device_.str() +
                    "); use bf16, fp32 or auto");
      }
      torch::manual_seed(static_cast<uint64_t>(cfg_.get<int64_t>("seed")));  // network initialisation
      body();
      return stopped_ ? exit_code::requeue : exit_code::ok;
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return exit_code::bad_input;
    } catch (const NonFiniteError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return exit_code::non_finite;
    } catch (const IoError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return exit_code::io_error;
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "%s\n", one_line(e.what_without_backtrace()).c_str());
      return exit_code::failure;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", one_line(e.what()).c_str());
      return exit_code::failure;
    }
  }

  /// The trainer's options from the `training.*` and `optim.*` keys and the device; a bad LR schedule is a
  /// one-line `gm::Error`.
  TrainOptions train_options() const {
    LRSchedule schedule;
    const auto sched = cfg_.get<std::string>("optim.schedule");
    schedule.lr = cfg_.get<double>("training.lr");
    schedule.warmup = cfg_.get<int64_t>("optim.warmup");
    schedule.total = cfg_.get<int64_t>("optim.horizon") > 0 ? cfg_.get<int64_t>("optim.horizon")
                                                            : cfg_.get<int64_t>("training.steps");
    if (sched == "constant" || sched == "cosine") schedule.kind = sched;
    else schedule.kind = "piecewise", schedule.pieces = LRSchedule::parse_pieces(sched, "optim.schedule");
    return TrainOptions()
        .batch_size(cfg_.get<int64_t>("training.batch_size"))
        .lr(schedule.lr)
        .clip_norm(cfg_.get<double>("training.clip_norm"))
        .accumulate(cfg_.get<int64_t>("training.accumulate"))
        .optimizer(cfg_.get<std::string>("optim.name"))
        .weight_decay(cfg_.get<double>("optim.weight_decay"))
        .schedule(schedule)
        .seed(static_cast<uint64_t>(cfg_.get<int64_t>("seed")))
        .precision(cfg_.get<std::string>("training.precision"))
        .threads(cfg_.get<int64_t>("training.threads"))
        .max_nonfinite_skips(cfg_.get<int64_t>("training.max_nonfinite_skips"))
        .label_dropout(cfg_.has("training.label_dropout") ? cfg_.get<double>("training.label_dropout") : 0.0)
        .device(device_);
  }

  /// Train `trainer` on `data` in the run folder, then sample and score the samples with `eval` (a callable
  /// `eval(samples)` returning `gm::Metrics`); or, with `--mode=sample`, only sample the newest checkpoint.
  /// `data` is vector data, a callable `data(n, generator)` returning a batch, or image data with
  /// `batch(step, n, generator)` returning a `gm::Batch` and `decode(x)` mapping samples to uint8 images
  /// (`gm::data::ImageData`): image samples are written as uint8 NHWC .npy with their labels and as a PNG
  /// grid (one row per class for a conditional network with `sampling.class = rows`).  `Samplers` lists
  /// what `sampling.sampler` may name.  Keys that do not define the run (`mode`, `workdir`, `device`,
  /// `training.steps`, logging and checkpoint cadence, `training.threads`, `training.max_nonfinite_skips`,
  /// `sampling.*`, `eval.*`) may change when resuming; any other is refused.  `--mode=eval` evaluates a
  /// checkpoint instead (see `evaluate`).
  template <class Samplers = ExperimentSamplers, class T, class Data, class Eval = Metrics (*)(const torch::Tensor&)>
  void run(T& trainer, const Data& data, Eval eval = &no_metrics) {
    constexpr bool images = ImageSource<Data>;
    const auto sampler = cfg_.get<std::string>("sampling.sampler");
    visit_by_name<Samplers>(sampler, []<class>() {}, "sampling.sampler");  // checked before anything is written
    const int64_t steps = cfg_.get<int64_t>("training.steps");
    const auto seed = static_cast<uint64_t>(cfg_.get<int64_t>("seed"));
    Batch one_point;  // the shape of a sample; training.debug's point
    if constexpr (images) one_point = data.batch(0, 1, make_generator(seed));
    else one_point.x = data(1, make_generator(seed));
    auto shape = one_point.x.sizes().vec();
    int64_t n_sample = cfg_.get<int64_t>("sampling.n"), cols = 0;
    const Conditioning cond = conditioning(trainer, data, n_sample, cols);  // checked before anything is written
    const bool evaluating = cfg_.get<std::string>("mode") == "eval";
    std::optional<FeatureNet> features;  // checked before anything is written
    if (evaluating && images && !cfg_.get<std::string>("eval.features").empty()) {
      features.emplace(FeatureNet::load(cfg_.get<std::string>("eval.features"), device_));
    }

    const auto phema_sigmas = sigma_rels("training.phema"), eval_phema = sigma_rels("eval.phema");
    load_grid_file<Samplers>(sampler);  // checked before anything is written
    if (cfg_.get<std::string>("mode") == "check") {  // a sweep's lines are checked before they are submitted
      std::printf("%s: config ok: %s%s%lld steps\n", name_.c_str(), describe(data).c_str(),
                  describe(*trainer.net()).c_str(), static_cast<long long>(steps));
      return;
    }
    // Data-parallel ranks (torchrun, Slurm): rank 0 owns the run folder and writes checkpoints and outputs;
    // another rank keeps its log in <workdir>/.rank<r> and reads rank 0's checkpoints.
    dist::Group group(dist::environment(), std::chrono::seconds(cfg_.get<int64_t>("dist.timeout")), device_);
    const bool lead = group.rank() == 0;
    if (group.distributed() && sample_only()) {
      throw Error("gm: --mode=" + cfg_.get<std::string>("mode") + " runs in one process; start it without a launcher");
    }
    const std::filesystem::path workdir = cfg_.get<std::string>("workdir");
    std::optional<RunDir> run_dir;
    auto open_run = [&](const std::filesystem::path& dir) {
      run_dir.emplace(dir, cfg_,
                      std::vector<std::string>{"mode", "workdir", "device", "training.steps", "training.log_every",
                                               "training.checkpoint_every", "training.keep_checkpoints",
                                               "training.threads", "training.max_nonfinite_skips", "sampling.", "eval.",
                                               "dist."},
                      argc_, argv_, sample_only() ? RunDir::Open::existing : RunDir::Open::create_or_resume);
    };
    if (lead) open_run(workdir);
    group.barrier();  // rank 0's folder exists before the others open theirs inside it
    if (!lead) open_run(workdir / (".rank" + std::to_string(group.rank())));
    RunDir& run = *run_dir;
    EMA ema(cfg_.get<double>("training.ema_decay"));
    Checkpointer ckpt(workdir / "checkpoints", cfg_.get<int64_t>("training.checkpoint_every"),
                      cfg_.get<int64_t>("training.keep_checkpoints"), cfg_.to_toml(), &ema,
                      [&](const std::string& line) { run.log(line); });
    const int64_t phema_every = cfg_.get<int64_t>("training.phema_every") > 0 ? cfg_.get<int64_t>("training.phema_every")
                                                                               : cfg_.get<int64_t>("training.checkpoint_every");
    PowerEMA phema(phema_sigmas, lead && !sample_only() ? phema_every : 0, workdir / "phema");
    ckpt.set_power_ema(&phema);
    const auto chosen = cfg_.get<std::string>("eval.checkpoint");
    bool restored = false;
    if (evaluating && !chosen.empty()) restored = (ckpt.restore(trainer, chosen), true);
    else restored = (run.resuming() || sample_only() || !lead) && ckpt.restore_latest(trainer).has_value();
    if (sample_only() && !restored) throw Error("gm: " + run.path().string() + " has no valid checkpoint to use");
    if (group.distributed()) {
      auto step = torch::full({1}, static_cast<double>(trainer.step()), torch::kFloat64);
      group.all_reduce_sum(step);
      if (step.item<double>() != static_cast<double>(trainer.step() * group.world())) {
        throw Error("gm: the ranks restored different checkpoints (rank " + std::to_string(group.rank()) + " is at step " +
                    std::to_string(trainer.step()) + "); every rank must see " + (workdir / "checkpoints").string());
      }
      trainer.set_data_parallel(dist::data_parallel(group));
      ckpt.set_data_parallel(lead, [&group] { group.barrier(); }, [&group](bool f) { return group.any(f); });
      run.log("rank " + std::to_string(group.rank()) + " of " + std::to_string(group.world()) + " (" +
              group.env().launcher + "), global batch " + std::to_string(cfg_.get<int64_t>("training.batch_size")));
    }
    io::EventWriter events(run.path());
    if (evaluating) {
      if (eval_phema.empty()) evaluate<Samplers>(run, events, trainer, ema, data, eval, shape, features);
      const auto snaps = eval_phema.empty() ? std::vector<PowerEMASnapshot>{} : snapshots_upto(workdir / "phema", trainer.step());
      for (double sigma : eval_phema) {  // post-hoc EMA: each profile rebuilt from the snapshots, evaluated
        auto [rebuilt, at] = posthoc_ema(snaps, trainer, sigma);
        run.log("post-hoc EMA sigma_rel " + number(sigma) + " at step " + std::to_string(at) + " from the snapshots in " +
                (workdir / "phema").string());
        evaluate<Samplers>(run, events, trainer, rebuilt, data, eval, shape, features, {sigma, at});
      }
      return;
    }
    // Samples into `stem`.npy (+ .png), the preview image as `tag`, metrics as `prefix`/<name>.
    auto sample = [&](const std::string& stem, const std::string& tag, const std::string& prefix) {
      visit_by_name<Samplers>(sampler, [&]<class Smp>() {
        const int64_t nfe = cfg_.get<int64_t>("sampling.nfe"), per = evals_per_step(Smp{});
        shape[0] = n_sample;
        auto x = draw<Smp>(trainer, n_sample, std::max<int64_t>(1, nfe / per), ema, trainer.initial_noise(shape), cond);
        char line[160];
        const double total = trainer.last_sample_seconds(), model = trainer.last_model_seconds();
        std::snprintf(line, sizeof line, "sampled %lld in %.2f s with %s: %lld evaluations, %.2f s in the network, "
                      "sampler overhead %.1f%%", static_cast<long long>(n_sample), total, std::string(Smp::name).c_str(),
                      static_cast<long long>(trainer.last_nfe()), model, total > 0 ? 100 * (total - model) / total : 0.0);
        run.log(line);
        write_samples(run, events, x, cond, cols, data, stem, tag, prefix, trainer.step(), eval);
      });
    };

    if (!sample_only()) {
      run.log(name_ + ": " + describe(data) + describe(*trainer.net()) + std::to_string(steps) + " steps on " +
              device_.str() + ", " + precision_name(trainer.precision()) + ", " +
              std::to_string(torch::get_num_threads()) + " thread(s)" +
              (restored ? ", resuming at step " + std::to_string(trainer.step()) : ""));
      if (cfg_.get<std::string>("training.precision") == "auto") {
        const auto choice = auto_precision(device_);
        run.log(std::string("precision auto: ") + precision_name(choice.precision) + ", for " + choice.reason);
      }
      if (trainer.precision() == Precision::bf16 && device_.is_cpu() && !cpu_has_bf16()) {
        run.log("warning: this CPU has no bfloat16 instructions (AVX-512 BF16), where bf16 runs many times slower "
                "than fp32 (fashion_mnist's UNet: 47 s a step against 2.4 s); consider --training.precision=fp32");
      }
      const bool debug = cfg_.get<bool>("training.debug");
      const int64_t batch = cfg_.get<int64_t>("training.batch_size");
      if (debug) write_debug_target(run, one_point, data);
      auto next = [&](int64_t step) -> Batch {
        if (debug) {
          return {one_point.x.expand(shape_with(one_point.x, batch)).contiguous(),
                  one_point.y.defined() ? one_point.y.expand({batch}).contiguous() : torch::Tensor(),
                  one_point.c.defined() ? one_point.c.expand(shape_with(one_point.c, batch)).contiguous() : torch::Tensor()};
        }
        if constexpr (images) return data.batch(step, batch, trainer.generator());
        else return {data(batch, trainer.generator()), {}};
      };
      History history(run, cfg_.get<int64_t>("training.log_every"), steps);
      StepEvents tb{events};
      Previews previews{cfg_.get<int64_t>("sampling.every"), steps, [&](int64_t step) {
                          sample("samples/step_" + std::to_string(step), "samples", "eval");
                        }};
      StopSignal::install();
      try {
        trainer.fit(next, steps, ema, phema, history, tb, ckpt, previews);
      } catch (const NonFiniteError& e) {
        fail(run, ckpt, e);
        throw;
      }
      if (ckpt.stopped_by_signal()) {  // checkpoint saved; run the same command again to resume
        stopped_ = true;
        return;
      }
      if (!lead) return;                      // rank 0 exports and samples
      {
        EMA::Swap swap(ema, *trainer.net());  // export what samples are drawn from: the EMA weights
        const auto named = io::named_tensors(*trainer.net());
        if (!detail::all_finite(trainer.net()->parameters())) {
          throw NonFiniteError("gm: the EMA weights are not finite; nothing exported", trainer.step(), 0, 0);
        }
        io::write_safetensors(run.path() / "weights.safetensors", named);
        io::write_state_dict(run.path() / "state_dict.pt", named);
      }
      sample("samples/step_" + std::to_string(trainer.step()), "samples", "eval");
      if (shape.size() == 2 && shape[1] == 2) log_density_map(run, events, trainer, ema);
      char buf[64];
      std::snprintf(buf, sizeof buf, "mean training step %.3f ms", history.mean_ms());
      run.log(buf);
    } else {
      const std::string what = sampler + "_nfe" + std::to_string(cfg_.get<int64_t>("sampling.nfe")) + variant(cond);
      sample("samples/step_" + std::to_string(trainer.step()) + "_" + what, "sample/" + what, "sample/" + what);
    }
    run.log(std::to_string(trainer.last_nfe()) + " sampler evaluations; outputs in " + run.path().string());
  }

  static Metrics no_metrics(const torch::Tensor&) { return {}; }

 private:
  /// Trainer callback: loss, lr, grad_norm and ms_per_step into the event file every step; a resumed run
  /// first drops what was logged after its checkpoint.
  struct StepEvents {
    io::EventWriter& w;
    template <class T>
    void on_train_begin(T& t) {
      w.truncate_after(t.step());
    }
    template <class T>
    void on_step_end(T&, const StepStats& s) {
      w.scalars(s.step, {{"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.grad_norm}, {"ms_per_step", s.ms}});
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

  /// Whether the mode reads a checkpoint instead of training (sample, eval).
  bool sample_only() const {
    const auto mode = cfg_.get<std::string>("mode");
    return mode == "sample" || mode == "eval";
  }

  /// optim.horizon = 0 means training.steps when the run was created: the saved run's horizon when the
  /// folder holds one (so raising training.steps never bends the schedule), else training.steps.
  void resolve_horizon(const std::filesystem::path& workdir) {
    if (cfg_.get<int64_t>("optim.horizon") != 0) return;
    int64_t horizon = cfg_.get<int64_t>("training.steps");
    std::error_code ec;
    if (std::filesystem::is_regular_file(workdir / "config.toml", ec)) {
      try {
        const auto saved = toml::parse_file((workdir / "config.toml").string());
        if (auto h = saved["optim"]["horizon"].value<int64_t>(); h && *h > 0) horizon = *h;
      } catch (const toml::parse_error&) {
      }  // RunDir reports a damaged config.toml
    }
    cfg_.set_default("optim.horizon", horizon);
  }

  /// Record a non-finite stop: failure.json (step, loss, gradient norm, last good checkpoint) and a log line.
  void fail(RunDir& run, const Checkpointer& ckpt, const NonFiniteError& e) {
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

  /// The labels and guidance of `sampling.class` and `sampling.guidance` for a conditional network (n
  /// becomes a multiple of the class count for one row per class, and `cols` the row length); nothing for
  /// other networks.  A class number out of range is a one-line error.
  template <class T, class Data>
  Conditioning conditioning(T& trainer, const Data& data, int64_t& n, int64_t& cols) const {
    Conditioning c = label_conditioning(trainer, n, cols);
    if constexpr (requires { data.sampling_condition(int64_t{}); }) c.image = data.sampling_condition(n);
    return c;
  }
  template <class T>
  Conditioning label_conditioning(T& trainer, int64_t& n, int64_t& cols) const {
    Conditioning c = class_conditioning(trainer, n, cols);
    if (const auto path = cfg_.get<std::string>("sampling.autoguide"); !path.empty()) {
      c.guide = trainer.weights_guide(autoguide_weights(*trainer.net(), path));
      c.guidance = cfg_.get<double>("sampling.autoguidance");
    }
    return c;
  }

  /// The EMA weights that `sampling.autoguide` names, in the network's parameter order: a checkpoint
  /// folder's (state.safetensors), a run folder's export (weights.safetensors), or a .safetensors file of
  /// named weights.  Anything else, or weights of another network, is a one-line `gm::Error`.
  static std::vector<torch::Tensor> autoguide_weights(const torch::nn::Module& net, std::filesystem::path p) {
    const std::string key = "gm: sampling.autoguide: " + p.string();
    std::error_code ec;
    const auto params = net.named_parameters();
    std::vector<torch::Tensor> out;
    auto fitted = [&](std::vector<torch::Tensor>& w) {
      for (size_t i = 0; i < w.size(); ++i) {
        if (!w[i].sizes().equals(params[i].value().sizes())) {
          throw Error(key + ": its weights do not fit this network ('" + params[i].key() + "')");
        }
      }
      return std::move(w);
    };
    if (std::filesystem::is_directory(p, ec) && std::filesystem::exists(p / "state.safetensors", ec)) {
      std::string why;
      if (!Checkpointer::valid(p, why)) throw Error(key + ": not a usable checkpoint: " + why);
      for (const auto& [name, t] : io::read_safetensors(p / "state.safetensors")) {
        if (name.rfind("ema_", 0) == 0 && name != "ema_updates") out.push_back(t);
      }
      if (out.size() != params.size()) throw Error(key + ": its EMA weights (" + std::to_string(out.size()) +
                                                   " tensors) do not fit this network (" + std::to_string(params.size()) + ")");
      return fitted(out);
    }
    if (std::filesystem::is_directory(p, ec)) p /= "weights.safetensors";
    if (!std::filesystem::is_regular_file(p, ec)) {
      throw Error(key + ": not a checkpoint folder, a run folder with weights.safetensors, or a .safetensors file");
    }
    std::map<std::string, torch::Tensor> named;
    for (auto& [name, t] : io::read_safetensors(p)) named.emplace(name, t);
    for (const auto& q : params) {
      auto it = named.find(q.key());
      if (it == named.end()) throw Error(key + ": has no weight '" + q.key() + "' (another network?)");
      out.push_back(it->second);
    }
    return fitted(out);
  }

  template <class T>
  Conditioning class_conditioning(T& trainer, int64_t& n, int64_t& cols) const {
    Conditioning c;
    if constexpr (ConditionalNetwork<typename T::net_type>) {
      const int64_t k = trainer.net()->null_class();
      if (k <= 0 || !cfg_.has("sampling.class")) return c;
      c.guidance = cfg_.get<double>("sampling.guidance");
      const auto what = cfg_.get<std::string>("sampling.class");
      if (what == "none") return c;
      if (what == "rows") {
        cols = std::max<int64_t>(1, n / k);
        n = cols * k;
        c.labels = torch::arange(k, torch::kInt64).repeat_interleave(cols);
        return c;
      }
      const int64_t label = std::stoll(what);
      if (label >= k) {
        throw Error("gm: sampling.class = " + what + " is not a class (the data has " + std::to_string(k) + ")");
      }
      c.labels = torch::full({n}, label, torch::kInt64);
    }
    return c;
  }

  /// training.debug: the one data point the run overfits, as debug_target.npy (and .png for images).
  template <class Data>
  void write_debug_target(RunDir& run, const Batch& one, const Data& data) {
    io::write_npy(run.path() / "debug_target.npy", one.x.to(torch::kCPU).to(torch::kFloat32));
    if constexpr (ImageSource<Data>) io::write_png(run.path() / "debug_target.png", io::image_grid(data.decode(one.x), 1));
  }

  template <class Data, class Eval>
  void write_samples(RunDir& run, io::EventWriter& events, torch::Tensor x, const Conditioning& cond, int64_t cols,
                     const Data& data, const std::string& stem, const std::string& tag, const std::string& prefix,
                     int64_t step, Eval& eval) {
    const auto npy = run.unused(stem, ".npy");
    const auto png = npy.parent_path() / (npy.stem().string() + ".png");
    std::optional<io::Image> img;
    if constexpr (ImageSource<Data>) {
      const auto u8 = data.decode(x);  // uint8 [n, C, H, W]
      io::write_npy(npy, u8.permute({0, 2, 3, 1}).contiguous());
      if (cond.labels.defined()) {
        io::write_npy(npy.parent_path() / (npy.stem().string() + "_labels.npy"), cond.labels.to(torch::kCPU));
      }
      if (cond.image.defined()) {  // what the samples were conditioned on, in the same layout
        io::write_png(npy.parent_path() / (npy.stem().string() + "_condition.png"), io::image_grid(data.decode(cond.image), cols));
      }
      img = io::image_grid(u8, cols);
      x = u8;  // what eval sees: the images
    } else {
      x = x.to(torch::kCPU).to(torch::kFloat32);  // what eval sees
      io::write_npy(npy, x);
      img = preview_image(x);
    }
    if (img) {
      io::write_png(png, *img);
      events.image(tag, *img, step);
    }
    std::vector<std::pair<std::string, double>> scalars;
    for (const auto& m : eval(x)) {
      char buf[48];
      std::snprintf(buf, sizeof buf, " %.4f", m.value);
      run.log(m.name + buf + (m.note.empty() ? "" : " (" + m.note + ")"));
      scalars.emplace_back(prefix + "/" + m.name, m.value);
    }
    if (!scalars.empty()) events.scalars(step, scalars);
  }

  /// `--mode=eval`: draw `eval.n` samples from the loaded checkpoint with `sampling.sampler`, `sampling.nfe`,
  /// `sampling.guidance` and `sampling.class` (rows: sample i has class i mod K), sample i from (seed, i)
  /// alone, so the set does not depend on `eval.batch`; write them into eval/<sampler>_nfe<N>[_w<w>]_step<S>/
  /// (images: samples.npz with uint8 NHWC `arr_0` and labels `arr_1`, the layout of ADM's evaluator, a PNG
  /// per sample and grid.png; vectors: samples.npy); then score them and append the record to eval.json, the
  /// log and TensorBoard (eval/<metric> at the checkpoint's step):
  /// - images with `eval.features`: the Fréchet distance to the `eval.reference` split's feature statistics
  ///   (cached in `eval.cache`) and, for conditional samples of a network with logits, the class agreement;
  ///   each beside the same number for as many real images of the other split;
  /// - vectors: the Fréchet distance in data coordinates to as many fresh data draws, beside that of a second
  ///   set of data draws;
  /// - the likelihood of `eval.likelihood_n` held-out points through the probability-flow ODE (Heun,
  ///   `eval.likelihood_steps`, `eval.likelihood_spacing`): bits per dimension of dequantised test images (Hutchinson's divergence,
  ///   the null class for a conditional network), or the NLL in nats of fresh data draws (exact divergence);
  /// - for a trainer with an ELBO weighting (VDM), the ELBO in bits per dimension of `eval.elbo_n` 8-bit test
  ///   images (`elbo_bpd`) and a learned schedule's gamma(0) and gamma(1);
  /// - `eval`'s metrics.
  template <class Samplers, class T, class Data, class Eval>
  void evaluate(RunDir& run, io::EventWriter& events, T& trainer, EMA& ema, const Data& data, Eval& eval,
                std::vector<int64_t> shape, const std::optional<FeatureNet>& features,
                std::pair<double, int64_t> phema = {0, 0}) {
    constexpr bool images = ImageSource<Data>;
    const int64_t n = cfg_.get<int64_t>("eval.n"), per_batch = cfg_.get<int64_t>("eval.batch");
    const auto seed = static_cast<uint64_t>(cfg_.get<int64_t>("seed"));
    const auto sampler = cfg_.get<std::string>("sampling.sampler");
    const int64_t nfe = cfg_.get<int64_t>("sampling.nfe");
    int64_t unused_n = n, cols = 0;
    Conditioning cond = label_conditioning(trainer, unused_n, cols);
    if constexpr (requires { data.sampling_condition(int64_t{}); }) cond.image = data.sampling_condition(n);
    if constexpr (ConditionalNetwork<typename T::net_type>) {
      if (cond.labels.defined()) {
        const int64_t k = trainer.net()->null_class();
        cond.labels = cfg_.get<std::string>("sampling.class") == "rows"
                          ? torch::arange(n, torch::kInt64).remainder(k)
                          : torch::full({n}, cond.labels[0].item<int64_t>(), torch::kInt64);
      }
    }
    std::string what = sampler + "_nfe" + std::to_string(nfe) + variant(cond);
    if (phema.first > 0) what += "_phema" + number(phema.first);
    what += "_step" + std::to_string(trainer.step());
    const auto dir = run.unused("eval/" + what, "");
    std::filesystem::create_directories(dir);
    run.log("evaluating step " + std::to_string(trainer.step()) + ": " + std::to_string(n) + " samples with " + sampler +
            ", NFE " + std::to_string(nfe) + (cond.labels.defined() ? ", guidance " + number(cond.guidance) : "") + " into " +
            dir.string());

    // Samples, batch by batch, each from its own seed.
    std::vector<torch::Tensor> parts;
    double seconds = 0;
    visit_by_name<Samplers>(sampler, [&]<class Smp>() {
      const int64_t steps = std::max<int64_t>(1, nfe / std::max<int64_t>(1, evals_per_step(Smp{})));
      for (int64_t i = 0; i < n; i += per_batch) {
        const int64_t m = std::min(per_batch, n - i);
        Conditioning c = cond;
        c.seeds = sample_seeds(seed, i, m);
        if (c.labels.defined()) c.labels = cond.labels.slice(0, i, i + m);
        if (c.image.defined()) c.image = cond.image.slice(0, i, i + m);
        shape[0] = m;
        auto x = draw<Smp>(trainer, m, steps, ema, trainer.initial_noise(shape, c.seeds), c);
        seconds += trainer.last_sample_seconds();
        if constexpr (images) parts.push_back(data.decode(x));
        else parts.push_back(x.to(torch::kCPU, torch::kFloat32));
      }
    });
    const auto samples = torch::cat(parts);
    std::vector<std::pair<std::string, double>> record{{"n", static_cast<double>(n)}, {"sample_seconds", seconds}};
    if (phema.first > 0) {
      record.emplace_back("phema_sigma_rel", phema.first);
      record.emplace_back("phema_step", static_cast<double>(phema.second));
    }
    const torch::Tensor labels = cond.labels.defined() ? cond.labels : torch::Tensor();
    if constexpr (images) {
      std::vector<std::pair<std::string, torch::Tensor>> arrays{{"arr_0", samples.permute({0, 2, 3, 1}).contiguous()}};
      if (labels.defined()) arrays.emplace_back("arr_1", labels);
      io::write_npz(dir / "samples.npz", arrays);
      io::write_png(dir / "grid.png", io::image_grid(samples.slice(0, 0, std::min<int64_t>(n, 100)), 10));
      if (cfg_.get<bool>("eval.png")) {
        std::filesystem::create_directories(dir / "images");
        for (int64_t i = 0; i < n; ++i) {
          char name[32];
          std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
          io::write_png(dir / "images" / name, io::image_grid(samples.slice(0, i, i + 1), 1, 0, 255, 1));
        }
      }
      if (features) score_images<Data>(*features, samples, labels, record);
    } else {
      io::write_npy(dir / "samples.npy", samples);
      auto fresh = [&](uint64_t stream) { return data(n, make_generator(mix_seed(seed, stream))).to(torch::kCPU, torch::kFloat32); };
      const auto ref = FeatureStats::of(fresh(0xF1D0));
      record.emplace_back("fd", frechet_distance(FeatureStats::of(samples), ref));
      record.emplace_back("fd_data", frechet_distance(FeatureStats::of(fresh(0xF1D1)), ref));
    }
    if (const int64_t ln = cfg_.get<int64_t>("eval.likelihood_n"); ln > 0) likelihood(trainer, ema, data, ln, record);
    if constexpr (images && requires(torch::Tensor x, at::Generator g) { trainer.elbo(x, g); }) {
      if (const int64_t en = cfg_.get<int64_t>("eval.elbo_n"); en > 0) elbo(trainer, ema, data, en, record);
    }
    for (const auto& m : eval(samples)) record.emplace_back(m.name, m.value);

    // The record: the log, TensorBoard, eval.json (every evaluation of the run, oldest first).
    std::string json = "{\"step\": " + std::to_string(trainer.step()) + ", \"sampler\": \"" + sampler + "\", \"nfe\": " +
                       std::to_string(nfe) + ", \"guidance\": " + number(cond.guidance) + ", \"class\": \"" +
                       (cfg_.has("sampling.class") ? cfg_.get<std::string>("sampling.class") : std::string("none")) +
                       "\", \"seed\": " + std::to_string(seed) + ", \"folder\": \"" + dir.filename().string() + "\"" +
                       (cond.guide ? ", \"autoguide\": " + io::detail::st::json_string(cfg_.get<std::string>("sampling.autoguide")) : "");
    std::vector<std::pair<std::string, double>> scalars;
    for (const auto& [k, v] : record) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      json += ", \"" + k + "\": " + (std::isfinite(v) ? std::string(buf) : "null");
      run.log("eval " + k + " " + buf);
      scalars.emplace_back("eval/" + k, v);
    }
    json += "}";
    events.scalars(trainer.step(), scalars);
    std::string all = "[\n" + json + "\n]\n";
    if (auto old = read_text(run.path() / "eval.json"); !old.empty()) {
      const auto end = old.rfind(']');
      if (end == std::string::npos) throw Error("gm: " + (run.path() / "eval.json").string() + " is damaged; move it away");
      old.erase(end);
      while (!old.empty() && (old.back() == '\n' || old.back() == ' ')) old.pop_back();
      all = old + (old.size() > 1 ? ",\n" : "\n") + json + "\n]\n";
    }
    run.write("eval.json", all);
  }

  /// Fréchet distance and class agreement of uint8 `samples` under `eval.features`, each beside the same
  /// number for as many real images of the split that is not the reference.
  template <class Data>
  void score_images(const FeatureNet& net, const torch::Tensor& samples, const torch::Tensor& labels,
                    std::vector<std::pair<std::string, double>>& record) {
    const auto ref_split = cfg_.get<std::string>("eval.reference");
    const auto other_split = ref_split == "train" ? "test" : "train";
    const auto ref = Data::read(cfg_, ref_split), other = Data::read(cfg_, other_split);
    const std::string name = cfg_.has("data.name") ? cfg_.get<std::string>("data.name") : "data";
    const auto cache = std::filesystem::path(cfg_.get<std::string>("eval.cache")) /
                       (name + "_" + ref_split + "_" + net.id() + "_n" + std::to_string(ref.size()) + ".safetensors");
    const auto stats = reference_stats(net, ref.images, cache);
    const int64_t n = std::min<int64_t>(samples.size(0), other.size());
    record.emplace_back("fd", frechet_distance(net, samples, stats));
    record.emplace_back(std::string("fd_real_") + other_split, frechet_distance(net, other.images.slice(0, 0, n), stats));
    if (labels.defined() && net.has_logits()) {
      record.emplace_back("class_agreement", class_agreement(net, samples, labels));
      record.emplace_back(std::string("class_agreement_real_") + other_split,
                          class_agreement(net, other.images.slice(0, 0, n), other.labels.slice(0, 0, n)));
    }
  }

  /// Bits per dimension of `n` dequantised test images (pixel models), or the NLL in nats of `n` fresh data
  /// draws (vectors), through the probability-flow ODE of the EMA weights; the mean and its standard error.
  template <class T, class Data>
  void likelihood(T& trainer, EMA& ema, const Data& data, int64_t n, std::vector<std::pair<std::string, double>>& record) {
    const auto seed = static_cast<uint64_t>(cfg_.get<int64_t>("seed"));
    const int64_t steps = cfg_.get<int64_t>("eval.likelihood_steps"), per_batch = cfg_.get<int64_t>("eval.batch");
    auto gen = make_generator(mix_seed(seed, 0xB1D));
    torch::Tensor x;
    LikelihoodOptions o;
    const auto spacing = cfg_.get<std::string>("eval.likelihood_spacing");
    o.t_eps(1e-3).spacing(spacing != "auto" ? spacing : ImageSource<Data> ? "log" : "uniform");
    bool bpd = false;
    if constexpr (ImageSource<Data>) {
      if constexpr (requires { data.pixels(); }) {
        if (!data.pixels()) return;  // latents: bits per dimension of pixels do not apply
      }
      const auto test = Data::read(cfg_, "test");
      const int64_t m = std::min<int64_t>(n, test.size());
      x = data::PixelEncoder{true}.encode(test.images.slice(0, 0, m), gen);  // uniform dequantisation, [-1, 1]
      o.divergence("hutchinson").probes(cfg_.get<int64_t>("eval.likelihood_probes"));
      bpd = true;
    } else {
      x = data(n, gen).to(torch::kCPU, torch::kFloat32);
    }
    torch::Tensor image;  // a coarse-to-fine model's likelihood is conditional on each test image's input
    if constexpr (requires { data.sampling_condition(int64_t{}); }) image = data.sampling_condition(x.size(0));
    EMA::Swap swap(ema, *trainer.net());
    trainer.net()->eval();
    std::vector<torch::Tensor> values;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < x.size(0); i += per_batch) {
      const int64_t j = std::min(i + per_batch, x.size(0));
      auto xb = x.slice(0, i, j).to(device_);
      Conditioning c;
      if (image.defined()) c.image = image.slice(0, i, j);
      auto field = trainer.make_field(c);
      const auto ll = log_likelihood(field, xb, o, HeunSampler{}, steps, make_generator(mix_seed(seed, 0xB1E + i), device_));
      const int64_t dims = xb.numel() / xb.size(0);
      values.push_back((bpd ? bits_per_dim(ll.log_p, dims) : -ll.log_p).to(torch::kCPU, torch::kFloat64));
    }
    const auto v = torch::cat(values);
    const std::string key = bpd ? "bpd" : "nll";
    record.emplace_back(key, v.mean().item<double>());
    record.emplace_back(key + "_stderr", v.numel() > 1 ? v.std().item<double>() / std::sqrt(static_cast<double>(v.numel())) : 0.0);
    record.emplace_back(key + "_n", static_cast<double>(v.numel()));
    record.emplace_back(key + "_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  /// The ELBO in bits per dimension of the first `n` test images (8-bit, not dequantised), for a trainer
  /// with an ELBO weighting (VDM): one time and noise draw per image from the EMA weights, the mean and its
  /// standard error, and a learned schedule's gamma(0) and gamma(1).
  template <class T, class Data>
  void elbo(T& trainer, EMA& ema, const Data& data, int64_t n, std::vector<std::pair<std::string, double>>& record) {
    if constexpr (requires { data.pixels(); }) {
      if (!data.pixels()) return;  // latents: bits per dimension of pixels do not apply
    }
    const auto seed = static_cast<uint64_t>(cfg_.get<int64_t>("seed"));
    const int64_t per_batch = cfg_.get<int64_t>("eval.batch");
    const auto test = Data::read(cfg_, "test");
    const int64_t m = std::min<int64_t>(n, test.size());
    auto gen = make_generator(mix_seed(seed, 0xE1B0), device_);
    EMA::Swap swap(ema, *trainer.net());
    trainer.net()->eval();
    std::vector<torch::Tensor> values;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < m; i += per_batch) {
      auto x = data::PixelEncoder{false}.encode(test.images.slice(0, i, std::min(i + per_batch, m))).to(device_);
      values.push_back(trainer.elbo(x, gen).to(torch::kCPU, torch::kFloat64));
    }
    const auto v = torch::cat(values);
    record.emplace_back("elbo_bpd", v.mean().item<double>());
    record.emplace_back("elbo_bpd_stderr", v.numel() > 1 ? v.std().item<double>() / std::sqrt(static_cast<double>(v.numel())) : 0.0);
    record.emplace_back("elbo_n", static_cast<double>(v.numel()));
    record.emplace_back("elbo_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if constexpr (requires { trainer.process().schedule().net->gamma_0(); }) {
      torch::NoGradGuard ng;
      record.emplace_back("gamma_0", trainer.process().schedule().net->gamma_0().template item<double>());
      record.emplace_back("gamma_1", trainer.process().schedule().net->gamma_1().template item<double>());
    }
  }

  static std::string read_text(const std::filesystem::path& p) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) return "";
    return io::read_file(p);
  }

  /// A 2-D model's log-density on a 96 x 96 grid over [-5, 5]^2, by the probability-flow ODE with the exact
  /// divergence (RK4, 40 steps, from the EMA weights), as `log_density.png` (viridis, the top 8 nats of the
  /// map) and in TensorBoard, as flow_matching's 2-D notebook shows it.
  template <class T>
  void log_density_map(RunDir& run, io::EventWriter& events, T& trainer, EMA& ema) {
    constexpr int n = 96;
    constexpr double lo = -5, hi = 5;
    auto axis = torch::linspace(lo + 0.5 * (hi - lo) / n, hi - 0.5 * (hi - lo) / n, n);
    auto gx = axis.repeat({n}), gy = axis.flip({0}).repeat_interleave(n);  // row 0 at the top
    auto points = torch::stack({gx, gy}, 1).to(device_);
    EMA::Swap swap(ema, *trainer.net());
    trainer.net()->eval();
    auto field = trainer.make_field();
    const auto start = std::chrono::steady_clock::now();
    const Likelihood ll = log_likelihood(field, points, LikelihoodOptions().t_eps(1e-3), RK4Sampler{}, 40);
    const torch::Tensor lp = ll.log_p.to(torch::kCPU, torch::kFloat32).contiguous();
    const double top = lp.max().item<double>();
    auto img = io::heat_image(std::vector<float>(lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel()), n,
                              top - 8, top, 4);
    io::write_png(run.path() / "log_density.png", img);
    events.image("log_density", img, trainer.step());
    char line[160];
    std::snprintf(line, sizeof line, "log-density map: log_density.png (%d x %d points, max %.3f nats, %.1f s)", n, n, top,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    run.log(line);
  }

  /// What sets these samples apart in their name: the grid file, autoguidance or the guidance scale.
  std::string variant(const Conditioning& cond) const {
    std::string out;
    if (grid_) out += "_grid-" + std::filesystem::path(cfg_.get<std::string>("sampling.grid_file")).stem().string();
    if (cond.guide) out += "_autoguide" + number(cond.guidance);
    else if (cond.labels.defined() && cond.guidance != 1.0) out += "_w" + number(cond.guidance);
    return out;
  }

  /// `sampling.grid_file`'s grid, checked against `sampler` at `sampling.nfe` (its steps) and t_end 1e-3.
  template <class Samplers = ExperimentSamplers>
  void load_grid_file(const std::string& sampler) {
    grid_.reset();
    const auto file = cfg_.get<std::string>("sampling.grid_file");
    if (file.empty()) return;
    auto g = OptimizedGrid::load(file);
    const int64_t nfe = cfg_.get<int64_t>("sampling.nfe");
    visit_by_name<Samplers>(sampler, [&]<class Smp>() {
      const int64_t steps = std::max<int64_t>(1, nfe / std::max<int64_t>(1, evals_per_step(Smp{})));
      if (static_cast<int64_t>(g.stored.size()) != steps + 1 || std::abs(g.stored.back() - 1e-3) > 1e-12) {
        throw Error("gm: sampling.grid_file: " + file + " has " + std::to_string(g.stored.size() - 1) +
                    " steps ending at t = " + std::to_string(g.stored.back()) + "; " + sampler + " at NFE " +
                    std::to_string(nfe) + " takes " + std::to_string(steps) + " steps ending at t = 0.001");
      }
    }, "sampling.sampler");
    grid_ = std::move(g);
  }

  /// Samples on `sampling.grid_file`'s grid, or uniform in t.
  template <class Smp, class T>
  torch::Tensor draw(T& trainer, int64_t n, int64_t steps, EMA& ema, const torch::Tensor& noise, const Conditioning& c) {
    if (grid_) return trainer.template sample<OptimizedGrid, Smp>(n, steps, &ema, noise, 1e-3, Smp{}, *grid_, c);
    return trainer.template sample<UniformGrid, Smp>(n, steps, &ema, noise, 1e-3, Smp{}, UniformGrid{}, c);
  }

  /// The sigma_rel values of a comma-separated key (empty: none), each checked; a bad one is a one-line
  /// `gm::Error` naming the key.
  std::vector<double> sigma_rels(const std::string& key) const {
    std::vector<double> out;
    std::stringstream in(cfg_.get<std::string>(key));
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

  /// The post-hoc EMA snapshots in `dir` taken up to `step` (at least one), in step order.
  static std::vector<PowerEMASnapshot> snapshots_upto(const std::filesystem::path& dir, int64_t step) {
    auto snaps = load_power_ema_snapshots(dir);
    std::erase_if(snaps, [&](const PowerEMASnapshot& s) { return s.step > step; });
    if (snaps.empty()) throw Error("gm: " + dir.string() + " has no snapshot up to step " + std::to_string(step));
    return snaps;
  }

  /// The post-hoc EMA of relative std `sigma` rebuilt from `snaps` (`snapshots_upto`), as an `EMA` holding
  /// those weights, and the step it stands at (the last snapshot's).
  template <class T>
  static std::pair<EMA, int64_t> posthoc_ema(const std::vector<PowerEMASnapshot>& snaps, T& trainer, double sigma) {
    const int64_t at = snaps.back().step;
    const auto rebuilt = posthoc_reconstruct(snaps, at, sigma);
    const auto params = trainer.net()->named_parameters();
    if (rebuilt.size() != params.size()) throw Error("gm: the post-hoc EMA snapshots are of another network");
    std::vector<torch::Tensor> shadow;
    for (size_t i = 0; i < params.size(); ++i) {
      if (rebuilt[i].first != params[i].key() || !rebuilt[i].second.sizes().equals(params[i].value().sizes())) {
        throw Error("gm: the post-hoc EMA snapshots are of another network ('" + rebuilt[i].first + "')");
      }
      shadow.push_back(rebuilt[i].second.to(params[i].value().options()));
    }
    EMA ema;
    ema.restore(std::move(shadow), at);
    return {std::move(ema), at};
  }

  static std::string number(double x) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", x);
    return b;
  }
  static std::vector<int64_t> shape_with(const torch::Tensor& one, int64_t n) {
    auto s = one.sizes().vec();
    s[0] = n;
    return s;
  }
  template <class X>
  static std::string describe(const X& x) {
    if constexpr (requires { x.describe(); }) return x.describe() + ", ";
    else return "";
  }
  static std::string one_line(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (auto& c : s) {
      if (c == '\n') c = ' ';
    }
    return s.rfind("gm:", 0) == 0 ? s : "gm: " + s;
  }
  static torch::Device checked_device(const std::string& name) {
    std::optional<torch::Device> d;
    try {
      d.emplace(name);
    } catch (const c10::Error&) {
      throw Error("gm: device '" + name + "' is not a device (expected cpu, cuda or cuda:N)");
    }
    if (d->is_cuda()) {
      if (!torch::cuda::is_available()) {
        throw Error("gm: device '" + name + "' is not available (this LibTorch has no CUDA, or no GPU is visible)");
      }
      if (d->has_index() && d->index() >= static_cast<int>(torch::cuda::device_count())) {
        throw Error("gm: device '" + name + "' is not available (" + std::to_string(torch::cuda::device_count()) +
                    " GPU(s) visible)");
      }
    } else if (!d->is_cpu()) {
      throw Error("gm: device '" + name + "' is not supported (gm runs on cpu and cuda)");
    }
    return *d;
  }

  std::string name_;
  Config cfg_;
  torch::Device device_ = torch::kCPU;
  bool stopped_ = false;  // stopped by a signal before the last step: exit_code::requeue
  std::optional<OptimizedGrid> grid_;  // sampling.grid_file
  int argc_ = 0;
  char** argv_ = nullptr;
};

}  // namespace gm
