#pragma once
/// @file
/// `--mode=eval`: the `eval.*` keys and the evaluation of a checkpoint: samples drawn each from its own
/// seed, the Fréchet distance and class agreement, bits per dimension through the probability-flow ODE,
/// the ELBO of a VDM, and the sweep over post-hoc EMA profiles.

#include <gm/detail/compiled.hpp>
#include <gm/data/encoders.hpp>
#include <gm/error.hpp>
#include <gm/eval/feature_net.hpp>
#include <gm/eval/frechet.hpp>
#include <gm/eval/kid.hpp>
#include <gm/eval/likelihood.hpp>
#include <gm/experiment/check.hpp>
#include <gm/experiment/outputs.hpp>
#include <gm/experiment/sample.hpp>
#include <gm/io/config.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/random.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/run_dir.hpp>

#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gm::experiment {

/// The evaluation of a loaded checkpoint, from the `eval.*` keys and the sampling part.
class Evaluation {
 public:
  /// Declare `eval.*`.
  static void add_keys(Config& cfg);

  /// `features`: `eval.features`' network, loaded (and so checked) before anything was written.
  Evaluation(const Config& cfg, const Sampling& sampling, torch::Device device, std::optional<FeatureNet> features)
      : cfg_(cfg), sampling_(sampling), device_(device), features_(std::move(features)),
        seed_(static_cast<uint64_t>(cfg.get<int64_t>("seed"))) {}

  /// Evaluate the loaded checkpoint with its EMA weights, or, with `eval.phema`, with each post-hoc EMA
  /// profile rebuilt from the snapshots in `phema_dir` up to the checkpoint's step.  `shape`: one sample's.
  template <class Samplers, class T, class Data>
  void run(RunDir& run, io::EventWriter& events, T& trainer, EMA& ema, const Data& data, const MetricsFn& eval,
           std::vector<int64_t> shape, const std::vector<double>& phema_sigmas, const std::filesystem::path& phema_dir) {
    if (phema_sigmas.empty()) return evaluate<Samplers>(run, events, trainer, ema, data, eval, shape);
    auto snaps = load_power_ema_snapshots(phema_dir);
    std::erase_if(snaps, [&](const PowerEMASnapshot& s) { return s.step > trainer.step(); });
    if (snaps.empty()) throw Error("gm: " + phema_dir.string() + " has no snapshot up to step " + std::to_string(trainer.step()));
    for (double sigma : phema_sigmas) {
      auto [rebuilt, at] = posthoc_ema(snaps, *trainer.net(), sigma);
      run.log("post-hoc EMA sigma_rel " + number(sigma) + " at step " + std::to_string(at) + " from the snapshots in " +
              phema_dir.string());
      evaluate<Samplers>(run, events, trainer, rebuilt, data, eval, shape, {sigma, at});
    }
  }

  /// `--mode=eval` of one set of weights: draw `eval.n` samples with `sampling.sampler`, `sampling.nfe`,
  /// `sampling.guidance` and `sampling.class` (rows: sample i has class i mod K), sample i from (seed, i)
  /// alone, so the set does not depend on `eval.batch`; write them into eval/<sampler>_nfe<N>[_w<w>]_step<S>/
  /// (`write_eval_samples`); then score them and append the record to eval.json, the log and TensorBoard
  /// (eval/<metric> at the checkpoint's step):
  /// - images with `eval.features`: the Fréchet distance to the `eval.reference` split's feature statistics
  ///   (cached in `eval.cache`) and, for conditional samples of a network with logits, the class agreement;
  ///   each beside the same number for as many real images of the other split;
  /// - vectors: the Fréchet distance in data coordinates to as many fresh data draws, beside that of a second
  ///   set of data draws;
  /// - the likelihood of `eval.likelihood_n` held-out points through the probability-flow ODE (`likelihood`);
  /// - for a trainer with an ELBO weighting (VDM), the ELBO in bits per dimension (`elbo`);
  /// - `eval`'s metrics.
  template <class Samplers, class T, class Data>
  void evaluate(RunDir& run, io::EventWriter& events, T& trainer, EMA& ema, const Data& data, const MetricsFn& eval,
                std::vector<int64_t> shape, std::pair<double, int64_t> phema = {0, 0}) {
    constexpr bool images = ImageSource<Data>;
    const int64_t n = cfg_.get<int64_t>("eval.n"), per_batch = cfg_.get<int64_t>("eval.batch");
    int64_t unused_n = n, cols = 0;
    Conditioning cond = sampling_.label_conditioning(trainer, unused_n, cols);
    if constexpr (requires { data.sampling_condition(int64_t{}); }) cond.image = data.sampling_condition(n);
    if constexpr (ConditionalNetwork<typename T::net_type>) {
      if (cond.labels.defined()) {
        const int64_t k = trainer.net()->null_class();
        cond.labels = cfg_.get<std::string>("sampling.class") == "rows"
                          ? torch::arange(n, torch::kInt64).remainder(k)
                          : torch::full({n}, cond.labels[0].item<int64_t>(), torch::kInt64);
      }
    }
    std::string what = sampling_.sampler() + "_nfe" + std::to_string(sampling_.nfe()) + sampling_.variant(cond);
    if (phema.first > 0) what += "_phema" + number(phema.first);
    what += "_step" + std::to_string(trainer.step());
    const auto dir = run.unused("eval/" + what, "");
    std::filesystem::create_directories(dir);
    run.log("evaluating step " + std::to_string(trainer.step()) + ": " + std::to_string(n) + " samples with " +
            sampling_.sampler() + ", NFE " + std::to_string(sampling_.nfe()) +
            (cond.labels.defined() ? ", guidance " + number(cond.guidance) : "") + " into " + dir.string());

    // Samples, batch by batch, each from its own seed.
    std::vector<torch::Tensor> parts;
    double seconds = 0;
    sampling_.visit<Samplers>([&]<class Smp>() {
      for (int64_t i = 0; i < n; i += per_batch) {
        const int64_t m = std::min(per_batch, n - i);
        Conditioning c = cond;
        c.seeds = sample_seeds(seed_, i, m);
        if (c.labels.defined()) c.labels = cond.labels.slice(0, i, i + m);
        if (c.image.defined()) c.image = cond.image.slice(0, i, i + m);
        shape[0] = m;
        auto x = sampling_.draw<Smp>(trainer, m, ema, trainer.initial_noise(shape, c.seeds), c);
        seconds += trainer.last_sample_seconds();
        if constexpr (images) parts.push_back(data.decode(x));
        else parts.push_back(x.to(torch::kCPU, torch::kFloat32));
      }
    });
    const auto samples = torch::cat(parts);
    Record record{{"n", static_cast<double>(n)}, {"sample_seconds", seconds}};
    if (phema.first > 0) {
      record.emplace_back("phema_sigma_rel", phema.first);
      record.emplace_back("phema_step", static_cast<double>(phema.second));
    }
    const torch::Tensor labels = cond.labels.defined() ? cond.labels : torch::Tensor();
    write_eval_samples(dir, samples, labels, images, cfg_.get<bool>("eval.png"));
    if constexpr (images) {
      if (features_) score_images<Data>(*features_, samples, labels, record);
      else run.log("FD skipped: no eval.features; train examples/classifier and pass --eval.features=runs/classifier/"
                   "classifier.safetensors (or a TorchScript feature network) for FD and class agreement");
    } else {
      auto fresh = [&](uint64_t stream) { return data(n, make_generator(mix_seed(seed_, stream))).to(torch::kCPU, torch::kFloat32); };
      const auto first = fresh(0xF1D0), second = fresh(0xF1D1);
      const auto ref = FeatureStats::of(first);
      record.emplace_back("fd", frechet_distance(FeatureStats::of(samples), ref));
      record.emplace_back("fd_data", frechet_distance(FeatureStats::of(second), ref));
      const int64_t m = std::min<int64_t>(n, 10000);
      const auto real = first.slice(0, 0, m);
      add_kid_pr(record, real, samples.slice(0, 0, m), "");
      add_kid_pr(record, real, second.slice(0, 0, m), "_data");
    }
    if (const int64_t ln = cfg_.get<int64_t>("eval.likelihood_n"); ln > 0) likelihood(trainer, ema, data, ln, record);
    if constexpr (images && requires(torch::Tensor x, at::Generator g) { trainer.elbo(x, g); }) {
      if (const int64_t en = cfg_.get<int64_t>("eval.elbo_n"); en > 0) elbo(trainer, ema, data, en, record);
    }
    if (eval) {
      for (const auto& m : eval(samples)) record.emplace_back(m.name, m.value);
    }
    const std::string head =
        "\"step\": " + std::to_string(trainer.step()) + ", \"sampler\": \"" + sampling_.sampler() + "\", \"nfe\": " +
        std::to_string(sampling_.nfe()) + ", \"guidance\": " + number(cond.guidance) + ", \"class\": \"" +
        (cfg_.has("sampling.class") ? cfg_.get<std::string>("sampling.class") : std::string("none")) + "\", \"seed\": " +
        std::to_string(seed_) + ", \"folder\": \"" + dir.filename().string() + "\"" +
        (cond.guide ? ", \"autoguide\": " + io::detail::st::json_string(cfg_.get<std::string>("sampling.autoguide")) : "");
    // TensorBoard: eval/<sampler>_nfe<N>[variant]/<metric>, one curve per way of sampling.
    append_eval_record(run, events, trainer.step(), head, record, "eval/" + what.substr(0, what.rfind("_step")));
  }

 private:
  /// Fréchet distance and class agreement of uint8 `samples` under `eval.features`, each beside the same
  /// number for as many real images of the split that is not the reference.
  template <class Data>
  void score_images(const FeatureNet& net, const torch::Tensor& samples, const torch::Tensor& labels, Record& record) {
    const auto ref_split = cfg_.get<std::string>("eval.reference");
    const auto other_split = ref_split == "train" ? "test" : "train";
    const auto ref = Data::read(cfg_, ref_split), other = Data::read(cfg_, other_split);
    const std::string name = cfg_.has("data.name") ? cfg_.get<std::string>("data.name") : "data";
    const auto cache = std::filesystem::path(cfg_.get<std::string>("eval.cache")) /
                       (name + "_" + ref_split + "_" + net.id() + "_n" + std::to_string(ref.size()) + "_" +
                        content_hash(ref.images) + ".safetensors");
    const auto stats = reference_stats(net, ref.images, cache);
    const int64_t n = std::min<int64_t>(samples.size(0), other.size());
    // Each image set goes through the feature network once: FD, KID and precision/recall share its features.
    const auto fake = net.features(samples), other_features = net.features(other.images.slice(0, 0, n));
    record.emplace_back("fd", frechet_distance(FeatureStats::of(fake), stats));
    record.emplace_back(std::string("fd_real_") + other_split, frechet_distance(FeatureStats::of(other_features), stats));
    // KID and precision/recall against as many reference images (at most 10000), beside the other split's.
    const int64_t m = std::min<int64_t>({samples.size(0), ref.size(), 10000});
    const auto real = net.features(ref.images.slice(0, 0, m));
    add_kid_pr(record, real, fake.slice(0, 0, m), "");
    add_kid_pr(record, real, other_features.slice(0, 0, std::min(m, n)), std::string("_real_") + other_split);
    if (labels.defined() && net.has_logits()) {
      record.emplace_back("class_agreement", class_agreement(net, samples, labels));
      record.emplace_back(std::string("class_agreement_real_") + other_split,
                          class_agreement(net, other.images.slice(0, 0, n), other.labels.slice(0, 0, n)));
    }
  }

  /// KID (mean and its spread over subsets) and precision/recall of `fake` against `real` features, as
  /// kid<suffix>, kid_std<suffix>, precision<suffix>, recall<suffix>; skipped below 4 vectors.
  void add_kid_pr(Record& record, const torch::Tensor& real, const torch::Tensor& fake, const std::string& suffix) const;

  /// Bits per dimension of `n` dequantised test images (pixel models; Hutchinson's divergence), or the NLL
  /// in nats of `n` fresh data draws (vectors; the exact divergence), through the probability-flow ODE of the
  /// EMA weights (Heun, `eval.likelihood_steps`, `eval.likelihood_spacing`): the mean and its standard error.
  template <class T, class Data>
  void likelihood(T& trainer, EMA& ema, const Data& data, int64_t n, Record& record) {
    if constexpr (requires { trainer.has_source(); }) {
      if (trainer.has_source()) return;  // a data source's density at t = 1 is unknown: no change of variables
    }
    const int64_t steps = cfg_.get<int64_t>("eval.likelihood_steps"), per_batch = cfg_.get<int64_t>("eval.batch");
    auto gen = make_generator(mix_seed(seed_, 0xB1D));
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
      const auto ll = log_likelihood(field, xb, o, HeunSampler{}, steps, make_generator(mix_seed(seed_, 0xB1E + i), device_));
      const int64_t dims = xb.numel() / xb.size(0);
      values.push_back((bpd ? bits_per_dim(ll.log_p, dims) : -ll.log_p).to(torch::kCPU, torch::kFloat64));
    }
    summarise(bpd ? "bpd" : "nll", bpd ? "bpd" : "nll", torch::cat(values), start, record);
  }

  /// The ELBO in bits per dimension of the first `n` test images (8-bit, not dequantised), for a trainer
  /// with an ELBO weighting (VDM): one time and noise draw per image from the EMA weights, the mean and its
  /// standard error, and a learned schedule's gamma(0) and gamma(1).
  template <class T, class Data>
  void elbo(T& trainer, EMA& ema, const Data& data, int64_t n, Record& record) {
    if constexpr (requires { data.pixels(); }) {
      if (!data.pixels()) return;  // latents: bits per dimension of pixels do not apply
    }
    const int64_t per_batch = cfg_.get<int64_t>("eval.batch");
    const auto test = Data::read(cfg_, "test");
    const int64_t m = std::min<int64_t>(n, test.size());
    auto gen = make_generator(mix_seed(seed_, 0xE1B0), device_);
    EMA::Swap swap(ema, *trainer.net());
    trainer.net()->eval();
    std::vector<torch::Tensor> values;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < m; i += per_batch) {
      auto x = data::PixelEncoder{false}.encode(test.images.slice(0, i, std::min(i + per_batch, m))).to(device_);
      values.push_back(trainer.elbo(x, gen).to(torch::kCPU, torch::kFloat64));
    }
    summarise("elbo_bpd", "elbo", torch::cat(values), start, record);
    if constexpr (requires { trainer.process().schedule().net->gamma_0(); }) {
      torch::NoGradGuard ng;
      record.emplace_back("gamma_0", trainer.process().schedule().net->gamma_0().template item<double>());
      record.emplace_back("gamma_1", trainer.process().schedule().net->gamma_1().template item<double>());
    }
  }

  /// The mean of per-item values `v` as `key` and its standard error as `key`_stderr, their count as
  /// `stem`_n and the seconds since `start` as `stem`_seconds.
  static void summarise(const std::string& key, const std::string& stem, const torch::Tensor& v,
                        std::chrono::steady_clock::time_point start, Record& record);

  /// The post-hoc EMA of relative std `sigma` rebuilt from `snaps` as an `EMA` holding those weights for
  /// `net`, and the step it stands at (the last snapshot's).  Snapshots of another network are a one-line error.
  static std::pair<EMA, int64_t> posthoc_ema(const std::vector<PowerEMASnapshot>& snaps, const torch::nn::Module& net,
                                             double sigma);

  const Config& cfg_;
  const Sampling& sampling_;
  torch::Device device_;
  std::optional<FeatureNet> features_;
  uint64_t seed_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void Evaluation::add_kid_pr(Record& record, const torch::Tensor& real, const torch::Tensor& fake,
                                      const std::string& suffix) const {
  if (std::min(real.size(0), fake.size(0)) < 4) return;
  const auto [kid, kid_std] = kernel_inception_distance(real, fake, 100, 1000, mix_seed(seed_, 0x41D));
  record.emplace_back("kid" + suffix, kid);
  record.emplace_back("kid_std" + suffix, kid_std);
  const auto pr = precision_recall(real, fake, 3);
  record.emplace_back("precision" + suffix, pr.precision);
  record.emplace_back("recall" + suffix, pr.recall);
}

GM_INLINE void Evaluation::add_keys(Config& cfg) {
  cfg.add<std::string>("eval.checkpoint", "", "--mode=eval: a checkpoint folder (empty: the newest)");
  cfg.add<bool>("eval.density_map", true, "2-D data: draw the trained model's log-density (log_density.png and .npy, "
                "by the probability-flow ODE; 20-40 s on 2 CPU cores) at the end of training");
  cfg.add<int64_t>("eval.n", 2000, "--mode=eval: samples drawn (sample i from (seed, i) alone)", check::at_least(2));
  cfg.add<int64_t>("eval.batch", 250, "--mode=eval: samples per batch (does not change the samples)",
                   check::at_least(1));
  cfg.add<std::string>("eval.features", "", "feature network for the Fréchet distance and class agreement: a gm "
                       "classifier .safetensors (build/examples/classifier) or a TorchScript file (empty: none)");
  cfg.add<std::string>("eval.reference", "train", "split whose feature statistics are the reference",
                       check::one_of({"train", "test"}));
  cfg.add<std::string>("eval.cache", "runs/reference", "folder of cached reference statistics");
  cfg.add<int64_t>("eval.likelihood_n", 256, "test points for bits/dim (images) or NLL (vectors); 0: skip",
                   check::at_least(0));
  cfg.add<int64_t>("eval.likelihood_steps", 50, "Heun steps of the probability-flow ODE for the likelihood",
                   check::at_least(1));
  cfg.add<std::string>("eval.likelihood_spacing", "auto", "the likelihood ODE's steps in t: log (dense near the "
                       "data), uniform, or auto (log for images, uniform for vectors)",
                       check::one_of({"auto", "log", "uniform"}));
  cfg.add<int64_t>("eval.elbo_n", 10000, "test images for the ELBO in bits/dim of a model trained on an ELBO "
                   "(VDM; one draw per image); 0: skip", check::at_least(0));
  cfg.add<int64_t>("eval.likelihood_probes", 1, "Hutchinson probes per image (vectors use the exact divergence)",
                   check::at_least(1));
  cfg.add<bool>("eval.png", true, "--mode=eval: also write every sample as a PNG (images)");
  cfg.add<std::string>("eval.phema", "", "--mode=eval: evaluate the post-hoc EMA reconstructed at each of these "
                       "sigma_rel values, e.g. 0.03,0.05,0.1,0.2 (from training.phema's snapshots; empty: the "
                       "ordinary EMA)");
}

GM_INLINE void Evaluation::summarise(const std::string& key, const std::string& stem, const torch::Tensor& v,
                                     std::chrono::steady_clock::time_point start, Record& record) {
  record.emplace_back(key, v.mean().item<double>());
  record.emplace_back(key + "_stderr",
                      v.numel() > 1 ? v.std().item<double>() / std::sqrt(static_cast<double>(v.numel())) : 0.0);
  record.emplace_back(stem + "_n", static_cast<double>(v.numel()));
  record.emplace_back(stem + "_seconds",
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

GM_INLINE auto Evaluation::posthoc_ema(const std::vector<PowerEMASnapshot>& snaps, const torch::nn::Module& net,
                                       double sigma) -> std::pair<EMA, int64_t> {
  const int64_t at = snaps.back().step;
  const auto rebuilt = posthoc_reconstruct(snaps, at, sigma);
  const auto params = net.named_parameters();
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
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::experiment
