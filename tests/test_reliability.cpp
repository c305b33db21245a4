// Reliability: each case reproduces a wrong result or a data loss found in review or trials (issue 10)
// and checks the fix: non-finite training, checkpoint pruning and damaged checkpoints, accumulation
// weights, frozen parameters, time samplers at the ends of [0, 1], samplers ending at t = 0, VPCosine in
// float32, EDM preconditioning at t = 1, alpha(1) = 0 at run time, the sampling generator, .npy dtypes.
#include "helpers.hpp"

#include <gm/data/features.hpp>
#include <gm/io/npy.hpp>
#include <gm/sampler.hpp>
#include <gm/trainer.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <unistd.h>

using gm::test::f64;

namespace {

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

Flow small_trainer(gm::TrainOptions o = gm::TrainOptions()) {
  torch::manual_seed(0);
  return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(2)), o.seed(3));
}

std::vector<torch::Tensor> copy_params(Flow& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.net()->parameters()) out.push_back(p.detach().clone());
  return out;
}

bool same_params(Flow& t, const std::vector<torch::Tensor>& ps) {
  auto now = t.net()->parameters();
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!torch::equal(now[i], ps[i])) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("a non-finite loss stops training before any weight changes; skipping is bounded and opt-in") {
  auto t = small_trainer();
  auto nan_batch = torch::full({32, 2}, std::nan(""));
  auto good = gm::data::checkerboard(32, gm::make_generator(1));
  t.train_step(good);
  const auto before = copy_params(t);
  try {
    t.train_step(nan_batch);
    FAIL("expected a NonFiniteError");
  } catch (const gm::NonFiniteError& e) {
    CHECK(e.step == 2);
    CHECK(std::isnan(e.loss));
    CHECK(std::string(e.what()).find("step 2: the loss (nan)") != std::string::npos);
  }
  CHECK(same_params(t, before));
  CHECK(t.step() == 1);

  auto s = small_trainer(gm::TrainOptions().max_nonfinite_skips(2));
  s.train_step(good);
  const auto kept = copy_params(s);
  CHECK(s.train_step(nan_batch).skipped);
  CHECK(s.train_step(nan_batch).skipped);
  CHECK(same_params(s, kept));
  CHECK(s.skipped_steps() == 2);
  CHECK_THROWS_AS(s.train_step(nan_batch), gm::NonFiniteError);
  CHECK_FALSE(s.train_step(good).skipped);
}

TEST_CASE("non-finite weights are never written to a checkpoint, and good checkpoints stay") {
  const auto dir = gm::test::fresh_dir("rel_nonfinite_ckpt");
  auto t = small_trainer();
  gm::EMA ema(0.9);
  gm::Checkpointer ck(dir, 5, 1, "seed = 0\n", &ema);
  t.fit([&](int64_t) { return gm::data::checkerboard(32, t.generator()); }, 10, ema, ck);
  REQUIRE(ck.list().size() == 1);
  {
    torch::NoGradGuard ng;
    t.net()->parameters()[0].fill_(std::numeric_limits<float>::infinity());
  }
  t.set_step(11);
  CHECK_THROWS_AS(ck.save(t), gm::NonFiniteError);
  auto all = ck.list();
  REQUIRE(all.size() == 1);  // keep = 1, and the good step_10 was not pruned for a bad one
  CHECK(all[0].first == 10);
  std::string why;
  CHECK(gm::Checkpointer::valid(all[0].second, why));
  CHECK(!std::filesystem::exists(dir / ".tmp_step_11"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("pruning keeps committed checkpoints only: an uncommitted newer folder never costs a valid one") {
  // keep = 1; a pre-empted save left an uncommitted step_150; the run resumed from step_100 and saved 120.
  const auto dir = gm::test::fresh_dir("rel_prune");
  auto t = small_trainer();
  gm::EMA ema(0.9);
  auto data = [&](int64_t) { return gm::data::checkerboard(32, t.generator()); };
  {
    gm::Checkpointer ck(dir, 100, 1, "seed = 0\n", &ema);
    t.fit(data, 100, ema, ck);
  }
  std::filesystem::create_directories(dir / "step_150");
  std::ofstream(dir / "step_150" / "model.safetensors") << "partial";
  std::filesystem::create_directories(dir / ".tmp_step_90");
  auto r = small_trainer();
  gm::EMA ema_r(0.9);
  gm::Checkpointer ck(dir, 1000, 1, "seed = 0\n", &ema_r);
  REQUIRE(ck.restore_latest(r) == 100);
  r.fit([&](int64_t) { return gm::data::checkerboard(32, r.generator()); }, 120, ema_r, ck);  // saves step_120
  auto all = ck.list();
  REQUIRE(all.size() == 1);
  CHECK(all[0].first == 120);
  CHECK(!std::filesystem::exists(dir / "step_150"));
  CHECK(!std::filesystem::exists(dir / ".tmp_step_90"));
  auto again = small_trainer();
  gm::EMA ema_a(0.9);
  gm::Checkpointer ck2(dir, 1000, 1, "seed = 0\n", &ema_a);
  CHECK(ck2.restore_latest(again) == 120);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a checkpoint that fails to load is skipped, the trainer is left as it was, and all-bad says so") {
  const auto dir = gm::test::fresh_dir("rel_damaged");
  auto t = small_trainer();
  gm::EMA ema(0.9);
  gm::Checkpointer ck(dir, 10, 3, "seed = 0\n", &ema);
  t.fit([&](int64_t) { return gm::data::checkerboard(32, t.generator()); }, 30, ema, ck);
  // step_30: a garbage model.safetensors whose COMMIT matches it; step_20: model.safetensors replaced by a folder.
  const std::string garbage(300, 'x');
  std::ofstream(dir / "step_30" / "model.safetensors", std::ios::trunc) << garbage;
  std::string marker = gm::io::read_file(dir / "step_30" / "COMMIT");
  marker.replace(0, marker.find('\n'), "model.safetensors " + std::to_string(garbage.size()) + " " +
                                         std::to_string(gm::detail::crc_of(garbage)));
  std::ofstream(dir / "step_30" / "COMMIT", std::ios::trunc) << marker;
  std::filesystem::remove(dir / "step_20" / "model.safetensors");
  std::filesystem::create_directories(dir / "step_20" / "model.safetensors");
  std::vector<std::string> said;
  auto r = small_trainer();
  const auto initial = copy_params(r);
  gm::EMA ema_r(0.9);
  gm::Checkpointer ck2(dir, 10, 3, "seed = 0\n", &ema_r, [&](const std::string& s) { said.push_back(s); });
  CHECK(ck2.restore_latest(r) == 10);
  REQUIRE(said.size() == 3);
  CHECK(said[0].find("step_30: cannot be loaded") != std::string::npos);
  CHECK(said[1].find("step_20") != std::string::npos);
  CHECK(said[2].find("resumed from") != std::string::npos);
  // Every checkpoint bad: nothing restored, the trainer untouched, and the log says so.
  std::filesystem::remove_all(dir / "step_10" / "state.safetensors");
  said.clear();
  auto z = small_trainer();
  gm::EMA ema_z(0.9);
  gm::Checkpointer ck3(dir, 10, 3, "seed = 0\n", &ema_z, [&](const std::string& s) { said.push_back(s); });
  CHECK_FALSE(ck3.restore_latest(z).has_value());
  CHECK(z.step() == 0);
  CHECK(same_params(z, initial));
  CHECK(said.back().find("no valid checkpoint") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a run folder of gm 0.1 (torch archives) is refused, not restarted from step 0") {
  const auto dir = gm::test::fresh_dir("rel_legacy");
  std::filesystem::create_directories(dir / "step_10");
  std::ofstream(dir / "step_10" / "model.pt") << "PK";
  auto t = small_trainer();
  gm::Checkpointer ck(dir, 10, 1, "", nullptr);
  CHECK_THROWS_WITH_AS(ck.restore_latest(t), doctest::Contains("written by gm 0.1"), gm::Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a checkpoint of another model is refused whole: nothing in the trainer changes") {
  const auto dir = gm::test::fresh_dir("rel_foreign");
  torch::manual_seed(1);
  Flow wide(gm::MLP(gm::MLPOptions().dim(2).hidden(32).layers(2)), gm::TrainOptions().seed(3));
  gm::EMA ema(0.9);
  gm::Checkpointer ck(dir, 5, 1, "seed = 0\n", &ema);
  wide.fit([&](int64_t) { return gm::data::checkerboard(32, wide.generator()); }, 5, ema, ck);
  auto narrow = small_trainer();
  const auto before = copy_params(narrow);
  const auto rng = narrow.generator().get_state();
  std::vector<std::string> said;
  gm::EMA ema_n(0.9);
  gm::Checkpointer ck2(dir, 5, 1, "seed = 0\n", &ema_n, [&](const std::string& s) { said.push_back(s); });
  CHECK_FALSE(ck2.restore_latest(narrow).has_value());
  CHECK(said[0].find("does not fit the model") != std::string::npos);
  CHECK(same_params(narrow, before));
  CHECK(torch::equal(narrow.generator().get_state(), rng));
  CHECK(narrow.step() == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the checkpoint CRC covers any length, fed to zlib in pieces") {
  std::string bytes(5000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 % 251);
  const auto whole = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
  CHECK(gm::detail::crc_of(bytes) == whole);
  CHECK(gm::detail::crc_of(bytes, 7) == whole);
}

TEST_CASE("accumulated micro-batches are weighted by their share of the batch") {
  // Batch 10 in 4 chunks is 3, 3, 3, 1: the step's loss is sum (size / 10) loss(chunk).
  auto t = small_trainer(gm::TrainOptions().accumulate(4));
  auto batch = gm::data::checkerboard(10, gm::make_generator(2));
  const auto rng = t.generator().get_state();
  const auto params = copy_params(t);
  const double reported = t.train_step(batch).loss;
  {
    torch::NoGradGuard ng;
    auto now = t.net()->parameters();
    for (size_t i = 0; i < now.size(); ++i) now[i].copy_(params[i]);
  }
  t.generator().set_state(rng);
  double expected = 0;
  for (const auto& chunk : batch.chunk(4, 0)) expected += t.loss(chunk).item<double>() * chunk.size(0) / 10.0;
  CHECK(reported == doctest::Approx(expected).epsilon(1e-6));
}

TEST_CASE("FlatAdam leaves frozen parameters alone, and optimizer() is the FlatAdam") {
  auto t = small_trainer();
  auto w = t.net()->parameters()[0];
  w.set_requires_grad(false);
  Flow frozen(t.net(), gm::TrainOptions().weight_decay(0.1).optimizer("adamw").seed(1));
  const auto before = w.detach().clone();
  for (int i = 0; i < 20; ++i) frozen.train_step(gm::data::checkerboard(32, frozen.generator()));
  CHECK(torch::equal(w, before));
  Flow adam(t.net(), gm::TrainOptions().weight_decay(0.1).seed(1));
  for (int i = 0; i < 20; ++i) adam.train_step(gm::data::checkerboard(32, adam.generator()));
  CHECK(torch::equal(w, before));
  gm::FlatAdam& opt = adam.optimizer();
  CHECK_NOTHROW(adam.optimizer().zero_grad());
  int64_t trainable = 0;
  for (const auto& p : adam.net()->parameters()) trainable += p.requires_grad() ? p.numel() : 0;
  CHECK(opt.flat_params().numel() == trainable);
}

TEST_CASE("time samplers stay inside [eps, 1 - eps], also where float32 rounds to the ends") {
  auto ip = gm::Interpolant<gm::Linear>{};
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto gen = gm::make_generator(9);
  const double eps = 1e-5;
  auto inside = [&](const torch::Tensor& t) {
    return t.min().item<double>() >= static_cast<float>(eps) && t.max().item<double>() <= static_cast<float>(1 - eps);
  };
  for (int b = 0; b < 24; ++b) {  // antithetic pairs give 1 - 0 = 1 about n / 2^24 times a batch
    CHECK(inside(gm::StratifiedTime(gm::StratifiedTime::Options().antithetic(true)).sample(1 << 20, ip, gen, f32)));
  }
  CHECK(inside(gm::UniformTime().sample(1 << 20, ip, gen, f32)));
  CHECK(inside(gm::LogitNormalTime(gm::LogitNormalTime::Options().std(12)).sample(1 << 16, ip, gen, f32)));
  CHECK(inside(gm::EDMLogNormalTime(gm::EDMLogNormalTime::Options().p_std(6)).sample(1 << 16, ip, gen, f32)));
}

TEST_CASE_TEMPLATE("every sampler may end at t = 0, where sigma = 0", S, gm::EulerSampler, gm::HeunSampler,
                   gm::RK4Sampler, gm::DopriSampler, gm::DDIMSampler, gm::DPMSolverPP2M, gm::DPMSolverPP3M,
                   gm::UniPC<2>) {
  gm::Interpolant<gm::Linear> ip;
  auto g = gm::GaussianMixture(torch::tensor({0.5, 0.5}, f64()), torch::tensor({{1.0, 0.0}, {-1.0, 0.0}}, f64()),
                               torch::tensor({0.3, 0.3}, f64()));
  gm::Field field(ip, gm::Predict<gm::Data>{},
                  [&](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<gm::Data>(x, t, ip); });
  auto x = gm::integrate(S{}, field, torch::randn({256, 2}, f64()), gm::UniformGrid().nodes(40, 0.0, ip));
  CHECK(torch::isfinite(x).all().template item<bool>());
  CHECK(g.log_prob(x).mean().template item<double>() > g.log_prob(g.sample(256, gm::make_generator(1))).mean().template item<double>() - 1);
}

TEST_CASE("VPCosine's sigma keeps float32 precision near t = 0") {
  gm::Interpolant<gm::VPCosine> ip;
  for (double t : {1e-5, 1e-4, 1e-3}) {
    const double ref = ip.sigma(torch::tensor(t, torch::kFloat64)).item<double>();
    const double got = ip.sigma(torch::tensor(t, torch::kFloat32)).item<double>();
    INFO("t = " << t);
    CHECK(std::abs(got / ref - 1) < 1e-5);
  }
  // The float64 value against the definition sqrt(1 - alpha^2), at a time where that is well conditioned.
  auto t = torch::tensor(0.3, torch::kFloat64);
  CHECK(ip.sigma(t).item<double>() == doctest::Approx(std::sqrt(1 - std::pow(ip.alpha(t).item<double>(), 2))).epsilon(1e-12));
}

TEST_CASE_TEMPLATE("every parameterisation gives finite network inputs and estimates at t = 1 and t_end", S, GM_ALL_SCHEDULES) {
  gm::Interpolant<S> ip;
  auto x = torch::randn({8, 2}, f64());
  auto out = torch::randn({8, 2}, f64());
  int checked = 0;
  gm::for_each_type<gm::type_list<gm::Velocity, gm::Noise, gm::Score, gm::Data, gm::EDMPrecond>>([&]<class P>() {
    if constexpr (gm::alpha_vanishes_at_one<S>() && (std::is_same_v<P, gm::Noise> || std::is_same_v<P, gm::Score>)) {
      return;  // rejected at compile time
    } else {
      gm::Predict<P> pred;
      for (double tv : {1.0, 1e-3}) {
        auto t = torch::full({8}, tv, f64());
        INFO(S::name << " / " << P::name << " at t = " << tv);
        CHECK(torch::isfinite(pred.network_time(t, ip)).all().template item<bool>());
        CHECK(torch::isfinite(pred.network_input(x, t, ip)).all().template item<bool>());
        CHECK(torch::isfinite(pred.estimate(out, x, t, ip).data).all().template item<bool>());
        ++checked;
      }
    }
  });
  CHECK(checked >= 6);
}

TEST_CASE("Linear + EDMPrecond + Heun samples finite values from t = 1") {
  using EDMFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::EDMPrecond>, gm::MLP, gm::HeunSampler>;
  torch::manual_seed(0);
  EDMFlow t(gm::MLP(gm::MLPOptions().dim(2).hidden(16).layers(2)), gm::TrainOptions());
  CHECK(torch::isfinite(t.sample(gm::SampleOptions().n(64).nfe(16))).all().item<bool>());
}

namespace {
struct LinSinNoTrait {  // alpha(1) = 0, without declaring alpha_vanishes_at_one
  static constexpr std::string_view name = "lin_sin";
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sin(0.5 * M_PI * t); }
};
}  // namespace

TEST_CASE("a Noise prediction on a schedule with alpha(1) = 0 and no trait is refused at run time") {
  using Bad = gm::Trainer<gm::Interpolant<LinSinNoTrait>, gm::Predict<gm::Noise>, gm::MLP, gm::HeunSampler>;
  CHECK_THROWS_WITH_AS(Bad(gm::MLP(gm::MLPOptions().dim(2)), gm::TrainOptions()),
                       doctest::Contains("process 'lin_sin' has alpha(1) = 0"), gm::Error);
  using Good = gm::Trainer<gm::Interpolant<LinSinNoTrait>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;
  CHECK_NOTHROW(Good(gm::MLP(gm::MLPOptions().dim(2)), gm::TrainOptions()));
}

TEST_CASE("sampling draws from its own generator: previews never shift the training stream") {
  auto t = small_trainer();
  const auto before = t.generator().get_state();
  t.sample(gm::SampleOptions().n(32).nfe(8));
  CHECK(torch::equal(t.generator().get_state(), before));
  auto a = small_trainer(), b = small_trainer();
  a.sample(gm::SampleOptions().n(32).nfe(8));
  auto batch = gm::data::checkerboard(32, gm::make_generator(4));
  CHECK(a.train_step(batch).loss == b.train_step(batch).loss);
}

TEST_CASE("write_npy keeps integer and boolean dtypes") {
  const auto dir = gm::test::fresh_dir("rel_npy");
  std::filesystem::create_directories(dir);
  gm::io::write_npy(dir / "i.npy", torch::arange(6, torch::kInt64).reshape({2, 3}));
  gm::io::write_npy(dir / "b.npy", torch::tensor({true, false}));
  gm::io::write_npy(dir / "f.npy", torch::ones({2, 2}, torch::kFloat64));
  CHECK(gm::io::read_file(dir / "i.npy").find("'descr': '<i8'") != std::string::npos);
  CHECK(gm::io::read_file(dir / "i.npy").find("'shape': (2,3)") != std::string::npos);
  CHECK(gm::io::read_file(dir / "b.npy").find("'descr': '|b1'") != std::string::npos);
  CHECK(torch::equal(gm::data::read_npy(dir / "f.npy"), torch::ones({2, 2}, torch::kFloat64)));
  CHECK_THROWS_AS(gm::io::write_npy(dir / "c.npy", torch::ones({2}, torch::kComplexFloat)), gm::Error);
  CHECK(!std::filesystem::exists(dir / "c.npy"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("data files: non-finite or huge values, empty shapes and header guessing are one-line errors") {
  const auto dir = gm::test::fresh_dir("rel_data");
  std::filesystem::create_directories(dir);
  auto nan = torch::ones({4, 2}, torch::kFloat64);
  nan[2][1] = std::nan("");
  gm::io::write_npy(dir / "nan.npy", nan);
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "nan.npy"), doctest::Contains("nan.npy: row 3, column 2"), gm::Error);
  auto big = torch::ones({3, 2}, torch::kFloat64);
  big[0][0] = 1e300;
  gm::io::write_npy(dir / "big.npy", big);
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "big.npy"), doctest::Contains("row 1, column 1"), gm::Error);
  gm::io::write_npy(dir / "empty.npy", torch::ones({0, 2}));
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "empty.npy"), doctest::Contains("it has no rows"), gm::Error);
  gm::io::write_npy(dir / "nocols.npy", torch::ones({3, 0}));
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "nocols.npy"), doctest::Contains("no columns"), gm::Error);
  std::string bad_shape = gm::io::read_file(dir / "nan.npy");
  bad_shape.replace(bad_shape.find("(4,2)"), 5, "(4,x)");
  std::ofstream(dir / "shape.npy", std::ios::binary) << bad_shape;
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "shape.npy"), doctest::Contains("bad shape entry 'x'"), gm::Error);
  std::string huge = gm::io::read_file(dir / "nan.npy");
  huge.replace(huge.find("(4,2)"), 5, "(4000000000000,2)");
  std::ofstream(dir / "huge.npy", std::ios::binary) << huge;
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "huge.npy"), doctest::Contains("needs more than"), gm::Error);
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir), doctest::Contains("is a folder"), gm::Error);
  // CSV: a BOM is ignored; a first row with a number in it is data, so a typo is an error, not a lost row.
  std::ofstream(dir / "bom.csv") << "\xEF\xBB\xBFx,y\n1,2\n3,4\n";
  std::string header;
  auto x = gm::data::read_features(dir / "bom.csv", &header);
  CHECK(x.size(0) == 2);
  CHECK(header == "x,y");
  std::ofstream(dir / "bomdata.csv") << "\xEF\xBB\xBF" "1,2\n3,4\n";
  CHECK(gm::data::read_features(dir / "bomdata.csv").size(0) == 2);
  std::ofstream(dir / "typo.csv") << "1.0,2.x\n3,4\n";
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "typo.csv"), doctest::Contains("typo.csv:1: not a number"), gm::Error);
  std::ofstream(dir / "inf.csv") << "1,2\ninf,4\n";
  CHECK_THROWS_WITH_AS(gm::data::read_features(dir / "inf.csv"), doctest::Contains("row 2, column 1"), gm::Error);
  std::filesystem::remove_all(dir);
}
