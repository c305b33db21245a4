#pragma once
/// @file
/// `gm::Experiment`: what every experiment binary shares, written once.  It owns the config and the modes;
/// each part owns its keys and its work: experiment/train.hpp (training.*, optim.*), sample.hpp (sampling.*),
/// eval.hpp (eval.*), dist.hpp (dist.*), outputs.hpp (what is written about samples) and check.hpp (what
/// is checked before anything is written, and the exit codes).

#include <gm/detail/compiled.hpp>
#include <gm/data/batch.hpp>
#include <gm/dist/group.hpp>
#include <gm/error.hpp>
#include <gm/eval/feature_net.hpp>
#include <gm/experiment/check.hpp>
#include <gm/experiment/dist.hpp>
#include <gm/experiment/eval.hpp>
#include <gm/experiment/outputs.hpp>
#include <gm/experiment/sample.hpp>
#include <gm/experiment/train.hpp>
#include <gm/io/config.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/random.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/run_dir.hpp>
#include <gm/train/trainer.hpp>

#include <torch/cuda.h>
#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gm {

/// The shared experiment layer.  It declares the standard keys (`seed`, `device`, `workdir`, `mode`, and
/// through its parts `training.*`, `optim.*`, `sampling.*`, `eval.*`, `dist.*`), an example adds its own
/// (data, model), and `main` runs the body with every error turned into one line and an exit code.
/// `run(trainer, data, eval)` then does the rest: it opens the run folder (only after every check passed),
/// resumes from the newest valid checkpoint, trains with EMA, history.csv, TensorBoard events, a progress
/// line and checkpoints (SIGTERM/SIGINT save and stop), exports the EMA weights (weights.safetensors,
/// state_dict.pt), samples with `sampling.sampler`, writes the samples (.npy, a .png preview) and logs
/// `eval`'s metrics.  `--mode=sample` samples the newest checkpoint with the run's own config instead of
/// training, `--mode=eval` evaluates it, and `--mode=check` builds everything and writes nothing.
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
  Experiment(std::string name, std::string description);

  Config& config() { return cfg_; }
  const Config& config() const { return cfg_; }
  /// The device `device` names, checked by `main`.
  const torch::Device& device() const { return device_; }

  /// Parse the command line (`--config FILE`, then `--key=value`), check the device and seed torch, then
  /// run `body`.  Returns the exit code: 0, `exit_code::requeue` when a signal stopped training early (a
  /// checkpoint was saved), or `exit_code::bad_input` after a one-line error on bad input, or
  /// `exit_code::failure` after a one-line error from inside the run.  No stack trace reaches the user.
  int main(int argc, char** argv, const std::function<void()>& body);

  /// The trainer's options from the `training.*` and `optim.*` keys and the device; a bad LR schedule is a
  /// one-line `gm::Error`.
  TrainOptions train_options() const { return experiment::Training::options(cfg_, device_); }

  /// Train `trainer` on `data` in the run folder, then sample and score the samples with `eval` (returning
  /// `gm::Metrics`; empty: none); or, with `--mode=sample`, only sample the newest checkpoint.  `data` is
  /// vector data, a callable `data(n, generator)` returning a batch, or image data with
  /// `batch(step, n, generator)` returning a `gm::Batch` and `decode(x)` mapping samples to uint8 images
  /// (`gm::data::ImageData`): image samples are written as uint8 NHWC .npy with their labels and as a PNG
  /// grid (one row per class for a conditional network with `sampling.class = rows`).  `Samplers` lists
  /// what `sampling.sampler` may name.  Keys that do not define the run (`experiment::Training::resumable_keys`)
  /// may change when resuming; any other is refused.  `--mode=eval` evaluates a checkpoint instead
  /// (`experiment::Evaluation`).
  template <class Samplers = ExperimentSamplers, class T, class Data>
  void run(T& trainer, const Data& data, const MetricsFn& eval = {}) {
    // Everything the modes read is checked before anything is written.
    const experiment::Sampling sampling = experiment::Sampling::make<Samplers>(cfg_);
    sampling.check<Samplers>(trainer);
    const auto seed = static_cast<uint64_t>(cfg_.get<int64_t>("seed"));
    Batch one_point;  // the shape of a sample; training.debug's point
    if constexpr (ImageSource<Data>) one_point = data.batch(0, 1, make_generator(seed));
    else one_point.x = data(1, make_generator(seed));
    auto shape = one_point.x.sizes().vec();
    int64_t n_sample = cfg_.get<int64_t>("sampling.n"), cols = 0;
    const Conditioning cond = sampling.conditioning(trainer, data, n_sample, cols);
    const auto mode = cfg_.get<std::string>("mode");
    std::optional<FeatureNet> features;
    if (mode == "eval" && ImageSource<Data> && !cfg_.get<std::string>("eval.features").empty()) {
      features.emplace(FeatureNet::load(cfg_.get<std::string>("eval.features"), device_));
    }
    const auto phema_sigmas = experiment::Training::sigma_rels(cfg_, "training.phema");
    const auto eval_phema = experiment::Training::sigma_rels(cfg_, "eval.phema");
    if (mode == "check") return experiment::report_check(name_, data, *trainer.net(), cfg_.get<int64_t>("training.steps"));

    // Data-parallel ranks (torchrun, Slurm): rank 0 owns the run folder and writes checkpoints and outputs;
    // another rank keeps its log in <workdir>/.rank<r> and reads rank 0's checkpoints.
    dist::Group group(dist::environment(), std::chrono::seconds(cfg_.get<int64_t>("dist.timeout")), device_);
    const bool lead = group.rank() == 0;
    if (group.distributed() && sample_only()) {
      throw Error("gm: --mode=" + mode + " runs in one process; start it without a launcher");
    }
    if constexpr (requires { data.pixel_shape(); }) {
      // data.resolution and data.channels shape folders of images; for a fixed data set the saved config
      // records the shape the data has (Fashion-MNIST: 28 and 1), not the keys' defaults.
      const auto px = data.pixel_shape();
      if (cfg_.has("data.resolution") && cfg_.source("data.resolution") == "default") cfg_.set_default("data.resolution", px[1]);
      if (cfg_.has("data.channels") && cfg_.source("data.channels") == "default") cfg_.set_default("data.channels", px[0]);
    }
    const std::filesystem::path workdir = cfg_.get<std::string>("workdir");
    std::optional<RunDir> run_dir;
    auto open_run = [&](const std::filesystem::path& dir) {
      run_dir.emplace(dir, cfg_, experiment::Training::resumable_keys(), argc_, argv_,
                      sample_only() ? RunDir::Open::existing : RunDir::Open::create_or_resume);
    };
    if (lead) open_run(workdir);
    group.barrier();  // rank 0's folder exists before the others open theirs inside it
    if (!lead) open_run(workdir / (".rank" + std::to_string(group.rank())));
    RunDir& run = *run_dir;
    for (const auto& note : notes_) run.log(note);
    if (const auto note = sampling.nfe_note(); !note.empty()) run.log(note);
    EMA& ema = ema_.emplace(cfg_.get<double>("training.ema_decay"));
    Checkpointer ckpt(workdir / "checkpoints", cfg_.get<int64_t>("training.checkpoint_every"),
                      cfg_.get<int64_t>("training.keep_checkpoints"), cfg_.to_toml(), &ema,
                      [&](const std::string& line) { run.log(line); });
    const int64_t phema_every = cfg_.get<int64_t>("training.phema_every") > 0 ? cfg_.get<int64_t>("training.phema_every")
                                                                               : cfg_.get<int64_t>("training.checkpoint_every");
    PowerEMA phema(phema_sigmas, lead && !sample_only() ? phema_every : 0, workdir / "phema");
    ckpt.set_power_ema(&phema);
    const auto chosen = cfg_.get<std::string>("eval.checkpoint");
    bool restored = false;
    if (mode == "eval" && !chosen.empty()) restored = (ckpt.restore(trainer, chosen), true);
    else restored = (run.resuming() || sample_only() || !lead) && ckpt.restore_latest(trainer).has_value();
    if (sample_only() && !restored) throw Error("gm: " + run.path().string() + " has no valid checkpoint to use");
    experiment::join_ranks(group, trainer, ckpt, run, workdir / "checkpoints", cfg_.get<int64_t>("training.batch_size"));
    io::EventWriter events(run.path());

    if (mode == "eval") {
      experiment::Evaluation evaluation(cfg_, sampling, device_, std::move(features));
      evaluation.run<Samplers>(run, events, trainer, ema, data, eval, shape, eval_phema, workdir / "phema");
      return;
    }
    // Samples into `stem`.npy (+ .png), the preview image as `tag`, metrics as `prefix`/<name>.
    auto sample = [&](const std::string& stem, const std::string& tag, const std::string& prefix) {
      sampling.visit<Samplers>([&]<class Smp>() {
        shape[0] = n_sample;
        auto x = sampling.draw<Smp>(trainer, n_sample, ema, trainer.initial_noise(shape), cond);
        char line[160];
        const double total = trainer.last_sample_seconds(), model = trainer.last_model_seconds();
        std::snprintf(line, sizeof line, "sampled %lld in %.2f s with %s: %lld evaluations, %.2f s in the network, "
                      "sampler overhead %.1f%%", static_cast<long long>(n_sample), total, std::string(Smp::name).c_str(),
                      static_cast<long long>(trainer.last_nfe()), model, total > 0 ? 100 * (total - model) / total : 0.0);
        run.log(line);
        // Vectors: the paths' kinetic energy beside the data's own scores (Tong et al. 2024's path energy).
        MetricsFn scored = eval;
        if (const double energy = trainer.last_path_energy(); std::isfinite(energy)) {
          scored = [&eval, energy](const torch::Tensor& v) {
            auto m = eval ? eval(v) : Metrics{};
            m.push_back({"path_energy", energy, "mean over samples of sum |dx|^2 / dt along the sampler's steps"});
            return m;
          };
        }
        experiment::write_samples(run, events, x, cond, cols, data, stem, tag, prefix, trainer.step(), scored);
      });
    };
    if (mode == "train") {
      const int64_t steps = cfg_.get<int64_t>("training.steps");
      std::error_code ec;
      if (restored && trainer.step() >= steps &&
          std::filesystem::exists(workdir / "samples" / ("step_" + std::to_string(trainer.step()) + ".npy"), ec)) {
        run.log("the run is finished (step " + std::to_string(trainer.step()) + " of training.steps = " +
                std::to_string(steps) + "), its weights exported and sampled: nothing to do.  --training.steps=N "
                "trains on; --mode=sample samples it again");
        return;
      }
      experiment::Training training(cfg_, device_, name_);
      auto preview = [&](int64_t step) { sample("samples/step_" + std::to_string(step), "samples", "eval"); };
      if (!training.run({run, events, ema, phema, ckpt, preview, lead}, trainer, data, one_point, restored)) {
        stopped_ = true;  // a signal stopped training with a checkpoint saved: exit_code::requeue
        return;
      }
      if (!lead) return;
    } else {
      const std::string what = sampling.sampler() + "_nfe" + std::to_string(sampling.nfe()) + sampling.variant(cond);
      sample("samples/step_" + std::to_string(trainer.step()) + "_" + what, "sample/" + what, "sample/" + what);
    }
    run.log(std::to_string(trainer.last_nfe()) + " sampler evaluations; outputs in " + run.path().string());
  }

  /// The EMA weights of the last `run`: what it trained (or, in `--mode=sample` and `eval`, the checkpoint's),
  /// `shadow()` in the network's parameter order; `EMA::Swap` puts them into the network.  Before `run`, a
  /// `gm::Error`.
  /// @code
  /// ex.run(trainer, data);
  /// gm::EMA::Swap swap(ex.ema(), *trainer.net());  // the network now holds the averaged weights
  /// @endcode
  EMA& ema();

  /// No metrics (the default of `run`'s `eval`).
  static Metrics no_metrics(const torch::Tensor&) { return {}; }

 private:
  /// Whether the mode reads a checkpoint instead of training (sample, eval).
  bool sample_only() const;

  std::string name_;
  Config cfg_;
  torch::Device device_ = torch::kCPU;
  std::optional<EMA> ema_;  // the last run's
  bool stopped_ = false;  // stopped by a signal before the last step: exit_code::requeue
  std::vector<std::string> notes_;  // for the log: repeated flags, and what this command changes of the run
  int argc_ = 0;
  char** argv_ = nullptr;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE Experiment::Experiment(std::string name, std::string description)
    : name_(std::move(name)), cfg_(std::move(description)) {
  cfg_.add<std::string>("mode", "train",
                        "train; sample or eval(uate) the newest checkpoint; check: build the data, model and sampler "
                        "from the config, write nothing",
                        check::one_of({"train", "sample", "eval", "check"}));
  cfg_.add<int64_t>("seed", 0, "random seed");
  cfg_.add<std::string>("device", "cpu", "torch device: cpu, cuda, cuda:1");
  cfg_.add<std::string>("workdir", "runs/" + name_, "folder of this run's outputs");
  experiment::Training::add_keys(cfg_);
  experiment::Sampling::add_keys(cfg_);
  experiment::add_dist_keys(cfg_);
  experiment::Evaluation::add_keys(cfg_);
}

GM_INLINE auto Experiment::main(int argc, char** argv, const std::function<void()>& body) -> int {
  argc_ = argc, argv_ = argv;
  return experiment::guarded([&]() -> int {
    if (auto code = cfg_.parse(argc, argv)) return *code;
    const std::filesystem::path workdir = cfg_.get<std::string>("workdir");
    std::error_code ec;
    // A run folder's own config.toml is the base of every mode: a resume, a sample or an evaluation takes each
    // key it is not given from the run (a shorter command once resumed at the binary's defaults); what the
    // command line changes is logged once the run folder is open.
    notes_ = cfg_.notes();
    if (std::filesystem::exists(workdir / "config.toml", ec)) {
      auto changes = cfg_.rebase(workdir / "config.toml");
      if (!sample_only()) notes_.insert(notes_.end(), changes.begin(), changes.end());  // a resume says what changed
    }
    experiment::Training::resolve_horizon(cfg_, workdir);
    if (!sample_only()) {
      if (auto note = experiment::Training::resolve_threads(cfg_, workdir); !note.empty()) notes_.push_back(note);
    }
    device_ = experiment::checked_device(cfg_.get<std::string>("device"));
    if (device_.is_cuda() && !device_.has_index()) {  // under a launcher, one GPU per rank on each node
      if (const auto env = dist::environment(); env.distributed()) {
        device_ = torch::Device(torch::kCUDA,
                                static_cast<c10::DeviceIndex>(env.local_rank % torch::cuda::device_count()));
      }
    }
    if (cfg_.get<std::string>("training.precision") == "fp16" && !device_.is_cuda()) {
      throw Error("gm: --training.precision=fp16 needs a CUDA device (device is " + device_.str() +
                  "); use bf16, fp32 or auto");
    }
    torch::manual_seed(static_cast<uint64_t>(cfg_.get<int64_t>("seed")));  // network initialisation
    body();
    return stopped_ ? exit_code::requeue : exit_code::ok;
  });
}

GM_INLINE auto Experiment::ema() -> EMA& {
  if (!ema_) throw Error("gm: Experiment::ema() before Experiment::run: there are no EMA weights yet");
  return *ema_;
}

GM_INLINE auto Experiment::sample_only() const -> bool {
  const auto mode = cfg_.get<std::string>("mode");
  return mode == "sample" || mode == "eval";
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
