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
#include <map>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace gm {

/// A coupling: `pair(x0, x1, gen)`, the index into the noise batch x1 of each data row's partner (int64
/// [n]), and a `name`.  The Trainer's last policy (`gm::Trainer<..., C>`).
template <class C>
concept Coupling = requires(const C& c, const torch::Tensor& x, const at::Generator& g) {
  { c.pair(x, x, g) } -> std::convertible_to<torch::Tensor>;
  { C::name } -> std::convertible_to<std::string_view>;
};

/// Row indices into both batches: pair k is (x0[rows[k]], x1[cols[k]]).
struct PairIndices {
  torch::Tensor rows;  ///< int64 [n] into x0
  torch::Tensor cols;  ///< int64 [n] into x1
};

/// A coupling that may also draw its pairs from its plan with replacement (torchcfm's `sample_plan`, its
/// default): `pairs(x0, x1, gen)` gives both indices, so a data row may appear twice and another not at all.
/// The Trainer uses `pairs` when a coupling has it, `pair` otherwise.
template <class C>
concept PlanCoupling = Coupling<C> && requires(const C& c, const torch::Tensor& x, const at::Generator& g) {
  { c.pairs(x, x, g) } -> std::same_as<PairIndices>;
};

/// n pairs (i, j) drawn with replacement from a plan [n, m] (entries >= 0), i and j int64 on `gen`'s device:
/// torchcfm's `OTPlanSampler.sample_map` (`np.random.choice` over the flattened plan) with gm's generator.
PairIndices draw_from_plan(const torch::Tensor& plan, int64_t n, const at::Generator& gen);

/// The squared Euclidean cost between the rows of x0 [n, ...] and x1 [m, ...] (flattened), [n, m], float64.
torch::Tensor squared_distances(const torch::Tensor& x0, const torch::Tensor& x1);

/// The minimum-cost perfect matching of a square cost matrix [n, n]: perm with sum_i cost[i, perm[i]]
/// minimal (int64 [n], on the cost's device).  Exact, in float64 on the CPU: Jonker & Volgenant's shortest
/// augmenting paths ("A shortest augmenting path algorithm for dense and sparse linear assignment problems",
/// Computing 38, 1987; their lap.cpp's augment, as gatagat/lap's lapjv) from column potentials that an
/// eps-scaling auction (Bertsekas 1988) proposes in place of JV's column reduction and augmenting row
/// reduction, which leave most rows free on squared distances between point clouds.  POT's `ot.emd` on a
/// uniform batch gives the same permutation where the optimum is unique.
torch::Tensor min_cost_assignment(const torch::Tensor& cost);

namespace detail {
/// The same matching by the textbook shortest-augmenting-path Hungarian method (Kuhn 1955), O(n^3): gm's
/// first assignment, kept as the tests' second opinion.
torch::Tensor hungarian_assignment(const torch::Tensor& cost);
}  // namespace detail

/// The entropic optimal-transport plan between uniform marginals over the rows and columns of `cost`
/// [n, m] (Cuturi 2013): pi = argmin <pi, C> - eps H(pi) with eps = `reg` times the mean cost (scale-free;
/// POT's `ot.sinkhorn`, which torchcfm calls, takes eps itself), by Sinkhorn's plain iteration where its
/// kernel stays in double's range (the cost spans at most 200 eps) and in the log domain elsewhere, at most
/// `iters` sweeps or until the row sums are within `tol` of 1/n (each sweep ends on the columns, which it
/// matches exactly).
/// Returns pi [n, m], float64, summing to 1.
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
  struct Options {
    /// Draw the n pairs from the plan (the assignment, each pair of mass 1/n) with replacement, as torchcfm's
    /// ExactOptimalTransportConditionalFlowMatcher does; false: every data row once, with its partner.
    TORCH_ARG(bool, replace) = false;
  };
  static constexpr std::string_view name = "exact_ot";
  Options options{};
  ExactOTCoupling() = default;
  explicit ExactOTCoupling(Options o) : options(o) {}
  torch::Tensor pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
  PairIndices pairs(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
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
    /// Draw the n pairs from the whole plan with replacement (torchcfm's `sample_plan`); false: one partner
    /// per data row, from its row of the plan.
    TORCH_ARG(bool, replace) = false;
  };
  static constexpr std::string_view name = "sinkhorn";
  Options options{};
  SinkhornCoupling() = default;
  explicit SinkhornCoupling(Options o) : options(o) {}
  torch::Tensor pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
  PairIndices pairs(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const;
  /// The plan between the rows of x0 and x1 at this coupling's regularisation.
  torch::Tensor plan(const torch::Tensor& x0, const torch::Tensor& x1) const;
};

/// A coupling chosen at run time: gm::IndependentCoupling, gm::ExactOTCoupling or gm::SinkhornCoupling with its
/// options, held as a value.  An experiment that reads its coupling from the config (`gm::pairing_from_config`)
/// then instantiates the Trainer once instead of once per coupling, and trains exactly as with the coupling it
/// holds: the same calls in the same order, so the same pairs and the same random stream (tested bit for bit).
/// `chosen()` names the coupling it holds.
class AnyCoupling {
 public:
  using Choice = std::variant<IndependentCoupling, ExactOTCoupling, SinkhornCoupling>;
  static constexpr std::string_view name = "any";
  AnyCoupling() = default;
  template <class C>
    requires std::constructible_from<Choice, C>
  AnyCoupling(C coupling) : choice_(std::move(coupling)) {}  // NOLINT(google-explicit-constructor): from each coupling
  const Choice& choice() const { return choice_; }
  /// The name of the coupling held ("independent", "exact_ot", "sinkhorn").
  std::string_view chosen() const {
    return std::visit([]<class C>(const C&) { return C::name; }, choice_);
  }
  torch::Tensor pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const {
    return std::visit([&](const auto& c) { return c.pair(x0, x1, gen); }, choice_);
  }
  /// The held coupling's `pairs`, or every row with its `pair` for one that has no plan to draw from.
  PairIndices pairs(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const {
    return std::visit([&]<class C>(const C& c) -> PairIndices {
      if constexpr (PlanCoupling<C>) {
        return c.pairs(x0, x1, gen);
      } else {
        return {torch::arange(x0.size(0), torch::TensorOptions().dtype(torch::kInt64).device(x0.device())), c.pair(x0, x1, gen)};
      }
    }, choice_);
  }

 private:
  Choice choice_{};
};

/// Whether coupling c pairs rows at all: false for the independent coupling, given as a type or chosen at run
/// time (gm::AnyCoupling), whose pairing the Trainer skips, with the global batch it would gather for it.
template <Coupling C>
bool couples(const C& c) {
  if constexpr (std::same_as<C, IndependentCoupling>) {
    return false;
  } else if constexpr (std::same_as<C, AnyCoupling>) {
    return !std::holds_alternative<IndependentCoupling>(c.choice());
  } else {
    return true;
  }
}

/// The name of the coupling c applies: C::name, or for gm::AnyCoupling the one it holds.
template <Coupling C>
std::string_view coupling_name(const C& c) {
  if constexpr (std::same_as<C, AnyCoupling>) {
    return c.chosen();
  } else {
    return C::name;
  }
}

/// The coupling applied within each class: rows of x0 with label y (int64 [n]) are paired only with the noise
/// rows at the same positions, by `coupling` on that class's rows alone, so each class's noise stays a fresh
/// Gaussian sample and the pairs cannot tell the network the class.  With a discrete condition this is
/// conditional optimal transport (Kerrigan, Migliorini & Smyth, "Dynamic conditional optimal transport through
/// simulation-free flows", NeurIPS 2024: the limit of their cost penalty on mismatched conditions), where a plan
/// over the whole batch (torchcfm's `sample_plan_with_labels`) pairs noise with images of every class and
/// weakens a class-conditional model (README: class agreement 0.64 -> 0.37 on Fashion-MNIST).  Returns the
/// index into x1 of each x0 row's partner (a permutation within each class).
template <Coupling C>
torch::Tensor pair_within_classes(const C& coupling, const torch::Tensor& x0, const torch::Tensor& x1,
                                  const torch::Tensor& y, const at::Generator& gen);

/// `pair_within_classes` for a coupling that draws pairs from its plan (`gm::PlanCoupling`): each class's n_c
/// pairs from its own plan, rows and columns both among that class's positions.
template <PlanCoupling C>
PairIndices pairs_within_classes(const C& coupling, const torch::Tensor& x0, const torch::Tensor& x1,
                                 const torch::Tensor& y, const at::Generator& gen);

namespace detail {
/// The positions of each class in y (integer [n]), in order of the class value: one int64 CPU tensor each
/// (one read of the labels on the host; the couplings solve on the host as well).
inline std::vector<torch::Tensor> class_rows(const torch::Tensor& y) {
  if (y.dim() != 1) throw Error("gm: a coupling within classes needs one label a row");
  const auto labels = y.to(torch::kCPU, torch::kInt64).contiguous();
  const int64_t* v = labels.data_ptr<int64_t>();
  std::map<int64_t, std::vector<int64_t>> groups;
  for (int64_t i = 0; i < labels.numel(); ++i) groups[v[i]].push_back(i);
  std::vector<torch::Tensor> out;
  for (auto& [label, rows] : groups) out.push_back(torch::tensor(rows, torch::kInt64));
  return out;
}

/// Calls f(idx, x0 rows, x1 rows) for each class of y, idx being that class's positions on x0's device: the
/// loop that `pair_within_classes` and `pairs_within_classes` share.
template <class F>
void for_each_class(const torch::Tensor& x0, const torch::Tensor& x1, const torch::Tensor& y, F&& f) {
  if (y.size(0) != x0.size(0) || x1.size(0) != x0.size(0)) {
    throw Error("gm: a coupling within classes pairs batches and labels of the same size");
  }
  for (const auto& rows : class_rows(y)) {
    const auto idx = rows.to(x0.device());
    f(idx, x0.index_select(0, idx), x1.index_select(0, idx.to(x1.device())));
  }
}
}  // namespace detail

template <Coupling C>
torch::Tensor pair_within_classes(const C& coupling, const torch::Tensor& x0, const torch::Tensor& x1,
                                  const torch::Tensor& y, const at::Generator& gen) {
  auto perm = torch::empty({x0.size(0)}, torch::TensorOptions().dtype(torch::kInt64).device(x0.device()));
  detail::for_each_class(x0, x1, y, [&](const torch::Tensor& idx, const torch::Tensor& a, const torch::Tensor& b) {
    perm.index_put_({idx}, idx.index_select(0, coupling.pair(a, b, gen).to(idx.device())));
  });
  return perm;
}

template <PlanCoupling C>
PairIndices pairs_within_classes(const C& coupling, const torch::Tensor& x0, const torch::Tensor& x1,
                                 const torch::Tensor& y, const at::Generator& gen) {
  std::vector<torch::Tensor> rows, cols;
  detail::for_each_class(x0, x1, y, [&](const torch::Tensor& idx, const torch::Tensor& a, const torch::Tensor& b) {
    const auto p = coupling.pairs(a, b, gen);
    rows.push_back(idx.index_select(0, p.rows.to(idx.device())));
    cols.push_back(idx.index_select(0, p.cols.to(idx.device())));
  });
  return {torch::cat(rows), torch::cat(cols)};
}

#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor squared_distances(const torch::Tensor& x0, const torch::Tensor& x1) {
  auto a = x0.flatten(1).to(torch::kFloat64), b = x1.flatten(1).to(torch::kFloat64);
  return (a.pow(2).sum(1, true) + b.pow(2).sum(1).unsqueeze(0) - 2 * torch::matmul(a, b.t())).clamp_min(0);
}

namespace detail {
/// The cost as a contiguous float64 CPU matrix, checked square and finite.
inline torch::Tensor assignment_cost(const torch::Tensor& cost_in) {
  if (cost_in.dim() != 2 || cost_in.size(0) != cost_in.size(1)) {
    throw Error("gm: min_cost_assignment needs a square cost matrix");
  }
  auto cost = cost_in.to(torch::kCPU, torch::kFloat64).contiguous();
  if (!torch::isfinite(cost).all().item<bool>()) throw Error("gm: min_cost_assignment: the cost is not finite");
  return cost;
}
}  // namespace detail

GM_INLINE torch::Tensor min_cost_assignment(const torch::Tensor& cost_in) {
  const auto cost = detail::assignment_cost(cost_in);
  const int64_t n = cost.size(0);
  auto perm = torch::zeros({n}, torch::kInt64);
  if (n <= 1) return perm.to(cost_in.device());
  const double* c = cost.data_ptr<double>();
  auto at = [&](int64_t i, int64_t j) { return c[i * n + j]; };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<int64_t> x(n, -1), y(n, -1);  // row i -> column x[i]; column j -> row y[j]
  std::vector<double> v(n, 0.0);           // column potentials
  std::vector<int64_t> free_rows;
  free_rows.reserve(n);
  // 1. Column potentials by an eps-scaling auction (Bertsekas 1988, "The auction algorithm: a distributed
  //    relaxation method for the assignment problem"; Gauss-Seidel bids, eps divided by 5 a phase down to 1e-5 of
  //    the cost's range).  A bid moves the bidder's best column's potential by the gap to its second best plus
  //    eps: JV's augmenting row reduction with an eps that makes ties progress.  On squared distances between
  //    point clouds JV's column reduction and row reduction leave about 70% of the rows free, each then a
  //    shortest-path search; from the auction's potentials about 30% (n = 1024: 0.2 s -> 0.03 s).  The auction
  //    only proposes v: step 2 keeps what is tight under it and step 3 is exact whatever v is, so a bid budget
  //    per phase bounds its work on any cost.
  double cmin = c[0], cmax = c[0];
  for (int64_t k = 1; k < n * n; ++k) cmin = std::min(cmin, c[k]), cmax = std::max(cmax, c[k]);
  const double range = cmax - cmin, resolution = 1e-10 * std::max(std::abs(cmin), std::abs(cmax));
  if (range > resolution) {
    const double last = std::max(1e-5 * range, resolution);
    std::vector<int64_t> bidders;
    bidders.reserve(n);
    for (double eps = std::max(range / 8, last);; eps = std::max(eps / 5, last)) {
      std::fill(x.begin(), x.end(), -1);
      std::fill(y.begin(), y.end(), -1);
      bidders.clear();
      for (int64_t i = n - 1; i >= 0; --i) bidders.push_back(i);
      for (int64_t budget = 64 * n + 1024; !bidders.empty() && budget > 0; --budget) {
        const int64_t i = bidders.back();
        bidders.pop_back();
        const double* row = c + i * n;
        double u1 = row[0] - v[0], u2 = inf;
        int64_t j1 = 0;
        for (int64_t j = 1; j < n; ++j) {
          const double h = row[j] - v[j];
          if (h < u2) {
            if (h < u1) u2 = u1, u1 = h, j1 = j;
            else u2 = h;
          }
        }
        v[j1] -= (u2 - u1) + eps;
        const int64_t i0 = y[j1];
        y[j1] = i;
        x[i] = j1;
        if (i0 >= 0) x[i0] = -1, bidders.push_back(i0);
      }
      if (eps <= last) break;
    }
  }
  // 2. The tight partial assignment under v: each row to its cheapest column in reduced cost c_ij - v_j, unless
  //    an earlier row holds it.  With u_i that minimum, every reduced cost c_ij - u_i - v_j is >= 0 and the
  //    assigned ones are 0, which is what JV's augmentation needs.
  std::fill(x.begin(), x.end(), -1);
  std::fill(y.begin(), y.end(), -1);
  for (int64_t i = 0; i < n; ++i) {
    const double* row = c + i * n;
    double u1 = inf;
    int64_t j1 = 0;
    for (int64_t j = 0; j < n; ++j) {
      if (row[j] - v[j] < u1) u1 = row[j] - v[j], j1 = j;
    }
    if (y[j1] < 0) y[j1] = i, x[i] = j1;
    else free_rows.push_back(i);
  }
  // 3. Augmentation (Jonker & Volgenant): a shortest path in reduced costs from each remaining free row to a free column.
  std::vector<double> d(n);
  std::vector<int64_t> pred(n), cols(n);
  for (const int64_t f : free_rows) {
    for (int64_t j = 0; j < n; ++j) {
      d[j] = at(f, j) - v[j];
      pred[j] = f;
      cols[j] = j;
    }
    int64_t low = 0, up = 0, last = 0, end = -1;  // cols[0, low): done; [low, up): at the minimum; [up, n): to scan
    double m = 0;
    while (end < 0) {
      if (up == low) {  // the columns at the next minimum distance
        last = low - 1;
        m = d[cols[up++]];
        for (int64_t k = up; k < n; ++k) {
          const int64_t j = cols[k];
          const double h = d[j];
          if (h <= m) {
            if (h < m) up = low, m = h;
            cols[k] = cols[up];
            cols[up++] = j;
          }
        }
        for (int64_t k = low; k < up; ++k) {
          if (y[cols[k]] < 0) {
            end = cols[k];
            break;
          }
        }
      }
      if (end >= 0) break;
      const int64_t j1 = cols[low++], i = y[j1];
      const double h = at(i, j1) - v[j1] - m;
      for (int64_t k = up; k < n; ++k) {
        const int64_t j = cols[k];
        const double dj = at(i, j) - v[j] - h;
        if (dj < d[j]) {
          d[j] = dj;
          pred[j] = i;
          if (dj == m) {
            if (y[j] < 0) {
              end = j;
              break;
            }
            cols[k] = cols[up];
            cols[up++] = j;
          }
        }
      }
    }
    for (int64_t k = 0; k <= last; ++k) {  // the columns settled before the last minimum move their potentials
      const int64_t j = cols[k];
      v[j] += d[j] - m;
    }
    for (int64_t j = end;;) {  // flip the alternating path back to f
      const int64_t i = pred[j];
      y[j] = i;
      const int64_t prev = x[i];
      x[i] = j;
      if (i == f) break;
      j = prev;
    }
  }
  auto* out = perm.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) out[i] = x[i];
  return perm.to(cost_in.device());
}

GM_INLINE torch::Tensor detail::hungarian_assignment(const torch::Tensor& cost_in) {
  const auto cost = detail::assignment_cost(cost_in);
  const int64_t n = cost.size(0);
  const double* c = cost.data_ptr<double>();
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
  auto cost = cost_in.to(torch::kFloat64).contiguous();
  const int64_t n = cost.size(0), m = cost.size(1);
  const double eps = reg * std::max(cost.mean().item<double>(), 1e-300);
  const double a = 1.0 / static_cast<double>(n), b = 1.0 / static_cast<double>(m);
  // The plain iteration (Sinkhorn & Knopp 1967; Cuturi 2013; POT's ot.sinkhorn, method 'sinkhorn'): two
  // matrix-vector products a sweep, on the kernel K = exp(-(C - min C) / eps).  Its entries reach down to
  // e^-200 ~ 1e-87 where the cost spans 200 eps, and the scalings grow as their inverse (u K v stays in
  // double's range, up to 1e308); beyond that the log domain takes over (logsumexp, many times a sweep's work).
  const double lo = cost.min().item<double>(), span = (cost.max().item<double>() - lo) / eps;
  if (span <= 200) {
    auto K = torch::exp(-(cost - lo) / eps);
    auto u = torch::full({n}, a, cost.options()), v = torch::full({m}, b, cost.options());
    for (int64_t k = 0; k < iters; ++k) {
      u = a / torch::mv(K, v);
      v = b / torch::mv(K.t(), u);
      if (k % 10 == 9) {  // after a v update the column sums are exact; check the rows
        auto rows = u * torch::mv(K, v);
        if ((rows - a).abs().max().item<double>() < tol) break;
      }
    }
    return u.unsqueeze(1) * K * v.unsqueeze(0);
  }
  auto log_k = -cost / eps;
  const double log_a = std::log(a), log_b = std::log(b);
  auto f = torch::zeros({n}, cost.options()), g = torch::zeros({m}, cost.options());
  for (int64_t k = 0; k < iters; ++k) {
    f = log_a - torch::logsumexp(log_k + g.unsqueeze(0), 1);
    g = log_b - torch::logsumexp(log_k + f.unsqueeze(1), 0);
    if (k % 10 == 9) {  // after a g update the column sums are exact; check the rows
      auto rows = torch::exp(f.unsqueeze(1) + log_k + g.unsqueeze(0)).sum(1);
      if ((rows - a).abs().max().item<double>() < tol) break;
    }
  }
  return torch::exp(f.unsqueeze(1) + log_k + g.unsqueeze(0));
}

GM_INLINE torch::Tensor IndependentCoupling::pair(const torch::Tensor& x0, const torch::Tensor&, const at::Generator&) const {
  return torch::arange(x0.size(0), torch::TensorOptions().dtype(torch::kInt64).device(x0.device()));
}

GM_INLINE PairIndices draw_from_plan(const torch::Tensor& plan, int64_t n, const at::Generator& gen) {
  const int64_t m = plan.size(1);
  auto k = torch::multinomial(plan.reshape({-1}).to(gen.device(), torch::kFloat64), n, true, gen);
  return {torch::div(k, m, "floor"), torch::remainder(k, m)};
}

GM_INLINE torch::Tensor ExactOTCoupling::pair(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator&) const {
  if (x0.size(0) != x1.size(0)) throw Error("gm: exact OT pairs batches of the same size");
  return min_cost_assignment(squared_distances(x0, x1)).to(x0.device());
}

GM_INLINE PairIndices ExactOTCoupling::pairs(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const {
  auto perm = pair(x0, x1, gen);
  if (!options.replace()) return {torch::arange(x0.size(0), perm.options()), perm};
  // The plan is the permutation with mass 1/n a pair: n draws of it are n uniform draws of a row.
  auto rows = torch::randint(x0.size(0), {x0.size(0)}, gen, torch::TensorOptions().dtype(torch::kInt64).device(gen.device()));
  rows = rows.to(x0.device());
  return {rows, perm.index_select(0, rows)};
}

GM_INLINE torch::Tensor SinkhornCoupling::plan(const torch::Tensor& x0, const torch::Tensor& x1) const {
  auto cost = squared_distances(x0, x1);
  const double reg = options.relative() ? options.reg() : options.reg() / std::max(cost.mean().item<double>(), 1e-300);
  return sinkhorn_plan(cost, reg, options.iters());
}

GM_INLINE torch::Tensor SinkhornCoupling::pair(const torch::Tensor& x0, const torch::Tensor& x1,
                                               const at::Generator& gen) const {
  auto p = plan(x0, x1);
  auto rows = p / p.sum(1, true);
  return torch::multinomial(rows.to(gen.device()), 1, false, gen).squeeze(1).to(x0.device());
}

GM_INLINE PairIndices SinkhornCoupling::pairs(const torch::Tensor& x0, const torch::Tensor& x1, const at::Generator& gen) const {
  if (!options.replace()) return {torch::arange(x0.size(0), torch::TensorOptions().dtype(torch::kInt64).device(x0.device())),
                                  pair(x0, x1, gen)};
  auto d = draw_from_plan(plan(x0, x1), x0.size(0), gen);
  return {d.rows.to(x0.device()), d.cols.to(x0.device())};
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
