#pragma once
/// @file
/// 2-D toy distributions: checkerboard, two moons, eight Gaussians, two spirals.  Each is drawn from `gen` on
/// the generator's device (a CUDA generator gives a CUDA batch), in the dtype of its options.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/random.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cmath>
#include <numbers>
#include <string>
#include <string_view>

namespace gm::data {

/// The checkerboard of Meta's flow_matching 2-D example: 8 squares of side 1 on [-2, 2]^2, alternating,
/// scaled by 1/0.45.  Returns [n, 2].
torch::Tensor checkerboard(int64_t n, const at::Generator& gen = {},
                           const torch::TensorOptions& o = torch::kFloat32);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor checkerboard(int64_t n, const at::Generator& gen, const torch::TensorOptions& opts) {
  const auto o = on_generator(gen, opts);
  auto x1 = torch::rand({n}, gen, o) * 4 - 2;
  auto x2 = torch::rand({n}, gen, o) - torch::randint(0, 2, {n}, gen, o) * 2;
  x2 = x2 + torch::remainder(torch::floor(x1), 2);
  return torch::stack({x1, x2}, 1) / 0.45;
}
#endif

/// Whether each point of x [n, 2] lies in the checkerboard's support (a bool tensor [n]).
torch::Tensor checkerboard_support(const torch::Tensor& x);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor checkerboard_support(const torch::Tensor& x) {
  auto u = x * 0.45;
  auto inside = (u.abs() < 2).all(1);
  auto parity = torch::remainder(torch::floor(u.select(1, 0)) + torch::floor(u.select(1, 1)), 2) == 0;
  return inside & parity;
}
#endif

/// Two interleaved half circles (scikit-learn's make_moons with uniform angles), noise std 0.1, mapped as in
/// FFJORD's toy data: 2 x + (-1, -0.2).
torch::Tensor two_moons(int64_t n, const at::Generator& gen = {},
                        const torch::TensorOptions& o = torch::kFloat32);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor two_moons(int64_t n, const at::Generator& gen, const torch::TensorOptions& opts) {
  const auto o = on_generator(gen, opts);
  auto a = torch::rand({n}, gen, o) * std::numbers::pi;
  auto upper = torch::rand({n}, gen, o) < 0.5;
  auto x = torch::where(upper, torch::cos(a), 1 - torch::cos(a));
  auto y = torch::where(upper, torch::sin(a), 0.5 - torch::sin(a));
  auto pts = torch::stack({x, y}, 1) + 0.1 * torch::randn({n, 2}, gen, o);
  return 2 * pts + torch::tensor({-1.0, -0.2}, o);
}
#endif

/// Eight Gaussians of std 0.5 on a circle of radius 4, divided by 1.414 (FFJORD's "8gaussians").
torch::Tensor eight_gaussians(int64_t n, const at::Generator& gen = {},
                              const torch::TensorOptions& o = torch::kFloat32);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor eight_gaussians(int64_t n, const at::Generator& gen, const torch::TensorOptions& opts) {
  const auto o = on_generator(gen, opts);
  auto k = torch::randint(0, 8, {n}, gen, o.dtype(torch::kLong)).to(o.dtype());
  auto angle = k * (std::numbers::pi / 4);
  auto centers = 4 * torch::stack({torch::cos(angle), torch::sin(angle)}, 1);
  return (centers + 0.5 * torch::randn({n, 2}, gen, o)) / 1.414;
}
#endif

/// Two interleaved spirals (FFJORD's "2spirals").
torch::Tensor spirals(int64_t n, const at::Generator& gen = {}, const torch::TensorOptions& o = torch::kFloat32);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor spirals(int64_t n, const at::Generator& gen, const torch::TensorOptions& opts) {
  const auto o = on_generator(gen, opts);
  auto r = torch::sqrt(torch::rand({n}, gen, o)) * (540.0 * 2 * std::numbers::pi / 360);
  auto x = -torch::cos(r) * r + 0.5 * torch::rand({n}, gen, o);
  auto y = torch::sin(r) * r + 0.5 * torch::rand({n}, gen, o);
  auto sign = torch::where(torch::rand({n}, gen, o) < 0.5, torch::ones({n}, o), -torch::ones({n}, o));
  return torch::stack({sign * x, sign * y}, 1) / 3 + 0.1 * torch::randn({n, 2}, gen, o);
}
#endif

/// Draw n points of the toy named `name` (checkerboard, moons, 8gaussians, spirals).
torch::Tensor toy2d(std::string_view name, int64_t n, const at::Generator& gen = {},
                    const torch::TensorOptions& o = torch::kFloat32);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor toy2d(std::string_view name, int64_t n, const at::Generator& gen,
                              const torch::TensorOptions& o) {
  if (name == "checkerboard") return checkerboard(n, gen, o);
  if (name == "moons") return two_moons(n, gen, o);
  if (name == "8gaussians") return eight_gaussians(n, gen, o);
  if (name == "spirals") return spirals(n, gen, o);
  throw Error("gm: unknown 2-D toy '" + std::string(name) + "' (expected one of: checkerboard, moons, 8gaussians, spirals)");
}
#endif

}  // namespace gm::data
