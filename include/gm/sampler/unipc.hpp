#pragma once
/// @file
/// UniPC (predictor-corrector, B(h) = e^h - 1 "bh2") on any process.

#include <gm/detail/compiled.hpp>
#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>
#include <gm/sampler/multistep.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <string_view>
#include <vector>

namespace gm {
namespace detail {

/// Solve the small dense system R rho = b (Gaussian elimination with partial pivoting).
std::vector<double> solve_small(std::vector<std::vector<double>> r, std::vector<double> b);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<double> solve_small(std::vector<std::vector<double>> r, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t c = 0; c < n; ++c) {
    size_t piv = c;
    for (size_t i = c + 1; i < n; ++i) {
      if (std::abs(r[i][c]) > std::abs(r[piv][c])) piv = i;
    }
    std::swap(r[c], r[piv]);
    std::swap(b[c], b[piv]);
    for (size_t i = c + 1; i < n; ++i) {
      const double f = r[i][c] / r[c][c];
      for (size_t j = c; j < n; ++j) r[i][j] -= f * r[c][j];
      b[i] -= f * b[c];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double acc = b[i];
    for (size_t j = i + 1; j < n; ++j) acc -= r[i][j] * x[j];
    x[i] = acc / r[i][i];
  }
  return x;
}
#endif

/// UniPC's matrix R (rows rk^(i-1)) and vector b for ratios rks (last = 1) and hh = -h, with B(h) = e^hh - 1.
void unipc_system(const std::vector<double>& rks, double hh, std::vector<std::vector<double>>& r,
                  std::vector<double>& b);
#if GM_HEADER_DEFINITIONS
GM_INLINE void unipc_system(const std::vector<double>& rks, double hh, std::vector<std::vector<double>>& r,
                            std::vector<double>& b) {
  const size_t k = rks.size();
  const double h_phi_1 = std::expm1(hh);
  double h_phi_k = h_phi_1 / hh - 1;
  double factorial = 1;
  const double b_h = std::expm1(hh);
  r.assign(k, std::vector<double>(k));
  b.assign(k, 0);
  for (size_t i = 1; i <= k; ++i) {
    for (size_t j = 0; j < k; ++j) r[i - 1][j] = std::pow(rks[j], static_cast<double>(i - 1));
    b[i - 1] = h_phi_k * factorial / b_h;
    factorial *= static_cast<double>(i + 1);
    h_phi_k = h_phi_k / hh - 1 / factorial;
  }
}
#endif

}  // namespace detail

/// UniPC with the bh2 variant, in data prediction (Zhao et al., "UniPC: A Unified Predictor-Corrector
/// Framework for Fast Sampling of Diffusion Models", NeurIPS 2023; the update as in diffusers'
/// UniPCMultistepScheduler).
///
/// Each step evaluates the model once, at the new point; that evaluation first corrects the new point
/// (UniC) and then drives the next prediction (UniP), so the corrector raises the order at no extra NFE.
/// Like `DPMSolverPP` it is written in alpha, sigma and lambda and runs on every process; history at
/// lambda = -inf (t = 1 with alpha(1) = 0) is not used, and the first step from there is the exact
/// first-order limit.  No correction follows the last step.
///
/// @tparam Order the predictor's order, 2 or 3 (UniPC-2, UniPC-3).
template <int Order = 2>
struct UniPC {
  static_assert(Order == 2 || Order == 3, "gm: UniPC has orders 2 and 3.");
  struct Options {
    TORCH_ARG(bool, lower_order_final) = true;
  };
  using category = multistep_tag;
  static constexpr std::string_view name = Order == 2 ? "unipc" : "unipc3";
  static constexpr int order = Order;
  struct State {
    detail::History history;  // D at the corrected nodes, newest first
    torch::Tensor last_x;     // x at the previous node, before this step's prediction
    int last_order = 0;       // the predictor's order on the previous step
  };
  Options options{};
  UniPC() = default;
  explicit UniPC(Options o) : options(o) {}
  State init_state() const { return {}; }

  template <class F>
  torch::Tensor step(F& field, torch::Tensor x, const StepInfo& info, State& state) const {
    const auto& ip = field.process();
    const auto s = detail::coefs(ip, info.t);
    auto d_here = field.data(x, info.t);

    // UniC: correct x (predicted by the previous step) with the evaluation just made at it.
    if (state.last_x.defined() && state.history.usable() >= 1) {
      const auto& prev = state.history.past;  // prev[0] is the previous node
      const auto p = detail::coefs(ip, (*info.grid)[static_cast<size_t>(info.index - 1)]);
      x = update(state.last_x, p, s, prev, state.last_order, d_here);
    }
    state.history.push(s.lambda, d_here, Order);

    // UniP: predict the next point.
    int k = std::min(Order, state.history.usable());
    if (options.lower_order_final() && info.steps < 15) k = std::min<int64_t>(k, info.steps - info.index);
    const auto n = detail::coefs(ip, info.t_next);
    if (!std::isfinite(n.lambda - s.lambda)) k = 1;
    k = std::max(k, 1);
    state.last_x = x;
    state.last_order = k;
    return update(x, s, n, state.history.past, k, torch::Tensor());
  }

 private:
  /// The UniP prediction (d_new undefined) or UniC correction (d_new = D at the target) from node s0 to t,
  /// using `k - 1` earlier entries of `past` (past[0] is s0).
  static torch::Tensor update(const torch::Tensor& x, const detail::Coefs& s0, const detail::Coefs& t,
                              const std::deque<detail::Past>& past, int k, const torch::Tensor& d_new) {
    const double h = t.lambda - s0.lambda;
    const double hh = -h;
    const double h_phi_1 = std::expm1(hh);
    const auto& m0 = past[0].data;
    const double ratio = s0.sigma > 0 ? t.sigma / s0.sigma : 0;
    auto out = ratio * x - (t.alpha * h_phi_1) * m0;
    if (!std::isfinite(h)) return out;  // first-order limit; no correction over an infinite lambda-step

    const bool corrector = d_new.defined();
    std::vector<double> rks;
    std::vector<torch::Tensor> d1s;
    for (int i = 1; i < k; ++i) {
      const double rk = (past[static_cast<size_t>(i)].lambda - s0.lambda) / h;
      rks.push_back(rk);
      d1s.push_back((past[static_cast<size_t>(i)].data - m0) / rk);
    }
    rks.push_back(1.0);
    std::vector<std::vector<double>> r;
    std::vector<double> b;
    detail::unipc_system(rks, hh, r, b);
    const double b_h = std::expm1(hh);

    torch::Tensor res;
    if (corrector) {
      std::vector<double> rhos;
      if (k == 1) {
        rhos = {0.5};
      } else {
        rhos = detail::solve_small(r, b);
      }
      for (size_t i = 0; i + 1 < rhos.size(); ++i) res = res.defined() ? res + rhos[i] * d1s[i] : rhos[i] * d1s[i];
      auto last = rhos.back() * (d_new - m0);
      res = res.defined() ? res + last : last;
    } else {
      if (d1s.empty()) return out;
      std::vector<double> rhos;
      if (k == 2) {
        rhos = {0.5};
      } else {
        std::vector<std::vector<double>> r1(r.begin(), r.end() - 1);
        for (auto& row : r1) row.pop_back();
        rhos = detail::solve_small(r1, std::vector<double>(b.begin(), b.end() - 1));
      }
      for (size_t i = 0; i < rhos.size(); ++i) res = res.defined() ? res + rhos[i] * d1s[i] : rhos[i] * d1s[i];
    }
    return out - (t.alpha * b_h) * res;
  }
};

#if !GM_HEADER_DEFINITIONS  // libgm_runtime instantiates the orders the experiment layer names
extern template struct UniPC<2>;
extern template struct UniPC<3>;
#endif

}  // namespace gm
