// bench_dist: data-parallel layouts of the same training step side by side, on this machine's cores.
//
// For each configuration (bench_train's: the 2-D MLP of configs/flow_2d.toml, fashion_mnist's UNet, dit's
// DiT) it trains gm's Trainer at the same global batch in three layouts, each a fresh set of processes:
//   1 x 1   one process, one intra-op thread (the reference);
//   1 x 2   one process, two intra-op threads;
//   2 x 1   two data-parallel ranks (Gloo on c10d, rendezvous through rank 0's TCPStore), one thread each;
//   2 x 1 no collectives: the same two ranks computing their halves at once with nothing exchanged, which
//           separates what the cores give from what communication costs.
// The layouts alternate for --rounds rounds; the table gives the medians of ms per step, samples per
// second, the speed-up over 1 x 1, and for 2 x 1 the share of the step spent in the collectives (the
// gradient and loss all-reduces, waiting for the other rank included) and the time of a bare all-reduce of
// the same gradient buffer (the transfer alone).  docs/distributed.md turns these into a scaling model.
//
// Markdown on stdout; results.md and results.csv in --out.
//
//   bench_dist --configs flow_2d,unet,dit --rounds 3
//
// --data-prep instead times what a rank spends preparing an image batch: the whole global batch (as every
// rank did before each prepared only its rows) against one rank's half (Trainer::shard_rows), 512 random
// 3x32x32 images with flips, dequantisation and EDM's augmentation at p = 0, 0.12 and 1, one thread.
//
//   bench_dist --data-prep

#include "bench_nets.hpp"

#include <gm/data/images.hpp>
#include <ATen/Parallel.h>
#include <gm/dist/group.hpp>
#include <gm/io/cli.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using gm::bench::AnyStep;
using gm::bench::Child;
using gm::bench::Clock;
using gm::bench::Config;
using gm::bench::fmt;
using gm::bench::known_configs;
using gm::bench::median;
using gm::bench::ms_since;

struct Args {
  std::vector<std::string> configs{"flow_2d", "unet", "dit"};
  int64_t rounds = 3;
  double seconds = 3;  // timed seconds per layout and round (at least --min-steps steps)
  int64_t min_steps = 5;
  std::string out = "runs/bench_dist";
  bool force = false;
  bool data_prep = false;
  // A worker: one process of one layout (started by the driver with RANK, WORLD_SIZE, MASTER_* set).
  std::string worker;
  int64_t threads = 1, steps = 0;
  int64_t silent_rank = -1, silent_world = 1;  // a worker of a layout without collectives
};

/// What one process measured: ms per step, ms per step inside the collectives, ms of a bare all-reduce of
/// the gradient buffer, and the number of parameters.
struct Measured {
  double step_ms = 0, comm_ms = 0, allreduce_ms = 0;
  int64_t params = 0;
};

/// GFLOP/s of one thread's [512, 256] x [256, 256] products over about a second.
double gemm_gflops() {
  torch::NoGradGuard ng;
  at::set_num_threads(1);
  auto x = torch::randn({512, 256}), w = torch::randn({256, 256}), out = torch::mm(x, w);
  for (int i = 0; i < 50; ++i) torch::mm_out(out, x, w);
  int64_t n = 0;
  const auto start = Clock::now();
  while (ms_since(start) < 1000) {
    for (int i = 0; i < 100; ++i) torch::mm_out(out, x, w);
    n += 100;
  }
  return 2.0 * 512 * 256 * 256 * static_cast<double>(n) / (ms_since(start) * 1e-3) * 1e-9;
}

/// A worker: warm up, time `steps` steps, then time bare all-reduces of a buffer of the gradient's size.
int worker(const Args& a) {
  if (a.worker == "gemm") {
    std::printf("measured %.6f 0 0 0\n", gemm_gflops());
    std::fflush(stdout);
    return 0;
  }
  const auto& all = known_configs();
  const Config c = *std::find_if(all.begin(), all.end(), [&](const Config& k) { return k.name == a.worker; });
  gm::dist::Group group(gm::dist::environment(), std::chrono::seconds(120));
  const bool silent = a.silent_rank >= 0;
  AnyStep step(c, 1, a.threads);
  double comm = 0;
  int64_t params = 0;
  step.visit([&](auto& trainer) {
    for (const auto& p : trainer.net()->parameters()) params += p.numel();
    auto dp = gm::dist::data_parallel(group);
    if (silent) {  // this rank's shard of the step, with collectives that do nothing
      dp = {a.silent_rank, a.silent_world, [](torch::Tensor&) {}, [](torch::Tensor&) {}};
    }
    auto reduce = dp.all_reduce_sum;
    dp.all_reduce_sum = [&comm, reduce](torch::Tensor& t) {
      const auto start = Clock::now();
      reduce(t);
      comm += ms_since(start);
    };
    trainer.set_data_parallel(dp);
  });
  step.run(std::max<int64_t>(2, a.steps / 10));  // warm-up: allocator, thread pools, connections
  group.barrier();
  comm = 0;
  Measured m;
  m.step_ms = step.run(a.steps);
  m.comm_ms = comm / static_cast<double>(a.steps);
  m.params = params;
  if (group.distributed()) {
    auto buf = torch::ones({params});
    std::vector<double> t;
    for (int i = 0; i < 21; ++i) {
      group.barrier();
      const auto start = Clock::now();
      group.all_reduce_sum(buf);
      t.push_back(ms_since(start));
    }
    m.allreduce_ms = median(t);
  }
  std::printf("measured %.6f %.6f %.6f %lld\n", m.step_ms, m.comm_ms, m.allreduce_ms, static_cast<long long>(m.params));
  std::fflush(stdout);
  return 0;
}

/// One layout: `ranks` processes of `threads` threads each; `talk`: whether the ranks all-reduce (without,
/// each computes its shard alone: the compute part of the data-parallel step, run concurrently).
struct Layout {
  std::string name;
  int ranks, threads;
  bool talk = true;
};
const std::vector<Layout> kLayouts = {
    {"1 x 1", 1, 1}, {"1 x 2", 1, 2}, {"2 x 1", 2, 1}, {"2 x 1 no collectives", 2, 1, false}};

/// Run one layout of configuration `c` for `steps` steps; rank 0's measurements.
Measured run_layout(const std::string& what, const Layout& l, int64_t steps, int port) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) throw gm::Error("bench_dist: cannot find its own executable");
  self[n] = '\0';
  std::vector<std::unique_ptr<Child>> ranks;
  for (int r = 0; r < l.ranks; ++r) {
    // OpenBLAS keeps a thread pool of its own; sized like torch's here, so a layout uses `threads` cores
    // per process (left to itself, it takes every core in every process, and 1 x 2 runs 3x slower).
    std::vector<std::string> env = {"OMP_NUM_THREADS=" + std::to_string(l.threads),
                                    "OPENBLAS_NUM_THREADS=" + std::to_string(l.threads)};
    std::vector<std::string> argv = {self, "--worker", what, "--threads", std::to_string(l.threads), "--steps",
                                     std::to_string(steps)};
    if (!l.talk) argv.insert(argv.end(), {"--silent-rank", std::to_string(r), "--silent-world", std::to_string(l.ranks)});
    if (l.ranks > 1 && l.talk) {
      env.insert(env.end(), {"RANK=" + std::to_string(r), "WORLD_SIZE=" + std::to_string(l.ranks), "LOCAL_RANK=" +
                             std::to_string(r), "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)});
    } else {
      env.insert(env.end(), {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID",
                             "SLURM_NTASKS", "SLURM_LOCALID"});
    }
    ranks.push_back(std::make_unique<Child>(argv, env, "bench_dist"));
  }
  Measured m;
  for (int r = 0; r < l.ranks; ++r) {
    std::istringstream in(ranks[r]->receive(what + " " + l.name));
    std::string tag;
    Measured got;
    long long params = 0;
    in >> tag >> got.step_ms >> got.comm_ms >> got.allreduce_ms >> params;
    if (tag != "measured") throw gm::Error("bench_dist: unexpected reply from a worker");
    got.params = params;
    if (r == 0) m = got;
  }
  return m;
}

struct Row {
  Config config;
  Layout layout;
  int64_t steps;
  Measured m;          // medians over the rounds
  double speedup = 1;  // 1 x 1's ms / this layout's ms, median over the rounds
};

std::vector<Row> bench(const Args& a, const Config& c, int& port) {
  // Steps per timing: about --seconds of the 1 x 1 layout, from a short probe.
  const Measured probe = run_layout(c.name, kLayouts[0], a.min_steps, port++);
  const auto steps = std::max<int64_t>(a.min_steps, static_cast<int64_t>(a.seconds * 1000 / probe.step_ms));
  std::map<std::string, std::vector<Measured>> got;
  std::map<std::string, std::vector<double>> speedup;
  for (int64_t round = 0; round < a.rounds; ++round) {
    std::map<std::string, double> ms;
    for (size_t i = 0; i < kLayouts.size(); ++i) {
      const auto& l = kLayouts[(i + static_cast<size_t>(round)) % kLayouts.size()];  // rotate the order
      const Measured m = run_layout(c.name, l, steps, port++);
      got[l.name].push_back(m);
      ms[l.name] = m.step_ms;
      std::fprintf(stderr, "bench_dist: %s %s round %lld: %.3f ms/step, %.3f ms in collectives\n", c.name.c_str(),
                   l.name.c_str(), static_cast<long long>(round + 1), m.step_ms, m.comm_ms);
    }
    for (const auto& l : kLayouts) speedup[l.name].push_back(ms["1 x 1"] / ms[l.name]);
  }
  std::vector<Row> rows;
  for (const auto& l : kLayouts) {
    Row r{c, l, steps, {}, median(speedup[l.name])};
    std::vector<double> step, comm, ar;
    for (const auto& m : got[l.name]) step.push_back(m.step_ms), comm.push_back(m.comm_ms), ar.push_back(m.allreduce_ms);
    r.m = {median(step), median(comm), median(ar), got[l.name].front().params};
    rows.push_back(r);
  }
  return rows;
}

/// What the cores give: one-thread GEMM GFLOP/s of one process alone, and of each of two at once.
struct Cores {
  double alone = 0, each_of_two = 0;
};
Cores measure_cores(int& port) {
  return {run_layout("gemm", kLayouts[0], 0, port++).step_ms,
          run_layout("gemm", {"2 x 1 no collectives", 2, 1, false}, 0, port++).step_ms};
}

void report(const Args& a, const std::vector<Row>& rows, const Cores& cores) {
  std::ostringstream md;
  md << "Cores: a one-thread fp32 GEMM ([512, 256] x [256, 256]) runs at " << fmt("%.0f", cores.alone)
     << " GFLOP/s alone and " << fmt("%.0f", cores.each_of_two) << " GFLOP/s in each of two processes at once ("
     << fmt("%.2f", 2 * cores.each_of_two / cores.alone) << "x the one).\n\n";
  md << "| config | params | global batch | layout (ranks x threads) | ms/step | samples/s | speed-up vs 1 x 1 | "
        "in collectives | bare all-reduce ms |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    const bool dp = r.layout.ranks > 1 && r.layout.talk;
    md << "| " << r.config.name << " | " << r.m.params << " | " << r.config.batch << " | " << r.layout.name << " | "
       << fmt("%.2f", r.m.step_ms) << " | " << fmt("%.0f", 1000.0 * static_cast<double>(r.config.batch) / r.m.step_ms)
       << " | " << fmt("%.2fx", r.speedup) << " | "
       << (dp ? fmt("%.1f%%", 100 * r.m.comm_ms / r.m.step_ms) + " (" + fmt("%.2f ms", r.m.comm_ms) + ")" : "-")
       << " | " << (dp ? fmt("%.3f", r.m.allreduce_ms) : "-") << " |\n";
  }
  md << "\nMedians of " << a.rounds << " rounds; layouts alternate within a round.  \"in collectives\": time inside "
        "the gradient and loss all-reduces per step, waiting for the slower rank included; \"bare all-reduce\": "
        "one all-reduce of a buffer the size of the gradient, ranks in step; \"no collectives\": each rank computes "
        "its half of the step at the same time as the other, and nothing is exchanged (the compute the cores give "
        "a data-parallel step).\n";
  std::printf("%s", md.str().c_str());
  const std::filesystem::path out(a.out);
  std::filesystem::create_directories(out);
  std::ofstream(out / "results.md") << md.str();
  std::ofstream csv(out / "results.csv");
  csv << "config,params,batch,ranks,threads,collectives,steps,rounds,ms_per_step,samples_per_s,speedup,comm_ms,comm_share,"
         "allreduce_ms\n";
  for (const auto& r : rows) {
    csv << r.config.name << ',' << r.m.params << ',' << r.config.batch << ',' << r.layout.ranks << ','
        << r.layout.threads << ',' << (r.layout.talk ? 1 : 0) << ',' << r.steps << ',' << a.rounds << ',' << fmt("%.4f", r.m.step_ms) << ','
        << fmt("%.1f", 1000.0 * static_cast<double>(r.config.batch) / r.m.step_ms) << ',' << fmt("%.4f", r.speedup)
        << ',' << fmt("%.4f", r.m.comm_ms) << ',' << fmt("%.4f", r.m.comm_ms / r.m.step_ms) << ','
        << fmt("%.4f", r.m.allreduce_ms) << '\n';
  }
  std::fprintf(stderr, "bench_dist: wrote %s/results.md and results.csv\n", a.out.c_str());
}

/// --data-prep: a rank's batch preparation, the whole batch against its half, alternating rounds (the best of
/// 5 batches each); prints a Markdown table.
int data_prep(const Args& a) {
  at::set_num_threads(1);
  gm::data::ImageSet set;
  set.images = torch::randint(0, 256, {4096, 3, 32, 32}, gm::make_generator(1), torch::kInt64).to(torch::kUInt8);
  set.labels = torch::zeros({4096}, torch::kInt64);
  set.num_classes = 10;
  set.source = "random";
  const int64_t n = 512;
  const auto half = torch::arange(0, n / 2, torch::kInt64);  // rank 0 of 2, accumulate 1
  std::printf("| data.augment | whole batch of %lld (ms) | one rank's half (ms) | ratio |\n|---|---|---|---|\n", (long long)n);
  for (const double p : {0.0, 0.12, 1.0}) {
    gm::data::ImageData data(set, gm::data::ImageData::Options().hflip(true).dequantize(true).augment(p).seed(2));
    auto gen = gm::make_generator(3);
    auto best = [&](const torch::Tensor& rows) {
      double ms = 1e300;
      for (int64_t b = 0; b < 5; ++b) {
        const auto t0 = Clock::now();
        (void)data.batch(b, n, gen, rows);
        ms = std::min(ms, ms_since(t0));
      }
      return ms;
    };
    std::vector<double> whole, mine;
    for (int64_t r = 0; r < a.rounds; ++r) whole.push_back(best({})), mine.push_back(best(half));
    const double w = median(whole), m = median(mine);
    std::printf("| %.2f | %.1f | %.1f | %.2fx |\n", p, w, m, w / m);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::string names;
  for (const auto& c : known_configs()) names += (names.empty() ? "" : ", ") + c.name;
  CLI::App app{"Data-parallel layouts of one training step (1 x 1, 1 x 2, 2 x 1 ranks x threads), alternating."};
  app.add_option("--configs", a.configs, "configurations, comma-separated: " + names)->delimiter(',');
  app.add_option("--rounds", a.rounds, "alternating rounds")->check(CLI::Range(int64_t{1}, int64_t{100}));
  app.add_option("--seconds", a.seconds, "timed seconds per layout and round")->check(CLI::Range(0.01, 600.0));
  app.add_option("--min-steps", a.min_steps, "at least this many timed steps")->check(CLI::Range(int64_t{1}, int64_t{100000}));
  app.add_option("--out", a.out, "folder for results.md and results.csv");
  app.add_flag("--force", a.force, "overwrite results already in --out");
  app.add_flag("--data-prep", a.data_prep, "time a rank's image batch preparation, whole batch against its half, instead");
  app.add_option("--worker", a.worker, "(internal) run one process of a layout")->group("");
  app.add_option("--threads", a.threads, "(internal) a worker's threads")->group("");
  app.add_option("--steps", a.steps, "(internal) a worker's timed steps")->group("");
  app.add_option("--silent-rank", a.silent_rank, "(internal) a worker's shard, without collectives")->group("");
  app.add_option("--silent-world", a.silent_world, "(internal) the shards of a layout without collectives")->group("");
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  signal(SIGPIPE, SIG_IGN);
  try {
    if (!a.worker.empty()) return worker(a);
    if (a.data_prep) return data_prep(a);
    std::vector<Config> chosen;
    for (const auto& n : a.configs) {
      auto it = std::find_if(known_configs().begin(), known_configs().end(), [&](const Config& c) { return c.name == n; });
      if (it == known_configs().end()) throw gm::Error("bench_dist: unknown config '" + n + "' (known: " + names + ")");
      chosen.push_back(*it);
    }
    if (!a.force && std::filesystem::exists(std::filesystem::path(a.out) / "results.csv")) {
      throw gm::Error("bench_dist: " + a.out + "/results.csv exists; pass --force to overwrite or choose another --out");
    }
    int port = 21000 + static_cast<int>(getpid() % 20000);
    const Cores cores = measure_cores(port);
    std::vector<Row> rows;
    for (const auto& c : chosen) {
      auto r = bench(a, c, port);
      rows.insert(rows.end(), r.begin(), r.end());
    }
    report(a, rows, cores);
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_dist: %s\n", e.what());
    return 1;
  }
  return 0;
}
