#pragma once
/// @file
/// The sampling part of an experiment: the `sampling.*` keys, the sampler chosen by name, the time grid
/// (uniform, or `sampling.grid_file`), the labels and guidance of a conditional network, autoguidance's
/// weights, and the draw itself.  Training's previews, `--mode=sample` and `--mode=eval` all draw through it.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/experiment/check.hpp>
#include <gm/io/config.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/sampler/all.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/trainer.hpp>
#include <gm/type_list.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gm {

/// The samplers `sampling.sampler` chooses among in an experiment (adaptive Dormand-Prince, which picks
/// its own steps, is left to `bench_samplers`).
using ExperimentSamplers = type_list<HeunSampler, EulerSampler, MidpointSampler, RK4Sampler, DDIMSampler, DDPMSampler,
                                     DPMSolverPP2M, DPMSolverPP3M, DPMSolverPP3MRef, UniPC<2>, UniPC<3>, EulerMaruyamaSampler, PCSampler,
                                     EulerAncestralSampler, DPM2Sampler, DPM2AncestralSampler, DPMPP2SAncestralSampler,
                                     DPMPPSDESampler, DPMPP2MSDESampler, DPMPP3MSDESampler, LMSSampler, EDMStochasticSampler,
                                     SiTSDESampler>;

/// The samplers of a few-step experiment (a flow map trained by gm::MeanFlow, gm::Shortcut or
/// gm::Consistency): its own flow_map and consistency samplers, and ODE samplers that read the model at r = t.
using FewStepSamplers = type_list<FlowMapSampler, ConsistencySampler, HeunSampler, EulerSampler, MidpointSampler,
                                  RK4Sampler, DPMSolverPP2M>;

/// gm's name for a sampler named as another tool names it, or the name itself: k-diffusion's functions
/// (`dpmpp_2m`, `sample_dpmpp_2m`), the web UIs' labels (`DPM++ 2M`, `Euler a`) and diffusers' scheduler classes
/// (`DPMSolverMultistepScheduler`), in any case.  `sampling.sampler` takes any of them.
std::string sampler_alias(const std::string& name);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string sampler_alias(const std::string& name) {
  std::string n;
  for (size_t i = 0; i < name.size(); ++i) {  // lower case; "++" as "pp"; spaces and hyphens as "_"
    const char c = name[i];
    if (c == '+' && i + 1 < name.size() && name[i + 1] == '+') n += "pp", ++i;
    else if (c == ' ' || c == '-') n += '_';
    else n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (n.rfind("sample_", 0) == 0) n = n.substr(7);
  static const std::pair<const char*, const char*> aliases[] = {
      // k-diffusion and the web UIs
      {"dpmpp_2m", "dpmpp2m"}, {"dpmpp_3m", "dpmpp3m"}, {"euler_a", "euler_ancestral"}, {"dpm2", "dpm_2"},
      {"dpm2_a", "dpm_2_ancestral"}, {"dpm_2_a", "dpm_2_ancestral"}, {"dpmpp_2s_a", "dpmpp_2s_ancestral"},
      {"unipc_2", "unipc"}, {"unipc_3", "unipc3"},
      // diffusers' schedulers
      {"eulerdiscretescheduler", "euler"}, {"flowmatcheulerdiscretescheduler", "euler"}, {"edmeulerscheduler", "euler"},
      {"heundiscretescheduler", "heun"}, {"flowmatchheundiscretescheduler", "heun"},
      {"eulerancestraldiscretescheduler", "euler_ancestral"}, {"dpmsolvermultistepscheduler", "dpmpp2m"},
      {"edmdpmsolvermultistepscheduler", "dpmpp2m"}, {"dpmsolversdescheduler", "dpmpp_sde"}, {"ddimscheduler", "ddim"},
      {"ddpmscheduler", "ddpm"}, {"unipcmultistepscheduler", "unipc"}, {"lmsdiscretescheduler", "lms"},
      {"kdpm2discretescheduler", "dpm_2"}, {"kdpm2ancestraldiscretescheduler", "dpm_2_ancestral"}};
  for (const auto& [from, to] : aliases) {
    if (n == from) return to;
  }
  return n;
}
#endif

/// Declare the keys of class-conditional experiments: `training.label_dropout`, `sampling.guidance` (the
/// classifier-free guidance scale w) and `sampling.class` ("rows": one grid row per class; "none": the
/// null class, i.e. unconditional; or one class number).  `Experiment::run` uses them when the network is
/// a `gm::ConditionalNetwork` built with classes.
void add_guidance_keys(Config& cfg, double label_dropout = 0.1, double guidance = 1.0);
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_guidance_keys(Config& cfg, double label_dropout, double guidance) {
  cfg.add<double>("training.label_dropout", label_dropout, "probability of training on the null class instead of the label",
                  check::in_range(0, 1));
  cfg.add<double>("sampling.guidance", guidance, "classifier-free guidance scale w: 1 conditional, 0 unconditional",
                  check::finite());
  cfg.add<double>("sampling.guidance_low", 0.0, "guidance only for t >= this (t = 1 noise; Kynkaanniemi et al. 2024's "
                  "interval, REPA's guidance_low)", check::in_range(0, 1));
  cfg.add<double>("sampling.guidance_high", 1.0, "guidance only for t <= this (REPA's guidance_high = 0.7; "
                  "LightningDiT's cfg_interval_start = 0.11 is 0.89 here)", check::in_range(0, 1));
  cfg.add<double>("sampling.guidance_rescale", 0.0, "CFG rescale phi (Lin et al. 2024, diffusers' guidance_rescale)",
                  check::in_range(0, 1));
  cfg.add<std::string>("sampling.class", "rows", "rows (one row per class), none (unconditional), or a class number",
                       [](const Config::Value& v) -> std::string {
                         const auto* s = std::get_if<std::string>(&v);
                         if (!s) return "rows, none or a class number";
                         if (*s == "rows" || *s == "none") return "";
                         if (!s->empty() && s->size() < 10 && std::all_of(s->begin(), s->end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
                         return "rows, none or a class number";
                       });
}
#endif

namespace experiment {

/// Sampling as every mode of an experiment does it, from the `sampling.*` keys.  Everything it reads is
/// checked when it is made (`make<Samplers>`), before anything is written.
class Sampling {
 public:
  /// Declare `sampling.*` (guidance keys aside: `add_guidance_keys`).
  template <class Samplers = ExperimentSamplers>
  static void add_keys(Config& cfg) {
    cfg.add<std::string>("sampling.sampler", "heun", "sampler: " + names(Samplers{}));
    cfg.add<int64_t>("sampling.nfe", 20, "model evaluations per sample", check::at_least(1));
    cfg.add<int64_t>("sampling.n", 20000, "samples to draw", check::at_least(1));
    cfg.add<int64_t>("sampling.every", 0, "also sample every N training steps (0: only at the end)", check::at_least(0));
    cfg.add<std::string>("sampling.grid", "uniform", "time grid: uniform (in t), logsnr or exponential (uniform in "
                         "log-SNR, DPM-Solver), edm or karras (Karras et al.'s rho = 7 noise levels), quadratic (DDIM's "
                         "quad) or beta (Lee et al. 2024, a = b = 0.6)",
                         check::one_of({"uniform", "logsnr", "exponential", "edm", "karras", "quadratic", "beta"}));
    cfg.add<double>("sampling.shift", 1.0, "SD3's time shift of the grid, t -> s t / (1 + (s - 1) t) (3: SD3; "
                    "gm::resolution_shift gives sqrt(pixels / 256^2))", check::positive());
    cfg.add<double>("sampling.t_end", 1e-3, "the last time of the grid (0: the data itself, where the process allows it)",
                    check::in_range(0, 0.5));
    cfg.add<std::string>("sampling.grid_file", "", "sample on the time grid in this file instead of sampling.grid "
                         "(gm::OptimizedGrid, e.g. from bench_samplers --grid optimized)");
    cfg.add<std::string>("sampling.autoguide", "", "autoguidance (Karras et al. 2024): guide by a weaker model with "
                         "the same network, its EMA weights from a checkpoint folder, a run folder or a .safetensors "
                         "file (replaces classifier-free guidance; empty: off)");
    cfg.add<double>("sampling.autoguidance", 2.0, "autoguidance scale w: out_weak + w (out - out_weak)", check::finite());
    cfg.add<double>("sampling.eta", 1.0, "noise of k-diffusion's ancestral and SDE samplers (euler_ancestral, "
                    "dpm_2_ancestral, dpmpp_2s_ancestral, dpmpp_sde, dpmpp_2m_sde, dpmpp_3m_sde); 0: their ODE solver",
                    check::in_range(0, 1));
    cfg.add<double>("sampling.churn", 40.0, "edm_stochastic's S_churn (0: deterministic Heun)", check::at_least(0));
    cfg.add<std::string>("sampling.sde_diffusion", "sigma", "sit_sde's diffusion coefficient w(t)",
                         check::one_of({"sigma", "constant", "sbdm", "linear", "decreasing", "increasing-decreasing"}));
    cfg.add<double>("sampling.sde_norm", 1.0, "sit_sde's scale of w(t)", check::at_least(0));
    cfg.add<std::string>("sampling.sde_last_step", "mean", "sit_sde's last step",
                         check::one_of({"mean", "tweedie", "euler", "none"}));
    cfg.add<std::string>("sampling.precision", "auto",
                         "the network's products while sampling: auto (on CUDA as training.precision resolved; fp32 on "
                         "a CPU, so samples agree across CPUs), training, fp32, bf16 or fp16 (CUDA)",
                         check::one_of({"auto", "training", "fp32", "bf16", "fp16"}));
  }

  /// The sampler `sampling.sampler` names among `Samplers` and `sampling.grid_file`'s grid, both checked
  /// (the grid's nodes on the process are checked by `check(trainer)`).
  template <class Samplers>
  static Sampling make(const Config& cfg) {
    Sampling s(cfg);
    visit_by_name<Samplers>(s.sampler_, []<class>() {}, "sampling.sampler");
    s.load_grid_file<Samplers>();
    return s;
  }

  const std::string& sampler() const { return sampler_; }
  int64_t nfe() const { return nfe_; }

  /// Call `f.template operator()<Smp>()` with the sampler that `sampling.sampler` names.
  template <class Samplers, class F>
  void visit(F&& f) const {
    visit_by_name<Samplers>(sampler_, std::forward<F>(f), "sampling.sampler");
  }
  /// The steps `Smp` takes at `sampling.nfe` evaluations.
  template <class Smp>
  int64_t steps() const {
    return steps_for_nfe(Smp{}, nfe_);
  }
  /// A line for the log when `sampling.nfe` is not a whole number of the sampler's steps (Heun at NFE 3
  /// runs 1 step of 2 evaluations), else empty.
  std::string nfe_note() const;

  /// What `trainer.sample` draws for n samples: `sampling.nfe`, `sampling.grid` and `sampling.t_end`, or
  /// `sampling.grid_file`'s times.
  SampleOptions options(int64_t n) const {
    auto o = SampleOptions().n(n).nfe(nfe_).grid(grid_).t_end(t_end_).shift(shift_).precision(precision_);
    if (file_grid_) o.times(file_grid_->stored);
    return o;
  }
  /// Check the grid on the trainer's process before anything is written (a log-SNR grid needs t_end > 0
  /// on a process whose log-SNR is infinite at t = 0).
  template <class Samplers, class T>
  void check(const T& trainer) const {
    visit<Samplers>([&]<class Smp>() { (void)trainer.sample_times(options(1), Smp{}); });
  }

  /// n samples with `Smp` from `noise` on the configured grid.  Samples that are not all finite are a
  /// `gm::NonFiniteError` (exit code 3) naming the sampler, the first step whose state was not finite and its
  /// time: the same draw is repeated, checked step by step (the sampling generator's state is restored first),
  /// so a finite draw pays one check and nothing is written or scored from NaN.
  template <class Smp, class T>
  torch::Tensor draw(T& trainer, int64_t n, EMA& ema, const torch::Tensor& noise, const Conditioning& c) const {
    const auto o = options(n).ema(&ema).noise(noise).conditioning(c).path_energy(noise.dim() == 2);
    const auto state = trainer.sampling_generator().get_state();
    auto x = trainer.template sample<Smp>(o, sampler<Smp>());
    if (torch::isfinite(x).all().template item<bool>()) return x;
    trainer.sampling_generator().set_state(state);
    (void)trainer.template sample<Smp>(SampleOptions(o).check_steps(true), sampler<Smp>());
    const auto [step, t] = trainer.first_non_finite();
    const auto steps = static_cast<int64_t>(trainer.sample_times(o, sampler<Smp>()).size()) - 1;
    char where[160];
    if (step > 0) std::snprintf(where, sizeof where, "first at step %lld of %lld (t = %.6g)", static_cast<long long>(step),
                                static_cast<long long>(steps), t);
    else std::snprintf(where, sizeof where, "after its %lld steps", static_cast<long long>(steps));
    throw NonFiniteError("gm: sampler " + std::string(Smp::name) + " gave samples that are not finite, " + where +
                             "; nothing written (check the schedule near that time, sampling.grid and sampling.t_end)",
                         trainer.step(), std::nan(""), std::nan(""));
  }
  /// `Smp` with the options its keys set: `sampling.eta` for k-diffusion's ancestral and SDE samplers,
  /// `sampling.churn` for edm_stochastic, `sampling.sde_*` for sit_sde; others as they come.
  template <class Smp>
  Smp sampler() const {
    const double eta = cfg_.get<double>("sampling.eta");
    if constexpr (std::same_as<Smp, EDMStochasticSampler>) {
      return Smp(typename Smp::Options().churn(cfg_.get<double>("sampling.churn")));
    } else if constexpr (std::same_as<Smp, SiTSDESampler>) {
      return Smp(typename Smp::Options()
                     .diffusion(cfg_.get<std::string>("sampling.sde_diffusion"))
                     .norm(cfg_.get<double>("sampling.sde_norm"))
                     .last_step(cfg_.get<std::string>("sampling.sde_last_step")));
    } else if constexpr (std::same_as<Smp, DPMPPSDESampler> || std::same_as<Smp, DPMPP2MSDESampler> ||
                         std::same_as<Smp, DPMPP3MSDESampler>) {
      return Smp(typename Smp::Options().eta(eta));
    } else if constexpr (requires { Smp(AncestralOptions()); }) {
      return Smp(AncestralOptions().eta(eta));
    } else {
      return Smp{};
    }
  }

  /// The labels and guidance of `sampling.class` and `sampling.guidance` for a conditional network (n
  /// becomes a multiple of the class count for one row per class, and `cols` the row length), autoguidance's
  /// weak model, and the data's image condition; nothing for other networks and data.  A class number out of
  /// range is a one-line error.
  template <class T, class Data>
  Conditioning conditioning(T& trainer, const Data& data, int64_t& n, int64_t& cols) const {
    Conditioning c = label_conditioning(trainer, n, cols);
    if constexpr (requires { data.sampling_condition(int64_t{}); }) c.image = data.sampling_condition(n);
    return c;
  }
  /// As `conditioning`, without the image condition.
  template <class T>
  Conditioning label_conditioning(T& trainer, int64_t& n, int64_t& cols) const {
    Conditioning c = class_conditioning(trainer, n, cols);
    if (const auto path = cfg_.get<std::string>("sampling.autoguide"); !path.empty()) {
      c.guide = trainer.weights_guide(autoguide_weights(*trainer.net(), path));
      c.guidance = cfg_.get<double>("sampling.autoguidance");
    }
    return c;
  }

  /// What sets these samples apart in their name: the grid file, autoguidance or the guidance scale.
  std::string variant(const Conditioning& cond) const;

  /// The EMA weights that `sampling.autoguide` names, in the network's parameter order: a checkpoint
  /// folder's (state.safetensors), a run folder's export (weights.safetensors), or a .safetensors file of
  /// named weights.  Anything else, or weights of another network, is a one-line `gm::Error`.
  static std::vector<torch::Tensor> autoguide_weights(const torch::nn::Module& net, std::filesystem::path p);

 private:
  explicit Sampling(const Config& cfg);

  template <class T>
  Conditioning class_conditioning(T& trainer, int64_t& n, int64_t& cols) const {
    Conditioning c;
    if constexpr (ConditionalNetwork<typename T::net_type>) {
      const int64_t k = trainer.net()->null_class();
      if (k <= 0 || !cfg_.has("sampling.class")) return c;
      c.guidance = cfg_.get<double>("sampling.guidance");
      c.guidance_low = cfg_.get<double>("sampling.guidance_low");
      c.guidance_high = cfg_.get<double>("sampling.guidance_high");
      c.guidance_rescale = cfg_.get<double>("sampling.guidance_rescale");
      if (c.guidance_low > c.guidance_high) {
        throw Error("gm: sampling.guidance_low = " + number(c.guidance_low) + " is above sampling.guidance_high = " +
                    number(c.guidance_high));
      }
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

  /// `sampling.grid_file`'s grid, checked against the sampler at `sampling.nfe` (its steps) and
  /// `sampling.t_end`; the sampler's evaluations per step for `nfe_note`.
  template <class Samplers>
  void load_grid_file() {
    visit<Samplers>([&]<class Smp>() { evals_per_step_ = evals_per_step(Smp{}); });
    const auto file = cfg_.get<std::string>("sampling.grid_file");
    if (file.empty()) return;
    auto g = OptimizedGrid::load(file);
    visit<Samplers>([&]<class Smp>() { check_grid(g, file, steps<Smp>()); });
    file_grid_ = std::move(g);
  }

  /// A grid file's grid must have the `n` steps the sampler takes, ending at `sampling.t_end`, and
  /// `sampling.grid` must be left at uniform.
  void check_grid(const OptimizedGrid& g, const std::string& file, int64_t n) const;

  const Config& cfg_;
  std::string sampler_;
  int64_t nfe_;
  std::string grid_;   // sampling.grid
  double t_end_;       // sampling.t_end
  double shift_;       // sampling.shift
  std::string precision_;  // sampling.precision, "auto" resolved for the device
  int64_t evals_per_step_ = 1;
  std::optional<OptimizedGrid> file_grid_;  // sampling.grid_file
};

#if GM_HEADER_DEFINITIONS
GM_INLINE Sampling::Sampling(const Config& cfg)
    : cfg_(cfg), sampler_(sampler_alias(cfg.get<std::string>("sampling.sampler"))), nfe_(cfg.get<int64_t>("sampling.nfe")),
      grid_(cfg.get<std::string>("sampling.grid")), t_end_(cfg.get<double>("sampling.t_end")),
      shift_(cfg.get<double>("sampling.shift")), precision_(cfg.get<std::string>("sampling.precision")) {
  if (precision_ == "auto") precision_ = cfg.get<std::string>("device").rfind("cuda", 0) == 0 ? "training" : "fp32";
}

GM_INLINE void Sampling::check_grid(const OptimizedGrid& g, const std::string& file, int64_t n) const {
  if (grid_ != "uniform" || shift_ != 1) {
    throw Error("gm: sampling.grid = " + grid_ + ", sampling.shift = " + number(shift_) + " and sampling.grid_file = " +
                file + " are all set; the file gives the times itself (leave sampling.grid at uniform and the shift at 1)");
  }
  if (static_cast<int64_t>(g.stored.size()) != n + 1 || std::abs(g.stored.back() - t_end_) > 1e-12) {
    throw Error("gm: sampling.grid_file: " + file + " has " + std::to_string(g.stored.size() - 1) +
                " steps ending at t = " + number(g.stored.back()) + "; " + sampler_ + " at NFE " +
                std::to_string(nfe_) + " takes " + std::to_string(n) + " steps ending at t = " + number(t_end_) +
                " (sampling.t_end)");
  }
}

GM_INLINE auto Sampling::nfe_note() const -> std::string {
  if (evals_per_step_ <= 1 || nfe_ % evals_per_step_ == 0) return "";
  const int64_t steps = std::max<int64_t>(1, nfe_ / evals_per_step_);
  return "sampling.nfe = " + std::to_string(nfe_) + " is not a whole number of " + sampler_ + " steps (" +
         std::to_string(evals_per_step_) + " evaluations each): it runs " + std::to_string(steps) + " steps, " +
         std::to_string(steps * evals_per_step_) + " evaluations";
}

GM_INLINE auto Sampling::variant(const Conditioning& cond) const -> std::string {
  std::string out;
  if (file_grid_) out += "_grid-" + std::filesystem::path(cfg_.get<std::string>("sampling.grid_file")).stem().string();
  else if (grid_ != "uniform") out += "_" + grid_;
  if (t_end_ != 1e-3) out += "_tend" + number(t_end_);
  if (shift_ != 1) out += "_shift" + number(shift_);
  // Sampler options away from their defaults, for the samplers that read them.
  static const std::vector<std::string> with_eta{"euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde",
                                                 "dpmpp_2m_sde", "dpmpp_3m_sde"};
  if (std::find(with_eta.begin(), with_eta.end(), sampler_) != with_eta.end() && cfg_.get<double>("sampling.eta") != 1) {
    out += "_eta" + number(cfg_.get<double>("sampling.eta"));
  }
  if (sampler_ == "edm_stochastic" && cfg_.get<double>("sampling.churn") != 40) out += "_churn" + number(cfg_.get<double>("sampling.churn"));
  if (sampler_ == "sit_sde") {
    if (cfg_.get<std::string>("sampling.sde_diffusion") != "sigma") out += "_" + cfg_.get<std::string>("sampling.sde_diffusion");
    if (cfg_.get<double>("sampling.sde_norm") != 1) out += "_norm" + number(cfg_.get<double>("sampling.sde_norm"));
    if (cfg_.get<std::string>("sampling.sde_last_step") != "mean") out += "_last-" + cfg_.get<std::string>("sampling.sde_last_step");
  }
  if (cond.guide) out += "_autoguide" + number(cond.guidance);
  else if (cond.labels.defined() && cond.guidance != 1.0) out += "_w" + number(cond.guidance);
  if (cond.labels.defined() && cond.guidance != 1.0 && !cond.guide) {
    if (cond.guidance_low > 0 || cond.guidance_high < 1) out += "_in" + number(cond.guidance_low) + "-" + number(cond.guidance_high);
    if (cond.guidance_rescale > 0) out += "_rescale" + number(cond.guidance_rescale);
  }
  return out;
}

GM_INLINE auto Sampling::autoguide_weights(const torch::nn::Module& net, std::filesystem::path p)
    -> std::vector<torch::Tensor> {
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
#endif  // GM_HEADER_DEFINITIONS

}  // namespace experiment
}  // namespace gm
