#pragma once
/// @file
/// `gm::ScheduleTransform`: sample a model trained on one process along another.

#include <gm/detail/broadcast.hpp>
#include <gm/prediction/predict.hpp>
#include <gm/process/concepts.hpp>

#include <torch/types.h>

#include <utility>

namespace gm {

/// A model trained on process A, seen as a data-predicting model on process B (flow_matching's
/// ScheduleTransformedModel; Lipman et al., "Flow Matching Guide and Code", 2024, sec. 4.10; Kingma et al.
/// 2021 show the same invariance for VDM): two Gaussian paths x = alpha x0 + sigma eps with the same
/// log-SNR lambda differ only by a scale, so at (x, t) on B the posterior is A's at t_A = lambda_A^-1(lambda_B(t))
/// and x_A = (alpha_A(t_A) / alpha_B(t)) x (sigma_A / sigma_B where alpha_B = 0).  The call returns
/// E[x0 | x] from the model's output in P at (x_A, t_A); put it in a `Field` over B with `Predict<Data>`, and
/// any sampler and grid of B runs on it:
/// @code
/// gm::ScheduleTransform to_vp{gm::Interpolant<gm::Linear>{}, gm::Interpolant<gm::VP>{}, gm::Predict<gm::Velocity>{}, model};
/// gm::Field field(gm::Interpolant<gm::VP>{}, gm::Predict<gm::Data>{}, to_vp);
/// @endcode
/// The model is any callable model(x, t) on A in P (a trained network's output, the oracle's
/// `predict<P>`), as a `Field` takes it.
template <Process A, Process B, class P, class M>
struct ScheduleTransform {
  A from;
  B to;
  Predict<P> predict;
  M model;

  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& t) {
    const auto lambda = to.log_snr(t);
    const auto t_a = from.t_from_log_snr(lambda).to(t.dtype());
    const auto a_b = to.alpha(t), a_a = from.alpha(t_a);
    const auto scale = torch::where(a_b > 0, a_a / torch::where(a_b > 0, a_b, torch::ones_like(a_b)),
                                    from.sigma(t_a) / to.sigma(t));
    const auto x_a = detail::bcast(scale, x) * x;
    return predict.estimate(model(x_a, t_a), x_a, t_a, from).data;
  }
};
template <Process A, Process B, class P, class M>
ScheduleTransform(A, B, Predict<P>, M) -> ScheduleTransform<A, B, P, M>;

}  // namespace gm
