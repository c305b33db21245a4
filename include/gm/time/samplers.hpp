#pragma once
/// @file
/// Time samplers: uniform, logit-normal, EDM's lognormal in sigma, and VDM's stratified draws.

#include <gm/detail/compiled.hpp>
#include <gm/random.hpp>
#include <gm/process/concepts.hpp>
#include <gm/time/concepts.hpp>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

#include <cstdint>
#include <string_view>

namespace gm {

namespace detail {
/// Times kept inside [eps, 1 - eps]: float32 rounding can otherwise give exactly 0 or 1, where weightings
/// such as EDM's and the likelihood weighting divide by zero on processes with alpha(1) = 0.
torch::Tensor keep_inside(const torch::Tensor& t, double eps);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor keep_inside(const torch::Tensor& t, double eps) { return t.clamp(eps, 1 - eps); }
#endif
}  // namespace detail

/// t ~ Uniform[eps, 1 - eps].  eps = 1e-5 by default, as score_sde trains its VP models.
struct UniformTime {
  struct Options {
    TORCH_ARG(double, eps) = 1e-5;
  };
  static constexpr std::string_view name = "uniform";
  Options options{};
  UniformTime() = default;
  explicit UniformTime(Options o) : options(o) {}

  template <Process I>
  torch::Tensor sample(int64_t n, const I&, const at::Generator& gen, const torch::TensorOptions& o) const {
    return detail::keep_inside(options.eps() + (1 - options.eps()) * torch::rand({n}, gen, on_generator(gen, o)), options.eps());
  }
};

/// t = sigmoid(m + s n), n ~ N(0, 1): the logit-normal of Esser et al., "Scaling Rectified Flow
/// Transformers for High-Resolution Image Synthesis" (SD3), ICML 2024.  m = 0, s = 1 by default; kept
/// inside [eps, 1 - eps].
struct LogitNormalTime {
  struct Options {
    TORCH_ARG(double, mean) = 0.0;
    TORCH_ARG(double, std) = 1.0;
    TORCH_ARG(double, eps) = 1e-5;
  };
  static constexpr std::string_view name = "logit_normal";
  Options options{};
  LogitNormalTime() = default;
  explicit LogitNormalTime(Options o) : options(o) {}

  template <Process I>
  torch::Tensor sample(int64_t n, const I&, const at::Generator& gen, const torch::TensorOptions& o) const {
    return detail::keep_inside(torch::sigmoid(options.mean() + options.std() * torch::randn({n}, gen, on_generator(gen, o))), options.eps());
  }
};

/// ln(sigma / alpha) ~ N(P_mean, P_std^2), mapped to t through the process's inverse log-SNR: EDM's
/// training distribution (Karras et al., NeurIPS 2022, table 1: P_mean = -1.2, P_std = 1.2).  Draws
/// outside the process's noise range clamp to [eps, 1 - eps].
struct EDMLogNormalTime {
  struct Options {
    TORCH_ARG(double, p_mean) = -1.2;
    TORCH_ARG(double, p_std) = 1.2;
    TORCH_ARG(double, eps) = 1e-5;
  };
  static constexpr std::string_view name = "edm_lognormal";
  Options options{};
  EDMLogNormalTime() = default;
  explicit EDMLogNormalTime(Options o) : options(o) {}

  template <Process I>
  torch::Tensor sample(int64_t n, const I& ip, const at::Generator& gen, const torch::TensorOptions& o) const {
    auto log_sigma = options.p_mean() + options.p_std() * torch::randn({n}, gen, on_generator(gen, o));
    return detail::keep_inside(ip.t_from_log_snr(-log_sigma), options.eps());
  }
};

/// Stratified (low-discrepancy) times: u_i = (u + i / n) mod 1 from one uniform u, then t on
/// [eps, 1 - eps].
///
/// The variance reduction of Kingma et al., "Variational Diffusion Models", NeurIPS 2021 (appendix I.1).
/// With `antithetic(true)` the second half of the batch is 1 - u of the first half instead.
struct StratifiedTime {
  struct Options {
    TORCH_ARG(double, eps) = 1e-5;
    TORCH_ARG(bool, antithetic) = false;
  };
  static constexpr std::string_view name = "stratified";
  Options options{};
  StratifiedTime() = default;
  explicit StratifiedTime(Options o) : options(o) {}

  template <Process I>
  torch::Tensor sample(int64_t n, const I&, const at::Generator& gen, const torch::TensorOptions& o) const {
    torch::Tensor u;
    if (options.antithetic()) {
      const int64_t half = (n + 1) / 2;
      auto first = stratified(half, gen, o);
      u = torch::cat({first, 1 - first}).slice(0, 0, n);
    } else {
      u = stratified(n, gen, o);
    }
    return detail::keep_inside(options.eps() + (1 - options.eps()) * u, options.eps());
  }

 private:
  static torch::Tensor stratified(int64_t n, const at::Generator& gen, const torch::TensorOptions& o) {
    const auto g = on_generator(gen, o);
    auto u0 = torch::rand({1}, gen, g);
    return torch::frac(u0 + torch::arange(n, g) / static_cast<double>(n));
  }
};

static_assert(TimeSampler<UniformTime>);
static_assert(TimeSampler<LogitNormalTime>);
static_assert(TimeSampler<EDMLogNormalTime>);
static_assert(TimeSampler<StratifiedTime>);

}  // namespace gm
