#pragma once
/// @file
/// Adaptive Dormand-Prince 5(4) on the probability-flow ODE.

#include <gm/error.hpp>
#include <gm/sampler/concepts.hpp>
#include <gm/sampler/field.hpp>

#include <torch/arg.h>
#include <torch/types.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>

namespace gm {

/// Adaptive Dormand-Prince 5(4) (Dormand & Prince, J. Comput. Appl. Math. 6, 1980), the `dopri5` of
/// torchdiffeq and scipy's RK45, with first-same-as-last and the standard step-size controller (Hairer et
/// al., II.4): err = RMS((x5 - x4) / (atol + rtol max(|x|, |x_new|))), h *= clamp(0.9 err^-1/5, 0.2, 5).
///
/// It ignores the grid's interior and integrates from its first node to its last.  It stops with a
/// `gm::Error` if it would exceed `max_nfe` evaluations; `last_nfe()` of the field reports what it used.
struct DopriSampler {
  struct Options {
    TORCH_ARG(double, rtol) = 1e-3;
    TORCH_ARG(double, atol) = 1e-3;
    TORCH_ARG(int64_t, max_nfe) = 10000;
    TORCH_ARG(double, first_step) = 0.0;  ///< 0: chosen from the tolerances
  };
  using category = adaptive_tag;
  static constexpr std::string_view name = "dopri5";
  static constexpr int order = 5;
  Options options{};
  DopriSampler() = default;
  explicit DopriSampler(Options o) : options(o) {}

  /// Integrate from t0 down to t1; `on_step(t, x)` is called after each accepted step and stops the
  /// integration early by returning true.
  template <class F, class OnStep>
  torch::Tensor solve(F& field, torch::Tensor x, double t0, double t1, OnStep&& on_step) const {
    static constexpr double c[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
    static constexpr double a[7][6] = {
        {0, 0, 0, 0, 0, 0},
        {1.0 / 5, 0, 0, 0, 0, 0},
        {3.0 / 40, 9.0 / 40, 0, 0, 0, 0},
        {44.0 / 45, -56.0 / 15, 32.0 / 9, 0, 0, 0},
        {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729, 0, 0},
        {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656, 0},
        {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
    // b5 is the last row of a (FSAL); e = b5 - b4.
    static constexpr double e[7] = {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525,
                                    -1.0 / 40};
    const double span = t0 - t1;
    if (!(span > 0)) return x;
    const int64_t start_nfe = field.nfe();
    double t = t0;
    double h = options.first_step() > 0 ? options.first_step() : std::min(span, 0.1 * std::cbrt(options.rtol()));
    std::array<torch::Tensor, 7> k;
    k[0] = field.velocity(x, t);
    while (t > t1) {
      h = std::min(h, t - t1);
      if (field.nfe() - start_nfe + 6 > options.max_nfe()) {
        throw Error("gm: dopri5 exceeded its NFE budget of " + std::to_string(options.max_nfe()) + " at t = " +
                    std::to_string(t) + "; raise max_nfe or loosen rtol/atol");
      }
      const double dt = -h;  // integrating backwards in t
      for (int j = 1; j < 7; ++j) {
        torch::Tensor xj = x;
        for (int l = 0; l < j; ++l) {
          if (a[j][l] != 0) xj = xj + (dt * a[j][l]) * k[l];
        }
        const double tj = (j == 6) ? t - h : t + c[j] * dt;
        if (j == 6) {
          k[6] = field.velocity(xj, tj);  // xj is the fifth-order solution
          torch::Tensor err = torch::zeros_like(x);
          for (int l = 0; l < 7; ++l) {
            if (e[l] != 0) err = err + (dt * e[l]) * k[l];
          }
          auto scale = options.atol() + options.rtol() * torch::maximum(x.abs(), xj.abs());
          const double norm = (err / scale).pow(2).mean().sqrt().template item<double>();
          if (!std::isfinite(norm)) {
            throw Error("gm: dopri5 met a non-finite value in the step from t = " + std::to_string(t) + " to t = " +
                        std::to_string(t - h));
          }
          if (norm <= 1) {  // accept
            t = (h >= t - t1) ? t1 : t - h;
            x = xj;
            k[0] = k[6];
            if (on_step(t, x)) return x;
          }
          const double factor = norm == 0 ? 5.0 : std::clamp(0.9 * std::pow(norm, -0.2), 0.2, 5.0);
          h *= factor;
        } else {
          k[j] = field.velocity(xj, tj);
        }
      }
    }
    return x;
  }
};

}  // namespace gm
