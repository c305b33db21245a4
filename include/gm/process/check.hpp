#pragma once
/// @file
/// The checks a process passes once, before anything trains or samples on it: finite coefficients and
/// derivatives, a log-SNR that falls from data to noise, and endpoints that are data and noise.

#include <gm/error.hpp>
#include <gm/process/concepts.hpp>

#include <torch/types.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace gm {

/// Check `ip` on a grid of 200 times, in float64, and return what deserves a warning.
///
/// A `gm::Error` naming the property and the first time where it fails, for what no sampler or loss
/// survives: alpha, sigma or their derivatives not finite on (0, 1) (or alpha, sigma at t = 0, 1), alpha or
/// sigma negative, and a log-SNR log(alpha / sigma) that does not fall strictly from t = 0 to t = 1 (where it
/// rises or stays flat, as when a clamp makes alpha' = sigma' = 0, the time grids, the EDM-style samplers and
/// the inverse log-SNR are undefined, and ODE samplers divide by zero).
///
/// Warnings (returned, one line each) for a process that works but not as its user likely means: t = 0 is
/// not the data (sigma(0) / alpha(0) > 0.1), t = 1 is not noise (alpha(1) / sigma(1) > 0.1), and, with
/// `noise_prediction` (Noise or Score), an alpha(1) so small that the prediction's x0 = (x - sigma eps) / alpha
/// multiplies its error by sigma(1) / alpha(1) > 1000 near t = 1 (VP's is 150; gm refuses alpha(1) = 0 outright).
template <Process I>
std::vector<std::string> check_process(const I& ip, bool noise_prediction = false) {
  torch::NoGradGuard ng;
  const std::string name = "gm: process '" + std::string(I::name) + "'";
  auto at = [](double t) {
    char b[48];
    std::snprintf(b, sizeof b, "t = %.4g", t);
    return std::string(b);
  };
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return std::string(b);
  };
  const int64_t n = 200;
  const auto o = torch::TensorOptions().dtype(torch::kFloat64);
  // Interior midpoints for derivatives (VP's sigma' is infinite at t = 0), the endpoints for the values.
  const auto inner = (torch::arange(n, o) + 0.5) / static_cast<double>(n);
  const auto ends = torch::tensor({0.0, 1.0}, o);
  const auto alpha = ip.alpha(inner).contiguous(), sigma = ip.sigma(inner).contiguous();
  const auto d_alpha = ip.d_alpha(inner).contiguous(), d_sigma = ip.d_sigma(inner).contiguous();
  const auto alpha_end = ip.alpha(ends).contiguous(), sigma_end = ip.sigma(ends).contiguous();
  const double* a = alpha.template data_ptr<double>();
  const double* s = sigma.template data_ptr<double>();
  const double* da = d_alpha.template data_ptr<double>();
  const double* ds = d_sigma.template data_ptr<double>();
  const double* t = inner.template data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    const char* bad = !std::isfinite(a[i]) ? "alpha" : !std::isfinite(s[i]) ? "sigma" : !std::isfinite(da[i]) ? "alpha'"
                      : !std::isfinite(ds[i]) ? "sigma'" : nullptr;
    if (bad) throw Error(name + ": " + bad + " is not finite at " + at(t[i]));
    if (a[i] < 0 || s[i] < 0) throw Error(name + ": " + (a[i] < 0 ? "alpha" : "sigma") + " is negative at " + at(t[i]));
  }
  const double a0 = alpha_end[0].template item<double>(), a1 = alpha_end[1].template item<double>();
  const double s0 = sigma_end[0].template item<double>(), s1 = sigma_end[1].template item<double>();
  for (auto [v, what] : {std::pair{a0, "alpha(0)"}, {a1, "alpha(1)"}, {s0, "sigma(0)"}, {s1, "sigma(1)"}}) {
    if (!std::isfinite(v) || v < 0) throw Error(name + ": " + what + " = " + num(v) + " (it must be finite and >= 0)");
  }
  // log(alpha / sigma) falls strictly: compare neighbours where both are finite.
  for (int64_t i = 0; i + 1 < n; ++i) {
    const double l0 = std::log(a[i] / s[i]), l1 = std::log(a[i + 1] / s[i + 1]);
    if (std::isfinite(l0) && std::isfinite(l1) && !(l1 < l0)) {
      const bool stalled = da[i] == 0 && ds[i] == 0;
      throw Error(name + ": the log-SNR log(alpha / sigma) " + (l1 > l0 ? "rises" : "stops falling") + " between " +
                  at(t[i]) + " and " + at(t[i + 1]) + (stalled ? " (alpha' = sigma' = 0 there: a clamp?)" : "") +
                  "; it must fall strictly from the data at t = 0 to the noise at t = 1");
    }
  }
  std::vector<std::string> warnings;
  const std::string wname = name.substr(4);  // without "gm: ", for a log line
  if (a0 > 0 && s0 / a0 > 0.1) {
    warnings.push_back(wname + ": sigma(0) / alpha(0) = " + num(s0 / a0) + ": t = 0 is not the data but a noisy copy of it");
  }
  if (s1 > 0 && a1 / s1 > 0.1) {
    warnings.push_back(wname + ": alpha(1) / sigma(1) = " + num(a1 / s1) + ": t = 1 still holds the data's signal, and "
                       "sampling starts from pure noise there");
  }
  if (noise_prediction && a1 > 0 && s1 / a1 > 1000) {
    warnings.push_back(wname + ": alpha(1) = " + num(a1) + ": a noise (or score) prediction's x0 estimate multiplies "
                       "its error by sigma(1) / alpha(1) = " + num(s1 / a1) + " near t = 1; predict Velocity or Data");
  }
  return warnings;
}

}  // namespace gm
