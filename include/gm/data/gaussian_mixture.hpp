#pragma once
/// @file
/// The closed-form Gaussian-mixture oracle.

#include <gm/detail/compiled.hpp>
#include <gm/detail/broadcast.hpp>
#include <gm/error.hpp>
#include <gm/io/toml.hpp>
#include <gm/random.hpp>
#include <gm/prediction/concepts.hpp>
#include <gm/prediction/tags.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>
#include <string>
#include <vector>

namespace gm {

/// A mixture of isotropic Gaussians, sum_k w_k N(mu_k, s_k^2 I), with every diffusion quantity in closed form.
///
/// Under x_t = alpha x0 + sigma eps the marginal is again a mixture, p_t = sum_k w_k N(alpha mu_k,
/// (alpha^2 s_k^2 + sigma^2) I), so the posterior mean E[x0 | x_t] (the ideal denoiser), the noise and
/// velocity it implies, the score and log p_t(x) are all exact, for any process and any dimension.  That
/// makes the mixture a stand-in for a perfectly trained network: samplers and likelihood code can be
/// tested against it with no training.  Times t are 0-d or [B]; points x are [B, D].  Computation runs in
/// the dtype and on the device of x.
///
/// Example:
/// @code
/// auto gmm = gm::GaussianMixture::from_toml("configs/mixtures/ring8.toml");
/// gm::Interpolant<gm::Linear> flow;
/// auto v = gmm.velocity(x, t, flow);          // the exact flow-matching velocity field
/// auto lp = gmm.log_prob(x, t, flow);         // exact log p_t(x)
/// auto x0 = gmm.sample(1000, gm::make_generator(1));
/// @endcode
class GaussianMixture {
 public:
  /// weights [K] (normalised here), means [K, D], stds [K]; all must be finite, weights >= 0 with a
  /// positive sum, stds > 0.
  GaussianMixture(torch::Tensor weights, torch::Tensor means, torch::Tensor stds);

  /// Read `weights = [...]`, `means = [[...], ...]`, `stds = [...]` from a TOML file.  Any problem (a
  /// missing file, bad syntax, a missing, unknown or mistyped key, mismatched lengths, a negative weight or
  /// std) is a one-line `gm::Error` naming the file, the key and the position.
  static GaussianMixture from_toml(const std::filesystem::path& file,
                                   const torch::TensorOptions& options = torch::kFloat64);
  /// The same from TOML text; `file` names it in errors.
  static GaussianMixture from_toml_text(std::string_view text, const std::filesystem::path& file,
                                        const torch::TensorOptions& options = torch::kFloat64);

 private:
  static GaussianMixture from_table(const toml::table& tbl, const std::filesystem::path& file,
                                    const torch::TensorOptions& options);


 public:
  /// The same mixture with its parameters in another dtype or on another device.
  GaussianMixture to(const torch::TensorOptions& options) const;

  int64_t components() const { return means_.size(0); }
  int64_t dim() const { return means_.size(1); }
  const torch::Tensor& weights() const { return weights_; }
  const torch::Tensor& means() const { return means_; }
  const torch::Tensor& stds() const { return stds_; }

  /// n samples of x0, [n, D], in the mixture's dtype, drawn from `gen` on the generator's device (on the
  /// mixture's own device for an undefined generator).
  torch::Tensor sample(int64_t n, const at::Generator& gen = {}) const;

  /// A mixture of `k` isotropic Gaussians fitted to points x [N, D] by expectation-maximisation (Dempster,
  /// Laird & Rubin 1977), `iters` rounds from k distinct random points as means, the overall spread as
  /// stds and equal weights; stds are floored at 1e-3 of that spread.  Used to give the oracle data's
  /// shape (e.g. to optimise a time grid for a trained network's data).  Float64.
  static GaussianMixture fit(const torch::Tensor& points, int64_t k, int64_t iters = 200,
                             const at::Generator& gen = {});

  /// The mixture as TOML that `from_toml` reads back (weights, means, stds; 17 significant digits).
  std::string to_toml() const;

  /// log p_0(x): the data density, [B].
  torch::Tensor log_prob(const torch::Tensor& x) const;

  /// log p_t(x), [B], the exact marginal of the process at time t.
  template <Process I>
  torch::Tensor log_prob(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return log_prob_at(x, ip.alpha(t), ip.sigma(t));
  }

  /// E[x0 | x_t = x] and E[eps | x_t = x], exactly.
  template <Process I>
  Estimate estimate(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    auto post = posterior(x, ip.alpha(t), ip.sigma(t));
    auto s = detail::bcast(ip.sigma(t), x);
    return {post.data, -s * post.score};
  }

  /// The ideal denoiser E[x0 | x_t = x].
  template <Process I>
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return estimate(x, t, ip).data;
  }
  /// E[eps | x_t = x].
  template <Process I>
  torch::Tensor noise(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return estimate(x, t, ip).noise;
  }
  /// grad_x log p_t(x).
  template <Process I>
  torch::Tensor score(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return posterior(x, ip.alpha(t), ip.sigma(t)).score;
  }
  /// The marginal velocity alpha' E[x0 | x] + sigma' E[eps | x].
  template <Process I>
  torch::Tensor velocity(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return predict<Velocity>(x, t, ip);
  }

  /// What a perfectly trained network predicting in P would output: the oracle as a model.
  template <class P, Process I>
  torch::Tensor predict(const torch::Tensor& x, const torch::Tensor& t, const I& ip, const P& p = P{}) const {
    static_assert(Parameterization<P>, "gm: GaussianMixture::predict<P> needs P to be a gm::Parameterization.");
    // The score exactly, not the noise over sigma: at t = 0, where sigma = 0, that is 0 / 0 and the limit is
    // the mixture's own score.
    if constexpr (std::same_as<P, Score>) return score(x, t, ip);
    else return p.from_estimate(estimate(x, t, ip), x, t, ip);
  }

 private:
  struct Posterior {
    torch::Tensor data;
    torch::Tensor score;
  };

  /// Per-sample alpha, sigma as [B, 1] (or 0-d) for broadcasting over the K components.
  static torch::Tensor per_row(const torch::Tensor& a, const torch::Tensor& x);

  /// Component log-likelihoods [B, K], the offsets x - alpha mu_k [B, K, D] and variances [B, K].
  struct Terms {
    torch::Tensor logits, diff, var;
  };
  Terms terms(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& sigma) const;

  torch::Tensor log_prob_at(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& sigma) const;

  Posterior posterior(const torch::Tensor& x, const torch::Tensor& alpha, const torch::Tensor& sigma) const;

  torch::Tensor weights_, means_, stds_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE GaussianMixture::GaussianMixture(torch::Tensor weights, torch::Tensor means, torch::Tensor stds)
    : weights_(std::move(weights)), means_(std::move(means)), stds_(std::move(stds)) {
  TORCH_CHECK(means_.dim() == 2, "gm: GaussianMixture means must be [K, D]");
  TORCH_CHECK(weights_.dim() == 1 && weights_.size(0) == means_.size(0), "gm: GaussianMixture weights must be [K]");
  TORCH_CHECK(stds_.dim() == 1 && stds_.size(0) == means_.size(0), "gm: GaussianMixture stds must be [K]");
  TORCH_CHECK((weights_ >= 0).all().item<bool>() && weights_.sum().item<double>() > 0,
              "gm: GaussianMixture weights must be >= 0 with a positive sum");
  TORCH_CHECK((stds_ > 0).all().item<bool>(), "gm: GaussianMixture stds must be > 0");
  weights_ = weights_ / weights_.sum();
}

GM_INLINE auto GaussianMixture::from_toml(const std::filesystem::path& file, const torch::TensorOptions& options)
    -> GaussianMixture {
  return from_table(io::read_toml(file), file, options);
}

GM_INLINE auto GaussianMixture::from_toml_text(std::string_view text, const std::filesystem::path& file,
                                               const torch::TensorOptions& options) -> GaussianMixture {
  return from_table(io::parse_toml(text, file), file, options);
}

GM_INLINE auto GaussianMixture::from_table(const toml::table& tbl, const std::filesystem::path& file,
                                           const torch::TensorOptions& options) -> GaussianMixture {
  io::check_keys(file, tbl, {"weights", "means", "stds"});
  auto w = io::number_array(file, tbl, "weights");
  auto m = io::number_matrix(file, tbl, "means");
  auto s = io::number_array(file, tbl, "stds");
  const toml::node* wn = tbl.get("weights");
  const toml::node* mn = tbl.get("means");
  const toml::node* sn = tbl.get("stds");
  if (w.empty()) io::key_error(file, wn, "weights", "needs at least one component");
  if (m.size() != w.size()) {
    io::key_error(file, mn, "means",
                  "has " + std::to_string(m.size()) + " rows but weights has " + std::to_string(w.size()));
  }
  if (s.size() != w.size()) {
    io::key_error(file, sn, "stds",
                  "has " + std::to_string(s.size()) + " entries but weights has " + std::to_string(w.size()));
  }
  const size_t dim = m[0].size();
  if (dim == 0) io::key_error(file, mn, "means", "rows must not be empty");
  double total = 0;
  for (size_t k = 0; k < w.size(); ++k) {
    if (!(w[k] >= 0) || !std::isfinite(w[k])) {
      io::key_error(file, wn, "weights", "entry " + std::to_string(k) + " is " + std::to_string(w[k]) +
                                             "; weights must be finite and >= 0");
    }
    if (!(s[k] > 0) || !std::isfinite(s[k])) {
      io::key_error(file, sn, "stds", "entry " + std::to_string(k) + " is " + std::to_string(s[k]) +
                                          "; stds must be finite and > 0");
    }
    if (m[k].size() != dim) {
      io::key_error(file, mn, "means", "row " + std::to_string(k) + " has " + std::to_string(m[k].size()) +
                                           " entries but row 0 has " + std::to_string(dim));
    }
    for (double v : m[k]) {
      if (!std::isfinite(v)) io::key_error(file, mn, "means", "row " + std::to_string(k) + " is not finite");
    }
    total += w[k];
  }
  if (!(total > 0)) io::key_error(file, wn, "weights", "must have a positive sum");

  std::vector<double> flat;
  for (const auto& row : m) flat.insert(flat.end(), row.begin(), row.end());
  const auto k = static_cast<int64_t>(w.size());
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  return GaussianMixture(torch::tensor(w, f64).to(options), torch::tensor(flat, f64).reshape({k, -1}).to(options),
                         torch::tensor(s, f64).to(options));
}

GM_INLINE auto GaussianMixture::to(const torch::TensorOptions& options) const -> GaussianMixture {
  return GaussianMixture(weights_.to(options), means_.to(options), stds_.to(options));
}

GM_INLINE auto GaussianMixture::sample(int64_t n, const at::Generator& gen) const -> torch::Tensor {
  // Drawn on the generator's device (the mixture's few numbers move there; no copy when they are already).
  const auto o = on_generator(gen, means_.options());
  auto k = torch::multinomial(weights_.to(o.device()), n, /*replacement=*/true, gen);
  auto z = torch::randn({n, dim()}, gen, o);
  return means_.to(o.device()).index_select(0, k) + stds_.to(o.device()).index_select(0, k).unsqueeze(1) * z;
}

GM_INLINE auto GaussianMixture::fit(const torch::Tensor& points, int64_t k, int64_t iters, const at::Generator& gen)
    -> GaussianMixture {
  if (points.dim() != 2 || points.size(0) < k || k < 1) {
    throw Error("gm: GaussianMixture::fit needs [N, D] points with N >= k >= 1");
  }
  torch::NoGradGuard ng;
  auto x = points.to(torch::kFloat64);
  const auto n = x.size(0);
  const double d = static_cast<double>(x.size(1));
  const double spread = std::sqrt((x - x.mean(0)).pow(2).sum(1).mean().item<double>() / d);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto pick = torch::randperm(n, gen, on_generator(gen, i64)).to(x.device());
  auto means = x.index_select(0, pick.slice(0, 0, k)).clone();
  auto vars = torch::full({k}, spread * spread, x.options());
  auto logw = torch::full({k}, -std::log(static_cast<double>(k)), x.options());
  const auto x2 = x.pow(2).sum(1, true);
  for (int64_t it = 0; it < iters; ++it) {
    auto dist = (x2 - 2 * x.mm(means.t()) + means.pow(2).sum(1).unsqueeze(0)).clamp_min(0);  // [N, K]
    auto logp = logw - 0.5 * d * torch::log(2 * std::numbers::pi * vars) - dist / (2 * vars);
    auto r = torch::softmax(logp, 1);  // responsibilities
    auto nk = r.sum(0) + 1e-12;
    logw = torch::log(nk / static_cast<double>(n));
    means = r.t().mm(x) / nk.unsqueeze(1);
    auto dist2 = (x2 - 2 * x.mm(means.t()) + means.pow(2).sum(1).unsqueeze(0)).clamp_min(0);
    vars = ((r * dist2).sum(0) / (d * nk)).clamp_min(1e-6 * spread * spread);
  }
  return GaussianMixture(torch::exp(logw), means, torch::sqrt(vars));
}

GM_INLINE auto GaussianMixture::to_toml() const -> std::string {
  auto num = [](double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  auto w = weights_.to(torch::kFloat64).contiguous(), m = means_.to(torch::kFloat64).contiguous(),
       s = stds_.to(torch::kFloat64).contiguous();
  std::string out = "weights = [";
  for (int64_t i = 0; i < w.size(0); ++i) out += (i ? ", " : "") + num(w[i].item<double>());
  out += "]\nmeans = [\n";
  for (int64_t i = 0; i < m.size(0); ++i) {
    out += "  [";
    for (int64_t j = 0; j < m.size(1); ++j) out += (j ? ", " : "") + num(m[i][j].item<double>());
    out += "],\n";
  }
  out += "]\nstds = [";
  for (int64_t i = 0; i < s.size(0); ++i) out += (i ? ", " : "") + num(s[i].item<double>());
  return out + "]\n";
}

GM_INLINE auto GaussianMixture::log_prob(const torch::Tensor& x) const -> torch::Tensor {
  auto one = torch::ones({}, x.options());
  return log_prob_at(x, one, torch::zeros({}, x.options()));
}

GM_INLINE auto GaussianMixture::per_row(const torch::Tensor& a, const torch::Tensor& x) -> torch::Tensor {
  return a.dim() == 0 ? a : a.reshape({x.size(0), 1});
}

GM_INLINE auto GaussianMixture::terms(const torch::Tensor& x, const torch::Tensor& alpha,
                                      const torch::Tensor& sigma) const -> Terms {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == dim(), "gm: GaussianMixture expects points of shape [B, ", dim(), "]");
  auto w = weights_.to(x.options());
  auto mu = means_.to(x.options());
  auto sd = stds_.to(x.options());
  auto a = per_row(alpha, x);
  auto s = per_row(sigma, x);
  auto var = a * a * sd * sd + s * s;                                  // [B, K]
  auto diff = x.unsqueeze(1) - a.unsqueeze(-1) * mu.unsqueeze(0);       // [B, K, D]
  auto sq = diff.pow(2).sum(-1);                                       // [B, K]
  const double d = static_cast<double>(dim());
  auto logits = torch::log(w) - 0.5 * d * torch::log(2 * std::numbers::pi * var) - 0.5 * sq / var;
  return {logits, diff, var.expand_as(sq)};
}

GM_INLINE auto GaussianMixture::log_prob_at(const torch::Tensor& x, const torch::Tensor& alpha,
                                            const torch::Tensor& sigma) const -> torch::Tensor {
  return torch::logsumexp(terms(x, alpha, sigma).logits, 1);
}

GM_INLINE auto GaussianMixture::posterior(const torch::Tensor& x, const torch::Tensor& alpha,
                                          const torch::Tensor& sigma) const -> Posterior {
  auto tm = terms(x, alpha, sigma);
  auto r = torch::softmax(tm.logits, 1).unsqueeze(-1);            // [B, K, 1]
  auto sd2 = stds_.to(x.options()).pow(2);                        // [K]
  auto a = per_row(alpha, x);                                     // [B, 1] or 0-d
  auto gain = (a * sd2 / tm.var).unsqueeze(-1);                   // [B, K, 1]
  auto mu = means_.to(x.options()).unsqueeze(0);                  // [1, K, D]
  auto data = (r * (mu + gain * tm.diff)).sum(1);
  auto score = -(r * tm.diff / tm.var.unsqueeze(-1)).sum(1);
  return {data, score};
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
