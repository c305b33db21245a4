#pragma once
/// @file
/// Minibatch couplings of data and noise: independent pairs, exact optimal transport (an assignment on the
/// batch's cost matrix) and entropic optimal transport (Sinkhorn), as in Tong et al.'s OT-CFM.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

namespace gm {

/// A coupling: `pair(x0, x1, gen)`, the index into the noise batch x1 of each data row's partner (int64
/// [n]), and a `name`.  The Trainer's last policy (`gm::Trainer<..., C>`).
template <class C>
concept Coupling = requires(const C& c, const torch::Tensor& x, const at::Generator& g) {
  { c.pair(x, x, g) } -> std::convertible_to<torch::Tensor>;
  { C::name } -> std::convertible_to<std::string_view>;
};

/// The squared Euclidean cost between the rows of x0 [n, ...] and x1 [m, ...] (flattened), [n, m], float64.
torch::Tensor squared_distances(const torch::Tensor& x0, const torch::Tensor& x1);

/// The minimum-cost perfect matching of a square cost matrix [n, n]: perm with sum_i cost[i, perm[i]]
/// minimal (int64 [n], on the cost's device).  Exact: the shortest-augmenting-path form of the Hungarian
/// method (Kuhn 1955; Jonker & Volgenant 1987), O(n^3) in float64 on the CPU; POT's `ot.emd` on a
/// uniform batch gives the same permutation.
torch::Tensor min_cost_assignment(const torch::Tensor& cost);

/// The entropic optimal-transport plan between uniform marginals over the rows and columns of `cost`
/// [n, m] (Cuturi 2013), by Sinkhorn's iterations in the log domain: pi = argmin <pi, C> - eps H(pi) with
/// eps = `reg` times the mean cost (scale-free; POT's `ot.sinkhorn`, which torchcfm calls, takes eps itself),
/// at most `iters` sweeps or until the row sums are within `tol` of 1/n.  Returns pi [n, m], float64, summing
/// to 1.
torch::Tensor sinkhorn_plan(const torch::Tensor& cost, double reg = 0.05, int64_t iters = 1000, double tol = 1e-9);

/// Pairs rows of a data batch with rows of a noise batch independently: the identity (plain flow matching).
struct IndependentCoupling {
  static constexpr std::string_view name = "independent";
  /// The index into x1 of each x0 row's partner.
  torch::Tensor pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
};

/// Exact minibatch optimal transport (Tong et al. 2023, "Improving and generalizing flow-based generative
/// models with minibatch optimal transport", OT-CFM; Pooladian et al. 2023): each x0 row's partner is the
/// x1 row the minimum-cost assignment on squared distances gives it, so the pairs straighten the paths the
/// network learns.  Deterministic; the same on every rank given the same global batch.
struct ExactOTCoupling {
  static constexpr std::string_view name = "exact_ot";
  torch::Tensor pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
};

/// Entropic minibatch optimal transport: the Sinkhorn plan on squared distances, each x0 row's partner
/// drawn from its row of the plan (torchcfm's OTPlanSampler with method "sinkhorn" draws pairs from the
/// plan the same way; here one partner per x0 row, so no data row is dropped).  reg -> 0 approaches exact OT;
/// large reg the independent coupling.  With `relative(false)` and reg = 2 sigma^2 it is the static
/// Schrödinger-bridge coupling of Tong et al. 2024 (SB-CFM; torchcfm passes reg = 2 sigma^2 to POT in absolute
/// units), which `gm::SchrodingerBridge` trains on.
struct SinkhornCoupling {
  struct Options {
    TORCH_ARG(double, reg) = 0.05;    ///< entropic regularisation, relative to the mean cost
    TORCH_ARG(int64_t, iters) = 1000; ///< Sinkhorn sweeps at most
    TORCH_ARG(bool, relative) = true; ///< reg relative to the batch's mean cost; false: in the cost's own units
  };
  static constexpr std::string_view name = "sinkhorn";
  Options options{};
  SinkhornCoupling() = default;
  explicit SinkhornCoupling(Options o) : options(o) {}
  torch::Tensor pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor squared_distances(const torch::Tensor& x0, const torch::Tensor& x1) {
  auto a = x0.flatten(1).to(torch::kFloat64), b = x1.flatten(1).to(torch::kFloat64);
  return (a.pow(2).sum(1, true) + b.pow(2).sum(1).unsqueeze(0) - 2 * torch::matmul(a, b.t())).clamp_min(0);
}

GM_INLINE torch::Tensor min_cost_assignment(const torch::Tensor& cost_in) {
  if (cost_in.dim() != 2 || cost_in.size(0) != cost_in.size(1)) {
    throw Error("gm: min_cost_assignment needs a square cost matrix");
  }
  const int64_t n = cost_in.size(0);
  auto cost = cost_in.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* c = cost.data_ptr<double>();
  if (!torch::isfinite(cost).all().item<bool>()) throw Error("gm: min_cost_assignment: the cost is not finite");
  // Shortest augmenting paths with potentials u (rows) and v (columns), 1-based with column 0 a sentinel.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(n + 1, 0), minv(n + 1);
  std::vector<int64_t> p(n + 1, 0), way(n + 1, 0);
  std::vector<char> used(n + 1);
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::fill(minv.begin(), minv.end(), inf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[j0] = 1;
      const int64_t i0 = p[j0];
      double delta = inf;
      int64_t j1 = 0;
      for (int64_t j = 1; j <= n; ++j) {
        if (used[j]) continue;
        const double cur = c[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (int64_t j = 0; j <= n; ++j) {
        if (used[j]) u[p[j]] += delta, v[j] -= delta;
        else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  auto perm = torch::empty({n}, torch::kInt64);
  auto* out = perm.data_ptr<int64_t>();
  for (int64_t j = 1; j <= n; ++j) out[p[j] - 1] = j - 1;
  return perm.to(cost_in.device());
}

GM_INLINE torch::Tensor sinkhorn_plan(const torch::Tensor& cost_in, double reg, int64_t iters, double tol) {
  if (cost_in.dim() != 2) throw Error("gm: sinkhorn_plan needs a cost matrix [n, m]");
  if (!(reg > 0)) throw Error("gm: sinkhorn_plan: reg must be positive");
  auto cost = cost_in.to(torch::kFloat64);
  const int64_t n = cost.size(0), m = cost.size(1);
  const double eps = reg * std::max(cost.mean().item<double>(), 1e-300);
  auto log_k = -cost / eps;
  const double log_a = -std::log(static_cast<double>(n)), log_b = -std::log(static_cast<double>(m));
  auto f = torch::zeros({n}, cost.options()), g = torch::zeros({m}, cost.options());
  for (int64_t k = 0; k < iters; ++k) {
    f = log_a - torch::logsumexp(log_k + g.unsqueeze(0), 1);
    g = log_b - torch::logsumexp(log_k + f.unsqueeze(1), 0);
    if (k % 10 == 9) {  // after a g update the column sums are exact; check the rows
      auto rows = torch::exp(f.unsqueeze(1) + log_k + g.unsqueeze(0)).sum(1);
      if ((rows - 1.0 / static_cast<double>(n)).abs().max().item<double>() < tol) break;
    }
  }
  return torch::exp(f.unsqueeze(1) + log_k + g.unsqueeze(0));
}

GM_INLINE torch::Tensor IndependentCoupling::pair(const torch::Tensor& x0, const torch::Tensor&, const at::Generator&) const {
  return torch::arange(x0.size(0), torch::TensorOptions().dtype(torch::kInt64).device(x0.device()));
}

GM_INLINE torch::Tensor ExactOTCoupling::pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator&) const {
  if (x0.size(0) != x1.size(0)) throw Error("gm: exact OT pairs batches of the same size");
  return min_cost_assignment(squared_distances(x0, x1)).to(x0.device());
}

GM_INLINE torch::Tensor SinkhornCoupling::pair(const torch::Tensor& x0, const torch::Tensor& x1,
                                               const at::Generator& gen) const {
  auto cost = squared_distances(x0, x1);
  const double reg = options.relative() ? options.reg() : options.reg() / std::max(cost.mean().item<double>(), 1e-300);
  auto plan = sinkhorn_plan(cost, reg, options.iters());
  auto rows = plan / plan.sum(1, true);
  return torch::multinomial(rows.to(gen.device()), 1, false, gen).squeeze(1).to(x0.device());
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
