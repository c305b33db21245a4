#pragma once
/// @file
/// Kernel inception distance and improved precision and recall: two more ways than the Fréchet distance to
/// compare the features of generated and real samples.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/random.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace gm {

/// KID (Bińkowski et al., "Demystifying MMD GANs", ICLR 2018): the unbiased estimate of the squared maximum
/// mean discrepancy between feature sets a [n, d] and b [m, d] under the cubic polynomial kernel
/// k(x, y) = (x . y / d + 1)^3, averaged over `subsets` random subsets of `subset_size` rows of each (clean-fid
/// and torch-fidelity use 100 subsets of 1000; fewer rows give smaller subsets).  Unlike FD it is unbiased,
/// so it can be compared across sample counts, and it can come out slightly negative for equal distributions.
/// Returns {mean, standard deviation over the subsets}; the deviation is the population one (divided by the
/// number of subsets, numpy's default), as torch-fidelity reports it (metric_kid.py: float(np.std(mmds))).
/// Computed in float64.
std::pair<double, double> kernel_inception_distance(const torch::Tensor& a, const torch::Tensor& b, int64_t subsets = 100,
                                                    int64_t subset_size = 1000, uint64_t seed = 0);

/// The unbiased MMD^2 of each of KID's `subsets` random subsets (what kernel_inception_distance averages).
std::vector<double> kid_subset_values(const torch::Tensor& a, const torch::Tensor& b, int64_t subsets = 100,
                                      int64_t subset_size = 1000, uint64_t seed = 0);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::pair<double, double> kernel_inception_distance(const torch::Tensor& a, const torch::Tensor& b,
                                                              int64_t subsets, int64_t subset_size, uint64_t seed) {
  const auto values = kid_subset_values(a, b, subsets, subset_size, seed);
  double mean = 0, var = 0;
  for (double v : values) mean += v / static_cast<double>(values.size());
  for (double v : values) var += (v - mean) * (v - mean) / static_cast<double>(values.size());
  return {mean, std::sqrt(var)};
}

GM_INLINE std::vector<double> kid_subset_values(const torch::Tensor& a, const torch::Tensor& b, int64_t subsets,
                                                int64_t subset_size, uint64_t seed) {
  if (a.dim() != 2 || b.dim() != 2 || a.size(1) != b.size(1)) {
    throw Error("gm: KID needs two feature sets [n, d] of the same width");
  }
  const int64_t m = std::min({subset_size, a.size(0), b.size(0)});
  if (m < 2) throw Error("gm: KID needs at least 2 feature vectors in each set");
  if (subsets < 1) throw Error("gm: KID needs at least one subset");
  const auto x = a.to(torch::kCPU, torch::kFloat64), y = b.to(torch::kCPU, torch::kFloat64);
  const double d = static_cast<double>(x.size(1));
  auto gen = make_generator(seed);
  auto kernel = [&](const torch::Tensor& p, const torch::Tensor& q) { return (p.matmul(q.t()) / d + 1).pow(3); };
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; ++s) {
    const auto xs = x.index_select(0, torch::randperm(x.size(0), gen, on_generator(gen, torch::kInt64)).slice(0, 0, m).to(x.device()));
    const auto ys = y.index_select(0, torch::randperm(y.size(0), gen, on_generator(gen, torch::kInt64)).slice(0, 0, m).to(y.device()));
    const auto kxx = kernel(xs, xs), kyy = kernel(ys, ys), kxy = kernel(xs, ys);
    const double off = static_cast<double>(m) * (m - 1);
    const double mmd = (kxx.sum() - kxx.trace()).item<double>() / off + (kyy.sum() - kyy.trace()).item<double>() / off -
                       2 * kxy.mean().item<double>();
    values.push_back(mmd);
  }
  return values;
}
#endif

/// Improved precision and recall (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing
/// Generative Models", NeurIPS 2019): each set's manifold is the union of balls around its feature vectors
/// reaching their k-th nearest neighbour in the set (k = 3, as the paper); precision is the share of
/// generated vectors inside the real manifold (fidelity), recall the share of real vectors inside the
/// generated one (coverage).  Distances in float32 by batches of 1000 rows.
struct PrecisionRecall {
  double precision = 0, recall = 0;
};
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k = 3);
#if GM_HEADER_DEFINITIONS
GM_INLINE PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k) {
  if (real.dim() != 2 || fake.dim() != 2 || real.size(1) != fake.size(1)) {
    throw Error("gm: precision and recall need two feature sets [n, d] of the same width");
  }
  if (real.size(0) <= k || fake.size(0) <= k) {
    throw Error("gm: precision and recall need more than k = " + std::to_string(k) + " vectors in each set");
  }
  const auto r = real.to(torch::kFloat32), f = fake.to(torch::kFloat32);
  constexpr int64_t rows = 1000;
  // The k-th nearest neighbour distance of each vector within its own set (itself excluded: the k+1-th).
  auto radii = [&](const torch::Tensor& set) {
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < set.size(0); i += rows) {
      parts.push_back(std::get<0>(torch::cdist(set.slice(0, i, i + rows), set).kthvalue(k + 1, 1)));
    }
    return torch::cat(parts);
  };
  // The share of `query` vectors within the radius of some vector of `set`.
  auto covered = [&](const torch::Tensor& query, const torch::Tensor& set, const torch::Tensor& radius) {
    int64_t inside = 0;
    for (int64_t i = 0; i < query.size(0); i += rows) {
      const auto dist = torch::cdist(query.slice(0, i, i + rows), set);
      inside += (dist <= radius.unsqueeze(0)).any(1).sum().item<int64_t>();
    }
    return static_cast<double>(inside) / static_cast<double>(query.size(0));
  };
  return {covered(f, r, radii(r)), covered(r, f, radii(f))};
}
#endif

}  // namespace gm
