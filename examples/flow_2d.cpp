// Rectified flow (Linear + Velocity) on 2-D toys with an MLP, sampled with Heun: gm's embedded default.
//
//   build/examples/flow_2d --config configs/flow_2d.toml [--training.steps=3000] [--workdir runs/my_run]
//
// Writes config.toml, meta.json, log.txt, history.csv, loss.png, checkpoints/, samples/step_<N>.npy + .png
// and the final EMA weights (weights.safetensors, state_dict.pt) into --workdir, and prints the fraction of
// samples in the checkerboard's support (0.5 for noise) and the mean ms per step.  Re-running with the same
// --workdir resumes from the newest valid checkpoint; SIGTERM or SIGINT saves one and stops cleanly;
// --mode=sample samples the newest checkpoint without training.
#include <gm/trainer.hpp>

#include <cstdio>
#include <optional>

using RectifiedFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;
using OdeSamplers = gm::type_list<gm::HeunSampler, gm::EulerSampler, gm::MidpointSampler, gm::RK4Sampler,
                                  gm::DDIMSampler, gm::DPMSolverPP2M, gm::DPMSolverPP3M, gm::UniPC<2>>;

int main(int argc, char** argv) try {
  gm::Config cfg("Rectified flow on a 2-D toy with an MLP.");
  cfg.add<std::string>("mode", "train", "train, or sample from the newest checkpoint", gm::check::one_of({"train", "sample"}));
  cfg.add<int64_t>("seed", 0, "random seed");
  cfg.add<std::string>("device", "cpu", "torch device: cpu, cuda, cuda:1", {});
  cfg.add<std::string>("workdir", "runs/flow_2d", "folder of this run's outputs");
  cfg.add<std::string>("data.name", "checkerboard", "2-D toy, or 'file' (.npy/.csv N x D) or 'mixture' (TOML)",
                       gm::check::one_of({"checkerboard", "moons", "8gaussians", "spirals", "file", "mixture"}));
  cfg.add<std::string>("data.path", "", "data file for data.name = file or mixture");
  cfg.add<int64_t>("model.hidden", 256, "MLP width", gm::check::in_range(1, 1 << 16));
  cfg.add<int64_t>("model.layers", 4, "MLP hidden layers", gm::check::in_range(1, 64));
  cfg.add<std::string>("model.activation", "silu", "activation", gm::check::one_of({"silu", "relu", "gelu", "tanh"}));
  cfg.add<std::string>("model.time_embedding", "raw", "time embedding (raw: t itself, as flow_matching)",
                       gm::check::one_of({"sinusoidal", "fourier", "raw"}));
  cfg.add<int64_t>("training.steps", 8000, "optimiser steps", gm::check::at_least(1));
  cfg.add<int64_t>("training.batch_size", 1024, "batch size", gm::check::at_least(1));
  cfg.add<double>("training.lr", 2e-3, "peak learning rate", gm::check::positive());
  cfg.add<int64_t>("training.accumulate", 1, "micro-batches per optimiser step", gm::check::at_least(1));
  cfg.add<std::string>("optim.name", "adam", "optimiser", gm::check::one_of({"adam", "adamw"}));
  cfg.add<double>("optim.weight_decay", 0.0, "weight decay", gm::check::at_least(0));
  cfg.add<std::string>("optim.schedule", "cosine", "constant, cosine, or [[until_step, lr], ...]");
  cfg.add<int64_t>("optim.warmup", 200, "linear warmup steps", gm::check::at_least(0));
  cfg.add<double>("training.clip_norm", 1.0, "gradient clipping by norm (0: off)", gm::check::at_least(0));
  cfg.add<double>("training.ema_decay", 0.999, "EMA decay; samples use the EMA weights", gm::check::in_range(0, 1));
  cfg.add<int64_t>("training.log_every", 500, "progress line every N steps", gm::check::at_least(1));
  cfg.add<bool>("training.debug", false, "overfit a single data point to check the wiring");
  cfg.add<int64_t>("training.checkpoint_every", 1000, "checkpoint every N steps", gm::check::at_least(1));
  cfg.add<int64_t>("training.keep_checkpoints", 3, "checkpoints kept", gm::check::at_least(1));
  cfg.add<std::string>("training.precision", "fp32", "fp32, or bf16: matrix products in bfloat16, weights in fp32",
                       gm::check::one_of({"fp32", "bf16"}));
  cfg.add<int64_t>("training.threads", 0, "intra-op threads (0: per precision, see gm::configure_threads)",
                   gm::check::at_least(0));
  cfg.add<std::string>("sampling.sampler", "heun", "sampler: " + gm::names(OdeSamplers{}));
  cfg.add<int64_t>("sampling.nfe", 20, "model evaluations per sample", gm::check::at_least(1));
  cfg.add<int64_t>("sampling.n", 20000, "samples to draw", gm::check::at_least(1));
  if (auto code = cfg.parse(argc, argv)) return *code;
  const bool sample_only = cfg.get<std::string>("mode") == "sample";
  const std::filesystem::path workdir = cfg.get<std::string>("workdir");
  if (sample_only && std::filesystem::exists(workdir / "config.toml")) cfg.rebase(workdir / "config.toml");

  // Check everything that can fail before the run folder is created.
  gm::LRSchedule schedule;
  const auto steps = cfg.get<int64_t>("training.steps");
  const auto sched = cfg.get<std::string>("optim.schedule");
  schedule.lr = cfg.get<double>("training.lr");
  schedule.warmup = cfg.get<int64_t>("optim.warmup");
  schedule.total = steps;
  if (sched == "constant" || sched == "cosine") schedule.kind = sched;
  else schedule.kind = "piecewise", schedule.pieces = gm::LRSchedule::parse_pieces(sched, "optim.schedule");
  const auto name = cfg.get<std::string>("data.name");
  if ((name == "file" || name == "mixture") && cfg.get<std::string>("data.path").empty()) {
    throw gm::Error("gm: data.path is required when data.name = " + name);
  }
  std::optional<gm::data::Features> features;
  std::optional<gm::GaussianMixture> mixture;
  if (name == "file") features = gm::data::Features::from_file(cfg.get<std::string>("data.path"));
  if (name == "mixture") mixture = gm::GaussianMixture::from_toml(cfg.get<std::string>("data.path"), torch::kFloat32);
  const int64_t dim = features ? features->dim() : mixture ? mixture->dim() : 2;
  gm::visit_by_name<OdeSamplers>(cfg.get<std::string>("sampling.sampler"), []<class>() {}, "sampling.sampler");
  const torch::Device device(cfg.get<std::string>("device"));

  gm::RunDir run(workdir, cfg, {"training.steps", "mode", "sampling."}, argc, argv,
                 sample_only ? gm::RunDir::Open::existing : gm::RunDir::Open::create_or_resume);
  torch::manual_seed(cfg.get<int64_t>("seed"));
  gm::MLP net(gm::MLPOptions().dim(dim).hidden(cfg.get<int64_t>("model.hidden")).layers(cfg.get<int64_t>("model.layers"))
                  .activation(cfg.get<std::string>("model.activation"))
                  .time_embedding(cfg.get<std::string>("model.time_embedding")));
  RectifiedFlow trainer(net, gm::TrainOptions()
                                 .batch_size(cfg.get<int64_t>("training.batch_size"))
                                 .clip_norm(cfg.get<double>("training.clip_norm"))
                                 .accumulate(cfg.get<int64_t>("training.accumulate"))
                                 .optimizer(cfg.get<std::string>("optim.name"))
                                 .weight_decay(cfg.get<double>("optim.weight_decay"))
                                 .schedule(schedule)
                                 .seed(static_cast<uint64_t>(cfg.get<int64_t>("seed")))
                                 .precision(cfg.get<std::string>("training.precision"))
                                 .threads(cfg.get<int64_t>("training.threads"))
                                 .device(device));
  gm::EMA ema(cfg.get<double>("training.ema_decay"));
  gm::Checkpointer ckpt(run.path() / "checkpoints", cfg.get<int64_t>("training.checkpoint_every"),
                        cfg.get<int64_t>("training.keep_checkpoints"), cfg.to_toml(), &ema,
                        [&](const std::string& line) { run.log(line); });
  const bool restored = (run.resuming() || sample_only) && ckpt.restore_latest(trainer).has_value();
  if (sample_only && !restored) throw gm::Error("gm: " + run.path().string() + " has no valid checkpoint to sample");

  const auto batch = cfg.get<int64_t>("training.batch_size");
  auto draw = [&](int64_t n, const at::Generator& gen) {
    if (features) return features->batch(n, gen);
    if (mixture) return mixture->sample(n, gen);
    return gm::data::toy2d(name, n, gen);
  };
  const auto one_point = draw(1, gm::make_generator(cfg.get<int64_t>("seed")));
  auto data = [&](int64_t) {
    if (cfg.get<bool>("training.debug")) return one_point.expand({batch, dim}).contiguous();
    return draw(batch, trainer.generator());
  };
  gm::History history(run, cfg.get<int64_t>("training.log_every"), steps);
  if (!sample_only) {
    run.log("flow_2d: " + name + ", MLP " + std::to_string(cfg.get<int64_t>("model.hidden")) + "x" +
            std::to_string(cfg.get<int64_t>("model.layers")) + ", " + std::to_string(steps) + " steps on " +
            device.str() + ", " + cfg.get<std::string>("training.precision") + ", " +
            std::to_string(torch::get_num_threads()) + " thread(s)" +
            (restored ? ", resuming at step " + std::to_string(trainer.step()) : ""));
    gm::StopSignal::install();
    trainer.fit(data, steps, ema, history, ckpt);
    if (ckpt.stopped_by_signal()) return 0;  // checkpoint saved; re-run the same command to resume
    gm::EMA::Swap swap(ema, *trainer.net());  // export what samples are drawn from: the EMA weights
    gm::io::write_safetensors(run.path() / "weights.safetensors", gm::io::named_tensors(*trainer.net()));
    gm::io::write_state_dict(run.path() / "state_dict.pt", gm::io::named_tensors(*trainer.net()));
  }

  torch::Tensor x;
  gm::visit_by_name<OdeSamplers>(cfg.get<std::string>("sampling.sampler"), [&]<class Smp>() {
    const int64_t per = gm::evals_per_step(Smp{});
    x = trainer.sample<gm::UniformGrid, Smp>(cfg.get<int64_t>("sampling.n"), std::max<int64_t>(1, cfg.get<int64_t>("sampling.nfe") / per), &ema);
  });
  x = x.to(torch::kCPU).to(torch::kFloat32);
  std::string stem = "samples/step_" + std::to_string(trainer.step());
  if (sample_only) stem += "_" + cfg.get<std::string>("sampling.sampler") + "_nfe" + std::to_string(trainer.last_nfe());
  const auto npy = run.unused(stem, ".npy");
  gm::io::write_npy(npy, x);
  if (dim == 2) gm::io::write_png(npy.parent_path() / (npy.stem().string() + ".png"),
                    gm::io::density_image(std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel()), -5, 5));
  char buf[200];
  if (name == "checkerboard") {
    std::snprintf(buf, sizeof buf, "support fraction %.4f (noise: 0.5)", gm::data::checkerboard_support(x).to(torch::kFloat64).mean().item<double>());
    run.log(buf);
  }
  if (!sample_only) {
    std::snprintf(buf, sizeof buf, "mean training step %.3f ms", history.mean_ms());
    run.log(buf);
  }
  std::snprintf(buf, sizeof buf, "%lld sampler evaluations; outputs in %s",
                static_cast<long long>(trainer.last_nfe()), run.path().c_str());
  run.log(buf);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
