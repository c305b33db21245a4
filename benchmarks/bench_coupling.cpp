// bench_coupling: gm's minibatch couplings against POT's (ot.emd, ot.sinkhorn) on the same cost matrices, and
// gm's I-CFM, OT-CFM and SB-CFM training steps against torchcfm's, side by side in one run.
//
//   build/benchmarks/bench_coupling [--sizes 128,256,512,1024] [--rounds 5] [--reps 5] [--threads 1]
//
// The data are 8gaussians (FFJORD's, as torchcfm's examples draw them) and the noise N(0, I), n of each; the
// cost is their squared distances in float64.  Each round times gm and then the peer, and the table gives the
// medians over rounds and their ratio (gm / peer: below 1, gm is faster).  The peer runs in a child process
// (benchmarks/python/couplings.py) on the same number of threads.
#include "bench_util.hpp"

#include <gm/data/toy2d.hpp>
#include <gm/io/npy.hpp>
#include <gm/train/flow_map.hpp>
#include <gm/trainer.hpp>

#include <CLI/CLI.hpp>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Flow = gm::Interpolant<gm::Linear>;
template <class P, class C>
using Coupled = gm::Trainer<Flow, gm::Predict<P>, gm::MLP, gm::EulerSampler, gm::UniformTime, gm::UniformWeight, C>;

/// The value after `key` in a reply line "ms 1.23 cost 4.56".
double field(const std::string& line, const std::string& key) {
  std::istringstream in(line);
  for (std::string k; in >> k;) {
    if (k == key) {
      double v;
      if (in >> v) return v;
    }
  }
  throw gm::Error("bench_coupling: the peer answered '" + line + "' without " + key);
}

template <class F>
double median_ms(F&& fn, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto start = gm::bench::Clock::now();
    fn();
    t.push_back(gm::bench::ms_since(start));
  }
  return gm::bench::median(t);
}

template <class T>
double step_ms(T& trainer, const torch::Tensor& data, int reps) {
  for (int i = 0; i < 3; ++i) trainer.train_step(data);  // warm-up
  return median_ms([&] { trainer.train_step(data); }, reps);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("bench_coupling: gm's couplings and coupled training steps against POT and torchcfm");
  std::vector<int64_t> sizes{128, 256, 512, 1024};
  int rounds = 5, reps = 5, threads = 1;
  double rel_eps = 0.05;
  app.add_option("--sizes", sizes, "batch sizes")->delimiter(',');
  app.add_option("--rounds", rounds, "alternating rounds of gm and the peer (medians over them)")->check(CLI::Range(1, 1000));
  app.add_option("--reps", reps, "repetitions inside each timing (median)")->check(CLI::Range(1, 10000));
  app.add_option("--threads", threads, "intra-op threads on both sides (torchcfm's table: 1)")->check(CLI::Range(1, 1024));
  app.add_option("--eps", rel_eps, "Sinkhorn's regularisation, relative to the mean cost")->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    at::set_num_threads(threads);
    const auto dir = std::filesystem::temp_directory_path() / ("gm_bench_coupling_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    gm::bench::Child peer({gm::bench::python(), std::string(gm::bench::source_dir()) + "/benchmarks/python/couplings.py",
                           std::to_string(threads)},
                          {"OMP_NUM_THREADS=" + std::to_string(threads)}, "bench_coupling");
    if (peer.receive("start-up") != "ready") throw gm::Error("bench_coupling: the peer did not start (is POT installed?)");
    std::printf("bench_coupling: 8gaussians data against N(0, I) noise, %d thread(s), %d rounds x %d repetitions; "
                "Sinkhorn eps = %.3g x mean cost; MLP 3 x 64, Adam 1e-3\n\n", threads, rounds, reps, rel_eps);
    std::printf("| n | emd: gm ms | POT ms | gm / POT | sinkhorn: gm ms | POT ms | gm / POT | I-CFM step: gm ms | torchcfm ms "
                "| gm / torchcfm | OT-CFM step: gm ms | torchcfm ms | gm / torchcfm | SB-CFM step: gm ms | torchcfm ms "
                "| gm / torchcfm | gm OT-CFM / I-CFM |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (const int64_t n : sizes) {
      auto gen = gm::make_generator(static_cast<uint64_t>(n));
      const auto data = gm::data::eight_gaussians(n, gen, torch::kFloat64), noise = torch::randn({n, 2}, gen, torch::kFloat64);
      gm::io::write_npy(dir / "x0.npy", data);
      gm::io::write_npy(dir / "x1.npy", noise);
      peer.send("load " + (dir / "x0.npy").string() + " " + (dir / "x1.npy").string());
      peer.receive("load");
      const auto cost = gm::squared_distances(data, noise);
      const double eps = rel_eps * cost.mean().item<double>();
      auto transport = [&](const torch::Tensor& plan) { return (plan * cost).sum().item<double>(); };
      // The same answers: the assignment's cost is the emd's, Sinkhorn's transport cost POT's.
      const auto perm = gm::min_cost_assignment(cost);
      const double gm_emd = cost.gather(1, perm.unsqueeze(1)).sum().item<double>() / static_cast<double>(n);
      const double gm_sk = transport(gm::sinkhorn_plan(cost, rel_eps));
      std::vector<double> emd_gm, emd_pot, sk_gm, sk_pot, icfm_gm, icfm_py, ot_gm, ot_py, sb_gm, sb_py;
      const auto batch = data.to(torch::kFloat32);
      auto mlp = [] { return gm::MLP(gm::MLPOptions().dim(2).hidden(64).layers(3)); };
      auto opts = gm::TrainOptions().lr(1e-3).seed(1).threads(threads);
      Coupled<gm::Velocity, gm::IndependentCoupling> icfm(mlp(), opts);
      Coupled<gm::Velocity, gm::ExactOTCoupling> otcfm(mlp(), opts);
      Coupled<gm::SchrodingerBridge, gm::ExactOTCoupling> sbcfm(
          mlp(), opts, {}, gm::Predict<gm::SchrodingerBridge>(gm::SchrodingerBridge(gm::SchrodingerBridge::Options().sigma(1.0))));
      for (int r = 0; r < rounds; ++r) {
        emd_gm.push_back(median_ms([&] { gm::min_cost_assignment(cost); }, reps));
        peer.send("emd " + std::to_string(reps));
        const auto e = peer.receive("emd");
        emd_pot.push_back(field(e, "ms"));
        if (std::abs(field(e, "cost") - gm_emd) > 1e-9 * std::abs(gm_emd)) {
          throw gm::Error("bench_coupling: n = " + std::to_string(n) + ": gm's assignment costs " + std::to_string(gm_emd) +
                          ", POT's emd " + std::to_string(field(e, "cost")));
        }
        sk_gm.push_back(median_ms([&] { gm::sinkhorn_plan(cost, rel_eps); }, reps));
        peer.send("sinkhorn " + gm::bench::fmt("%.17g", eps) + " " + std::to_string(reps));
        const auto s = peer.receive("sinkhorn");
        sk_pot.push_back(field(s, "ms"));
        if (std::abs(field(s, "cost") - gm_sk) > 1e-6 * std::abs(gm_sk)) {
          throw gm::Error("bench_coupling: n = " + std::to_string(n) + ": gm's Sinkhorn plan transports at " +
                          std::to_string(gm_sk) + ", POT's at " + std::to_string(field(s, "cost")));
        }
        icfm_gm.push_back(step_ms(icfm, batch, reps));
        peer.send("step icfm " + std::to_string(n) + " " + std::to_string(reps));
        icfm_py.push_back(field(peer.receive("icfm step"), "ms"));
        ot_gm.push_back(step_ms(otcfm, batch, reps));
        peer.send("step otcfm " + std::to_string(n) + " " + std::to_string(reps));
        ot_py.push_back(field(peer.receive("otcfm step"), "ms"));
        sb_gm.push_back(step_ms(sbcfm, batch, reps));
        peer.send("step sbcfm " + std::to_string(n) + " " + std::to_string(reps));
        sb_py.push_back(field(peer.receive("sbcfm step"), "ms"));
      }
      using gm::bench::median;
      auto cell = [](double gm_ms, double peer_ms) {
        return gm::bench::fmt("%.3f", gm_ms) + " | " + gm::bench::fmt("%.3f", peer_ms) + " | " + gm::bench::fmt("%.2f", gm_ms / peer_ms);
      };
      std::printf("| %lld | %s | %s | %s | %s | %s | %.2f |\n", static_cast<long long>(n),
                  cell(median(emd_gm), median(emd_pot)).c_str(), cell(median(sk_gm), median(sk_pot)).c_str(),
                  cell(median(icfm_gm), median(icfm_py)).c_str(), cell(median(ot_gm), median(ot_py)).c_str(),
                  cell(median(sb_gm), median(sb_py)).c_str(), median(ot_gm) / median(icfm_gm));
      std::fflush(stdout);
    }
    std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
