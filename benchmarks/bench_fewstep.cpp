// bench_fewstep: few-step generation and couplings measured against the oracle's exact flow map.
//
// On a Gaussian mixture (ring8 by default), the linear interpolant's probability-flow ODE has an exact flow
// map X_{1->0}, computed here by RK4 on the mixture's exact velocity.  The benchmark trains, with the same MLP
// and the same number of steps,
//   flow matching (the multi-step baseline), MeanFlow, a shortcut model, consistency training (ECT), reflow
//   (flow matching retrained on pairs (x1, x0) its teacher generated with Heun at 40 NFE), and OT-CFM (exact
//   minibatch OT) and SB-CFM (the entropic coupling at reg 2 sigma^2 with Brownian-bridge paths, sigma 0.5)
//   beside independent pairs at the coupling batch size,
// and prints, side by side in one run:
//   1. the mean distance |x0_hat - X_{1->0}(x1)| from the same noise, and the samples' mean log-likelihood
//      under the mixture, at NFE 1, 2 and 4: each few-step model with its own sampler, the multi-step
//      samplers (Euler, DPM-Solver++(2M), Heun) on the trained flow and on the exact velocity (a perfect model);
//   2. for each flow: the transport cost E|x1 - x0|^2 of its own map, its straightness
//      E int |(x1 - x0) - v(x_t, t)|^2 dt along its own paths (Liu et al. 2022), and the NFE Euler and Heun
//      need to come within --tol of the flow's own ODE solution.
//
//   bench_fewstep --steps 3000 --n 2000
#include "bench_util.hpp"

#include <gm/experiment/few_step.hpp>
#include <gm/trainer.hpp>

#include <ATen/Parallel.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {
using Flow = gm::Interpolant<gm::Linear>;
using Clock = gm::bench::Clock;

struct Settings {
  int64_t steps = 3000, batch = 1024, ot_batch = 256, n = 2000, hidden = 256, layers = 4, seed = 0;
  double lr = 1e-3, tol = 0.05;
};

gm::MLP make_net(const Settings& s, int64_t times) {
  torch::manual_seed(static_cast<uint64_t>(s.seed));
  return gm::MLP(gm::MLPOptions().dim(2).hidden(s.hidden).layers(s.layers).times(times).time_embedding("raw"));
}
gm::TrainOptions train_options(const Settings& s, int64_t batch) {
  return gm::TrainOptions().lr(s.lr).batch_size(batch).seed(static_cast<uint64_t>(s.seed)).clip_norm(1.0).threads(0)
      .schedule(gm::LRSchedule{"cosine", s.lr, 0.0, 200, s.steps, {}});
}

/// Train on fresh mixture draws (or on fixed pairs when `pairs_x0` is given), and say how long it took.
template <class T>
void train(T& trainer, const gm::GaussianMixture& gmm, const Settings& s, int64_t batch, const std::string& what,
           const torch::Tensor& pairs_x0 = {}, const torch::Tensor& pairs_x1 = {}) {
  auto gen = gm::make_generator(static_cast<uint64_t>(s.seed) + 99);
  const auto start = Clock::now();
  for (int64_t i = 0; i < s.steps; ++i) {
    if (pairs_x0.defined()) {
      auto idx = torch::randint(pairs_x0.size(0), {batch}, gen, torch::kLong);
      trainer.train_step(gm::Batch{pairs_x0.index_select(0, idx), {}, {}, {}, pairs_x1.index_select(0, idx)});
    } else {
      trainer.train_step(gmm.sample(batch, gen));
    }
  }
  std::fprintf(stderr, "trained %-28s %lld steps in %.1f s\n", what.c_str(), static_cast<long long>(s.steps),
               gm::bench::ms_since(start) / 1000);
}

struct Cell {
  double error = 0, loglik = 0;
};
std::string cell(const Cell& c) { return gm::bench::fmt("%.3f", c.error) + " / " + gm::bench::fmt("%.2f", c.loglik); }

/// Samples x0 from the noise x1 with `Smp` at `nfe` evaluations on the uniform grid down to t = 0.
template <class Smp, class T>
torch::Tensor draw(T& trainer, const torch::Tensor& x1, int64_t nfe) {
  return trainer.template sample<Smp>(gm::SampleOptions().n(x1.size(0)).nfe(nfe).t_end(0.0).noise(x1), Smp{}).to(torch::kFloat64);
}

Cell score(const torch::Tensor& x0, const torch::Tensor& exact, const gm::GaussianMixture& gmm) {
  return {(x0 - exact).norm(2, 1).mean().item<double>(), gmm.log_prob(x0).mean().item<double>()};
}

/// Transport cost, straightness along the velocity field's own Euler paths (256 steps), from noise x1.
template <class V>
std::pair<double, double> path_measures(V&& velocity, const torch::Tensor& x1) {
  const int64_t k = 256;
  auto x = x1.clone();
  std::vector<torch::Tensor> vs;
  for (int64_t i = 0; i < k; ++i) {
    const double t = 1.0 - static_cast<double>(i) / k;
    auto v = velocity(x, t);
    vs.push_back(v);
    x = x - (1.0 / k) * v;
  }
  auto chord = x1 - x;  // straight paths have v = x1 - x0 throughout
  double straight = 0;
  for (const auto& v : vs) straight += (chord - v).pow(2).sum(1).mean().item<double>() / static_cast<double>(k);
  return {chord.pow(2).sum(1).mean().item<double>(), straight};
}

/// The smallest NFE of `Smp` whose samples come within `tol` (mean distance) of the flow's own ODE solution.
template <class Smp, class T>
std::string nfe_for(T& trainer, const torch::Tensor& x1, const torch::Tensor& own, double tol) {
  for (int64_t nfe : {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128}) {
    if (nfe % gm::evals_per_step(Smp{})) continue;
    if ((draw<Smp>(trainer, x1, nfe) - own).norm(2, 1).mean().template item<double>() < tol) return std::to_string(nfe);
  }
  return "> 128";
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  std::string mixture = gm::bench::source_dir() + std::string("/configs/mixtures/ring8.toml");
  CLI::App app("bench_fewstep: one- and few-step models and OT couplings against the oracle's exact flow map");
  app.add_option("--mixture", mixture, "Gaussian-mixture TOML (the data)");
  app.add_option("--steps", s.steps, "training steps of every model")->check(CLI::Range(1, 1000000));
  app.add_option("--batch", s.batch, "batch size (flow matching, MeanFlow, shortcut, consistency, reflow)")->check(CLI::Range(2, 1 << 20));
  app.add_option("--ot-batch", s.ot_batch, "batch size of the coupling comparison (exact OT is O(batch^3))")->check(CLI::Range(2, 1 << 14));
  app.add_option("--n", s.n, "noise draws evaluated")->check(CLI::Range(1, 1 << 22));
  app.add_option("--hidden", s.hidden, "MLP width")->check(CLI::Range(1, 1 << 14));
  app.add_option("--layers", s.layers, "MLP hidden layers")->check(CLI::Range(1, 64));
  app.add_option("--lr", s.lr, "learning rate (cosine decay, 200 warm-up steps)")->check(CLI::PositiveNumber);
  app.add_option("--tol", s.tol, "mean distance to the flow's own ODE solution for the NFE column")->check(CLI::PositiveNumber);
  app.add_option("--seed", s.seed, "seed");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    const auto gmm = gm::GaussianMixture::from_toml(mixture);
    if (gmm.dim() != 2) throw gm::Error("bench_fewstep: " + mixture + " is " + std::to_string(gmm.dim()) + "-D; the MLP here is 2-D");
    const auto gmm32 = gmm.to(torch::kFloat32);
    std::printf("bench_fewstep: %s, MLP %lldx%lld (raw times), %lld steps, batch %lld (couplings %lld), %lld noise draws, "
                "%d threads\n\n", mixture.c_str(), static_cast<long long>(s.hidden), static_cast<long long>(s.layers),
                static_cast<long long>(s.steps), static_cast<long long>(s.batch), static_cast<long long>(s.ot_batch),
                static_cast<long long>(s.n), at::get_num_threads());
    auto x1 = torch::randn({s.n, 2}, gm::make_generator(static_cast<uint64_t>(s.seed) + 1234));
    auto v_exact = [&](const torch::Tensor& x, const torch::Tensor& t) { return gmm.velocity(x, t, Flow{}); };
    const auto x1d = x1.to(torch::kFloat64);
    const auto exact = gm::flow_map(v_exact, x1d, torch::scalar_tensor(1.0, torch::kFloat64),
                                    torch::scalar_tensor(0.0, torch::kFloat64), 400);

    using FM = gm::Trainer<Flow, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;
    using OT = gm::Trainer<Flow, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler, gm::UniformTime, gm::UniformWeight,
                           gm::ExactOTCoupling>;
    auto lognormal = gm::LogitNormalTime(gm::LogitNormalTime::Options().mean(-0.4).std(1.0));
    using MF = gm::Trainer<Flow, gm::Predict<gm::MeanFlow>, gm::MLP, gm::FlowMapSampler, gm::LogitNormalTime>;
    using SC = gm::Trainer<Flow, gm::Predict<gm::Shortcut>, gm::MLP, gm::FlowMapSampler, gm::LogitNormalTime>;
    using CT = gm::Trainer<Flow, gm::Predict<gm::Consistency>, gm::MLP, gm::ConsistencySampler, gm::LogitNormalTime>;

    FM fm(make_net(s, 1), train_options(s, s.batch));
    train(fm, gmm32, s, s.batch, "flow matching");
    MF mf(make_net(s, 2), train_options(s, s.batch), {}, {}, lognormal);
    train(mf, gmm32, s, s.batch, "MeanFlow");
    SC sc(make_net(s, 2), train_options(s, s.batch), {}, {}, lognormal);
    train(sc, gmm32, s, s.batch, "shortcut");
    // ECT halves its step 8 times over the run, as its CIFAR-10 schedule does.
    CT ct(make_net(s, 2), train_options(s, s.batch), {}, gm::Predict<gm::Consistency>(gm::Consistency(
              gm::Consistency::Options().every(std::max<int64_t>(1, s.steps / 8)))), lognormal);
    train(ct, gmm32, s, s.batch, "consistency (ECT)");
    // Reflow: the flow's own pairs, Heun at 40 NFE from fresh noise, then flow matching on them from the flow's weights.
    auto pair_noise = torch::randn({std::max<int64_t>(20000, s.batch), 2}, gm::make_generator(static_cast<uint64_t>(s.seed) + 7));
    auto pair_data = fm.sample(gm::SampleOptions().n(pair_noise.size(0)).nfe(40).t_end(0.0).noise(pair_noise), gm::HeunSampler{});
    FM rf(make_net(s, 1), train_options(s, s.batch));
    {
      torch::NoGradGuard ng;
      auto src = fm.net()->parameters(), dst = rf.net()->parameters();
      for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
    }
    train(rf, gmm32, s, s.batch, "reflow (2-rectified)", pair_data, pair_noise);
    FM ind(make_net(s, 1), train_options(s, s.ot_batch));
    train(ind, gmm32, s, s.ot_batch, "independent, coupling batch");
    OT ot(make_net(s, 1), train_options(s, s.ot_batch));
    train(ot, gmm32, s, s.ot_batch, "exact OT (OT-CFM)");
    // SB-CFM at sigma = 0.5: the entropic coupling at reg 2 sigma^2 = 0.5 (absolute) and Brownian-bridge paths.
    using SB = gm::Trainer<Flow, gm::Predict<gm::SchrodingerBridge>, gm::MLP, gm::EulerSampler, gm::UniformTime,
                           gm::UniformWeight, gm::SinkhornCoupling>;
    SB sb(make_net(s, 1), train_options(s, s.ot_batch), {},
          gm::Predict<gm::SchrodingerBridge>(gm::SchrodingerBridge(gm::SchrodingerBridge::Options().sigma(0.5))), {}, {},
          gm::SinkhornCoupling(gm::SinkhornCoupling::Options().reg(0.5).relative(false)));
    train(sb, gmm32, s, s.ot_batch, "SB-CFM (sigma 0.5)");

    // 1. Error against the exact flow map.
    gm::Field oracle(Flow{}, gm::Predict<gm::Velocity>{}, v_exact);
    auto on_oracle = [&]<class Smp>(int64_t nfe) {
      const auto steps = gm::steps_for_nfe(Smp{}, nfe);
      std::vector<double> grid(static_cast<size_t>(steps) + 1);
      for (int64_t i = 0; i <= steps; ++i) grid[static_cast<size_t>(i)] = 1.0 - static_cast<double>(i) / static_cast<double>(steps);
      return gm::integrate(Smp{}, oracle, x1d, grid);
    };
    std::printf("## Error against the exact flow map X_{1->0}: mean |x0_hat - X(x1)| / mean log-likelihood (exact draws: %.2f)\n\n",
                gmm.log_prob(gmm.sample(s.n, gm::make_generator(5))).mean().item<double>());
    std::printf("| model | sampler | NFE 1 | NFE 2 | NFE 4 |\n|---|---|---:|---:|---:|\n");
    auto row = [&](const std::string& model, const std::string& sampler, auto&& sample_at) {
      std::printf("| %s | %s |", model.c_str(), sampler.c_str());
      for (int64_t nfe : {1, 2, 4}) {
        auto x = sample_at(nfe);
        std::printf(" %s |", x.defined() ? cell(score(x, exact, gmm)).c_str() : "");
      }
      std::printf("\n");
      std::fflush(stdout);
    };
    row("MeanFlow", "flow_map", [&](int64_t k) { return draw<gm::FlowMapSampler>(mf, x1, k); });
    row("shortcut", "flow_map", [&](int64_t k) { return draw<gm::FlowMapSampler>(sc, x1, k); });
    row("consistency (ECT)", "consistency", [&](int64_t k) { return draw<gm::ConsistencySampler>(ct, x1, k); });
    row("reflow (2-rectified)", "euler", [&](int64_t k) { return draw<gm::EulerSampler>(rf, x1, k); });
    row("flow matching", "euler", [&](int64_t k) { return draw<gm::EulerSampler>(fm, x1, k); });
    row("flow matching", "dpmpp2m", [&](int64_t k) { return draw<gm::DPMSolverPP2M>(fm, x1, k); });
    row("flow matching", "heun", [&](int64_t k) { return k < 2 ? torch::Tensor() : draw<gm::HeunSampler>(fm, x1, k); });
    row("exact velocity (perfect model)", "euler", [&](int64_t k) { return on_oracle.operator()<gm::EulerSampler>(k); });
    row("exact velocity (perfect model)", "dpmpp2m", [&](int64_t k) { return on_oracle.operator()<gm::DPMSolverPP2M>(k); });
    row("exact velocity (perfect model)", "heun",
        [&](int64_t k) { return k < 2 ? torch::Tensor() : on_oracle.operator()<gm::HeunSampler>(k); });

    // 2. Paths.
    std::printf("\n## Paths: transport cost E|x1 - x0|^2, straightness E int |(x1 - x0) - v|^2 dt, NFE to within %.3g of the "
                "flow's own ODE solution\n\n", s.tol);
    std::printf("| flow | training batch | transport cost | straightness | Euler NFE | Heun NFE |\n|---|---:|---:|---:|---:|---:|\n");
    {
      auto [cost, straight] = path_measures([&](const torch::Tensor& x, double t) {
        return v_exact(x, torch::scalar_tensor(t, torch::kFloat64)); }, x1d);
      std::printf("| exact velocity (independent pairs, infinite batch) | | %.3f | %.4f | | |\n", cost, straight);
    }
    auto paths = [&](const std::string& name, auto& trainer, int64_t batch) {
      torch::NoGradGuard ng;
      auto field = trainer.make_field();
      auto [cost, straight] = path_measures([&](const torch::Tensor& x, double t) { return field.velocity(x, t); }, x1);
      auto own = draw<gm::RK4Sampler>(trainer, x1, 800);
      std::printf("| %s | %lld | %.3f | %.4f | %s | %s |\n", name.c_str(), static_cast<long long>(batch), cost, straight,
                  nfe_for<gm::EulerSampler>(trainer, x1, own, s.tol).c_str(), nfe_for<gm::HeunSampler>(trainer, x1, own, s.tol).c_str());
      std::fflush(stdout);
    };
    paths("flow matching (1-rectified)", fm, s.batch);
    paths("reflow (2-rectified)", rf, s.batch);
    paths("independent pairs", ind, s.ot_batch);
    paths("exact minibatch OT (OT-CFM)", ot, s.ot_batch);
    paths("Schrödinger bridge, sigma 0.5 (SB-CFM)", sb, s.ot_batch);
    return 0;
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fewstep: %s\n", e.what());
    return 1;
  }
}
