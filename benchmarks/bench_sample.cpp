// bench_sample: what a sampler costs beyond its network evaluations.
//
// For each process / parameterisation and sampler it runs the sampler with gm's MLP as the model, then
// calls the bare network with exactly the inputs the sampler gave it (recorded in a first run), and
// alternates the two for --rounds rounds.  Overhead = median over rounds of (sampler time / bare calls
// time) - 1: the field's conversions between parameterisations, the sampler's own arithmetic, the grid,
// and the bookkeeping.  Markdown on stdout; results.md and results.csv in --out.
//
//   bench_sample --batch 4096 --hidden 256 --layers 4 --nfe 20 --samplers all --rounds 7

#include "bench_util.hpp"

#include <gm/io/cli.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/runtime.hpp>
#include <gm/sampler.hpp>
#include <gm/type_list.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

using gm::bench::Clock;
using gm::bench::fmt;
using gm::bench::median;
using gm::bench::ms_since;
using Samplers = gm::AllSamplers;

/// A process with the parameterisation its network predicts: rectified flow and DDPM's epsilon-prediction.
template <class S, class P>
struct Setup {
  using schedule = S;
  using param = P;
};
using Setups = gm::type_list<Setup<gm::Linear, gm::Velocity>, Setup<gm::VP, gm::Noise>>;
const char* setup_name(const Setup<gm::Linear, gm::Velocity>&) { return "linear/velocity"; }
const char* setup_name(const Setup<gm::VP, gm::Noise>&) { return "vp/noise"; }

struct Args {
  int64_t batch = 4096, hidden = 256, layers = 4, nfe = 20, rounds = 7;
  std::vector<std::string> samplers{"all"};
  uint64_t seed = 0;
  std::string out = "runs/bench_sample";
  bool force = false;
};

struct Row {
  std::string setup, sampler;
  int64_t nfe = 0;
  double sampler_ms = 0, inside_ms = 0, bare_ms = 0, own = 0, overhead = 0, overhead_min = 0, overhead_max = 0;
};

template <class Smp, class Set>
Row bench(const Args& a, gm::MLP& net, const Set& setup) {
  using S = typename Set::schedule;
  using P = typename Set::param;
  gm::Interpolant<S> ip;
  gm::Predict<P> pred;
  // The first run records the network's inputs; the bare calls replay exactly those, since a network's
  // speed can depend on its input (an untrained one can drive a stochastic sampler to huge values).
  bool record = true;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> calls;
  auto model = [&](const torch::Tensor& x, const torch::Tensor& t) {
    auto in = pred.network_input(x, t, ip);
    auto time = pred.network_time(t, ip);
    if (record) calls.emplace_back(in, time);
    return net->forward(in, time);
  };
  gm::Field field(ip, pred, model);
  auto gen = gm::make_generator(a.seed);
  auto x1 = torch::randn({a.batch, 2}, gen);
  Smp sampler{};
  std::vector<double> grid;
  if constexpr (std::is_same_v<typename Smp::category, gm::adaptive_tag>) {
    grid = {1.0, 1e-3};
  } else {
    grid = gm::UniformGrid{}.nodes(std::max<int64_t>(1, a.nfe / gm::evals_per_step(sampler)), 1e-3, ip);
  }
  double inside_ms = 0;  // time in the network during the last sampler run
  auto run_sampler = [&] {
    field.reset_counters();
    const auto start = Clock::now();
    gm::integrate(sampler, field, x1, grid, gm::NoObserver{}, gen);
    inside_ms = 1000 * field.model_seconds();
    return ms_since(start);
  };
  run_sampler();  // warm-up, and the calls the bare run replays
  record = false;
  const int64_t nfe = field.nfe();
  auto run_bare = [&] {
    const auto start = Clock::now();
    for (const auto& [x, t] : calls) net->forward(x, t);
    return ms_since(start);
  };
  run_bare();
  std::vector<double> s, b, r, m, own;
  for (int64_t i = 0; i < a.rounds; ++i) {
    s.push_back(run_sampler());
    m.push_back(inside_ms);
    own.push_back(s.back() / inside_ms - 1);
    b.push_back(run_bare());
    r.push_back(s.back() / b.back() - 1);
  }
  Row row;
  row.setup = setup_name(setup);
  row.sampler = std::string(Smp::name);
  row.nfe = nfe;
  row.sampler_ms = median(s);
  row.bare_ms = median(b);
  row.inside_ms = median(m);
  row.overhead = median(r);
  row.own = median(own);
  row.overhead_min = *std::min_element(r.begin(), r.end());
  row.overhead_max = *std::max_element(r.begin(), r.end());
  return row;
}

void report(const Args& a, const std::vector<Row>& rows) {
  std::ostringstream md;
  md << "| process / prediction | sampler | NFE | sampler ms | of which network ms | bare calls ms | "
        "overhead (min, max) | sampler's own time |\n"
     << "|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    md << "| " << r.setup << " | " << r.sampler << " | " << r.nfe << " | " << fmt("%.2f", r.sampler_ms) << " | "
       << fmt("%.2f", r.inside_ms) << " | " << fmt("%.2f", r.bare_ms) << " | " << fmt("%.1f%%", 100 * r.overhead)
       << " (" << fmt("%.1f%%", 100 * r.overhead_min) << ", " << fmt("%.1f%%", 100 * r.overhead_max) << ") | "
       << fmt("%.1f%%", 100 * r.own) << " |\n";
  }
  md << "\nMLP 2-[" << a.hidden << "]x" << a.layers << "-2, batch " << a.batch << ", " << a.rounds
     << " alternating rounds, medians; " << torch::get_num_threads()
     << " intra-op thread(s).  Overhead: sampler ms / bare calls ms - 1, the bare calls replaying the sampler's "
        "network inputs in a separate run.  Own time: sampler ms / network ms inside the same run - 1, immune "
        "to the machine's speed drifting between the two runs.\n";
  std::printf("%s", md.str().c_str());
  const std::filesystem::path out(a.out);
  std::filesystem::create_directories(out);
  std::ofstream(out / "results.md") << md.str();
  std::ofstream csv(out / "results.csv");
  csv << "process,sampler,nfe,batch,hidden,layers,sampler_ms,network_ms_inside,bare_ms,own_time,overhead,overhead_min,"
         "overhead_max\n";
  for (const auto& r : rows) {
    csv << r.setup << ',' << r.sampler << ',' << r.nfe << ',' << a.batch << ',' << a.hidden << ',' << a.layers << ','
        << fmt("%.4f", r.sampler_ms) << ',' << fmt("%.4f", r.inside_ms) << ',' << fmt("%.4f", r.bare_ms) << ','
        << fmt("%.5f", r.own) << ',' << fmt("%.5f", r.overhead) << ',' << fmt("%.5f", r.overhead_min) << ','
        << fmt("%.5f", r.overhead_max) << '\n';
  }
  std::fprintf(stderr, "bench_sample: wrote %s/results.md and results.csv\n", a.out.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Sampler overhead: a sampler run against the same number of bare network calls."};
  app.add_option("--batch", a.batch, "samples per run")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--hidden", a.hidden, "MLP width")->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  app.add_option("--layers", a.layers, "MLP hidden layers")->check(CLI::Range(int64_t{1}, int64_t{64}));
  app.add_option("--nfe", a.nfe, "network evaluations per run (fixed-step samplers)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--samplers", a.samplers, "samplers, comma-separated, or 'all': " + gm::names(Samplers{}))
      ->delimiter(',');
  app.add_option("--rounds", a.rounds, "alternating rounds")->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--seed", a.seed, "seed of the noise and the network");
  app.add_option("--out", a.out, "folder for results.md and results.csv");
  app.add_flag("--force", a.force, "overwrite results already in --out");
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  try {
    if (a.samplers.size() == 1 && a.samplers[0] == "all") {
      a.samplers.clear();
      gm::for_each_type<Samplers>([&]<class T>() { a.samplers.emplace_back(T::name); });
    }
    for (const auto& s : a.samplers)
      gm::visit_by_name<Samplers>(
          s, []<class>() {}, "sampler");
    if (!a.force && std::filesystem::exists(std::filesystem::path(a.out) / "results.csv")) {
      throw gm::Error("bench_sample: " + a.out +
                      "/results.csv exists; pass --force to overwrite or choose another --out");
    }
    gm::keep_freed_memory();  // as the Trainer does: no page faults for each freed activation
    torch::manual_seed(a.seed);
    torch::NoGradGuard no_grad;
    gm::MLP net(gm::MLPOptions().dim(2).hidden(a.hidden).layers(a.layers).time_embedding("raw"));
    net->eval();
    std::vector<Row> rows;
    gm::for_each_type<Setups>([&]<class Set>() {
      for (const auto& s : a.samplers) {
        gm::visit_by_name<Samplers>(
            s, [&]<class Smp>() { rows.push_back(bench<Smp>(a, net, Set{})); }, "sampler");
      }
    });
    report(a, rows);
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
