#pragma once
/// @file
/// Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models",
/// EDM2, section 3): power-function EMA profiles tracked during training, snapshots of them saved every N
/// steps, and after training the EMA of any other length reconstructed from the snapshots by least squares.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/safetensors.hpp>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <Eigen/Dense>
#endif

namespace gm {

/// The relative standard deviation of a power-function EMA profile of exponent gamma (EDM2 eq. 3): the
/// width of its averaging window as a fraction of the training time so far,
/// sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))).
double gamma_to_sigma_rel(double gamma);
#if GM_HEADER_DEFINITIONS
GM_INLINE double gamma_to_sigma_rel(double gamma) {
  return std::sqrt((gamma + 1) / ((gamma + 2) * (gamma + 2) * (gamma + 3)));
}
#endif

/// The exponent gamma >= 0 of the power-function profile with relative std `sigma_rel` (the largest root
/// of gamma^3 + 7 gamma^2 + (16 - sigma_rel^-2) gamma + (12 - sigma_rel^-2) = 0, EDM2's std_to_exp).
/// EDM2's 0.05 and 0.10 give 16.97 and 6.94.  sigma_rel must lie in (0, 0.2886] (gamma >= 0).
double sigma_rel_to_gamma(double sigma_rel);
#if GM_HEADER_DEFINITIONS
GM_INLINE double sigma_rel_to_gamma(double sigma_rel) {
  const double top = gamma_to_sigma_rel(0);
  if (!(sigma_rel > 0) || sigma_rel > top) {
    throw Error("gm: post-hoc EMA sigma_rel " + std::to_string(sigma_rel) + " is outside (0, " + std::to_string(top) + "]");
  }
  double lo = 0, hi = 1;  // gamma_to_sigma_rel decreases on [0, inf)
  while (gamma_to_sigma_rel(hi) > sigma_rel) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (gamma_to_sigma_rel(mid) > sigma_rel ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}
#endif

/// The inner product of two power-function EMA profiles, one of exponent `ga` ending at time `ta` and one
/// of `gb` ending at `tb`, as functions of the training time (EDM2's power_function_correlation): the
/// matrices of the least-squares fit that `posthoc_coefficients` solves.
double power_profile_dot(double ta, double ga, double tb, double gb);
#if GM_HEADER_DEFINITIONS
GM_INLINE double power_profile_dot(double ta, double ga, double tb, double gb) {
  const double ratio = ta / tb, exponent = ta < tb ? gb : -ga;
  return (ga + 1) * (gb + 1) * std::pow(ratio, exponent) / ((ga + gb + 1) * std::max(ta, tb));
}
#endif

/// One stored EMA: the profile `sigma_rel` as it stood after `step` optimiser steps.
struct PowerEMASnapshot {
  int64_t step = 0;
  double sigma_rel = 0;
  std::vector<std::pair<std::string, torch::Tensor>> weights{};  ///< named parameters
};

/// The weights w_i, one per stored (step_i, sigma_rel_i), such that sum_i w_i theta_i is the least-squares
/// closest to the EMA profile (`step`, `sigma_rel`), solved in float64 and normalised to sum to 1 (EDM2's
/// solve_posthoc_coefficients).  A stored profile asked for again gets weight 1 on itself.
std::vector<double> posthoc_coefficients(const std::vector<std::pair<int64_t, double>>& stored, int64_t step,
                                         double sigma_rel);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<double> posthoc_coefficients(const std::vector<std::pair<int64_t, double>>& stored, int64_t step,
                                                   double sigma_rel) {
  const auto n = static_cast<Eigen::Index>(stored.size());
  if (n == 0) throw Error("gm: post-hoc EMA: no snapshots to reconstruct from");
  if (step < 1) throw Error("gm: post-hoc EMA: step " + std::to_string(step) + " must be >= 1");
  std::vector<double> g(stored.size());
  for (size_t i = 0; i < stored.size(); ++i) g[i] = sigma_rel_to_gamma(stored[i].second);
  const double gr = sigma_rel_to_gamma(sigma_rel);
  Eigen::MatrixXd a(n, n);
  Eigen::VectorXd b(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const auto ti = static_cast<double>(stored[static_cast<size_t>(i)].first);
    for (Eigen::Index j = 0; j < n; ++j) {
      a(i, j) = power_profile_dot(ti, g[static_cast<size_t>(i)], static_cast<double>(stored[static_cast<size_t>(j)].first),
                                  g[static_cast<size_t>(j)]);
    }
    b(i) = power_profile_dot(ti, g[static_cast<size_t>(i)], static_cast<double>(step), gr);
  }
  const Eigen::VectorXd x = a.colPivHouseholderQr().solve(b);
  const double sum = x.sum();
  if (!std::isfinite(sum) || std::abs(sum) < 1e-12) throw Error("gm: post-hoc EMA: the snapshots cannot express this profile");
  std::vector<double> w(stored.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = x(static_cast<Eigen::Index>(i)) / sum;
  return w;
}
#endif

/// The EMA profile (`step`, `sigma_rel`) reconstructed from snapshots (all of the same network): the
/// weighted sum of `posthoc_coefficients`, accumulated in float64 and returned in the snapshots' dtype.
std::vector<std::pair<std::string, torch::Tensor>> posthoc_reconstruct(const std::vector<PowerEMASnapshot>& snaps,
                                                                       int64_t step, double sigma_rel);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<std::pair<std::string,
    torch::Tensor>> posthoc_reconstruct(const std::vector<PowerEMASnapshot>& snaps, int64_t step, double sigma_rel) {
  std::vector<std::pair<int64_t, double>> stored;
  for (const auto& s : snaps) stored.emplace_back(s.step, s.sigma_rel);
  const auto w = posthoc_coefficients(stored, step, sigma_rel);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, t] : snaps.front().weights) out.emplace_back(name, torch::zeros_like(t, torch::kFloat64));
  for (size_t i = 0; i < snaps.size(); ++i) {
    if (snaps[i].weights.size() != out.size()) throw Error("gm: post-hoc EMA: snapshots of different networks");
    for (size_t k = 0; k < out.size(); ++k) {
      if (snaps[i].weights[k].first != out[k].first || !snaps[i].weights[k].second.sizes().equals(out[k].second.sizes())) {
        throw Error("gm: post-hoc EMA: snapshots of different networks (" + out[k].first + ")");
      }
      out[k].second.add_(snaps[i].weights[k].second.to(torch::kFloat64), w[i]);
    }
  }
  for (size_t k = 0; k < out.size(); ++k) out[k].second = out[k].second.to(snaps.front().weights[k].second.scalar_type());
  return out;
}
#endif

/// Power-function EMAs of a module's parameters (EDM2's PowerFunctionEMA): after optimiser step t (1, 2,
/// ...), theta_k <- beta theta_k + (1 - beta) theta with beta = (1 - 1/t)^(gamma_k + 1), one profile per
/// sigma_rel (EDM2 keeps 0.05 and 0.10).  Unlike a constant-decay EMA its window is a fixed fraction of the
/// run so far, so no warm-up is needed and snapshots of two profiles suffice to rebuild any other.
///
/// As a trainer callback it updates after every step and, every `snapshot_every` steps (0: never), writes
/// each profile to `<dir>/step_<t>_sigma<sigma_rel>.safetensors` (step and sigma_rel in the metadata).  No
/// sigma_rel at all: off.  `Checkpointer::set_power_ema` keeps the profiles in checkpoints.
class PowerEMA {
 public:
  explicit PowerEMA(std::vector<double> sigma_rels = {0.05, 0.10}, int64_t snapshot_every = 0,
                    std::filesystem::path dir = {});

  /// Whether it tracks any profile (no sigma_rel: off, every call does nothing).
  bool active() const { return !sigma_rels_.empty(); }

  /// One update from the module's current weights after optimiser step `step` (1-based).
  void update(torch::nn::Module& m, int64_t step);

  template <class T, class Stats>
  void on_step_end(T& trainer, const Stats& s) {
    update(*trainer.net(), s.step);
    if (active() && every_ > 0 && s.step % every_ == 0) save_snapshots();
  }

  /// Trainer hook: a last snapshot at the final step, when it is not on the cadence.
  template <class T>
  void on_train_end(T&) {
    if (active() && every_ > 0 && step_ > 0 && step_ % every_ != 0) save_snapshots();
  }

  /// Continue from a checkpoint: profile k's parameter i is `flat[k * P + i]` for the module's P
  /// parameters, as they stood after `step` steps.
  void restore(torch::nn::Module& m, const std::vector<torch::Tensor>& flat, int64_t step);

  /// Write every profile as it stands now.
  void save_snapshots() const;
  static std::string snapshot_name(int64_t step, double sigma_rel);

  const std::vector<double>& sigma_rels() const { return sigma_rels_; }
  const std::vector<double>& gammas() const { return gammas_; }
  /// Profile k's current weights (empty before the first update).
  const std::vector<std::pair<std::string, torch::Tensor>>& profile(size_t k) const { return profiles_.at(k); }
  int64_t step() const { return step_; }

 private:
  std::vector<double> sigma_rels_, gammas_;
  int64_t every_;
  std::filesystem::path dir_;
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> profiles_;
  int64_t step_ = 0;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE PowerEMA::PowerEMA(std::vector<double> sigma_rels, int64_t snapshot_every, std::filesystem::path dir)
    : sigma_rels_(std::move(sigma_rels)), every_(snapshot_every), dir_(std::move(dir)) {
  for (double s : sigma_rels_) gammas_.push_back(sigma_rel_to_gamma(s));
  if (every_ > 0 && dir_.empty()) throw Error("gm: post-hoc EMA snapshots need a folder");
}

GM_INLINE void PowerEMA::update(torch::nn::Module& m, int64_t step) {
  if (!active()) return;
  torch::NoGradGuard ng;
  const auto params = m.named_parameters();
  if (profiles_.empty()) {
    for (size_t k = 0; k < gammas_.size(); ++k) {
      std::vector<std::pair<std::string, torch::Tensor>> p;
      for (const auto& q : params) p.emplace_back(q.key(), q.value().detach().clone());
      profiles_.push_back(std::move(p));
    }
  }
  const double t = static_cast<double>(step);
  std::vector<torch::Tensor> current;
  for (const auto& q : params) current.push_back(q.value().detach());
  for (size_t k = 0; k < gammas_.size(); ++k) {
    const double beta = std::pow(1 - 1 / t, gammas_[k] + 1);
    std::vector<torch::Tensor> profile;
    for (auto& [name, w] : profiles_[k]) profile.push_back(w);
    torch::_foreach_lerp_(profile, current, 1 - beta);  // one multi-tensor kernel per profile on CUDA
  }
  step_ = step;
}

GM_INLINE void PowerEMA::restore(torch::nn::Module& m, const std::vector<torch::Tensor>& flat, int64_t step) {
  const auto params = m.named_parameters();
  if (flat.size() != sigma_rels_.size() * params.size()) throw Error("gm: post-hoc EMA: restored profiles do not fit");
  profiles_.assign(sigma_rels_.size(), {});
  for (size_t k = 0; k < sigma_rels_.size(); ++k) {
    for (size_t i = 0; i < params.size(); ++i) profiles_[k].emplace_back(params[i].key(),
         flat[k * params.size() + i].clone());
  }
  step_ = step;
}

GM_INLINE void PowerEMA::save_snapshots() const {
  std::filesystem::create_directories(dir_);
  for (size_t k = 0; k < profiles_.size(); ++k) {
    io::write_safetensors(dir_ / snapshot_name(step_, sigma_rels_[k]), profiles_[k],
                          {{"format", "pt"}, {"step", std::to_string(step_)}, {"sigma_rel",
                              std::to_string(sigma_rels_[k])}});
  }
}

GM_INLINE auto PowerEMA::snapshot_name(int64_t step, double sigma_rel) -> std::string {
  char buf[64];
  std::snprintf(buf, sizeof buf, "step_%lld_sigma%.4f.safetensors", static_cast<long long>(step), sigma_rel);
  return buf;
}
#endif  // GM_HEADER_DEFINITIONS

/// Every snapshot `PowerEMA` wrote into `dir`, in step order; a file that is not one is a one-line error.
std::vector<PowerEMASnapshot> load_power_ema_snapshots(const std::filesystem::path& dir);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<PowerEMASnapshot> load_power_ema_snapshots(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) throw Error("gm: " + dir.string() + ": no post-hoc EMA snapshot folder");
  std::vector<PowerEMASnapshot> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    std::map<std::string, std::string> meta;
    auto named = io::read_safetensors(e.path(), &meta);
    if (!meta.count("step") || !meta.count("sigma_rel")) {
      throw Error("gm: " + e.path().string() + ": not a post-hoc EMA snapshot (no step or sigma_rel in its metadata)");
    }
    PowerEMASnapshot s;
    try {
      s.step = std::stoll(meta["step"]);
      s.sigma_rel = std::stod(meta["sigma_rel"]);
    } catch (const std::exception&) {
      throw Error("gm: " + e.path().string() + ": malformed step or sigma_rel in its metadata");
    }
    s.weights = std::move(named);
    out.push_back(std::move(s));
  }
  if (out.empty()) throw Error("gm: " + dir.string() + ": no post-hoc EMA snapshots");
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.step != b.step ? a.step < b.step : a.sigma_rel < b.sigma_rel;
  });
  return out;
}
#endif

}  // namespace gm
