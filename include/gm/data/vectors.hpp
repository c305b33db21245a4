#pragma once
/// @file
/// Vector data for an experiment, chosen by config keys: a 2-D toy, a feature file (.npy, CSV) or a
/// Gaussian mixture (TOML).

#include <gm/detail/compiled.hpp>
#include <gm/data/features.hpp>
#include <gm/data/gaussian_mixture.hpp>
#include <gm/data/toy2d.hpp>
#include <gm/error.hpp>
#include <gm/metric.hpp>
#include <gm/io/config.hpp>
#include <gm/io/file.hpp>
#include <gm/random.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace gm::data {

/// N-dimensional vector data drawn by name: `data.name` is a 2-D toy (checkerboard, moons, 8gaussians,
/// spirals), `file` (an N x D .npy or CSV file at `data.path`, rows drawn with replacement) or `mixture` (a
/// Gaussian-mixture TOML file at `data.path`, drawn exactly, whose log-density is then known).  Called as
/// `data(n, gen)`, it returns an [n, dim] float32 batch drawn from `gen`, so the data order is part of the
/// trainer's RNG state.
///
/// Example:
/// @code
/// gm::data::VectorData::add_keys(cfg, "checkerboard");
/// cfg.parse(argc, argv);
/// auto data = gm::data::VectorData::from_config(cfg);   // loads and checks files; one-line errors
/// auto x0 = data(1024, trainer.generator());
/// @endcode
class VectorData {
 public:
  /// Declare `data.name` and `data.path` with these defaults.
  static void add_keys(Config& cfg, const std::string& name = "checkerboard", const std::string& path = "");

  /// The data the keys name, with its file read and checked.
  static VectorData from_config(const Config& cfg);

  /// Declare `data.source` (gaussian, or any name `data.name` takes) and `data.source_path`: the distribution at
  /// t = 1, where the flow starts, for a data-to-data flow (torchcfm's moons -> 8gaussians).
  static void add_source_keys(Config& cfg);
  /// The source the keys name, read and checked to have `dim` columns; nothing for `gaussian`.
  static std::optional<VectorData> source_from_config(const Config& cfg, int64_t dim);

  torch::Tensor operator()(int64_t n, const at::Generator& gen) const;
  int64_t dim() const { return features_ ? features_->dim() : mixture_ ? mixture_->dim() : 2; }
  /// "checkerboard", "file x.npy", "mixture ring8.toml".
  const std::string& describe() const { return name_; }
  /// How good samples `x` are, where the data allows an exact answer: the fraction inside the support for
  /// the checkerboard (0.5 for noise, 1 for perfect), and for a mixture the mean log-density of the
  /// samples under it beside that of exact draws.  Nothing for other data.
  Metrics score(const torch::Tensor& x) const;

  /// The mixture, when the data is one (its exact log-density scores samples).
  const GaussianMixture* mixture() const { return mixture_ ? &*mixture_ : nullptr; }

 private:
  static VectorData load(std::string name, const std::string& path_key, const Config& cfg);
  std::string name_;
  std::optional<Features> features_;
  std::optional<GaussianMixture> mixture_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void VectorData::add_keys(Config& cfg, const std::string& name, const std::string& path) {
  cfg.add<std::string>("data.name", name, "2-D toy, or 'file' (.npy/.csv N x D) or 'mixture' (TOML)",
                       check::one_of({"checkerboard", "moons", "8gaussians", "spirals", "file", "mixture"}));
  cfg.add<std::string>("data.path", path, "data file for data.name = file or mixture");
}

GM_INLINE auto VectorData::from_config(const Config& cfg) -> VectorData {
  return load(cfg.get<std::string>("data.name"), "data.path", cfg);
}

GM_INLINE void VectorData::add_source_keys(Config& cfg) {
  cfg.add<std::string>("data.source", "gaussian",
                       "where flows start (t = 1): gaussian noise, or data as data.name takes it (a data-to-data flow)",
                       check::one_of({"gaussian", "checkerboard", "moons", "8gaussians", "spirals", "file", "mixture"}));
  cfg.add<std::string>("data.source_path", "", "data file for data.source = file or mixture");
}

GM_INLINE auto VectorData::source_from_config(const Config& cfg, int64_t dim) -> std::optional<VectorData> {
  const auto name = cfg.get<std::string>("data.source");
  if (name == "gaussian") return std::nullopt;
  auto d = load(name, "data.source_path", cfg);
  if (d.dim() != dim) {
    throw Error("gm: data.source (" + d.describe() + ") has " + std::to_string(d.dim()) + " columns, the data " +
                std::to_string(dim));
  }
  return d;
}

GM_INLINE auto VectorData::load(std::string name, const std::string& path_key, const Config& cfg) -> VectorData {
  VectorData d;
  d.name_ = std::move(name);
  const auto path = io::find_data_file(cfg.get<std::string>(path_key)).string();  // gm's mixtures from any folder
  if ((d.name_ == "file" || d.name_ == "mixture") && path.empty()) {
    throw Error("gm: " + path_key + " is required when " + (path_key == "data.path" ? "data.name" : "data.source") +
                " = " + d.name_);
  }
  std::string header;
  if (d.name_ == "file") d.features_ = Features::from_file(path, torch::kFloat32, &header);
  if (d.name_ == "mixture") d.mixture_ = GaussianMixture::from_toml(path, torch::kFloat32);
  if (d.name_ == "file" || d.name_ == "mixture") d.name_ += " " + path;
  if (!header.empty()) d.name_ += " (header row skipped: " + header + ")";
  return d;
}

GM_INLINE auto VectorData::operator()(int64_t n, const at::Generator& gen) const -> torch::Tensor {
  if (features_) return features_->batch(n, gen);
  if (mixture_) return mixture_->sample(n, gen);
  return toy2d(name_, n, gen);
}

GM_INLINE auto VectorData::score(const torch::Tensor& x) const -> Metrics {
  if (name_ == "checkerboard") {
    return {{"support_fraction", checkerboard_support(x).to(torch::kFloat64).mean().item<double>(), "noise: 0.5"}};
  }
  if (mixture_) {
    const double exact = mixture_->log_prob(mixture_->sample(x.size(0), make_generator(1))).mean().item<double>();
    char note[64];
    std::snprintf(note, sizeof note, "exact samples: %.4f", exact);
    return {{"log_likelihood", mixture_->log_prob(x.to(torch::kFloat32)).mean().item<double>(), note}};
  }
  return {};
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::data
