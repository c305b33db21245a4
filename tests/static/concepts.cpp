// Compile-time checks only: archetypes satisfy each concept, and negative cases do not.
#include <gm/core.hpp>
#include <gm/sampler/all.hpp>

#include <type_traits>

namespace {

// A minimal schedule: only alpha and sigma, as a user would first write one.
struct MinimalSchedule {
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return t; }
};
// A schedule with no sigma.
struct NoSigma {
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
};
// sigma with the wrong return type.
struct SigmaReturnsDouble {
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
  double sigma(const torch::Tensor&) const { return 0.0; }
};

// A minimal parameterisation and two broken ones.
struct MinimalParam {
  static constexpr std::string_view name = "minimal";
  template <gm::Process I>
  gm::Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor&, const I&) const {
    return {out, x};
  }
  template <gm::Process I>
  torch::Tensor from_estimate(const gm::Estimate& e, const torch::Tensor&, const torch::Tensor&, const I&) const {
    return e.data;
  }
};
struct ParamWithoutName {
  template <gm::Process I>
  gm::Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor&, const I&) const {
    return {out, x};
  }
  template <gm::Process I>
  torch::Tensor from_estimate(const gm::Estimate& e, const torch::Tensor&, const torch::Tensor&, const I&) const {
    return e.data;
  }
};
struct ParamOneWay {
  static constexpr std::string_view name = "one_way";
  template <gm::Process I>
  gm::Estimate to_estimate(const torch::Tensor& out, const torch::Tensor& x, const torch::Tensor&, const I&) const {
    return {out, x};
  }
};

struct MinimalTimeSampler {
  template <gm::Process I>
  torch::Tensor sample(int64_t n, const I&, const at::Generator& g, const torch::TensorOptions& o) const {
    return torch::rand({n}, g, o);
  }
};
struct TimeSamplerWithoutProcess {
  torch::Tensor sample(int64_t n) const { return torch::rand({n}); }
};

}  // namespace

// Schedules.
static_assert(gm::Schedule<gm::Linear> && gm::Schedule<gm::VP> && gm::Schedule<gm::SubVP> &&
              gm::Schedule<gm::VPCosine> && gm::Schedule<gm::Trig> && gm::Schedule<gm::VE> && gm::Schedule<gm::EDM>);
static_assert(gm::Schedule<MinimalSchedule>);
static_assert(gm::check_schedule<MinimalSchedule>());
static_assert(!gm::HasDAlpha<MinimalSchedule> && !gm::HasLogSnrInverse<MinimalSchedule>);
static_assert(gm::HasDAlpha<gm::VP> && gm::HasDSigma<gm::VP> && gm::HasLogSnrInverse<gm::VP>);
static_assert(!gm::Schedule<int>);
static_assert(!gm::Schedule<NoSigma> && gm::HasAlpha<NoSigma> && !gm::HasSigma<NoSigma>);
static_assert(!gm::Schedule<SigmaReturnsDouble>);
static_assert(gm::schedule_name<gm::VP>() == "vp" && gm::schedule_name<MinimalSchedule>() == "custom");

// Processes: an Interpolant of any schedule is one; a bare schedule is not.
static_assert(gm::Process<gm::Interpolant<gm::VP>> && gm::Process<gm::Interpolant<gm::EDM>>);
static_assert(gm::Process<gm::Interpolant<MinimalSchedule>>);
static_assert(!gm::Process<gm::VP> && !gm::Process<int>);
static_assert(gm::Interpolant<gm::Trig>::name == "trig");

// Parameterisations.
static_assert(gm::Parameterization<gm::Velocity> && gm::Parameterization<gm::Noise> &&
              gm::Parameterization<gm::Score> && gm::Parameterization<gm::Data> &&
              gm::Parameterization<gm::EDMPrecond>);
static_assert(gm::Parameterization<MinimalParam> && gm::check_parameterization<MinimalParam>());
static_assert(!gm::Parameterization<int>);
static_assert(!gm::Parameterization<ParamWithoutName>);
static_assert(!gm::Parameterization<ParamOneWay> && gm::HasToEstimate<ParamOneWay>);
static_assert(gm::HasNetworkInput<gm::EDMPrecond> && !gm::HasNetworkInput<gm::Velocity>);
static_assert(gm::Predict<gm::Velocity>::name == "velocity");

// Loss weightings.
static_assert(gm::LossWeighting<gm::UniformWeight> && gm::LossWeighting<gm::MinSNRWeight> &&
              gm::LossWeighting<gm::LikelihoodWeight>);
static_assert(!gm::LossWeighting<int> && !gm::LossWeighting<MinimalParam>);

// Time samplers.
static_assert(gm::TimeSampler<gm::UniformTime> && gm::TimeSampler<gm::LogitNormalTime> &&
              gm::TimeSampler<gm::EDMLogNormalTime> && gm::TimeSampler<gm::StratifiedTime>);
static_assert(gm::TimeSampler<MinimalTimeSampler> && gm::check_time_sampler<MinimalTimeSampler>());
static_assert(!gm::TimeSampler<int> && !gm::TimeSampler<TimeSamplerWithoutProcess>);

// A sampler's category is part of its type: DDIM with eta > 0 is its own, stochastic, type.
static_assert(std::is_same_v<gm::DDIMSampler::category, gm::ode_tag>);
static_assert(std::is_same_v<gm::DDPMSampler::category, gm::sde_tag>);
static_assert(gm::Sampler<gm::DDPMSampler> && gm::Sampler<gm::DPMSolverPP3MRef>);
static_assert(gm::DPMSolverPP3MRef::name == "dpmpp3m_ref" && gm::DPMSolverPP3M::name == "dpmpp3m");
