#pragma once
/// @file
/// `Predict<P>`: training targets and conversions between parameterisations.

#include <gm/prediction/concepts.hpp>
#include <gm/prediction/edm_precond.hpp>
#include <gm/prediction/tags.hpp>

#include <torch/types.h>

#include <string_view>
#include <utility>

namespace gm {

/// A network that predicts in `P`: its training target, and its output read as any other parameterisation.
///
/// Every conversion goes through the posterior pair (E[x0|x_t], E[eps|x_t]), so N parameterisations need
/// 2N maps, not N^2, and a user-defined parameterisation converts to all the others for free.
///
/// @tparam P the parameterisation tag (`Velocity`, `Noise`, `Score`, `Data`, `EDMPrecond`, or your own).
///
/// Example:
/// @code
/// gm::Predict<gm::Velocity> pred;
/// auto loss = (net(xt, t) - pred.target(x0, eps, t, process)).pow(2).mean();
/// auto x0_hat = pred.convert<gm::Data>(net(xt, t), xt, t, process);
/// @endcode
template <class P>
class Predict {
  static_assert(check_parameterization<P>(), "gm: Predict<P> needs P to be a gm::Parameterization.");

 public:
  using parameterization = P;
  static constexpr std::string_view name = P::name;

  Predict() = default;
  explicit Predict(P p) : p_(std::move(p)) {}

  const P& param() const { return p_; }

  /// The regression target in P for the pair (x0, eps) at time t.
  template <Process I>
  torch::Tensor target(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t, const I& ip) const {
    return p_.from_estimate(Estimate{x0, eps}, ip.sample(x0, eps, t), t, ip);
  }

  /// The posterior pair an output in P stands for.
  template <Process I>
  Estimate estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return p_.to_estimate(out, x, t, ip);
  }

  /// An output in P, re-expressed in Q.
  template <class Q, Process I>
  torch::Tensor convert(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip,
                        const Q& q = Q{}) const {
    static_assert(Parameterization<Q>, "gm: Predict::convert<Q> needs Q to be a gm::Parameterization.");
    return q.from_estimate(estimate(out, x, t, ip), x, t, ip);
  }

  template <Process I>
  torch::Tensor data(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return convert<Data>(out, x, t, ip);
  }
  template <Process I>
  torch::Tensor noise(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return convert<Noise>(out, x, t, ip);
  }
  template <Process I>
  torch::Tensor score(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return convert<Score>(out, x, t, ip);
  }
  template <Process I>
  torch::Tensor velocity(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    return convert<Velocity>(out, x, t, ip);
  }

  /// dD/d(out): how an error in P moves the data estimate, per time (shape of t).  Loss weightings use
  /// it to turn a weight on ||D - x0||^2 into a weight on the error in P.
  template <Process I>
  torch::Tensor data_scale(const torch::Tensor& t, const I& ip) const {
    auto one = torch::ones_like(t);
    return estimate(one, torch::zeros_like(t), t, ip).data;  // the map is affine in (x, out)
  }

  /// What the network is fed for x_t: P's `network_input` if it has one, else x_t.
  template <Process I>
  torch::Tensor network_input(const torch::Tensor& x, const torch::Tensor& t, const I& ip) const {
    if constexpr (HasNetworkInput<P>) {
      return p_.network_input(x, t, ip);
    } else {
      return x;
    }
  }
  /// What the network is conditioned on for t: P's `network_time` if it has one, else t.
  template <Process I>
  torch::Tensor network_time(const torch::Tensor& t, const I& ip) const {
    if constexpr (HasNetworkTime<P>) {
      return p_.network_time(t, ip);
    } else {
      return t;
    }
  }

 private:
  P p_{};
};

}  // namespace gm
