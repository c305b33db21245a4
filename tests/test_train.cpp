// Training: toy data, the MLP, LR schedules, EMA, the Trainer and its callbacks, .npy output.
#include "helpers.hpp"
#include "zero_mlp.hpp"

#include <gm/trainer.hpp>

#include <torch/nn/functional/linear.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numbers>
#include <numeric>
#include <sstream>

#include <unistd.h>

using gm::test::max_abs;

namespace {
using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

struct MisspeltHook {  // on_step_ended is not a hook: rejected instead of silently never called
  template <class T>
  void on_step_ended(T&, const gm::StepStats&) {}
};
struct StopAt {
  int64_t at;
  template <class T>
  bool on_step_end(T&, const gm::StepStats& s) { return s.step >= at; }
};
struct CountHooks {
  int begin = 0, steps = 0, end = 0;
  template <class T> void on_train_begin(T&) { ++begin; }
  template <class T> void on_step_end(T&, const gm::StepStats&) { ++steps; }
  template <class T> void on_train_end(T&) { ++end; }
};
struct RecordLoss {
  std::vector<double>* out;
  template <class T> void on_step_end(T&, const gm::StepStats& s) { out->push_back(s.loss); }
};
struct MonotoneGamma {  // checks every 25 steps that a learned gamma is strictly increasing on `grid`
  gm::LearnedSchedule s;
  torch::Tensor grid;
  int64_t* checked;
  bool* ok;
  template <class T>
  void on_step_end(T&, const gm::StepStats& st) {
    if (st.step % 25) return;
    torch::NoGradGuard ng;
    auto g = s.gamma(grid);
    *ok = *ok && (g.slice(0, 1) > g.slice(0, 0, -1)).all().item<bool>();
    ++*checked;
  }
};
static_assert(!gm::Callback<MisspeltHook, Flow>);
static_assert(gm::Callback<StopAt, Flow> && gm::Callback<CountHooks, Flow> && gm::Callback<gm::EMA, Flow>);
static_assert(gm::Network<gm::MLP> && !gm::Network<int>);
}  // namespace

TEST_CASE("2-D toys: shapes, and the checkerboard's support test") {
  auto gen = gm::make_generator(1);
  auto cb = gm::data::checkerboard(20000, gen);
  CHECK((cb.sizes() == torch::IntArrayRef({20000, 2})));
  CHECK(gm::data::checkerboard_support(cb).all().item<bool>());
  const double noise = gm::data::checkerboard_support(torch::randn({20000, 2}, gen)).to(torch::kFloat64).mean().item<double>();
  CHECK(noise == doctest::Approx(0.5).epsilon(0.05));
  auto g8 = gm::data::eight_gaussians(20000, gen);
  CHECK(g8.mean(0).abs().max().item<double>() < 0.1);
  CHECK(g8.norm(2, 1).mean().item<double>() == doctest::Approx(4 / 1.414).epsilon(0.05));
  for (const char* name : {"checkerboard", "moons", "8gaussians", "spirals"}) {
    auto x = gm::data::toy2d(name, 100, gen);
    CHECK((x.sizes() == torch::IntArrayRef({100, 2})));
    CHECK(torch::isfinite(x).all().item<bool>());
  }
  CHECK_THROWS_AS(gm::data::toy2d("swissroll", 10), gm::Error);
  CHECK(torch::equal(gm::data::checkerboard(8, gm::make_generator(3)), gm::data::checkerboard(8, gm::make_generator(3))));
}

TEST_CASE("the MLP maps [B, dim] and times to [B, dim] with each time embedding") {
  for (const char* emb : {"sinusoidal", "fourier", "raw"}) {
    gm::MLP net(gm::MLPOptions().dim(3).hidden(16).layers(2).time_embedding(emb));
    auto y = net->forward(torch::randn({5, 3}), torch::rand({5}));
    CHECK((y.sizes() == torch::IntArrayRef({5, 3})));
    CHECK((net->forward(torch::randn({5, 3}), torch::tensor(0.5f)).sizes() == torch::IntArrayRef({5, 3})));
  }
  // Meta's flow_matching 2-D network: [x, t] -> 4 x (Linear 512, SiLU) -> Linear 2.
  gm::MLP fm(gm::MLPOptions().dim(2).hidden(512).layers(4).time_embedding("raw"));
  int64_t count = 0;
  for (const auto& p : fm->parameters()) count += p.numel();
  CHECK(count == (3 * 512 + 512) + 3 * (512 * 512 + 512) + (512 * 2 + 2));
  CHECK_THROWS(gm::MLP(gm::MLPOptions().activation("sigmoidish")));
}

TEST_CASE("LR schedules: warmup, cosine and piecewise") {
  gm::LRSchedule s;
  s.lr = 1e-3;
  s.warmup = 10;
  CHECK(s.at(0) == doctest::Approx(1e-4));
  CHECK(s.at(9) == doctest::Approx(1e-3));
  CHECK(s.at(500) == doctest::Approx(1e-3));
  s.kind = "cosine";
  s.total = 110;
  s.min_lr = 1e-5;
  CHECK(s.at(10) == doctest::Approx(1e-3));
  CHECK(s.at(60) == doctest::Approx(0.5 * (1e-3 + 1e-5)));
  CHECK(s.at(110) == doctest::Approx(1e-5));
  gm::LRSchedule p;
  p.kind = "piecewise";
  p.pieces = gm::LRSchedule::parse_pieces("[[3000, 1e-3], [6000, 1e-4]]", "--optim.schedule");
  CHECK(p.at(0) == 1e-3);
  CHECK(p.at(2999) == 1e-3);
  CHECK(p.at(3000) == 1e-4);
  CHECK(p.at(9000) == 1e-4);
  CHECK_THROWS_WITH_AS(gm::LRSchedule::parse_pieces("[[3000, 1e-3], [2000, 1e-4]]", "--optim.schedule"),
                       doctest::Contains("--optim.schedule"), gm::Error);
  CHECK_THROWS_AS(gm::LRSchedule::parse_pieces("[[3000]]", "x"), gm::Error);
  CHECK_THROWS_AS(gm::LRSchedule::parse_pieces("nonsense", "x"), gm::Error);
}

TEST_CASE("EMA averages weights and Swap exchanges them for sampling") {
  gm::MLP net(gm::MLPOptions().dim(2).hidden(4).layers(1));
  gm::EMA ema(0.9, /*warmup=*/false);
  ema.attach(*net);
  auto w0 = net->parameters()[0].detach().clone();
  {
    torch::NoGradGuard ng;
    net->parameters()[0].add_(1.0);
  }
  ema.update(*net);
  CHECK(max_abs(ema.shadow()[0], w0 + 0.1) < 1e-6);
  {
    gm::EMA::Swap swap(ema, *net);
    CHECK(max_abs(net->parameters()[0], w0 + 0.1) < 1e-6);
  }
  CHECK(max_abs(net->parameters()[0], w0 + 1.0) < 1e-6);
  gm::EMA warm(0.999);
  warm.attach(*net);
  warm.update(*net);  // first decay is min(0.999, 1/10)
  CHECK(warm.updates() == 1);
}

TEST_CASE("the trainer learns a Gaussian, and callbacks see every step and can stop it") {
  torch::manual_seed(0);
  Flow trainer(gm::MLP(gm::MLPOptions().dim(1).hidden(32).layers(2)), gm::TrainOptions().seed(1));
  auto gen = gm::make_generator(2);
  auto data = [&](int64_t) { return 2.0 + 0.5 * torch::randn({256, 1}, gen); };
  CountHooks hooks;
  std::vector<double> losses;
  RecordLoss rec{&losses};
  trainer.fit(data, 600, hooks, rec);
  CHECK(trainer.step() == 600);
  CHECK(hooks.begin == 1);
  CHECK(hooks.steps == 600);
  CHECK(hooks.end == 1);
  const double first = std::accumulate(losses.begin(), losses.begin() + 50, 0.0) / 50;
  const double last = std::accumulate(losses.end() - 50, losses.end(), 0.0) / 50;
  CHECK(last < 0.7 * first);
  auto x = trainer.sample(gm::SampleOptions().n(4000).nfe(20));  // 10 Heun steps
  CHECK(trainer.last_nfe() == 20);
  CHECK(x.mean().item<double>() == doctest::Approx(2.0).epsilon(0.1));
  CHECK(x.std().item<double>() == doctest::Approx(0.5).epsilon(0.25));
  StopAt stop{605};
  trainer.fit(data, 1000, stop);
  CHECK(trainer.step() == 605);
}

TEST_CASE("MLP: per-layer widths and SELU, layer for layer torchcfm's MLP (Linear, SELU, ..., Linear on [x, t])") {
  torch::manual_seed(3);
  gm::MLP net(gm::MLPOptions().dim(2).widths({8, 16, 4}).activation("selu").time_embedding("raw"));
  const auto params = net->named_parameters();
  CHECK(params["hidden.0.weight"].sizes() == torch::IntArrayRef({8, 3}));  // [x, t] in
  CHECK(params["hidden.1.weight"].sizes() == torch::IntArrayRef({16, 8}));
  CHECK(params["hidden.2.weight"].sizes() == torch::IntArrayRef({4, 16}));
  CHECK(params["out.weight"].sizes() == torch::IntArrayRef({2, 4}));
  CHECK(net->describe() == "MLP 8-16-4");
  auto x = torch::randn({5, 2}), t = torch::rand({5});
  auto h = torch::cat({x, t.unsqueeze(1)}, 1);
  for (int i = 0; i < 3; ++i) {
    const auto k = "hidden." + std::to_string(i);
    h = torch::selu(torch::nn::functional::linear(h, params[k + ".weight"], params[k + ".bias"]));
  }
  auto reference = torch::nn::functional::linear(h, params["out.weight"], params["out.bias"]);
  CHECK(max_abs(net->forward(x, t), reference) < 1e-6);
  CHECK(gm::test::contains(gm::test::error_of([] { gm::MLP(gm::MLPOptions().widths({8, 0})); }), "widths must be >= 1"));
}

TEST_CASE("StepProfiler: self times of nested operators, and a profile of real training steps") {
  // Thread 1: A [0, 100) holds B [10, 40) and C [50, 60); B holds D [15, 20).  Thread 2: E [0, 30).
  auto t = gm::detail::self_times({{1, 0, 100, "A"}, {1, 10, 30, "B"}, {1, 15, 5, "D"}, {1, 50, 10, "C"},
                                    {2, 0, 30, "E"}, {2, 40, 10, "E"}});
  CHECK(t["A"].first == 60);
  CHECK(t["B"].first == 25);
  CHECK(t["C"].first == 10);
  CHECK(t["D"].first == 5);
  CHECK(t["E"].first == 40);
  CHECK(t["E"].second == 2);

  const auto dir = gm::test::fresh_dir("profiler");
  Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(32).layers(2)), gm::TrainOptions().seed(1));
  std::string logged;
  gm::StepProfiler profiler(dir, 3, torch::kCPU, 2, [&](const std::string& s) { logged = s; });
  trainer.fit([](int64_t) { return torch::randn({64, 2}); }, 8, profiler);
  REQUIRE(profiler.finished());
  const auto& p = profiler.summary();
  CHECK(p.steps == 3);
  CHECK(p.device.empty());
  REQUIRE(p.host.size() > 5);
  CHECK(p.host_ms > 0);
  for (size_t i = 1; i < p.host.size(); ++i) CHECK(p.host[i - 1].self_ms >= p.host[i].self_ms);
  bool products = false;  // the MLP's products are there, once per layer and step at least
  for (const auto& r : p.host) products = products || ((r.name == "aten::addmm" || r.name == "aten::mm") && r.calls >= 3);
  CHECK(products);
  std::ifstream txt(dir / "profile.txt");
  const std::string table((std::istreambuf_iterator<char>(txt)), std::istreambuf_iterator<char>());
  CHECK(gm::test::contains(table, "profile of 3 training steps"));
  CHECK(gm::test::contains(logged, "host operator (self time)"));
  std::ifstream json(dir / "profile.json");
  const std::string trace((std::istreambuf_iterator<char>(json)), std::istreambuf_iterator<char>());
  CHECK(gm::test::contains(trace, "\"traceEvents\""));
  CHECK(gm::test::contains(trace, "aten::"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("debug mode: overfitting a single data point makes every sample that point") {
  torch::manual_seed(0);
  Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(64).layers(2)), gm::TrainOptions().lr(3e-3).seed(3));
  auto point = torch::tensor({{1.5f, -0.5f}});
  trainer.fit([&](int64_t) { return point.expand({128, 2}); }, 1500);
  auto x = trainer.sample(gm::SampleOptions().n(256).nfe(20));
  CHECK((x - point).norm(2, 1).mean().item<double>() < 0.1);
}

TEST_CASE("any process, parameterisation and weighting trains") {
  using Eps = gm::Trainer<gm::Interpolant<gm::VP>, gm::Predict<gm::Noise>, gm::MLP, gm::DDIMSampler,
                          gm::StratifiedTime, gm::MinSNRWeight>;
  Eps trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(1)), gm::TrainOptions().accumulate(2).clip_norm(1.0));
  auto s = trainer.train_step(torch::randn({64, 2}));
  CHECK(std::isfinite(s.loss));
  CHECK(s.grad_norm > 0);
  CHECK(trainer.step() == 1);
  using Edm = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::MLP, gm::HeunSampler,
                          gm::EDMLogNormalTime, gm::EDMWeight>;
  Edm edm(gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(1)), gm::TrainOptions().optimizer("adamw").weight_decay(0.01));
  CHECK(std::isfinite(edm.train_step(torch::randn({64, 2})).loss));
  CHECK(torch::isfinite(edm.sample(gm::SampleOptions().n(16).nfe(8))).all().item<bool>());
}

TEST_CASE("write_npy writes NumPy's format") {
  const auto path = std::filesystem::temp_directory_path() / ("gm_test_" + std::to_string(::getpid()) + ".npy");
  auto x = torch::arange(6, torch::kFloat32).reshape({3, 2});
  gm::io::write_npy(path, x);
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove(path);
  CHECK(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  const size_t header = uint8_t(bytes[8]) | (uint8_t(bytes[9]) << 8);
  CHECK((10 + header) % 64 == 0);
  CHECK(bytes.find("'descr': '<f4'") != std::string::npos);
  CHECK(bytes.find("'shape': (3,2)") != std::string::npos);
  REQUIRE(bytes.size() == 10 + header + 6 * 4);
  float v[6];
  std::memcpy(v, bytes.data() + 10 + header, sizeof v);
  CHECK(v[5] == 5.0f);
}

TEST_CASE("feature vectors load from .npy and CSV, and bad files are one-line errors naming them") {
  const auto dir = std::filesystem::temp_directory_path() / ("gm_test_features_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto x = torch::randn({7, 3}, torch::kFloat64);
  gm::io::write_npy(dir / "x.npy", x);
  CHECK(torch::equal(gm::data::read_npy(dir / "x.npy"), x));
  gm::io::write_npy(dir / "y.npy", x.to(torch::kFloat32));
  CHECK((gm::data::read_features(dir / "y.npy").scalar_type() == torch::kFloat32));
  {
    // NumPy saves a transposed array in Fortran order (column-major data): read as the same matrix.
    std::string header = "{'descr': '<f8', 'fortran_order': True, 'shape': (7, 3), }";
    header.append(128 - 10 - header.size() - 1, ' ').push_back('\n');
    const auto cols = x.t().contiguous();
    std::ofstream f(dir / "fortran.npy", std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(header.size()), 0};
    f.write(len, 2);
    f << header;
    f.write(static_cast<const char*>(cols.data_ptr()), static_cast<std::streamsize>(cols.numel() * 8));
  }
  CHECK(torch::equal(gm::data::read_npy(dir / "fortran.npy"), x));
  std::ofstream(dir / "x.csv") << "a,b\n1.5,2\n-3,4e-1\n";
  auto c = gm::data::read_csv(dir / "x.csv");
  CHECK(torch::equal(c, torch::tensor({{1.5, 2.0}, {-3.0, 0.4}}, torch::kFloat64)));
  auto error_of = [&](const std::filesystem::path& p) -> std::string {
    try {
      gm::data::read_features(p);
    } catch (const gm::Error& e) {
      return e.what();
    }
    return "no error";
  };
  std::ofstream(dir / "ragged.csv") << "1,2\n3\n";
  CHECK(error_of(dir / "ragged.csv").find("ragged.csv:2: 1 columns, expected 2") != std::string::npos);
  std::ofstream(dir / "word.csv") << "1,2\n3,x\n";
  CHECK(error_of(dir / "word.csv").find("word.csv:2: not a number") != std::string::npos);
  std::ofstream(dir / "junk.npy") << "not numpy";
  CHECK(error_of(dir / "junk.npy").find("junk.npy: not a usable .npy file") != std::string::npos);
  gm::io::write_npy(dir / "cube.npy", torch::zeros({2, 2, 2}));
  CHECK(error_of(dir / "cube.npy").find("expected a 2-D array") != std::string::npos);
  {
    // Truncate the data of a valid file.
    std::ifstream in(dir / "x.npy", std::ios::binary);
    std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "short.npy", std::ios::binary) << b.substr(0, b.size() - 8);
  }
  CHECK(error_of(dir / "short.npy").find("data bytes") != std::string::npos);
  CHECK(error_of(dir / "missing.csv").find("missing.csv: no such file") != std::string::npos);
  CHECK(error_of(dir / "x.txt").find("must be .npy or .csv") != std::string::npos);
  // Batches come from the generator, so they are reproducible.
  gm::data::Features f(x);
  CHECK(torch::equal(f.batch(5, gm::make_generator(1)), f.batch(5, gm::make_generator(1))));
  CHECK((f.batch(5).sizes() == torch::IntArrayRef({5, 3})));
  std::filesystem::remove_all(dir);
}

TEST_CASE("bf16 precision: products in bfloat16 under Autocast, activations and weights stay fp32") {
  torch::manual_seed(0);
  gm::MLP net(gm::MLPOptions().dim(2).hidden(64).layers(2));
  auto x = torch::randn({32, 2}), t = torch::rand({32});
  auto fp32 = net->forward(x, t);
  torch::Tensor bf16;
  {
    gm::Autocast guard(gm::Precision::bf16, torch::kCPU);
    CHECK(at::autocast::is_autocast_enabled(at::kCPU));
    bf16 = net->forward(x, t);
  }
  CHECK_FALSE(at::autocast::is_autocast_enabled(at::kCPU));  // the guard restores the previous state
  CHECK((bf16.scalar_type() == torch::kFloat32));
  const double diff = max_abs(bf16, fp32), scale = fp32.abs().max().item<double>();
  CHECK(diff > 0);               // the products did run in bfloat16 (8-bit mantissa)...
  CHECK(diff < 0.05 * scale);    // ...and only rounding separates them
  {
    gm::Autocast off(gm::Precision::fp32, torch::kCPU);  // fp32: the guard does nothing
    CHECK(torch::equal(net->forward(x, t), fp32));
  }
  CHECK((gm::parse_precision("bf16") == gm::Precision::bf16));
  CHECK_THROWS_WITH_AS(gm::parse_precision("fp64"), "gm: precision must be auto, fp32, bf16 or fp16, not 'fp64'", gm::Error);
  CHECK(gm::test::contains(gm::test::error_of([] { gm::parse_precision("fp16", torch::kCPU); }), "fp16 needs a CUDA device"));
  // auto: bf16 exactly where this CPU has bf16 instructions, and a reason that says which; GM_AUTO_PRECISION
  // makes it bf16 or fp32 anywhere (the suite's way to test both), and another value is an error.  (ctest runs
  // each test case in a process of its own: the environment is restored for the reader's sake.)
  const char* given = std::getenv("GM_AUTO_PRECISION");
  const std::string saved = given ? given : "";
  ::unsetenv("GM_AUTO_PRECISION");
  const auto choice = gm::auto_precision(torch::kCPU);
  CHECK((choice.precision == (gm::cpu_has_bf16() ? gm::Precision::bf16 : gm::Precision::fp32)));
  CHECK(gm::test::contains(choice.reason, gm::cpu_has_bf16() ? "a CPU with" : "a CPU without"));
  CHECK((gm::parse_precision("auto", torch::kCPU) == choice.precision));
  for (const char* forced : {"bf16", "fp32"}) {
    ::setenv("GM_AUTO_PRECISION", forced, 1);
    const auto f = gm::auto_precision(torch::kCPU);
    CHECK(std::string(gm::precision_name(f.precision)) == forced);
    CHECK(f.reason == "GM_AUTO_PRECISION=" + std::string(forced) + " in the environment");
  }
  ::setenv("GM_AUTO_PRECISION", "fp64", 1);
  CHECK_THROWS_WITH_AS(gm::auto_precision(torch::kCPU), "gm: GM_AUTO_PRECISION must be bf16 or fp32 (or unset), not 'fp64'",
                       gm::Error);
  if (given) ::setenv("GM_AUTO_PRECISION", saved.c_str(), 1);
  else ::unsetenv("GM_AUTO_PRECISION");
}

TEST_CASE("LossScaler: halves on an overflow and skips the step, doubles after growth_interval finite steps") {
  gm::LossScaler s;
  s.growth_interval = 3;
  CHECK(s.scale == 65536.0);
  CHECK_FALSE(s.update(false));
  CHECK(s.scale == 32768.0);
  CHECK(s.skipped == 1);
  CHECK(s.update(true));
  CHECK(s.update(true));
  CHECK(s.scale == 32768.0);
  CHECK(s.update(true));
  CHECK(s.scale == 65536.0);  // the third finite step in a row
  for (int i = 0; i < 40; ++i) s.update(false);
  CHECK(s.scale == 1.0);      // never below 1
}

TEST_CASE("bf16 training keeps fp32 weights, gradients and Adam state, and its loss tracks fp32's") {
  auto train = [](const std::string& precision) {
    torch::manual_seed(0);
    Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(64).layers(2)),
                 gm::TrainOptions().lr(2e-3).seed(1).precision(precision).threads(1));
    CHECK((trainer.precision() == gm::parse_precision(precision)));
    auto gen = gm::make_generator(2);
    std::vector<double> losses;
    RecordLoss rec{&losses};
    trainer.fit([&](int64_t) { return gm::data::checkerboard(256, gen); }, 400, rec);
    for (const auto& p : trainer.net()->parameters()) {
      CHECK((p.scalar_type() == torch::kFloat32));
      CHECK((p.grad().scalar_type() == torch::kFloat32));
    }
    CHECK_FALSE(trainer.optimizer().state().empty());
    for (const auto& [key, state] : trainer.optimizer().state()) {
      const auto& adam = static_cast<const torch::optim::AdamParamState&>(*state);
      CHECK((adam.exp_avg().scalar_type() == torch::kFloat32));
      CHECK((adam.exp_avg_sq().scalar_type() == torch::kFloat32));
    }
    return std::pair(std::accumulate(losses.end() - 100, losses.end(), 0.0) / 100,
                     trainer.net()->parameters()[0].detach().clone());
  };
  const auto [fp32, w32] = train("fp32");
  const auto [bf16, w16] = train("bf16");
  CHECK(bf16 == doctest::Approx(fp32).epsilon(0.05));
  CHECK_FALSE(torch::equal(w32, w16));  // the same seeds: only bf16 rounding made the runs differ
}

TEST_CASE("configure_threads: an explicit count is set, auto leaves fp32 alone") {
  const int before = at::get_num_threads();
  CHECK(gm::configure_threads(1, gm::Precision::bf16, torch::kCPU) == 1);
  CHECK(gm::configure_threads(0, gm::Precision::fp32, torch::kCPU) == 1);
  CHECK(gm::configure_threads(0, gm::Precision::bf16, torch::kCPU) ==
        static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  at::set_num_threads(before);
}

TEST_CASE("gm opts in to libtorch's AVX-512 kernels on CPUs with AVX-512 BF16, never over a user's choice") {
  const char* cap = std::getenv("ATEN_CPU_CAPABILITY");
  if (gm::detail::avx512_opted_in) {
    REQUIRE(cap != nullptr);
    CHECK(std::string(cap) == "avx512");
  }
#if defined(__x86_64__) && defined(__GNUC__)
  if (!__builtin_cpu_supports("avx512bf16")) CHECK_FALSE(gm::detail::avx512_opted_in);
#endif
  // A value set before start-up (the only way it can be set) is never replaced.
  if (!gm::detail::avx512_opted_in && cap != nullptr) CHECK_FALSE(gm::detail::opt_in_avx512());
}

namespace {
// A few optimiser steps on a fixed regression problem; returns the parameters after them.
template <class Opt>
std::vector<torch::Tensor> adam_steps(gm::MLP net, Opt& opt, int steps) {
  torch::manual_seed(5);
  auto x = torch::randn({64, 2}), t = torch::rand({64}), y = torch::randn({64, 2});
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    (net->forward(x, t) - y).pow(2).mean().backward();
    opt.step();
  }
  std::vector<torch::Tensor> out;
  for (const auto& p : net->parameters()) out.push_back(p.detach().clone());
  return out;
}
gm::MLP copy_of(const gm::MLP& net) {
  gm::MLP c(net->options());
  torch::NoGradGuard ng;
  const auto src = net->parameters();
  const auto dst = c->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  return c;
}
}  // namespace

TEST_CASE("FlatAdam: torch's Adam and AdamW update on flat buffers, and it survives rebinding and reloading") {
  torch::manual_seed(0);
  gm::MLP net(gm::MLPOptions().dim(2).hidden(32).layers(2));
  for (const auto& [decoupled, fused] : {std::pair(false, true), std::pair(true, true), std::pair(false, false), std::pair(true, false)}) {
    CAPTURE(decoupled);
    CAPTURE(fused);
    auto a = copy_of(net), b = copy_of(net);
    const double wd = 0.05;
    std::vector<torch::Tensor> ref;
    if (decoupled) {
      torch::optim::AdamW torch_opt(a->parameters(), torch::optim::AdamWOptions(1e-2).weight_decay(wd));
      ref = adam_steps(a, torch_opt, 25);
    } else {
      torch::optim::Adam torch_opt(a->parameters(), torch::optim::AdamOptions(1e-2).weight_decay(wd));
      ref = adam_steps(a, torch_opt, 25);
    }
    gm::FlatAdam flat(b->parameters(), torch::optim::AdamOptions(1e-2).weight_decay(wd), decoupled, fused);
    CHECK(flat.fused() == fused);
    const auto got = adam_steps(b, flat, 25);
    CHECK(flat.steps() == 25);
    for (size_t i = 0; i < ref.size(); ++i) CHECK(max_abs(got[i], ref[i]) < 1e-6);
    // Every parameter and gradient is a view of the flat buffers.
    const auto* base = static_cast<const char*>(flat.flat_params().data_ptr());
    const auto* end = base + flat.flat_params().nbytes();
    for (const auto& p : b->parameters()) {
      const auto* ptr = static_cast<const char*>(p.data_ptr());
      CHECK((ptr >= base && ptr < end));
    }
    CHECK(flat.flat_grad().numel() == flat.flat_params().numel());
  }
  // A parameter rebound elsewhere (as a checkpoint load does) is copied back in and keeps training.
  auto c = copy_of(net);
  gm::FlatAdam flat(c->parameters(), torch::optim::AdamOptions(1e-2));
  adam_steps(c, flat, 3);
  {
    torch::NoGradGuard ng;
    auto p = c->parameters()[0];
    p.set_(p.detach().clone() + 1.0);
  }
  const auto moved = c->parameters()[0].detach().clone();
  adam_steps(c, flat, 1);
  CHECK(max_abs(c->parameters()[0], moved) > 0);
  CHECK(max_abs(c->parameters()[0], moved) < 0.05);  // one step of lr 1e-2 from the rebound values
  // save / load: a fresh optimiser on a copy continues exactly as the original.
  torch::serialize::OutputArchive out;
  flat.save(out);
  std::stringstream buf;
  out.save_to(buf);
  auto d = copy_of(c);
  gm::FlatAdam other(d->parameters(), torch::optim::AdamOptions(1e-2));
  torch::serialize::InputArchive in;
  in.load_from(buf);
  other.load(in);
  const auto next_c = adam_steps(c, flat, 2), next_d = adam_steps(d, other, 2);
  for (size_t i = 0; i < next_c.size(); ++i) CHECK(torch::equal(next_c[i], next_d[i]));
}

TEST_CASE("FlatAdam's fused update: the clipping divisor and the device-side skip") {
  torch::manual_seed(0);
  gm::MLP net(gm::MLPOptions().dim(2).hidden(32).layers(2));
  auto a = copy_of(net), b = copy_of(net), c = copy_of(net);
  gm::FlatAdam fa(a->parameters(), torch::optim::AdamOptions(1e-2)), fb(b->parameters(), torch::optim::AdamOptions(1e-2));
  gm::FlatAdam fc(c->parameters(), torch::optim::AdamOptions(1e-2), false, /*fused=*/false);
  torch::manual_seed(5);
  auto x = torch::randn({64, 2}), t = torch::rand({64}), y = torch::randn({64, 2});
  auto grads = [&](gm::MLP& m, gm::FlatAdam& o) {
    o.zero_grad();
    (m->forward(x, t) - y).pow(2).mean().backward();
  };
  const auto divisor = torch::full({}, 4.0, torch::kFloat32), zero = torch::zeros({}, torch::kFloat32);
  for (int i = 0; i < 3; ++i) {
    grads(a, fa), grads(b, fb), grads(c, fc);
    fa.step(divisor, zero);  // the gradient divided by 4 inside the kernel
    {
      torch::NoGradGuard ng;
      fb.flat_grad().div_(4.0);
    }
    fb.step();  // the same, divided beforehand
    fc.step(divisor, zero);  // unfused: the same formula in seven kernels
  }
  CHECK(max_abs(fa.flat_params(), fb.flat_params()) < 1e-7);
  CHECK(max_abs(fa.flat_params(), fc.flat_params()) < 1e-6);
  // found_inf = 1: parameters, moments and the step count stay as they were (fused and unfused alike).
  for (auto* o : {&fa, &fc}) {
    auto& m = o == &fa ? a : c;
    grads(m, *o);
    const auto params = o->flat_params().clone();
    const auto moments = o->state_tensors();
    const auto m1 = moments[0].second.clone(), m2 = moments[1].second.clone();
    o->step(torch::Tensor(), torch::ones({}, torch::kFloat32));
    CHECK(torch::equal(o->flat_params(), params));
    CHECK(torch::equal(o->state_tensors()[0].second, m1));
    CHECK(torch::equal(o->state_tensors()[1].second, m2));
    CHECK(o->steps() == 3);
    o->step(torch::Tensor(), zero);
    CHECK(o->steps() == 4);
    CHECK_FALSE(torch::equal(o->flat_params(), params));
  }
}

TEST_CASE("sync_every: a step stays on the device between reads, and trains exactly as reading every step") {
  using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;
  auto make = [](int64_t every, int64_t skips = 0) {
    torch::manual_seed(0);
    return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(2)),
                gm::TrainOptions().seed(3).clip_norm(0.5).sync_every(every).max_nonfinite_skips(skips));
  };
  auto batch = [](int64_t step) { return gm::data::checkerboard(64, gm::make_generator(100 + static_cast<uint64_t>(step))); };
  auto each = make(1), deferred = make(4);
  std::vector<gm::StepStats> read, queued;
  for (int64_t i = 0; i < 8; ++i) {
    read.push_back(each.train_step(batch(i)));
    queued.push_back(deferred.train_step(batch(i)));
  }
  for (int64_t i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK_FALSE(read[i].values.defined());
    CHECK(queued[i].values.defined() == ((i + 1) % 4 != 0));  // read at steps 4 and 8
    if (queued[i].values.defined()) CHECK(std::isnan(queued[i].loss));
  }
  gm::StepStats::resolve(queued);
  for (int64_t i = 0; i < 8; ++i) {
    CHECK(queued[i].loss == read[i].loss);  // bit for bit: the same kernels, read later
    CHECK(queued[i].grad_norm == read[i].grad_norm);
    CHECK_FALSE(queued[i].skipped);
  }
  CHECK(read[3].grad_norm > 0.5);  // clipping was active
  auto pa = each.net()->parameters(), pb = deferred.net()->parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));

  // A non-finite step is skipped on the device, and the next read stops the run, naming that step.
  auto nan_batch = torch::full({64, 2}, std::nan(""));
  auto stopping = make(4);
  stopping.train_step(batch(0));
  const auto before = stopping.net()->parameters()[0].detach().clone();
  const auto s2 = stopping.train_step(nan_batch);  // step 2: queued, not read
  CHECK(s2.values.defined());
  CHECK(s2.resolved().skipped);
  CHECK(torch::equal(stopping.net()->parameters()[0], before));  // the skip happened on the device
  stopping.train_step(batch(2));
  try {
    stopping.train_step(batch(3));  // step 4: the read
    FAIL("expected a NonFiniteError at the read");
  } catch (const gm::NonFiniteError& e) {
    CHECK(e.step == 2);
    CHECK(std::isnan(e.loss));
  }
  CHECK(stopping.step() == 4);  // steps 3 and 4 were taken before the read found step 2
  CHECK(stopping.optimizer().steps() == 3);
  // Within max_nonfinite_skips the read counts the skip and training goes on; the optimiser's count
  // leaves the skipped step out.
  auto tolerant = make(4, 1);
  tolerant.train_step(batch(0));
  tolerant.train_step(nan_batch);
  tolerant.train_step(batch(2));
  CHECK_FALSE(tolerant.train_step(batch(3)).skipped);
  CHECK(tolerant.skipped_steps() == 1);
  CHECK(tolerant.optimizer().steps() == 3);
  // fit reads what is left at its end: a non-finite step 6 of 6 stops it even between reads.
  auto ending = make(4);
  CHECK_THROWS_AS(ending.fit([&](int64_t s) { return s == 5 ? nan_batch : batch(s); }, 6), gm::NonFiniteError);
}

// ---- Post-hoc EMA (EDM2) ----

TEST_CASE("post-hoc EMA: sigma_rel and the power-function exponent match EDM2's values and invert") {
  CHECK(gm::sigma_rel_to_gamma(0.05) == doctest::Approx(16.97).epsilon(1e-3));  // EDM2, section 3.1
  CHECK(gm::sigma_rel_to_gamma(0.10) == doctest::Approx(6.94).epsilon(1e-3));
  for (double s : {0.01, 0.05, 0.1, 0.2, 0.28}) {
    const double g = gm::sigma_rel_to_gamma(s);
    CHECK(gm::gamma_to_sigma_rel(g) == doctest::Approx(s).epsilon(1e-12));
    CHECK(g * g * g + 7 * g * g + (16 - 1 / (s * s)) * g + (12 - 1 / (s * s)) == doctest::Approx(0).scale(1 / (s * s)).epsilon(1e-9));
  }
  CHECK_THROWS_WITH_AS(gm::sigma_rel_to_gamma(0.3), doctest::Contains("sigma_rel"), gm::Error);
  CHECK_THROWS_AS(gm::sigma_rel_to_gamma(0), gm::Error);
}

namespace {
/// A module whose weights follow a known trajectory theta(t) as "training" steps t = 1..T.
struct Trajectory : torch::nn::Module {
  Trajectory() { w = register_parameter("w", torch::zeros({6}, torch::kFloat64)); }
  void set(int64_t t) {  // smooth drift plus a wiggle: what an EMA must average
    torch::NoGradGuard ng;
    const auto k = torch::arange(6, torch::kFloat64);
    const double x = static_cast<double>(t);
    w.copy_(torch::sin(x / 700.0 * (1 + k)) + 0.3 * torch::cos(x / 37.0 + k) + 1e-3 * x);
  }
  torch::Tensor w;
};
/// Train T steps with PowerEMA(stored), taking snapshots every `every` steps, and a direct PowerEMA(direct).
std::pair<std::vector<gm::PowerEMASnapshot>, gm::PowerEMA> run_trajectory(int64_t steps, int64_t every,
                                                                          std::vector<double> stored,
                                                                          std::vector<double> direct) {
  Trajectory m;
  gm::PowerEMA ema(stored), check(direct);
  std::vector<gm::PowerEMASnapshot> snaps;
  for (int64_t t = 1; t <= steps; ++t) {
    m.set(t);
    ema.update(m, t);
    check.update(m, t);
    if (t % every == 0) {
      for (size_t k = 0; k < stored.size(); ++k) {
        gm::PowerEMASnapshot s{t, stored[k], {}};
        for (const auto& [name, p] : ema.profile(k)) s.weights.emplace_back(name, p.clone());
        snaps.push_back(std::move(s));
      }
    }
  }
  return {std::move(snaps), std::move(check)};
}
}  // namespace

TEST_CASE("post-hoc EMA: a stored profile is reconstructed as itself") {
  auto [snaps, unused] = run_trajectory(2000, 100, {0.05, 0.10}, {0.05});
  for (size_t i : {size_t{1}, size_t{20}, snaps.size() - 1}) {
    INFO("snapshot " << i << " step " << snaps[i].step << " sigma_rel " << snaps[i].sigma_rel);
    const auto rebuilt = gm::posthoc_reconstruct(snaps, snaps[i].step, snaps[i].sigma_rel);
    const auto err = (rebuilt[0].second - snaps[i].weights[0].second).abs().max().item<double>();
    CHECK(err < 1e-9);
  }
}

TEST_CASE("post-hoc EMA: other profiles rebuilt from two stored ones match the directly tracked EMA") {
  // The trajectory moves by ~1.3 over the run; the reconstruction lands within 1e-3 of the true EMA.
  const std::vector<double> wanted{0.03, 0.07, 0.15, 0.2};
  auto [snaps, direct] = run_trajectory(4000, 100, {0.05, 0.10}, wanted);
  for (size_t k = 0; k < wanted.size(); ++k) {
    INFO("sigma_rel " << wanted[k]);
    const auto rebuilt = gm::posthoc_reconstruct(snaps, 4000, wanted[k]);
    const auto truth = direct.profile(k)[0].second;
    const auto err = (rebuilt[0].second - truth).abs().max().item<double>();
    // How far the raw snapshots of the nearest stored profile are, for scale.
    const auto nearest = gm::posthoc_reconstruct(snaps, 4000, wanted[k] < 0.075 ? 0.05 : 0.10);
    const auto baseline = (nearest[0].second - truth).abs().max().item<double>();
    MESSAGE("sigma_rel " << wanted[k] << ": max error " << err << " (nearest stored profile: " << baseline << ")");
    CHECK(err < 1e-3);
    CHECK(err < 0.1 * baseline);
  }
}

TEST_CASE("post-hoc EMA: snapshots written as a trainer callback load back and reconstruct") {
  const auto dir = gm::test::fresh_dir("phema");
  Trajectory m;
  gm::PowerEMA ema({0.05, 0.10}, 50, dir);
  struct Fake {
    Trajectory* m;
    Trajectory* net() { return m; }
  } fake{&m};
  for (int64_t t = 1; t <= 200; ++t) {
    m.set(t);
    gm::StepStats s;
    s.step = t;
    ema.on_step_end(fake, s);
  }
  const auto snaps = gm::load_power_ema_snapshots(dir);
  REQUIRE(snaps.size() == 8);
  CHECK(snaps.back().step == 200);
  CHECK(std::filesystem::exists(dir / gm::PowerEMA::snapshot_name(200, 0.10)));
  const auto rebuilt = gm::posthoc_reconstruct(snaps, 200, 0.10);
  CHECK((rebuilt[0].second - ema.profile(1)[0].second).abs().max().item<double>() < 1e-9);
  std::ofstream(dir / "junk.safetensors") << "not a file";
  CHECK_THROWS_AS(gm::load_power_ema_snapshots(dir), gm::Error);
  CHECK_THROWS_WITH_AS(gm::load_power_ema_snapshots(dir / "nope"), doctest::Contains("no post-hoc EMA snapshot folder"), gm::Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("autoguidance by other weights of the same network: own weights change nothing, others do, nothing leaks") {
  Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(32).layers(2)), gm::TrainOptions().seed(4));
  auto io_copy = [](const std::vector<torch::Tensor>& v) {
    std::vector<torch::Tensor> out;
    for (const auto& t : v) out.push_back(t.detach().clone());
    return out;
  };
  const auto before = io_copy(trainer.net()->parameters());
  auto seeds = gm::sample_seeds(9, 0, 16);
  gm::Conditioning plain;
  plain.seeds = seeds;
  const auto a = trainer.sample(gm::SampleOptions().n(16).nfe(16).conditioning(plain));
  gm::Conditioning self = plain;
  self.guide = trainer.weights_guide(io_copy(trainer.net()->parameters()));
  self.guidance = 3.0;
  const auto b = trainer.sample(gm::SampleOptions().n(16).nfe(16).conditioning(self));
  CHECK(max_abs(a, b) == 0);  // weak = main: out_weak + w (out - out_weak) = out, bit for bit
  std::vector<torch::Tensor> other;
  for (const auto& p : trainer.net()->parameters()) other.push_back(p.detach() * 0.5);
  gm::Conditioning guided = plain;
  guided.guide = trainer.weights_guide(other);
  guided.guidance = 2.0;
  const auto c = trainer.sample(gm::SampleOptions().n(16).nfe(16).conditioning(guided));
  CHECK(max_abs(a, c) > 1e-3);
  const auto after = trainer.net()->parameters();
  for (size_t i = 0; i < before.size(); ++i) CHECK(max_abs(before[i], after[i]) == 0);  // swapped back
  CHECK(trainer.last_nfe() == 16);  // Heun, 8 steps: 2 per step, the weak model not counted apart
  other.pop_back();
  CHECK_THROWS_WITH_AS(trainer.weights_guide(other), doctest::Contains("autoguidance weights"), gm::Error);
}

TEST_CASE("VDM trains its schedule with the network: gamma stays monotone, the loss is the ELBO, and it bounds -log p" * gm::test::own_process) {
  using VDM = gm::Trainer<gm::Interpolant<gm::LearnedSchedule>, gm::Predict<gm::Noise>, gm::MLP, gm::HeunSampler,
                          gm::StratifiedTime, gm::VDMELBO>;
  torch::manual_seed(0);
  gm::LearnedSchedule schedule(gm::MonotoneGammaOptions().features(64).gamma_min(-10).gamma_max(5));
  gm::MLP net(gm::MLPOptions().dim(2).hidden(64).layers(2));
  schedule.attach(*net);
  VDM trainer(net, gm::TrainOptions().lr(3e-3).seed(4), gm::Interpolant<gm::LearnedSchedule>(schedule), {},
              gm::StratifiedTime(gm::StratifiedTime::Options().antithetic(true)),
              gm::VDMELBO(gm::VDMELBO::Options().levels(0)));
  auto weights = [&] {
    std::map<std::string, torch::Tensor> m;
    for (const auto& [k, v] : gm::io::named_tensors(*net)) m[k] = v.clone();
    return m;
  };
  const auto before = weights();
  // N((1, -0.5), 0.5^2 I): -log p = 1/2 log(2 pi e 0.25) nats per dimension.
  const double exact_bpd = 0.5 * std::log(2 * M_PI * M_E * 0.25) / std::numbers::ln2;
  auto gen = gm::make_generator(5);
  auto data = [&](int64_t) { return torch::tensor({1.0f, -0.5f}) + 0.5 * torch::randn({256, 2}, gen); };
  auto grid = torch::linspace(0, 1, 1001);
  int64_t checked = 0;
  bool monotone = true;
  MonotoneGamma mono{schedule, grid, &checked, &monotone};
  std::vector<double> losses;
  RecordLoss rec{&losses};
  trainer.fit(data, 1000, mono, rec);
  CHECK(checked == 40);
  CHECK(monotone);
  // The schedule's weights were trained with the network's, the ends on the ELBO, the shape on its variance.
  const auto after = weights();
  for (const char* k : {"vdm_gamma.gamma_0", "vdm_gamma.gap", "vdm_gamma.w3", "vdm_gamma.b2"}) {
    INFO(k);
    CHECK(max_abs(after.at(k), before.at(k)) > 1e-4);
  }
  // The training loss is the ELBO in bits per dimension; trainer.elbo estimates it on fresh data.
  const double last = std::accumulate(losses.end() - 100, losses.end(), 0.0) / 100;
  auto eval_gen = gm::make_generator(6);
  net->eval();
  auto gen_test = gm::make_generator(7);
  std::vector<torch::Tensor> parts;  // 64k draws: one sample's estimate has a std of ~7 bpd
  for (int i = 0; i < 64; ++i) parts.push_back(trainer.elbo(torch::tensor({1.0f, -0.5f}) + 0.5 * torch::randn({1024, 2}, gen_test), eval_gen));
  auto bpd = torch::cat(parts);
  const double m = bpd.mean().item<double>(), se = bpd.std().item<double>() / std::sqrt(static_cast<double>(bpd.numel()));
  MESSAGE("ELBO " << m << " +- " << se << " bpd (training loss " << last << ", first " << losses.front()
                  << "), exact -log p " << exact_bpd << " bpd");
  CHECK(m > exact_bpd - 3 * se);      // a bound
  CHECK(m < exact_bpd + 0.15);        // and a good one after 1000 steps
  CHECK(std::abs(last - m) < 0.1);    // the loss reports the same quantity
  CHECK(losses.front() > last + 0.5); // and it came down
  auto x = trainer.sample(gm::SampleOptions().n(4000).nfe(40));  // every sampler runs on the learned schedule
  CHECK(x.mean(0)[0].item<double>() == doctest::Approx(1.0).epsilon(0.1));
  CHECK(x.std(0).mean().item<double>() == doctest::Approx(0.5).epsilon(0.15));
}

TEST_CASE("data-parallel: a micro-batch with fewer rows than ranks gives the empty shard a zero loss, not NaN") {
  // Two ranks simulated in one process: every rank draws the global batch's times and noise, then trains on
  // its rows [rank B / W, (rank + 1) B / W).  A 1-row micro-batch leaves rank 0 with none.
  auto set_rank = [](Flow& t, int64_t rank) {
    gm::DataParallel dp;
    dp.rank = rank;
    dp.world = 2;
    dp.all_reduce_sum = [](torch::Tensor&) {};  // this process stands in for the group
    dp.broadcast = [](torch::Tensor&) {};
    t.set_data_parallel(dp);
  };
  auto make = [] {
    torch::manual_seed(3);
    return gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(1));
  };
  Flow alone(make(), gm::TrainOptions().accumulate(4)), rank0(make(), gm::TrainOptions().accumulate(4)),
      rank1(make(), gm::TrainOptions().accumulate(4));
  set_rank(rank0, 0);
  set_rank(rank1, 1);
  const auto x = torch::randn({1, 2});
  const auto l_alone = alone.loss(x), l0 = rank0.loss(x), l1 = rank1.loss(x);
  CHECK(l0.item<double>() == 0.0);
  CHECK(l1.item<double>() == doctest::Approx(l_alone.item<double>()).epsilon(1e-6));  // the sum over ranks
  l0.backward();                                                                        // and it has a graph
  // A whole step of 10 rows in 4 micro-batches (3, 3, 3, 1): rank 0's last shard is empty.
  const auto s = rank0.train_step(torch::randn({10, 2}));
  CHECK(std::isfinite(s.loss));
  CHECK(std::isfinite(s.grad_norm));
}

TEST_CASE("a Trainer with exact-OT coupling trains on the assignment's pairs: with a zero network its loss is the OT cost") {
  // Linear interpolant, velocity target eps - x0: with the network's output at zero the loss is the mean of
  // |eps_paired - x0|^2 / dim, so it equals the batch's transport cost under the coupling.
  auto x0 = gm::data::checkerboard(128, gm::make_generator(3)).to(torch::kFloat64);
  using Plain = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;
  using OT = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler,
                         gm::UniformTime, gm::UniformWeight, gm::ExactOTCoupling>;
  Plain plain(gm::test::zero_mlp(), gm::TrainOptions().seed(9));
  OT ot(gm::test::zero_mlp(), gm::TrainOptions().seed(9));
  // The draws the loss makes: times first, then the noise.
  auto gen = ot.generator().clone();
  (void)gm::UniformTime{}.sample(128, gm::Interpolant<gm::Linear>{}, gen, x0.options());
  auto eps = torch::randn(x0.sizes(), gen, x0.options());
  auto cost = [&](const torch::Tensor& idx) { return (eps.index_select(0, idx) - x0).pow(2).mean().item<double>(); };
  const double independent = plain.loss(x0).item<double>(), coupled = ot.loss(x0).item<double>();
  CHECK(independent == doctest::Approx(cost(torch::arange(128))).epsilon(1e-12));
  CHECK(coupled == doctest::Approx(cost(gm::min_cost_assignment(gm::squared_distances(x0, eps)))).epsilon(1e-12));
  MESSAGE("checkerboard, 128 pairs: loss of a zero network " << independent << " independent, " << coupled << " exact OT");
  CHECK(coupled < 0.6 * independent);
  CHECK(std::isfinite(ot.train_step(x0).loss));
}

TEST_CASE("a data source replaces the Gaussian prior: the loss pairs data with source draws, sampling starts from them") {
  // A data-to-data flow (torchcfm's moons -> 8gaussians): with a zero network and the velocity target
  // x1 - x0, the loss is the mean of |source - x0|^2, on the same draws the source makes from the trainer's
  // generator after the times.
  using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;
  Flow flow(gm::test::zero_mlp(), gm::TrainOptions().seed(4));
  auto source = [](int64_t n, const at::Generator& gen) {
    return 5.0 + torch::rand({n, 2}, gen, gm::on_generator(gen, torch::kFloat64));
  };
  flow.set_source(source);
  CHECK(flow.has_source());
  auto x0 = torch::randn({64, 2}, gm::make_generator(2), torch::kFloat64);
  auto gen = flow.generator().clone();
  (void)gm::UniformTime{}.sample(64, gm::Interpolant<gm::Linear>{}, gen, x0.options());
  const auto x1 = source(64, gen);
  CHECK(flow.loss(x0).item<double>() == doctest::Approx((x1 - x0).pow(2).mean().item<double>()).epsilon(1e-12));
  // Sampling starts from the source (sigma(1) = 1): one Euler step of a zero velocity returns the draw itself,
  // and per-sample seeds give each row from its own seed.
  auto sgen = flow.sampling_generator().clone();
  const auto expected = source(8, sgen);
  const auto x = flow.sample(gm::SampleOptions().n(8).nfe(1).t_end(0.0));
  CHECK(gm::test::max_abs(x.to(torch::kFloat64), expected) < 1e-6);
  const auto seeded = flow.initial_noise({3, 2}, std::vector<uint64_t>{7, 8, 9});
  const auto alone = flow.initial_noise({1, 2}, std::vector<uint64_t>{8});
  CHECK(gm::test::max_abs(seeded[1], alone[0]) == 0);
  CHECK(seeded.min().item<double>() >= 5.0);
  // What assumes the Gaussian prior is refused in one line: stochastic samplers.
  CHECK(gm::test::contains(gm::test::error_of([&] { (void)flow.sample_times(gm::SampleOptions(), gm::EulerMaruyamaSampler{}); }),
                           "data source"));
  // A source whose rows do not have the data's shape.
  flow.set_source([](int64_t n, const at::Generator& g) { return torch::rand({n, 3}, g, gm::on_generator(g, torch::kFloat64)); });
  CHECK(gm::test::contains(gm::test::error_of([&] { (void)flow.loss(x0); }), "the data's shape"));
  flow.set_source({});
  CHECK(!flow.has_source());
}

TEST_CASE("couplings drawn from the plan with replacement: x0 rows and their labels follow the drawn pairs") {
  // torchcfm's sample_plan draws the batch's pairs from the plan with replacement: some data rows twice, some
  // not at all; each drawn pair is a pair of the plan.
  auto gen = gm::make_generator(12);
  auto x0 = torch::randn({64, 2}, gen, torch::kFloat64), x1 = torch::randn({64, 2}, gen, torch::kFloat64);
  const auto perm = gm::min_cost_assignment(gm::squared_distances(x0, x1));
  const gm::ExactOTCoupling with(gm::ExactOTCoupling::Options().replace(true));
  const auto p = with.pairs(x0, x1, gm::make_generator(1));
  CHECK(torch::equal(p.cols, perm.index_select(0, p.rows)));
  CHECK(std::get<0>(torch::_unique(p.rows)).numel() < 64);  // 64 draws of 64 rows: repeats (all distinct: p ~ 1e-27)
  const auto without = gm::ExactOTCoupling{}.pairs(x0, x1, gm::make_generator(1));
  CHECK(torch::equal(without.rows, torch::arange(64)));
  CHECK(torch::equal(without.cols, perm));
  // In the Trainer: with a zero network the loss is the mean cost of the drawn pairs.
  using OT = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler,
                         gm::UniformTime, gm::UniformWeight, gm::ExactOTCoupling>;
  OT ot(gm::test::zero_mlp(), gm::TrainOptions().seed(3), {}, {}, {}, {}, with);
  auto g = ot.generator().clone();
  (void)gm::UniformTime{}.sample(64, gm::Interpolant<gm::Linear>{}, g, x0.options());
  auto eps = torch::randn(x0.sizes(), g, x0.options());
  const auto drawn = with.pairs(x0, eps, g);
  const double expected = (eps.index_select(0, drawn.cols) - x0.index_select(0, drawn.rows)).pow(2).mean().item<double>();
  CHECK(ot.loss(x0).item<double>() == doctest::Approx(expected).epsilon(1e-12));
}

namespace {
/// Three steps of `trainer` on checkerboard batches from seed 5: the losses, and the weights after as one vector.
template <class T>
std::pair<std::vector<double>, torch::Tensor> three_steps(T& trainer) {
  std::vector<double> losses;
  auto data = gm::make_generator(5);
  for (int i = 0; i < 3; ++i) losses.push_back(trainer.train_step(gm::data::checkerboard(64, data)).loss);
  std::vector<torch::Tensor> w;
  for (const auto& p : trainer.net()->parameters()) w.push_back(p.detach().flatten());
  return {losses, torch::cat(w)};
}
}  // namespace

TEST_CASE("a coupling chosen at run time (gm::AnyCoupling) trains bit for bit as the coupling it holds") {
  // Each coupling as the Trainer's type and held by gm::AnyCoupling (one Trainer for all, as fashion_mnist and
  // ot_flow_2d build theirs from training.coupling): the same losses and weights after three steps, to the bit,
  // since the same calls make the same draws in the same order (fp32, so on any CPU).
  using Any = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler,
                          gm::UniformTime, gm::UniformWeight, gm::AnyCoupling>;
  const auto opts = gm::TrainOptions().seed(8).lr(1e-2).batch_size(64).precision("fp32");
  auto mlp = [] {
    torch::manual_seed(3);
    return gm::MLP(gm::MLPOptions().dim(2).hidden(32).layers(2));
  };
  auto compare = [&]<class C>(C coupling, const std::string& what) {
    CAPTURE(what);
    gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler, gm::UniformTime,
                gm::UniformWeight, C> typed(mlp(), opts, {}, {}, {}, {}, coupling);
    Any any(mlp(), opts, {}, {}, {}, {}, coupling);
    CHECK(gm::coupling_name(any.coupling()) == C::name);
    const auto [typed_losses, typed_weights] = three_steps(typed);
    const auto [any_losses, any_weights] = three_steps(any);
    CHECK(typed_losses == any_losses);
    CHECK(torch::equal(typed_weights, any_weights));
    return any_losses;
  };
  const auto independent = compare(gm::IndependentCoupling{}, "independent");
  const auto exact = compare(gm::ExactOTCoupling{}, "exact_ot");
  CHECK(exact != independent);  // the pairing changed the steps
  compare(gm::ExactOTCoupling(gm::ExactOTCoupling::Options().replace(true)), "exact_ot from the plan");
  compare(gm::SinkhornCoupling{}, "sinkhorn");
  compare(gm::SinkhornCoupling(gm::SinkhornCoupling::Options().replace(true)), "sinkhorn from the plan");
  CHECK_FALSE(gm::couples(gm::AnyCoupling{}));
  CHECK(gm::couples(gm::AnyCoupling(gm::SinkhornCoupling{})));
  // Paired noise (reflow) needs the independent coupling, chosen at run time as well.
  auto x0 = gm::data::checkerboard(16, gm::make_generator(1)), z = torch::randn({16, 2}, gm::make_generator(2));
  Any chosen_independent(mlp(), opts), chosen_exact(mlp(), opts, {}, {}, {}, {}, gm::ExactOTCoupling{});
  CHECK(std::isfinite(chosen_independent.loss(x0, {}, {}, {}, z).item<double>()));
  CHECK(gm::test::contains(gm::test::error_of([&] { chosen_exact.loss(x0, {}, {}, {}, z); }), "independent coupling"));
}

TEST_CASE("sampling precision: the network's products in bf16 under autocast, fp32 by default, training's on request") {
  // fp32 (the default) and "training" with fp32 training are the same draw bit for bit; bf16 products move the
  // samples by bf16's rounding (relative 2^-8 per product) and no more; a bad name is a one-line error.
  using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::EulerSampler>;
  Flow flow(gm::MLP(gm::MLPOptions().dim(2).hidden(64).layers(3)), gm::TrainOptions().seed(6).precision("fp32"));
  const auto noise = torch::randn({256, 2}, gm::make_generator(3));
  auto draw = [&](const std::string& p) { return flow.sample(gm::SampleOptions().n(256).nfe(8).noise(noise).precision(p)); };
  const auto fp32 = draw("fp32"), training = draw("training"), bf16 = draw("bf16");
  CHECK(torch::equal(fp32, training));
  CHECK((fp32.scalar_type() == torch::kFloat32));
  CHECK((bf16.scalar_type() == torch::kFloat32));
  const double moved = (bf16 - fp32).abs().max().item<double>(), scale = fp32.abs().max().item<double>();
  MESSAGE("bf16 products moved the samples by at most " << moved << " (samples up to " << scale << ")");
  CHECK(moved > 0);
  CHECK(moved < 0.05 * scale);
  CHECK(gm::test::contains(gm::test::error_of([&] { (void)draw("fp8"); }), "fp8"));
}
