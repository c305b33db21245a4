// Checkpoints: bit-exact resume, stopping on SIGTERM/SIGINT/SIGUSR1, skipping broken checkpoints, keeping the last K.
#include "helpers.hpp"

#include <gm/io/export.hpp>
#include <gm/io/file.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/trainer.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

namespace {

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

// A trainer whose initial weights depend on `init_seed`; everything after comes from TrainOptions().seed.
Flow make_trainer(int64_t total, uint64_t init_seed) {
  torch::manual_seed(init_seed);
  gm::LRSchedule s;
  s.kind = "cosine";
  s.lr = 2e-3;
  s.warmup = 5;
  s.total = total;
  return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(32).layers(2)), gm::TrainOptions().seed(5).schedule(s).clip_norm(1));
}

auto data_of(Flow& t) {
  return [&t](int64_t) { return gm::data::checkerboard(64, t.generator()); };
}

void check_identical(Flow& a, gm::EMA& ea, Flow& b, gm::EMA& eb) {
  auto pa = a.net()->parameters(), pb = b.net()->parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));
  REQUIRE(ea.shadow().size() == eb.shadow().size());
  for (size_t i = 0; i < ea.shadow().size(); ++i) CHECK(torch::equal(ea.shadow()[i], eb.shadow()[i]));
  CHECK(a.step() == b.step());
}

// Raises a signal at a given step, as a scheduler's pre-emption would.
struct RaiseAt {
  int64_t step;
  int sig;
  template <class T>
  void on_step_end(T&, const gm::StepStats& s) {
    if (s.step == step) std::raise(sig);
  }
};

}  // namespace

TEST_CASE("training N steps, stopping and resuming to 2N is bit-identical to 2N in one go") {
  const int64_t n = 30;
  auto straight = make_trainer(2 * n, 0);
  gm::EMA ema_a(0.99);
  straight.fit(data_of(straight), 2 * n, ema_a);

  const auto dir = gm::test::fresh_dir("ckpt_resume");
  {
    auto first = make_trainer(2 * n, 0);
    gm::EMA ema(0.99);
    gm::Checkpointer ck(dir, 0, 2, "seed = 0\n", &ema);
    first.fit(data_of(first), n, ema, ck);  // the final checkpoint is written at step n
  }
  auto resumed = make_trainer(2 * n, 123);  // different initial weights: all state must come from the checkpoint
  gm::EMA ema_c(0.99);
  gm::Checkpointer ck(dir, 0, 2, "seed = 0\n", &ema_c);
  REQUIRE(ck.restore_latest(resumed) == n);
  resumed.fit(data_of(resumed), 2 * n, ema_c, ck);
  check_identical(straight, ema_a, resumed, ema_c);
  std::filesystem::remove_all(dir);
}

TEST_CASE("SIGTERM, SIGINT and SIGUSR1 stop training cleanly with a checkpoint, and the resume is bit-identical") {
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) {
    INFO("signal " << sig);
    const int64_t n = 40;
    auto straight = make_trainer(n, 0);
    gm::EMA ema_a(0.99);
    straight.fit(data_of(straight), n, ema_a);

    const auto dir = gm::test::fresh_dir("ckpt_signal" + std::to_string(sig));
    gm::StopSignal::reset();
    gm::StopSignal::install();
    {
      auto first = make_trainer(n, 0);
      gm::EMA ema(0.99);
      RaiseAt raise{17, sig};
      gm::Checkpointer ck(dir, 1000, 2, "seed = 0\n", &ema);
      first.fit(data_of(first), n, ema, raise, ck);
      CHECK(first.step() == 17);
      CHECK(ck.stopped_by_signal());
    }
    gm::StopSignal::reset();
    std::signal(sig, SIG_DFL);
    auto resumed = make_trainer(n, 99);
    gm::EMA ema_c(0.99);
    gm::Checkpointer ck(dir, 1000, 2, "seed = 0\n", &ema_c);
    REQUIRE(ck.restore_latest(resumed) == 17);
    resumed.fit(data_of(resumed), n, ema_c, ck);
    check_identical(straight, ema_a, resumed, ema_c);
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("a truncated checkpoint or one without its marker is skipped, and only the last K are kept") {
  const auto dir = gm::test::fresh_dir("ckpt_broken");
  auto t = make_trainer(50, 0);
  gm::EMA ema(0.99);
  std::vector<std::string> said;
  gm::Checkpointer ck(dir, 10, 3, "seed = 0\n", &ema, [&](const std::string& s) { said.push_back(s); });
  t.fit(data_of(t), 50, ema, ck);
  auto all = ck.list();
  REQUIRE(all.size() == 3);  // 30, 40, 50 kept
  CHECK(all[0].first == 50);
  CHECK(all[2].first == 30);
  // Truncate step 50's model, remove step 40's marker: resume falls back to step 30.
  std::filesystem::resize_file(all[0].second / "model.safetensors", 100);
  std::filesystem::remove(all[1].second / "COMMIT");
  auto r = make_trainer(50, 1);
  gm::EMA ema_r(0.99);
  gm::Checkpointer ck2(dir, 10, 3, "seed = 0\n", &ema_r, [&](const std::string& s) { said.push_back(s); });
  CHECK(ck2.restore_latest(r) == 30);
  CHECK(r.step() == 30);
  REQUIRE(said.size() >= 3);
  CHECK(said[0].find("step_50: model.safetensors has 100 bytes") != std::string::npos);
  CHECK(said[0].find("truncated") != std::string::npos);
  CHECK(said[1].find("step_40: no COMMIT marker") != std::string::npos);
  CHECK(said[2].find("resumed from") != std::string::npos);
  // No checkpoint at all: nothing to restore.
  gm::Checkpointer none(gm::test::fresh_dir("ckpt_none"), 10, 3, "", nullptr);
  auto z = make_trainer(10, 0);
  CHECK_FALSE(none.restore_latest(z).has_value());
  std::filesystem::remove_all(dir);
}

TEST_CASE("gm::load_weights of a checkpoint folder takes its EMA (or its trained weights); misfits name the file") {
  const auto dir = gm::test::fresh_dir("ckpt_load_weights");
  auto t = make_trainer(20, 0);
  gm::EMA ema(0.9);
  gm::Checkpointer ck(dir, 0, 2, "seed = 0\n", &ema);
  t.fit(data_of(t), 20, ema, ck);  // the final checkpoint, step_20
  const auto step = dir / "step_20";
  REQUIRE(std::filesystem::exists(step / "state.safetensors"));
  auto fresh = make_trainer(20, 77);
  gm::load_weights(*fresh.net(), step);  // the EMA
  auto p = fresh.net()->parameters();
  REQUIRE(p.size() == ema.shadow().size());
  for (size_t i = 0; i < p.size(); ++i) CHECK(torch::equal(p[i], ema.shadow()[i]));
  gm::load_weights(*fresh.net(), step, gm::Weights::trained);
  auto q = t.net()->parameters();
  p = fresh.net()->parameters();
  bool differs = false;
  for (size_t i = 0; i < p.size(); ++i) {
    CHECK(torch::equal(p[i], q[i]));
    differs = differs || !torch::equal(q[i], ema.shadow()[i]);
  }
  CHECK(differs);  // the two loads gave different weights
  torch::manual_seed(0);
  gm::MLP other(gm::MLPOptions().dim(2).hidden(16).layers(2));
  const auto msg = gm::test::error_of([&] { gm::load_weights(*other, step); });
  CHECK(gm::test::contains(msg, "model.safetensors: tensor '"));
  std::filesystem::remove_all(dir);
}

namespace {

// Rewrite `file` of checkpoint folder `dir` with `tensors`, and its COMMIT line to match (as gm writes it).
void rewrite_checkpoint_file(const std::filesystem::path& dir, const std::string& file, const gm::io::NamedTensors& tensors) {
  const std::string bytes = gm::io::encode_safetensors(tensors);
  std::ofstream(dir / file, std::ios::binary | std::ios::trunc) << bytes;
  std::istringstream in(gm::io::read_file(dir / "COMMIT"));
  std::ostringstream marker;
  std::string name;
  uint64_t size = 0;
  uint32_t crc = 0;
  while (in >> name >> size >> crc) {
    if (name == file) size = bytes.size(), crc = gm::detail::crc_of(bytes);
    marker << name << ' ' << size << ' ' << crc << '\n';
  }
  std::ofstream(dir / "COMMIT", std::ios::trunc) << marker.str();
}

std::string text_of(const torch::Tensor& t) {
  return {reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), static_cast<size_t>(t.numel())};
}

}  // namespace

TEST_CASE("a checkpoint records its generator's device; one of another device resumes with the random stream restarted") {
  const auto dir = gm::test::fresh_dir("ckpt_device");
  auto first = make_trainer(40, 0);
  gm::EMA ema(0.99);
  gm::Checkpointer ck(dir, 20, 3, "seed = 0\n", &ema);
  first.fit(data_of(first), 20, ema, ck);
  auto state = gm::io::read_safetensors(dir / "step_20" / "state.safetensors");
  auto find = [&](const std::string& name) -> torch::Tensor& {
    auto it = std::find_if(state.begin(), state.end(), [&](const auto& e) { return e.first == name; });
    REQUIRE_MESSAGE(it != state.end(), "no " << name << " in state.safetensors");
    return it->second;
  };
  CHECK(text_of(find("rng_device")) == "cpu");

  SUBCASE("the same device resumes bit-exactly, also from a checkpoint written before rng_device") {
    gm::io::NamedTensors old;
    for (const auto& [n, t] : state) if (n != "rng_device") old.emplace_back(n, t);
    rewrite_checkpoint_file(dir / "step_20", "state.safetensors", old);
    auto resumed = make_trainer(40, 9);
    gm::EMA ema_r(0.99);
    gm::Checkpointer ck2(dir, 20, 3, "seed = 0\n", &ema_r);
    REQUIRE(ck2.restore_latest(resumed) == 20);
    CHECK(torch::equal(resumed.generator().get_state(), first.generator().get_state()));
  }
  SUBCASE("a CUDA generator's state (16 bytes: Philox seed and offset) resumes on the CPU, and nothing is deleted") {
    find("rng") = torch::zeros({16}, torch::kUInt8);
    find("rng_device") = torch::tensor({'c', 'u', 'd', 'a'}, torch::kUInt8);
    rewrite_checkpoint_file(dir / "step_20", "state.safetensors", state);
    auto resumed = make_trainer(40, 9);
    gm::EMA ema_r(0.99);
    std::vector<std::string> said;
    gm::Checkpointer ck2(dir, 20, 3, "seed = 0\n", &ema_r, [&](const std::string& s) { said.push_back(s); });
    REQUIRE(ck2.restore_latest(resumed) == 20);
    REQUIRE(!said.empty());
    CHECK(said.back().find("saved on cuda and cannot be set on cpu") != std::string::npos);
    CHECK(said.back().find("the random stream restarts from (seed, step)") != std::string::npos);
    auto pa = first.net()->parameters(), pb = resumed.net()->parameters();
    for (size_t i = 0; i < pa.size(); ++i) CHECK(torch::equal(pa[i], pb[i]));
    for (size_t i = 0; i < ema.shadow().size(); ++i) CHECK(torch::equal(ema.shadow()[i], ema_r.shadow()[i]));
    CHECK(torch::equal(resumed.generator().get_state(), gm::make_generator(gm::mix_seed(5, 20)).get_state()));
    resumed.fit(data_of(resumed), 40, ema_r, ck2);
    CHECK(resumed.step() == 40);
    CHECK(std::filesystem::exists(dir / "step_20" / "COMMIT"));
    CHECK(std::filesystem::exists(dir / "step_40" / "COMMIT"));
  }
  SUBCASE("a generator state that fits no generator of this device is still refused") {
    find("rng") = torch::zeros({16}, torch::kUInt8);
    rewrite_checkpoint_file(dir / "step_20", "state.safetensors", state);
    auto resumed = make_trainer(40, 9);
    gm::EMA ema_r(0.99);
    std::vector<std::string> said;
    gm::Checkpointer ck2(dir, 20, 3, "seed = 0\n", &ema_r, [&](const std::string& s) { said.push_back(s); });
    CHECK_FALSE(ck2.restore_latest(resumed).has_value());
    CHECK(said[0].find("rng does not fit this generator") != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
