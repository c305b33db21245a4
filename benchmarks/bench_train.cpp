// bench_train: gm's training step against the same step written in Python PyTorch, side by side.
//
// For each configuration it builds gm's Trainer (rectified flow: Linear interpolant, velocity prediction,
// MLP with raw time, Adam; or the UNet and DiT of the image examples) and starts benchmarks/python/train_mlp.py
// (train_image.py) with the same network, loss, optimiser, batch, precision and thread count on the PyTorch of
// scripts/setup.sh's environment (the same LibTorch gm links), three times: eager as written, eager with gm's
// process settings (Python*), and under torch.compile (inductor).  After a warm-up (which compiles) it
// alternates blocks of steps, gm then each Python, for --rounds rounds, and reports the medians of ms/step and
// of the per-round ratios, and GFLOP/s of the step's matrix products against a plain GEMM of the same
// shape (fp32, and bf16 for bf16 rows) timed in the same run.  With --loss-steps N it also trains gm in fp32
// and in bf16 from the same seed on the checkerboard for N steps and compares the final losses.
//
// Markdown on stdout; results.md and results.csv in --out, rewritten after each configuration (a run cut off
// keeps the rows it finished).  A torch.compile baseline that fails (a missing compiler or Python.h on the
// machine) leaves its columns empty with the reason under the table; a configuration that fails is named
// there and the exit code is 1; the others still run.
//
//   bench_train --configs flow_2d,overhead,compute,compute_bf16 --rounds 7 --loss-steps 2000

#include "bench_nets.hpp"

#include <gm/data/images.hpp>
#include <gm/data/toy2d.hpp>
#include <gm/io/cli.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/unet.hpp>
#include <gm/process/linear.hpp>
#include <gm/trainer.hpp>

#include <torch/cuda.h>
#include <torch/version.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>


namespace {

using gm::bench::AnyStep;
using gm::bench::Child;
using gm::bench::Config;
using gm::bench::GmStep;
using gm::bench::image_options;
using gm::bench::known_configs;
using gm::bench::UNetFlow;
using gm::bench::bench_unet;
using gm::bench::Clock;
using gm::bench::fmt;
using gm::bench::median;
using gm::bench::ms_since;

struct Args {
  std::vector<std::string> configs{"flow_2d", "overhead", "compute", "compute_bf16"};
  int64_t rounds = 7;
  double block_seconds = 0.5;
  int64_t threads = 0;  // 0: each side chooses per precision, as gm::configure_threads does
  int64_t loss_steps = 2000;
  std::string python = gm::bench::python();
  std::string script = std::string(gm::bench::source_dir()) + "/benchmarks/python/train_mlp.py";
  std::string image_script = std::string(gm::bench::source_dir()) + "/benchmarks/python/train_image.py";
  int64_t image_loss_steps = 0;
  std::string out = "runs/bench_train";
  bool force = false;
  bool compiled = true;        // also time the Python step under torch.compile
  std::string device = "cpu";  // both sides run here
};


/// The environment changes for a Python baseline (see Python).
std::vector<std::string> python_env(bool as_gm) {
  if (as_gm) return {"GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=536870912"};
  if (gm::detail::avx512_opted_in) return {"ATEN_CPU_CAPABILITY"};  // gm set it in this process, not the user
  return {};
}

/// Threads for a configuration: --threads, else every core for the image networks (whose convolutions run
/// on the intra-op pool in either precision), else 0 (each side chooses per precision).
int64_t image_threads(const Args& a, const Config& c) {
  if (a.threads > 0 || c.net == "mlp") return a.threads;
  return static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
}

/// How a Python baseline runs.
enum class PyMode {
  eager,     ///< as a researcher runs it
  tuned,     ///< with the process settings gm makes (glibc tunables equal to gm::keep_freed_memory, AVX-512)
  compiled,  ///< the network under torch.compile (inductor)
};

/// The Python baseline for one configuration, as a server.
class Python {
 public:
  Python(const Args& a, const Config& c, PyMode mode) : child_(command(a, c, mode), python_env(mode == PyMode::tuned)) {
    std::istringstream in(child_.receive("start-up"));
    std::string tag;
    in >> tag >> threads;
    if (tag != "ready") throw gm::Error("bench_train: the Python baseline did not start");
  }
  int threads = 0;  ///< the intra-op threads it runs with
  /// Milliseconds per step over n steps, timed inside Python (start-up and the pipe excluded).
  double run(int64_t n) {
    child_.send("run " + std::to_string(n));
    std::istringstream in(child_.receive("a run"));
    std::string tag;
    double ms = 0;
    in >> tag >> ms;
    if (tag != "ms") throw gm::Error("bench_train: unexpected reply from the Python baseline");
    return ms / static_cast<double>(n);
  }

 private:
  static std::vector<std::string> command(const Args& a, const Config& c, PyMode mode) {
    std::vector<std::string> cmd =
        c.net == "mlp"
            ? std::vector<std::string>{a.python, a.script, "--batch", std::to_string(c.batch), "--hidden",
                                       std::to_string(c.hidden), "--layers", std::to_string(c.layers), "--lr",
                                       std::to_string(c.lr), "--clip", std::to_string(c.clip), "--ema",
                                       std::to_string(c.ema), "--precision", c.python_precision, "--threads",
                                       std::to_string(image_threads(a, c))}
            : std::vector<std::string>{a.python, a.image_script, "--net", c.net, "--batch", std::to_string(c.batch),
                                       "--lr", std::to_string(c.lr), "--precision", c.python_precision,
                                       "--threads", std::to_string(image_threads(a, c))};
    if (c.net == "dit") cmd.insert(cmd.end(), {"--hidden", std::to_string(c.hidden), "--depth", std::to_string(c.layers)});
    cmd.insert(cmd.end(), {"--device", c.device});
    if (mode == PyMode::compiled) cmd.push_back("--compile");
    return cmd;
  }
  Child child_;
};

/// Floating-point operations of one training step's matrix products: forward 2 B in out per layer, and
/// backward twice that, except the first layer, whose input needs no gradient.
double step_flops(const Config& c) {
  const double b = static_cast<double>(c.batch);
  double flops = 0, in = 3;  // [x, t]
  for (int64_t i = 0; i <= c.layers; ++i) {
    const double out = i == c.layers ? 2.0 : static_cast<double>(c.hidden);
    flops += 2 * b * in * out * (i == 0 ? 2 : 3);
    in = out;
  }
  return flops;
}

/// GFLOP/s of a [batch, hidden] x [hidden, hidden] product in `dtype`, the best of several timings.
double gemm_gflops(const Config& c, torch::ScalarType dtype) {
  torch::NoGradGuard ng;
  auto a = torch::randn({c.batch, c.hidden}).to(dtype), b = torch::randn({c.hidden, c.hidden}).to(dtype);
  auto out = torch::mm(a, b);
  const double flops = 2.0 * static_cast<double>(c.batch * c.hidden * c.hidden);
  int64_t reps = 1;
  double best = 1e300;
  for (int trial = 0; trial < 5; ++trial) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < reps; ++i) torch::mm_out(out, a, b);
    const double s = ms_since(start) * 1e-3;
    best = std::min(best, s / static_cast<double>(reps));
    if (s < 0.05) reps *= 4;
  }
  return flops / best * 1e-9;
}

/// torch's intra-op thread count at start-up, restored before each configuration.
int default_threads() {
  static const int n = torch::get_num_threads();
  return n;
}

struct Result {
  Config config;
  int64_t steps_per_block = 0;
  int gm_threads = 0, py_threads = 0;
  double gm_ms = 0, py_ms = 0, py_tuned_ms = 0, ratio = 0, ratio_tuned = 0, ratio_min = 0, ratio_max = 0, gm_gflops = 0,
         py_gflops = 0, gemm_gflops = 0;
  double py_compiled_ms = 0, ratio_compiled = 0;  // 0: not measured (--no-compiled, or it failed)
  std::string compiled_error{};                     // why the torch.compile baseline failed, if it did
};

Result bench(const Args& a, const Config& c) {
  std::fprintf(stderr, "bench_train: %s: batch %ld, hidden %ld, layers %ld, gm %s, Python %s\n", c.name.c_str(),
               static_cast<long>(c.batch), static_cast<long>(c.hidden), static_cast<long>(c.layers),
               c.precision.c_str(), c.python_precision.c_str());
  torch::set_num_threads(default_threads());
  AnyStep gm_step(c, 0, image_threads(a, c));
  Python py(a, c, PyMode::eager), py_tuned(a, c, PyMode::tuned);
  std::optional<Python> py_compiled;
  std::string compiled_error;
  // torch.compile needs more of the machine than eager PyTorch does (a C++ compiler, Python's headers,
  // Triton on a GPU): where it fails, the row goes on without it and says why.
  auto compiled = [&](auto&& f) {
    if (!a.compiled || !compiled_error.empty()) return;  // not asked for, or failed already
    try {
      f();
    } catch (const std::exception& e) {
      compiled_error = gm::first_line(e.what());
      py_compiled.reset();
      std::fprintf(stderr, "bench_train: %s: the torch.compile baseline failed (%s); its columns stay empty\n",
                   c.name.c_str(), compiled_error.c_str());
    }
  };
  compiled([&] { py_compiled.emplace(a, c, PyMode::compiled); });
  // Warm up all (allocator, thread pools, first-touch of the weights, torch.compile's compilation), then size
  // the blocks.
  double warm = std::max({gm_step.run(5), py.run(5), py_tuned.run(5)});
  compiled([&] {
    py_compiled->run(3);  // compiles forward and backward
    warm = std::max(warm, py_compiled->run(5));
  });
  const int64_t n = std::max<int64_t>(3, static_cast<int64_t>(a.block_seconds * 1e3 / warm));
  std::vector<double> g, p, pt, pc, r, rt, rc;
  for (int64_t i = 0; i < a.rounds; ++i) {
    g.push_back(gm_step.run(n));
    p.push_back(py.run(n));
    pt.push_back(py_tuned.run(n));
    r.push_back(g.back() / p.back());
    rt.push_back(g.back() / pt.back());
    compiled([&] {
      pc.push_back(py_compiled->run(n));
      rc.push_back(g.back() / pc.back());
    });
  }
  Result res{c};
  res.gm_threads = torch::get_num_threads();
  res.py_threads = py.threads;
  res.steps_per_block = n;
  res.gm_ms = median(g);
  res.py_ms = median(p);
  res.ratio = median(r);
  res.py_tuned_ms = median(pt);
  res.ratio_tuned = median(rt);
  res.ratio_min = *std::min_element(r.begin(), r.end());
  res.ratio_max = *std::max_element(r.begin(), r.end());
  if (py_compiled) {
    res.py_compiled_ms = median(pc);
    res.ratio_compiled = median(rc);
  }
  res.compiled_error = compiled_error;
  if (c.net == "mlp") {  // the MLP's products are counted exactly; the image networks' are not counted
    const double flops = step_flops(c);
    res.gm_gflops = flops / res.gm_ms * 1e-6;
    res.py_gflops = flops / res.py_ms * 1e-6;
    res.gemm_gflops = gemm_gflops(c, c.precision == "bf16" ? torch::kBFloat16 : torch::kFloat32);
  }
  return res;
}

struct LossCheck {
  int64_t steps = 0;
  double fp32 = 0, bf16 = 0;
};

/// The mean loss of the last 10% of `steps` calls of `step(i)` (a StepStats), for both precisions of a check.
template <class Step>
double tail_loss(int64_t steps, Step&& step) {
  double sum = 0;
  int64_t count = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const gm::StepStats stats = step(i);
    if (i >= steps - std::max<int64_t>(1, steps / 10)) {
      sum += stats.loss;
      ++count;
    }
  }
  return sum / static_cast<double>(count);
}

/// Train fp32 and bf16 from the same seed on the checkerboard; the mean loss of the last 10% of steps.
LossCheck loss_check(const Args& a) {
  const Config c{"loss", 4096, 512, 4};
  LossCheck out{a.loss_steps};
  for (const std::string precision : {"fp32", "bf16"}) {
    Config cc = c;
    cc.precision = precision;
    torch::set_num_threads(default_threads());
    GmStep s(cc, 1, a.threads);
    auto gen = gm::make_generator(2);
    const double loss = tail_loss(a.loss_steps, [&](int64_t) { return s.trainer.train_step(gm::data::checkerboard(c.batch, gen)); });
    (precision == "fp32" ? out.fp32 : out.bf16) = loss;
    std::fprintf(stderr, "bench_train: loss check %s: %.5f\n", precision.c_str(), loss);
  }
  return out;
}

/// Train fashion_mnist's UNet in fp32 and in bf16 from the same seed on Fashion-MNIST (class-conditional
/// rectified flow, the example's batch and optimiser) for N steps; the mean loss of the last 10% of steps.
LossCheck image_loss_check(const Args& a) {
  LossCheck out{a.image_loss_steps};
  const Config c = *std::find_if(known_configs().begin(), known_configs().end(), [](const Config& k) { return k.name == "unet"; });
  auto set = gm::data::read_mnist("/usr/share/datasets/fashion-mnist", "train");
  for (const std::string precision : {"fp32", "bf16"}) {
    Config cc = c;
    cc.precision = precision;
    torch::manual_seed(1);
    UNetFlow trainer(bench_unet(cc), image_options(cc, 1, image_threads(a, cc)));
    gm::data::ImageData data(set, gm::data::ImageData::Options().seed(1));
    const double loss = tail_loss(a.image_loss_steps, [&](int64_t i) { return trainer.train_step(data.batch(i, c.batch, trainer.generator())); });
    (precision == "fp32" ? out.fp32 : out.bf16) = loss;
    std::fprintf(stderr, "bench_train: UNet loss check %s: %.5f\n", precision.c_str(), loss);
  }
  return out;
}

/// GFLOP/s, or "-" where not counted (the image networks).
std::string gflops(double g) { return g > 0 ? fmt("%.1f", g) : "-"; }
/// A measured number, or "-" where not measured.
std::string measured(double v) { return v > 0 ? fmt("%.2f", v) : "-"; }

/// Writes results.md and results.csv for the rows so far, and prints the table when `print`; `failed` names the
/// configurations that failed, with why.
void report(const Args& a, const std::vector<Result>& rows, const LossCheck& lc, const LossCheck& ilc,
            const std::vector<std::string>& failed, bool print) {
  std::ostringstream md;
  md << "| config | batch | hidden | layers | gm precision | Python precision | threads gm / Py | gm ms/step | "
        "Python ms/step | gm / Python (min-max) | Python* ms/step | gm / Python* | compiled ms/step | gm / compiled | "
        "gm GFLOP/s | Python GFLOP/s | GEMM GFLOP/s |\n"
     << "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    const auto& c = r.config;
    md << "| " << c.name << " | " << c.batch << " | " << c.hidden << " | " << c.layers << " | " << c.precision << " | "
       << c.python_precision << " | " << r.gm_threads << " / " << r.py_threads << " | " << fmt("%.2f", r.gm_ms) << " | "
       << fmt("%.2f", r.py_ms) << " | " << fmt("%.2f", r.ratio) << " (" << fmt("%.2f", r.ratio_min) << "-"
       << fmt("%.2f", r.ratio_max) << ") | " << fmt("%.2f", r.py_tuned_ms) << " | " << fmt("%.2f", r.ratio_tuned)
       << " | " << measured(r.py_compiled_ms) << " | " << measured(r.ratio_compiled) << " | " << gflops(r.gm_gflops) << " | " << gflops(r.py_gflops) << " | " << gflops(r.gemm_gflops) << " |\n";
  }
  md << "\n"
     << a.rounds
     << " alternating rounds per config on " << a.device << ", torch " << TORCH_VERSION << "; medians.  \"compiled\" is "
        "the Python step with the network under torch.compile (inductor).  GFLOP/s counts the matrix products of the "
        "step only (MLP rows); the GEMM is [batch, hidden] x [hidden, hidden] in gm's precision.  For unet rows "
        "hidden is the first level's channels and layers the residual blocks per level; for dit rows the width "
        "and depth.  Python* is the same script "
        "with the process settings gm makes: glibc's malloc tuned as gm tunes it (GLIBC_TUNABLES mmap_threshold "
        "256 MiB, trim_threshold 512 MiB)"
     << (gm::detail::avx512_opted_in ? " and ATEN_CPU_CAPABILITY=avx512" : "") << ".\n";
  for (const auto& r : rows) {
    if (!r.compiled_error.empty()) md << "\n" << r.config.name << ": the torch.compile baseline failed: " << r.compiled_error << "\n";
  }
  for (const auto& f : failed) md << "\nFAILED " << f << "\n";
  if (lc.steps > 0) {
    md << "\nbf16 loss check (batch 4096, hidden 512, 4 layers, checkerboard, " << lc.steps
       << " steps, mean of the last 10%): fp32 " << fmt("%.5f", lc.fp32) << ", bf16 " << fmt("%.5f", lc.bf16)
       << ", relative difference " << fmt("%.2f%%", 100 * (lc.bf16 - lc.fp32) / lc.fp32) << "\n";
  }
  if (ilc.steps > 0) {
    md << "\nUNet bf16 loss check (fashion_mnist's UNet and batch on Fashion-MNIST, " << ilc.steps
       << " steps, mean of the last 10%): fp32 " << fmt("%.5f", ilc.fp32) << ", bf16 " << fmt("%.5f", ilc.bf16)
       << ", relative difference " << fmt("%.2f%%", 100 * (ilc.bf16 - ilc.fp32) / ilc.fp32) << "\n";
  }
  if (print) std::printf("%s", md.str().c_str());
  const std::filesystem::path out(a.out);
  std::filesystem::create_directories(out);
  std::ofstream(out / "results.md") << md.str();
  std::ofstream csv(out / "results.csv");
  csv << "config,batch,hidden,layers,gm_precision,python_precision,gm_threads,python_threads,steps_per_block,rounds,gm_"
         "ms,python_ms,ratio,"
         "ratio_min,ratio_max,python_tuned_malloc_ms,ratio_tuned_malloc,python_compiled_ms,ratio_compiled,gm_gflops,"
         "python_gflops,gemm_gflops,device\n";
  for (const auto& r : rows) {
    const auto& c = r.config;
    csv << c.name << ',' << c.batch << ',' << c.hidden << ',' << c.layers << ',' << c.precision << ','
        << c.python_precision << ',' << r.gm_threads << ',' << r.py_threads << ',' << r.steps_per_block << ','
        << a.rounds << ',' << fmt("%.4f", r.gm_ms) << ',' << fmt("%.4f", r.py_ms) << ',' << fmt("%.4f", r.ratio) << ','
        << fmt("%.4f", r.ratio_min) << ',' << fmt("%.4f", r.ratio_max) << ',' << fmt("%.4f", r.py_tuned_ms) << ','
        << fmt("%.4f", r.ratio_tuned) << ',' << fmt("%.4f", r.py_compiled_ms) << ',' << fmt("%.4f", r.ratio_compiled)
        << ',' << fmt("%.2f", r.gm_gflops) << ',' << fmt("%.2f", r.py_gflops) << ',' << fmt("%.2f", r.gemm_gflops) << ','
        << a.device << '\n';
  }
  if (lc.steps > 0) {
    std::ofstream(out / "loss_check.csv")
        << "steps,fp32_loss,bf16_loss\n"
        << lc.steps << ',' << fmt("%.6f", lc.fp32) << ',' << fmt("%.6f", lc.bf16) << '\n';
  }
  if (print) std::fprintf(stderr, "bench_train: wrote %s/results.md and results.csv\n", a.out.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::string names;
  for (const auto& c : known_configs()) names += (names.empty() ? "" : ", ") + c.name;
  CLI::App app{"gm's training step against the same step in Python PyTorch, alternating, in one run."};
  app.add_option("--configs", a.configs, "configurations, comma-separated: " + names)->delimiter(',');
  app.add_option("--rounds", a.rounds, "alternating rounds per configuration")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}));
  app.add_option("--block-seconds", a.block_seconds, "approximate length of one block of steps")
      ->check(CLI::Range(0.01, 600.0));
  app.add_option("--threads", a.threads,
                 "intra-op threads for both; 0: each chooses per precision (fp32: torch's "
                 "default, bf16: every core)")
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  app.add_option("--loss-steps", a.loss_steps, "steps of the bf16-vs-fp32 loss check (0: skip it)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  app.add_option("--image-loss-steps", a.image_loss_steps,
                 "steps of the UNet's bf16-vs-fp32 loss check on Fashion-MNIST (0: skip it)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  app.add_option("--python", a.python, "Python interpreter with torch (default: scripts/setup.sh's environment)");
  app.add_flag("!--no-compiled", a.compiled, "skip the torch.compile baseline (its compilation takes a minute or more)");
  app.add_option("--device", a.device, "cpu or cuda[:N]: where both sides train");
  app.add_option("--script", a.script, "the baseline script");
  app.add_option("--out", a.out, "folder for results.md and results.csv");
  app.add_flag("--force", a.force, "overwrite results already in --out");
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  signal(SIGPIPE, SIG_IGN);
  try {
    std::vector<Config> chosen;
    for (const auto& n : a.configs) {
      auto it =
          std::find_if(known_configs().begin(), known_configs().end(), [&](const Config& c) { return c.name == n; });
      if (it == known_configs().end())
        throw gm::Error("bench_train: unknown config '" + n + "' (known: " + names + ")");
      chosen.push_back(*it);
      chosen.back().device = a.device;
    }
    try {
      const torch::Device d(a.device);
      if (d.is_cuda() && !torch::cuda::is_available()) throw gm::Error("bench_train: --device " + a.device + ": no CUDA device is visible");
      if (!d.is_cuda() && !d.is_cpu()) throw gm::Error("bench_train: --device " + a.device + ": expected cpu or cuda[:N]");
    } catch (const c10::Error&) {
      throw gm::Error("bench_train: --device " + a.device + ": not a device");
    }
    if (access(a.python.c_str(), X_OK) != 0) throw gm::Error("bench_train: --python " + a.python + ": not executable");
    if (!std::filesystem::is_regular_file(a.script))
      throw gm::Error("bench_train: --script " + a.script + ": no such file");
    if (!a.force && std::filesystem::exists(std::filesystem::path(a.out) / "results.csv")) {
      throw gm::Error("bench_train: " + a.out +
                      "/results.csv exists; pass --force to overwrite or choose another --out");
    }
    default_threads();
    std::vector<Result> rows;
    std::vector<std::string> failed;
    for (const auto& c : chosen) {
      try {
        rows.push_back(bench(a, c));
      } catch (const std::exception& e) {  // an error of this configuration (out of memory, a baseline that died)
        failed.push_back(c.name + ": " + gm::first_line(e.what()));
        std::fprintf(stderr, "bench_train: FAILED %s\n", failed.back().c_str());
      }
      report(a, rows, {}, {}, failed, /*print=*/false);  // on disk as it goes: a run cut off keeps its rows
    }
    const LossCheck lc = a.loss_steps > 0 ? loss_check(a) : LossCheck{};
    const LossCheck ilc = a.image_loss_steps > 0 ? image_loss_check(a) : LossCheck{};
    report(a, rows, lc, ilc, failed, /*print=*/true);
    if (!failed.empty()) return 1;
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
