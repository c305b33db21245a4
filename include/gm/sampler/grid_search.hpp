#pragma once
/// @file
/// Optimised time grids: the nodes a given sampler should step through on a given process at a given
/// number of steps, found by minimising the endpoint error against the exact probability-flow ODE
/// solution on a Gaussian mixture (gm's closed-form oracle), and a grid policy that stores them.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>
#include <gm/io/toml.hpp>
#include <gm/sampler/grids.hpp>
#include <gm/sampler/integrate.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

namespace gm {

/// A grid that stores its nodes, for one number of steps and one t_end: what `optimize_grid` returns.
/// `save` writes it as TOML (`nodes = [...]` and string metadata such as the sampler and process it was
/// optimised for); `load` reads it back, checked: at least two nodes, the first 1, strictly decreasing,
/// the last in [0, 1).
struct OptimizedGrid {
  static constexpr std::string_view name = "optimized";
  std::vector<double> stored{};
  std::map<std::string, std::string> meta{};

  template <Process I>
  std::vector<double> nodes(int64_t steps, double t_end, const I&) const {
    detail::check_grid_args(steps, t_end);
    if (static_cast<int64_t>(stored.size()) != steps + 1 || std::abs(stored.back() - t_end) > 1e-12) {
      throw Error("gm: this optimized grid has " + std::to_string(stored.size() - 1) + " steps ending at t = " +
                  std::to_string(stored.empty() ? 0.0 : stored.back()) + "; asked for " + std::to_string(steps) +
                  " steps ending at t = " + std::to_string(t_end));
    }
    return stored;
  }

  void save(const std::filesystem::path& path) const;

  static OptimizedGrid load(const std::filesystem::path& path);
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void OptimizedGrid::save(const std::filesystem::path& path) const {
  std::ostringstream os;
  os << "# An optimised time grid (gm::OptimizedGrid): its nodes from t = 1 down.\n";
  for (const auto& [k, v] : meta) os << k << " = \"" << v << "\"\n";
  os << "nodes = [";
  for (size_t i = 0; i < stored.size(); ++i) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", stored[i]);
    os << (i ? ", " : "") << buf;
  }
  os << "]\n";
  io::write_file_atomic(path, os.str(), "optimized grid");
}

GM_INLINE auto OptimizedGrid::load(const std::filesystem::path& path) -> OptimizedGrid {
  const auto table = io::read_toml(path);
  OptimizedGrid g;
  g.stored = io::number_array(path, table, "nodes");
  for (const auto& [k, v] : table) {
    if (const auto* s = v.as_string()) g.meta[std::string(k.str())] = s->get();
  }
  const auto& n = g.stored;
  bool ok = n.size() >= 2 && n.front() == 1.0 && n.back() >= 0 && n.back() < 1;
  for (size_t i = 1; ok && i < n.size(); ++i) ok = n[i] < n[i - 1];
  if (!ok) throw Error("gm: " + path.string() + ": nodes must start at 1, decrease strictly and end in [0, 1)");
  return g;
}
#endif  // GM_HEADER_DEFINITIONS

/// Options of `optimize_grid`.
struct GridSearchOptions {
  TORCH_ARG(int64_t, max_evals) = 3000;     ///< objective evaluations per start (Nelder-Mead)
  TORCH_ARG(double, lambda_min) = -10.0;    ///< log-SNR floor where lambda(1) = -inf, as `LogSnrGrid`
  TORCH_ARG(double, tolerance) = 1e-4;      ///< stop a start when the simplex's values agree to this relative spread
};

namespace detail {

/// Nelder-Mead (Nelder & Mead 1965) with the standard coefficients, minimising f from x0 with initial
/// steps `step`; returns the best point.
std::vector<double> nelder_mead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                                double step, int64_t max_evals, double tol);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<double> nelder_mead(const std::function<double(const std::vector<double>&)>& f,
                                          std::vector<double> x0, double step, int64_t max_evals, double tol) {
  const size_t n = x0.size();
  std::vector<std::vector<double>> p(n + 1, x0);
  std::vector<double> v(n + 1);
  for (size_t i = 0; i < n; ++i) p[i + 1][i] += step;
  int64_t evals = 0;
  auto eval = [&](const std::vector<double>& x) {
    ++evals;
    const double y = f(x);
    return std::isfinite(y) ? y : std::numeric_limits<double>::infinity();
  };
  for (size_t i = 0; i <= n; ++i) v[i] = eval(p[i]);
  while (evals < max_evals) {
    std::vector<size_t> order(n + 1);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    const size_t best = order.front(), worst = order.back(), second = order[n - 1];
    if (std::abs(v[worst] - v[best]) <= tol * std::abs(v[best])) break;
    std::vector<double> c(n, 0.0);
    for (size_t i : order) {
      if (i == worst) continue;
      for (size_t k = 0; k < n; ++k) c[k] += p[i][k] / static_cast<double>(n);
    }
    auto along = [&](double a) {
      std::vector<double> x(n);
      for (size_t k = 0; k < n; ++k) x[k] = c[k] + a * (p[worst][k] - c[k]);
      return x;
    };
    auto xr = along(-1.0);
    const double vr = eval(xr);
    if (vr < v[best]) {
      auto xe = along(-2.0);
      const double ve = eval(xe);
      if (ve < vr) p[worst] = xe, v[worst] = ve;
      else p[worst] = xr, v[worst] = vr;
    } else if (vr < v[second]) {
      p[worst] = xr, v[worst] = vr;
    } else {
      auto xc = vr < v[worst] ? along(-0.5) : along(0.5);
      const double vc = eval(xc);
      if (vc < std::min(vr, v[worst])) {
        p[worst] = xc, v[worst] = vc;
      } else {  // shrink towards the best
        for (size_t i = 0; i <= n; ++i) {
          if (i == best) continue;
          for (size_t k = 0; k < n; ++k) p[i][k] = p[best][k] + 0.5 * (p[i][k] - p[best][k]);
          v[i] = eval(p[i]);
        }
      }
    }
  }
  return p[static_cast<size_t>(std::min_element(v.begin(), v.end()) - v.begin())];
}
#endif

}  // namespace detail

/// The grid of `steps` steps from t = 1 to `t_end` on which `sampler` brings `x1` closest to `target` (the
/// exact ODE solution from x1, e.g. a fine RK4 run on the mixture oracle's field), in mean L2 endpoint
/// error, starting from each of `starts` (grids of `steps` steps, e.g. the uniform, log-SNR and EDM
/// grids) and keeping the best.
///
/// The search runs over unconstrained z in R^steps: the gaps between nodes in log-SNR are softmax(z) times
/// the log-SNR span (lambda(1) floored at `lambda_min`), so every candidate is a valid, strictly
/// decreasing grid with the exact end points; Nelder-Mead needs no gradient through the sampler.  The error
/// is measured on the x1 it is given: use other draws to judge the result.
template <class S, class F, Process I>
OptimizedGrid optimize_grid(const S& sampler, F& field, const I& ip, const torch::Tensor& x1, const torch::Tensor& target,
                            int64_t steps, double t_end, const std::vector<std::vector<double>>& starts,
                            GridSearchOptions options = {}) {
  detail::check_grid_args(steps, t_end);
  const auto range = detail::lambda_range(ip, t_end, options.lambda_min(), "optimized");
  const double l0 = range.first, l1 = range.second;
  auto lambda_of = [&](double t) {
    const double l = ip.log_snr(torch::tensor(t, torch::kFloat64)).template item<double>();
    return std::clamp(std::isfinite(l) ? l : l0, l0, l1);
  };
  auto grid_of = [&](const std::vector<double>& z) {
    const double top = *std::max_element(z.begin(), z.end());
    std::vector<double> w(z.size());
    double sum = 0;
    for (size_t i = 0; i < z.size(); ++i) sum += (w[i] = std::exp(z[i] - top));
    std::vector<double> t(static_cast<size_t>(steps + 1));
    double acc = 0;
    t.front() = 1.0;
    for (int64_t i = 1; i < steps; ++i) {
      acc += w[static_cast<size_t>(i - 1)] / sum;
      t[static_cast<size_t>(i)] = detail::t_of_lambda(ip, l0 + acc * (l1 - l0));
    }
    t.back() = t_end;
    for (size_t i = 1; i + 1 < t.size(); ++i) {  // keep strictly decreasing where the map flattens
      t[i] = std::min(t[i], std::nextafter(t[i - 1], 0.0));
      t[i] = std::max(t[i], t_end + 1e-12 * static_cast<double>(t.size() - i));
    }
    return t;
  };
  auto error_of = [&](const std::vector<double>& grid) {
    torch::NoGradGuard ng;
    auto x = integrate(sampler, field, x1, grid);
    return (x - target).norm(2, 1).mean().template item<double>();
  };
  OptimizedGrid best;
  double best_err = std::numeric_limits<double>::infinity();
  for (const auto& start : starts) {
    if (static_cast<int64_t>(start.size()) != steps + 1) throw Error("gm: optimize_grid: a start grid has the wrong length");
    std::vector<double> z(static_cast<size_t>(steps));
    for (int64_t i = 0; i < steps; ++i) {  // the start's gaps in log-SNR
      const double gap = lambda_of(start[static_cast<size_t>(i + 1)]) - lambda_of(start[static_cast<size_t>(i)]);
      z[static_cast<size_t>(i)] = std::log(std::max(gap, 1e-9 * (l1 - l0)));
    }
    const auto z_best = detail::nelder_mead([&](const std::vector<double>& zz) { return error_of(grid_of(zz)); }, z, 0.5,
                                            options.max_evals(), options.tolerance());
    for (const auto& cand : {start, grid_of(z_best)}) {
      const double e = error_of(cand);
      if (e < best_err) best_err = e, best.stored = cand;
    }
  }
  best.stored.front() = 1.0;
  best.stored.back() = t_end;
  return best;
}

}  // namespace gm
