// Config: defaults < TOML file < command line, with one-line errors for bad keys, types and values.
#include "helpers.hpp"

#include <gm/io/config.hpp>
#include <gm/train/lr_schedule.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace {

gm::Config make_config() {
  gm::Config c("test");
  c.add<int64_t>("seed", 0, "seed");
  c.add<std::string>("device", "cpu", "device", gm::check::one_of({"cpu", "cuda"}));
  c.add<int64_t>("training.steps", 100, "steps", gm::check::at_least(1));
  c.add<double>("training.lr", 1e-3, "learning rate", gm::check::positive());
  c.add<bool>("training.ema", true, "use EMA");
  c.add<std::string>("optim.schedule", "[]", "piecewise LR schedule");
  c.add<int64_t>("model.hidden", 64, "width", gm::check::in_range(1, 4096));
  return c;
}

// Run Config::parse on a command line; returns the exit code (-1 to go on).
int run(gm::Config& c, std::vector<std::string> args) {
  args.insert(args.begin(), "prog");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto code = c.parse(static_cast<int>(argv.size()), argv.data());
  return code ? *code : -1;
}

std::string file_error(const std::string& text) {
  gm::test::TempFile f(text, "config");
  auto c = make_config();
  try {
    c.load_file(f.path);
  } catch (const gm::Error& e) {
    std::string msg = e.what();
    CHECK(msg.find(f.path.string()) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    return msg;
  }
  FAIL("expected an error for: " << text);
  return {};
}

}  // namespace

TEST_CASE("a file value and a command-line override of it both take effect") {
  gm::test::TempFile f("seed = 7\n[training]\nsteps = 500\nlr = 0.01\nema = false\n[model]\nhidden = 256\n", "config");
  auto c = make_config();
  REQUIRE(run(c, {"--config", f.path.string(), "--training.steps=900", "--model.hidden", "32"}) == -1);
  CHECK(c.get<int64_t>("seed") == 7);                 // file
  CHECK(c.get<double>("training.lr") == 0.01);        // file
  CHECK(c.get<bool>("training.ema") == false);        // file
  CHECK(c.get<int64_t>("training.steps") == 900);     // command line wins over the file
  CHECK(c.get<int64_t>("model.hidden") == 32);        // command line
  CHECK(c.get<std::string>("device") == "cpu");       // default
  CHECK(c.source("training.steps") == "--training.steps");
  CHECK(c.source("device") == "default");
  CHECK(c.source("seed").find(f.path.string()) != std::string::npos);
}

TEST_CASE("the resolved config written as TOML loads back to the same values") {
  auto c = make_config();
  REQUIRE(run(c, {"--training.lr=3e-4", "--optim.schedule=[[3000, 0.001], [6000, 0.0001]]", "--device", "cuda"}) == -1);
  gm::test::TempFile f(c.to_toml(), "config");
  auto d = make_config();
  d.load_file(f.path);
  for (const auto& k : c.keys()) {
    INFO(k);
    CHECK(d.text(k) == c.text(k));
  }
  CHECK(d.get<double>("training.lr") == 3e-4);
  CHECK(d.get<std::string>("device") == "cuda");
  CHECK(d.get<std::string>("optim.schedule") == c.get<std::string>("optim.schedule"));
  CHECK(c.to_toml().find("[training]\n") != std::string::npos);
  CHECK(c.to_toml().find("device = \"cuda\"") != std::string::npos);
}

TEST_CASE("a TOML array value is kept for string keys that hold lists") {
  gm::test::TempFile f("[optim]\nschedule = [[3000, 1e-3], [6000, 1e-4]]\n", "config");
  auto c = make_config();
  c.load_file(f.path);
  const auto s = c.get<std::string>("optim.schedule");
  CHECK(s.front() == '[');
  CHECK(s.find("3000") != std::string::npos);
}

TEST_CASE("bad keys, types and values in a file are one-line errors naming file, position and key") {
  CHECK(file_error("[training]\nstepz = 5\n").find(":2:1: key 'training.stepz': unknown key") != std::string::npos);
  CHECK(file_error("[training]\nsteps = \"many\"\n").find("key 'training.steps': expected an integer") !=
        std::string::npos);
  CHECK(file_error("[training]\nsteps = 1.5\n").find("expected an integer") != std::string::npos);
  CHECK(file_error("[training]\nlr = \"fast\"\n").find("expected a finite number") != std::string::npos);
  // Non-finite and out-of-range numbers are stopped where they enter.
  CHECK(file_error("[training]\nlr = inf\n").find(":2:6: key 'training.lr': expected a finite number") != std::string::npos);
  CHECK(file_error("[training]\nlr = nan\n").find("expected a finite number") != std::string::npos);
  CHECK(file_error("[training]\nlr = 1e300\n").find("training.lr = 1e+300: expected a value > 0 that float32 can hold") !=
        std::string::npos);
  CHECK(file_error("[training]\nsteps = 0\n").find("training.steps = 0: expected a value >= 1") != std::string::npos);
  CHECK(file_error("device = \"tpu\"\n").find("expected one of: cpu, cuda") != std::string::npos);
  CHECK(file_error("[training\nsteps = 1\n").find("TOML syntax error") != std::string::npos);
  // Integers are fine where a number is expected.
  gm::test::TempFile ok("[training]\nlr = 1\n", "config");
  auto c = make_config();
  c.load_file(ok.path);
  CHECK(c.get<double>("training.lr") == 1.0);
}

TEST_CASE("bad flags and values on the command line exit with code 2") {
  auto c = make_config();
  CHECK(run(c, {"--training.stepz=5"}) == 2);
  auto d = make_config();
  CHECK(run(d, {"--training.steps=abc"}) == 2);
  auto e = make_config();
  CHECK(run(e, {"--model.hidden=0"}) == 2);
  auto f = make_config();
  CHECK(run(f, {"--config", "/nonexistent/cfg.toml"}) == 2);
  auto g = make_config();
  CHECK(run(g, {"--training.ema=maybe"}) == 2);
  auto h = make_config();
  CHECK(run(h, {"--help"}) == 0);
  // A flag given twice: the last value counts, and parse notes it.
  auto twice = make_config();
  CHECK(run(twice, {"--training.steps=5", "--model.hidden", "8", "--training.steps", "9"}) == -1);
  CHECK(twice.get<int64_t>("training.steps") == 9);
  CHECK(twice.get<int64_t>("model.hidden") == 8);
  REQUIRE(twice.notes().size() == 1);
  CHECK(twice.notes()[0] == "--training.steps given more than once: the last value counts");
  // A misspelt key: the nearest declared one, on the command line and in a file.
  auto misspelt = make_config();
  CHECK(misspelt.nearest_key("training.stepz") == "training.steps");
  CHECK(misspelt.nearest_key("trainign.lr") == "training.lr");
  CHECK(misspelt.nearest_key("wholly.different") == "");
  CHECK(run(misspelt, {"--training.lrr=0.1"}) == 2);
  CHECK(gm::test::contains(file_error("[training]\nstepz = 5\n"), "unknown key; did you mean training.steps?"));
  // An empty value is refused, and does not swallow the next argument.
  auto empty = make_config();
  CHECK(run(empty, {"--device=", "--training.steps=7"}) == 2);
  CHECK(empty.get<int64_t>("training.steps") != 7);
  // The direct form throws with the flag named.
  auto k = make_config();
  try {
    k.set_from_string("training.lr", "-1", "--training.lr");
    FAIL("expected an error");
  } catch (const gm::Error& err) {
    CHECK(std::string(err.what()) ==
          "gm: --training.lr: training.lr = -1: expected a value > 0 that float32 can hold (<= 3.4e38)");
  }
  CHECK_THROWS_WITH_AS(k.set_from_string("training.lr", "1e300", "--training.lr"), doctest::Contains("float32"), gm::Error);
  CHECK_THROWS_WITH_AS(k.set_from_string("training.lr", "inf", "--training.lr"), doctest::Contains("expected a finite number"),
                       gm::Error);
}

TEST_CASE("a schedule written as a quoted string reads as the same value as the TOML list") {
  gm::test::TempFile quoted("[optim]\nschedule = \"[[100, 1e-3], [200, 1e-4]]\"\n", "config");
  gm::test::TempFile list("[optim]\nschedule = [[100, 1e-3], [200, 1e-4]]\n", "config");
  auto a = make_config(), b = make_config();
  a.load_file(quoted.path);
  b.load_file(list.path);
  CHECK(a.text("optim.schedule") == b.text("optim.schedule"));
  auto c = make_config();
  c.set_from_string("optim.schedule", "[[100,0.001],[200,0.0001]]", "--optim.schedule");
  CHECK(c.text("optim.schedule") == b.text("optim.schedule"));
  // What a run saves loads back to the same value, so a resumed run compares equal.
  gm::test::TempFile saved(a.to_toml(), "config");
  auto d = make_config();
  d.load_file(saved.path);
  CHECK(d.text("optim.schedule") == a.text("optim.schedule"));
  CHECK(file_error("[optim]\nschedule = \"[[100, \"\n").find("expected a TOML array") != std::string::npos);
  for (const char* bad : {"[[100, nan]]", "[[100, inf]]", "[[100, 1e300]]", "[[100, -1e-3]]", "[[200, 1e-3], [100, 1e-4]]"}) {
    INFO(bad);
    CHECK_THROWS_WITH_AS(gm::LRSchedule::parse_pieces(bad, "optim.schedule"), doctest::Contains("optim.schedule"), gm::Error);
  }
  CHECK(gm::LRSchedule::parse_pieces("[[100, 1e-3], [200, 1e-4]]", "s").size() == 2);
}

TEST_CASE("set_default changes a default, keeps the check, and refuses another type") {
  auto c = make_config();
  c.set_default("training.steps", 50);
  CHECK(c.get<int64_t>("training.steps") == 50);
  CHECK(c.source("training.steps") == "default");
  CHECK_THROWS_AS(c.set_default("training.steps", 0), gm::Error);
  CHECK_THROWS_AS(c.set_default("training.steps", "many"), gm::Error);
  CHECK_THROWS_AS(c.set_default("training.nope", 1), gm::Error);
}
