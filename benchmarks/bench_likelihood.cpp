// bench_likelihood: gm's exact log-likelihood of a 2-D flow model against the same computation by Meta's
// flow_matching package (ODESolver.compute_likelihood on torchdiffeq, both from PyPI, driven by
// benchmarks/python/likelihood_2d.py), side by side.
//
// It trains flow_2d's network (the MLP [x, t] -> 256 x 4 SiLU -> 2, rectified flow on the checkerboard) for
// --train-steps steps, computes a reference log-likelihood of --points data points with adaptive
// Dormand-Prince at rtol = atol = 1e-7, and writes the weights, the points and the reference into an .npz
// for the Python side.  Then for each method (midpoint, rk4) and step count it alternates gm and Python for
// --rounds rounds on the same points, both with the exact divergence and the same thread count, and reports
// the median time of each, their ratio, and each side's mean |log p - reference| (equal settings give equal
// error: the table shows it).  Markdown on stdout; results.md and results.csv in --out.
//
//   bench_likelihood --points 1000 --steps 10,20,50 --rounds 5

#include "bench_util.hpp"

#include <torch/version.h>

#include <gm/data/toy2d.hpp>
#include <gm/eval/likelihood.hpp>
#include <gm/io/cli.hpp>
#include <gm/io/file.hpp>
#include <gm/io/npy.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/runtime.hpp>
#include <gm/trainer.hpp>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

namespace {

using gm::bench::Child;
using gm::bench::Clock;
using gm::bench::fmt;
using gm::bench::median;
using gm::bench::ms_since;
using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

struct Args {
  int64_t points = 1000, hidden = 256, layers = 4, train_steps = 1000, rounds = 5, threads = 1;
  std::vector<int64_t> steps{10, 20, 50};
  std::vector<std::string> methods{"midpoint", "rk4"};
  double t_eps = 1e-5;
  std::string python = gm::bench::python();
  std::string script = std::string(gm::bench::source_dir()) + "/benchmarks/python/likelihood_2d.py";
  std::string out = "runs/bench_likelihood";
  bool force = false;
};

struct Row {
  std::string method;
  int64_t steps = 0;
  double gm_ms = 0, py_ms = 0, gm_err = 0, py_err = 0;
};

template <class S>
torch::Tensor gm_log_p(Flow& trainer, const torch::Tensor& x, const Args& a, int64_t steps) {
  auto field = trainer.make_field();
  return gm::log_likelihood(field, x, gm::LikelihoodOptions().t_eps(a.t_eps), S{}, steps).log_p;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Exact 2-D likelihood: gm against Meta's flow_matching (on torchdiffeq), side by side."};
  app.add_option("--points", a.points, "data points per likelihood call")->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  app.add_option("--hidden", a.hidden, "MLP width")->check(CLI::Range(int64_t{1}, int64_t{1} << 14));
  app.add_option("--layers", a.layers, "MLP hidden layers")->check(CLI::Range(int64_t{1}, int64_t{32}));
  app.add_option("--train-steps", a.train_steps, "training steps of the model first")->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  app.add_option("--steps", a.steps, "solver steps, comma-separated")->delimiter(',')->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--methods", a.methods, "fixed-step methods: midpoint, rk4")->delimiter(',')
      ->check(CLI::IsMember({"midpoint", "rk4"}));
  app.add_option("--rounds", a.rounds, "alternating rounds")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--threads", a.threads, "intra-op threads of both sides")->check(CLI::Range(int64_t{1}, int64_t{256}));
  app.add_option("--python", a.python, "the Python with torch, flow_matching and torchdiffeq (default: scripts/setup.sh's)");
  app.add_option("--out", a.out, "folder for results.md, results.csv and the .npz given to Python");
  app.add_flag("--force", a.force, "overwrite results already in --out");
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  try {
    const std::filesystem::path out(a.out);
    if (!a.force && std::filesystem::exists(out / "results.csv")) {
      throw gm::Error("bench_likelihood: " + a.out + "/results.csv exists; pass --force to overwrite or choose another --out");
    }
    if (access(a.python.c_str(), X_OK) != 0) throw gm::Error("bench_likelihood: --python " + a.python + ": not executable");
    gm::keep_freed_memory();
    torch::manual_seed(0);
    Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(a.hidden).layers(a.layers).time_embedding("raw")),
                 gm::TrainOptions().batch_size(1024).lr(2e-3).clip_norm(1.0).threads(a.threads));
    auto gen = gm::make_generator(1);
    for (int64_t i = 0; i < a.train_steps; ++i) trainer.train_step(gm::data::checkerboard(1024, gen));
    trainer.net()->eval();
    const auto x = gm::data::checkerboard(a.points, gm::make_generator(2));
    // The reference: adaptive Dormand-Prince at tight tolerances.
    auto field = trainer.make_field();
    const auto ref = gm::log_likelihood(field, x, gm::LikelihoodOptions().t_eps(a.t_eps),
                                        gm::DopriSampler(gm::DopriSampler::Options().rtol(1e-7).atol(1e-7).max_nfe(100000)))
                         .log_p.to(torch::kFloat64);
    std::vector<std::pair<std::string, torch::Tensor>> arrays;
    int64_t k = 0;
    for (const auto& p : trainer.net()->parameters()) arrays.emplace_back("p" + std::to_string(k++), p.detach().contiguous());
    arrays.emplace_back("x", x);
    arrays.emplace_back("ref", ref);
    std::filesystem::create_directories(out);
    gm::io::write_npz(out / "model_points_reference.npz", arrays);

    Child py({a.python, a.script, "--weights", (out / "model_points_reference.npz").string(), "--layers",
              std::to_string(a.layers), "--threads", std::to_string(a.threads), "--t-eps", std::to_string(a.t_eps)},
             {}, "bench_likelihood");
    if (py.receive("start-up").rfind("ready", 0) != 0) throw gm::Error("bench_likelihood: the Python baseline did not start");
    at::set_num_threads(static_cast<int>(a.threads));
    std::vector<Row> rows;
    for (const auto& method : a.methods) {
      for (int64_t steps : a.steps) {
        Row r{method, steps};
        std::vector<double> g, p;
        for (int64_t round = 0; round < a.rounds; ++round) {
          const auto start = Clock::now();
          auto lp = method == "midpoint" ? gm_log_p<gm::MidpointSampler>(trainer, x, a, steps)
                                         : gm_log_p<gm::RK4Sampler>(trainer, x, a, steps);
          g.push_back(ms_since(start));
          r.gm_err = (lp.to(torch::kFloat64) - ref).abs().mean().item<double>();
          py.send("run " + method + " " + std::to_string(steps));
          std::istringstream in(py.receive("a run"));
          std::string tag, etag;
          double ms = 0;
          in >> tag >> ms >> etag >> r.py_err;
          if (tag != "ms") throw gm::Error("bench_likelihood: unexpected reply from the Python baseline");
          p.push_back(ms);
        }
        r.gm_ms = median(g), r.py_ms = median(p);
        rows.push_back(r);
        std::fprintf(stderr, "%s %lld: gm %.1f ms, python %.1f ms\n", method.c_str(), static_cast<long long>(steps), r.gm_ms, r.py_ms);
      }
    }
    std::ostringstream md, csv;
    md << "Exact log-likelihood of " << a.points << " checkerboard points under flow_2d's MLP (" << a.hidden << " x "
       << a.layers << ", " << a.train_steps << " training steps), " << a.threads << " thread(s), median of " << a.rounds
       << " alternating rounds; python = flow_matching.solver.ODESolver.compute_likelihood(exact_divergence=True) "
          "on torchdiffeq, torch " << TORCH_VERSION << "; error = mean |log p - Dopri5(rtol 1e-7)| in nats.\n\n"
       << "| method | steps | NFE | gm ms | flow_matching ms | flow_matching / gm | gm error | flow_matching error |\n"
       << "|---|---|---|---|---|---|---|---|\n";
    csv << "method,steps,nfe,gm_ms,python_ms,ratio,gm_err,python_err\n";
    for (const auto& r : rows) {
      const int64_t nfe = r.steps * (r.method == "midpoint" ? 2 : 4);
      md << "| " << r.method << " | " << r.steps << " | " << nfe << " | " << fmt("%.1f", r.gm_ms) << " | "
         << fmt("%.1f", r.py_ms) << " | " << fmt("%.2fx", r.py_ms / r.gm_ms) << " | " << fmt("%.2e", r.gm_err) << " | "
         << fmt("%.2e", r.py_err) << " |\n";
      csv << r.method << "," << r.steps << "," << nfe << "," << r.gm_ms << "," << r.py_ms << "," << r.py_ms / r.gm_ms << ","
          << r.gm_err << "," << r.py_err << "\n";
    }
    std::printf("%s", md.str().c_str());
    gm::io::write_file_atomic(out / "results.md", md.str());
    gm::io::write_file_atomic(out / "results.csv", csv.str());
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
