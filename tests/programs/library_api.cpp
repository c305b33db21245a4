// gm's library API around the experiment layer, as a user's own program calls it (program test
// library_api): the run's EMA from Experiment::run, gm::load_weights of the exported weights and of a
// checkpoint folder, and Trainer::sample with gm::SampleOptions (a named grid, explicit times, t_end).
// Prints one "ok" line per check and exits 0, or prints a FAIL line and exits 1.
#include <gm/experiment.hpp>

#include <cstdio>
#include <filesystem>

using RectifiedFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;

namespace {
int failures = 0;
void check(bool good, const char* what) {
  std::printf("%s: %s\n", good ? "ok" : "FAIL", what);
  failures += good ? 0 : 1;
}
bool same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}
}  // namespace

int main(int argc, char** argv) {
  gm::Experiment ex("library_api", "gm's library API around an experiment.");
  gm::data::VectorData::add_keys(ex.config(), "checkerboard");
  gm::add_mlp_keys(ex.config());
  return ex.main(argc, argv, [&] {
    const auto data = gm::data::VectorData::from_config(ex.config());
    RectifiedFlow trainer(gm::make_mlp(ex.config(), data.dim()), ex.train_options());
    ex.run(trainer, data);
    const std::filesystem::path run = ex.config().get<std::string>("workdir");
    const auto ema = ex.ema().shadow();
    check(!same(ema, trainer.net()->parameters()), "the network holds its trained weights, the EMA differs");

    auto net = gm::make_mlp(ex.config(), data.dim());
    gm::load_weights(*net, run);  // weights.safetensors: the exported EMA
    check(same(net->parameters(), ema), "gm::load_weights(net, run folder) gives Experiment::ema()'s weights");
    const auto last = run / "checkpoints" / ("step_" + std::to_string(trainer.step()));
    auto from_ckpt = gm::make_mlp(ex.config(), data.dim());
    gm::load_weights(*from_ckpt, last);
    check(same(from_ckpt->parameters(), ema), "gm::load_weights(net, checkpoint folder) gives the same EMA");
    gm::load_weights(*from_ckpt, last, gm::Weights::trained);
    check(same(from_ckpt->parameters(), trainer.net()->parameters()), "gm::Weights::trained gives the trained weights");

    // Sampling options: a named grid equals its explicit times, bit for bit; t_end ends the grid.
    const auto noise = trainer.initial_noise(64);
    auto o = gm::SampleOptions().n(64).nfe(10).grid("edm").t_end(0.01).ema(&ex.ema()).noise(noise);
    const auto times = trainer.sample_times(o);
    check(times.size() == 6 && times.front() == 1.0 && times.back() == 0.01, "Heun at NFE 10: 5 steps from 1 to t_end");
    check(times == gm::grid_nodes("edm", 5, 0.01, gm::Interpolant<gm::Linear>{}), "the edm grid's nodes by name");
    const auto by_name = trainer.sample(o);
    check(trainer.last_nfe() == 10, "10 evaluations");
    const auto by_times = trainer.sample(gm::SampleOptions().times(times).ema(&ex.ema()).noise(noise));
    check(torch::equal(by_name, by_times), "a named grid and its explicit times sample the same");
    const auto euler = trainer.sample(o, gm::EulerSampler{});
    check(trainer.last_nfe() == 10 && !torch::equal(euler, by_name), "another sampler through the same options");
    check(same(trainer.net()->parameters(), from_ckpt->parameters()), "sampling from the EMA swaps the weights back");
    bool refused = false;
    try {
      trainer.sample(gm::SampleOptions().times({1.0, 0.5, 0.7}));
    } catch (const gm::Error& e) {
      refused = std::string(e.what()).find("must decrease") != std::string::npos;
    }
    check(refused, "times that do not decrease are refused");
    if (failures) throw gm::Error("gm: library_api: " + std::to_string(failures) + " checks failed");
  });
}
