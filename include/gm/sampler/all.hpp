#pragma once
/// @file
/// Every sampler, the time grids, `Field` and `gm::integrate`.

#include <gm/sampler/concepts.hpp>
#include <gm/sampler/ddim.hpp>
#include <gm/sampler/dopri.hpp>
#include <gm/sampler/dpm_solver_pp.hpp>
#include <gm/sampler/explicit_rk.hpp>
#include <gm/sampler/field.hpp>
#include <gm/sampler/flow_map.hpp>
#include <gm/sampler/grid_search.hpp>
#include <gm/sampler/grids.hpp>
#include <gm/sampler/inpaint.hpp>
#include <gm/sampler/kdiffusion.hpp>
#include <gm/sampler/schedule_transform.hpp>
#include <gm/sampler/integrate.hpp>
#include <gm/sampler/sde.hpp>
#include <gm/sampler/unipc.hpp>
#include <gm/type_list.hpp>

namespace gm {
/// Every sampler gm ships for every model, for benchmarks and tools that iterate or pick them by name (`gm::visit_by_name`).
using AllSamplers = type_list<EulerSampler, MidpointSampler, HeunSampler, RK4Sampler, DDIMSampler, DDPMSampler, DPMSolverPP2M,
                              DPMSolverPP3M, DPMSolverPP3MRef, UniPC<2>, UniPC<3>, EulerMaruyamaSampler, PCSampler, DopriSampler,
                              EulerAncestralSampler, DPM2Sampler, DPM2AncestralSampler, DPMPP2SAncestralSampler, DPMPPSDESampler,
                              DPMPP2MSDESampler, DPMPP3MSDESampler, LMSSampler, EDMStochasticSampler, SiTSDESampler>;
/// The samplers of flow-map models (gm::MeanFlow, gm::Shortcut, gm::Consistency), which need a model of the
/// average velocity u(x, t, r); such a model runs every sampler of `AllSamplers` too, at r = t.
using FlowMapSamplers = type_list<FlowMapSampler, ConsistencySampler>;
}  // namespace gm
