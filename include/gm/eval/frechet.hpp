#pragma once
/// @file
/// `gm::frechet_distance`: the Fréchet (2-Wasserstein) distance between two Gaussians, the number behind
/// FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
/// Equilibrium"), computed stably in float64 with Eigen.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <Eigen/Dense>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace gm {

/// Mean and covariance of feature vectors: what FID compares.
struct FeatureStats {
  Eigen::VectorXd mu;     ///< mean, [D]
  Eigen::MatrixXd sigma;  ///< covariance (unbiased, N - 1), [D, D]
  int64_t n = 0;          ///< how many vectors

  /// The statistics of features [N, D] (N >= 2).
  static FeatureStats of(const torch::Tensor& features);
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto FeatureStats::of(const torch::Tensor& features) -> FeatureStats {
  if (features.dim() != 2 || features.size(0) < 2) throw Error("gm: feature statistics need [N >= 2, D] features");
  auto f = features.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const int64_t n = f.size(0), d = f.size(1);
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> m(f.data_ptr<double>(), n,
      d);
  FeatureStats s;
  s.n = n;
  s.mu = m.colwise().mean().transpose();
  const Eigen::MatrixXd centred = m.rowwise() - s.mu.transpose();
  s.sigma = centred.transpose() * centred / static_cast<double>(n - 1);
  return s;
}
#endif  // GM_HEADER_DEFINITIONS

namespace detail {
/// The symmetric square root of a symmetric positive semi-definite matrix, through its eigen-decomposition
/// (eigenvalues below zero from rounding are clipped to zero).
Eigen::MatrixXd sqrt_psd(const Eigen::MatrixXd& a);
#if GM_HEADER_DEFINITIONS
GM_INLINE Eigen::MatrixXd sqrt_psd(const Eigen::MatrixXd& a) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(0.5 * (a + a.transpose()));
  if (es.info() != Eigen::Success) throw Error("gm: eigen-decomposition failed in the Fréchet distance");
  const Eigen::VectorXd root = es.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return es.eigenvectors() * root.asDiagonal() * es.eigenvectors().transpose();
}
#endif
}  // namespace detail

/// The Fréchet distance between N(mu1, S1) and N(mu2, S2):
///
///   d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).
///
/// tr((S1 S2)^(1/2)) is computed as tr((R S2 R)^(1/2)) with R = S1^(1/2): R S2 R is symmetric positive
/// semi-definite and similar to S1 S2, so its square root comes from a symmetric eigen-decomposition
/// (no complex parts, no ill-conditioned Schur iteration, unlike scipy's sqrtm in the reference FID
/// code).  Returns d^2, as FID reports it.
double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& s1, const Eigen::VectorXd& mu2,
                        const Eigen::MatrixXd& s2);
#if GM_HEADER_DEFINITIONS
GM_INLINE double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& s1, const Eigen::VectorXd& mu2,
                                  const Eigen::MatrixXd& s2) {
  const auto d = mu1.size();
  if (mu2.size() != d || s1.rows() != d || s1.cols() != d || s2.rows() != d || s2.cols() != d) {
    throw Error("gm: Fréchet distance: means and covariances must have matching sizes");
  }
  if (!mu1.allFinite() || !mu2.allFinite() || !s1.allFinite() || !s2.allFinite()) {
    throw Error("gm: Fréchet distance: the statistics are not finite");
  }
  const Eigen::MatrixXd r = detail::sqrt_psd(s1);
  const Eigen::MatrixXd m = r * s2 * r;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(0.5 * (m + m.transpose()), Eigen::EigenvaluesOnly);
  if (es.info() != Eigen::Success) throw Error("gm: eigen-decomposition failed in the Fréchet distance");
  const double tr_sqrt = es.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  const double out = (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2 * tr_sqrt;
  return std::max(out, 0.0);
}
#endif

/// The Fréchet distance between two sets of statistics.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);
#if GM_HEADER_DEFINITIONS
GM_INLINE double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  return frechet_distance(a.mu, a.sigma, b.mu, b.sigma);
}
#endif

}  // namespace gm
