// gpu_check: the checks that need a CUDA GPU, one line each ("ok: ..." or "FAIL: ..."), exit 1 on any failure.
// Without a visible GPU it prints why and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE), never
// as passed.  scripts/gpu_check.sh runs it on a machine with a GPU.
//  - every deterministic sampler on CUDA agrees with the CPU on the mixture oracle (float64, VP and Linear);
//  - UNet training steps (with attention) on CUDA in fp32, bf16 (autocast) and fp16 (the dynamic loss scale);
//    DiT, EDM2's UNet and MeanFlow (a JVP through the network) steps in bf16;
//  - 2-D data (toys, a mixture, a feature file) drawn from a CUDA generator (flow_2d --device=cuda's batches);
//  - a checkpoint on CUDA resumes bit-exactly, EMA included; a CPU checkpoint resumes on CUDA and the reverse;
//  - classifier-free guidance sampled with DPM++(2M) SDE on its Brownian tree, on CUDA;
//  - minibatch couplings (exact OT within classes and across, Sinkhorn) equal to the CPU's, and OT-CFM UNet steps;
//  - image batches with flips and with dequantisation through pinned memory, and which SDPA kernel runs;
//  - a 1-rank NCCL process group all-reduces and broadcasts;
//  - steps that stay on the device between host reads (sync_every) train exactly as steps read every time,
//    and how much faster; sampling in bf16 against fp32; batches gathered ahead on a worker thread.
// GM_GPU_CHECK_DEVICE=cpu runs every check on the CPU instead (CUDA-only ones skipped): the rehearsal that
// finds, before a GPU is lent, every failure that has a CPU cause.  The suite runs it (gpu_check_on_cpu).

#include <gm/data/features.hpp>
#include <gm/data/gaussian_mixture.hpp>
#include <gm/data/images.hpp>
#include <gm/data/toy2d.hpp>
#include <gm/dist/group.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/edm2_unet.hpp>
#include <gm/nn/unet.hpp>
#include <gm/process/all.hpp>
#include <gm/sampler/all.hpp>
#include <gm/trainer.hpp>
#include <gm/train/checkpoint.hpp>
#include <gm/train/flow_map.hpp>

#include <ATen/Functions.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include <unistd.h>

namespace {

int failures = 0;
bool rehearsal = false;  // GM_GPU_CHECK_DEVICE=cpu: every check on the CPU

/// The source tree: GM_SOURCE_DIR from the environment (ctest sets it), else the working directory.
std::filesystem::path gm_source_dir() {
  const char* d = std::getenv("GM_SOURCE_DIR");
  return d && *d ? std::filesystem::path(d) : std::filesystem::current_path();
}

void report(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what.c_str());
  std::fflush(stdout);
  if (!ok) ++failures;
}

void guarded(const std::string& name, const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    report(false, name + ": " + gm::first_line(e.what()));
  }
}

std::string fmt(const char* f, double a, double b = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

bool all_on(const std::vector<torch::Tensor>& ts, const torch::Device& dev) {
  for (const auto& t : ts) if (t.device() != dev) return false;
  return true;
}

template <class S>
void samplers_agree(const gm::GaussianMixture& g_cpu, const torch::Device& dev) {
  gm::Interpolant<S> ip;
  auto run = [&](const auto& sampler, const torch::Device& d, int64_t steps) {
    auto g = g_cpu.to(torch::TensorOptions().dtype(torch::kFloat64).device(d));
    gm::Field field(ip, gm::Predict<gm::Velocity>{},
                    [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.predict<gm::Velocity>(x, t, ip); });
    auto x1 = torch::randn({256, 2}, gm::make_generator(3), torch::kFloat64).to(d) * gm::detail::coefs(ip, 1.0).sigma;
    auto nodes = gm::LogSnrGrid().nodes(steps, 1e-3, ip);
    return gm::integrate(sampler, field, x1, nodes).cpu();
  };
  auto one = [&](const char* name, const auto& sampler, int64_t steps) {
    const double diff = (run(sampler, dev, steps) - run(sampler, torch::kCPU, steps)).abs().max().template item<double>();
    char buf[160];
    std::snprintf(buf, sizeof buf, "sampler %s on %s: %s - CPU max |diff| %.2e (float64)", name, std::string(S::name).c_str(),
                  dev.str().c_str(), diff);
    report(diff < 1e-9, buf);
  };
  one("euler", gm::EulerSampler{}, 32);
  one("heun", gm::HeunSampler{}, 16);
  one("rk4", gm::RK4Sampler{}, 8);
  one("ddim", gm::DDIMSampler{}, 32);
  one("dpm++2m", gm::DPMSolverPP2M{}, 16);
  one("dpm++3m", gm::DPMSolverPP3M{}, 16);
  one("unipc2", gm::UniPC<2>{}, 16);
  one("dopri5", gm::DopriSampler(gm::DopriSampler::Options().rtol(1e-6).atol(1e-6)), 1);
}

using Flow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::MLP, gm::HeunSampler>;
using ImageFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler>;
using DiTFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::DiT, gm::EulerSampler>;
using EDM2Flow = gm::Trainer<gm::Interpolant<gm::EDM>, gm::Predict<gm::EDMPrecond>, gm::EDM2UNet, gm::HeunSampler,
                             gm::EDMLogNormalTime, gm::LearnedLogVar<gm::EDMWeight>>;
using MeanFlowTrainer = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::MeanFlow>, gm::MLP, gm::FlowMapSampler,
                                    gm::LogitNormalTime>;
using OTImageFlow = gm::Trainer<gm::Interpolant<gm::Linear>, gm::Predict<gm::Velocity>, gm::UNet, gm::EulerSampler,
                                gm::UniformTime, gm::UniformWeight, gm::ExactOTCoupling>;

/// A two-level class-conditional UNet on 28x28 with attention at 14 (the resolutions are 28 and 14).
gm::UNet small_unet() {
  return gm::UNet(gm::UNetOptions().channels(16).channel_mult({1, 2}).attention_resolutions({14}).num_classes(10));
}

/// 30 steps (9 in the rehearsal) on one fixed batch of images that are their class's grey level (something
/// to learn at once); the loss must stay finite, and with `must_fall` its mean over the last third of the
/// steps must be below the first third's (each step draws its own times; EDM2's learned log-variance
/// weighting makes the loss itself too noisy for that over a few steps); the weights must move and stay fp32
/// on `dev`.
template <class T>
void image_steps(const std::string& what, T& trainer, const torch::Device& dev, bool must_fall = true) {
  // The suite runs the rehearsal, where a CPU step costs 0.1-0.7 s (bf16 is emulated without AVX-512 BF16):
  // fewer and smaller steps there.
  const int steps = rehearsal ? 6 : 30;
  const int64_t n = rehearsal ? 8 : 32;
  auto y = torch::arange(n, torch::kInt64) % (rehearsal ? 4 : 10);  // classes repeat: a coupling within them pairs
  auto x = (y.to(torch::kFloat32) / 4.5 - 1).view({n, 1, 1, 1}).expand({n, 1, 28, 28}).contiguous().to(dev);
  y = y.to(dev);
  const auto before = trainer.net()->parameters().front().detach().clone();
  double first = 0, last = 0;
  bool finite = true;
  for (int i = 0; i < steps; ++i) {
    const auto s = trainer.train_step(gm::Batch{x, y});
    finite = finite && std::isfinite(s.loss);
    if (i < steps / 3) first += s.loss / (steps / 3);
    if (i >= steps - steps / 3) last += s.loss / (steps / 3);
  }
  const bool moved = !torch::equal(before, trainer.net()->parameters().front().detach());
  bool fp32_weights = true;
  for (const auto& p : trainer.net()->parameters()) fp32_weights = fp32_weights && p.scalar_type() == torch::kFloat32;
  const bool placed = all_on(trainer.net()->parameters(), dev);
  char buf[240];
  std::snprintf(buf, sizeof buf, "%s on %s (%s): mean loss %.4f -> %.4f (first and last third of %d steps), fp32 weights on the device%s", what.c_str(),
                dev.str().c_str(), gm::precision_name(trainer.precision()), first, last, steps,
                trainer.precision() == gm::Precision::fp16 ? (", loss scale " + std::to_string(trainer.loss_scaler().scale)).c_str() : "");
  report(finite && moved && (!must_fall || last < first) && fp32_weights && placed, buf);
}

void train_precisions(const torch::Device& dev) {
  for (const std::string precision : {"fp32", "bf16", "fp16"}) {
    if (precision == "fp16" && !dev.is_cuda()) continue;  // fp16's loss scale is CUDA's
    guarded("UNet step in " + precision, [&] {
      torch::manual_seed(0);
      ImageFlow trainer(small_unet(), gm::TrainOptions().lr(1e-3).batch_size(32).device(dev).precision(precision).label_dropout(0.1));
      image_steps("UNet (attention at 14) training in " + precision, trainer, dev);
    });
  }
  guarded("DiT step", [&] {
    torch::manual_seed(0);
    DiTFlow trainer(gm::DiT(gm::DiTOptions().hidden(64).depth(2).heads(4).num_classes(10)),
                    gm::TrainOptions().lr(1e-3).device(dev).precision("bf16").label_dropout(0.1));
    image_steps("DiT training", trainer, dev);
  });
  guarded("EDM2UNet step", [&] {
    torch::manual_seed(0);
    const int64_t width = rehearsal ? 16 : 32;  // on the CPU a 32-channel step takes 2 s in bf16
    EDM2Flow trainer(gm::EDM2UNet(gm::EDM2UNetOptions().channels(width).channel_mult({1, 2}).res_blocks(1)
                                      .attention_resolutions({14}).head_channels(width).num_classes(10)),
                     gm::TrainOptions().lr(1e-2).device(dev).precision("bf16"));
    image_steps("EDM2UNet (attention at 14, learned log-variance) training", trainer, dev, /*must_fall=*/false);
  });
  guarded("MeanFlow step", [&] {
    torch::manual_seed(0);
    MeanFlowTrainer trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(128).layers(3).times(2)),
                            gm::TrainOptions().lr(1e-3).device(dev).precision("bf16"));
    double first = 0, last = 0;
    for (int i = 0; i < 40; ++i) {
      const auto s = trainer.train_step(gm::data::eight_gaussians(256, trainer.generator()));  // drawn on the device
      (i == 0 ? first : last) = s.loss;
    }
    report(std::isfinite(last) && last < first,
           "MeanFlow (forward-mode JVP through the MLP) training on " + dev.str() + fmt(": loss %.4f -> %.4f over 40 steps", first, last));
  });
}

/// Minibatch couplings of images on `dev` (fashion_mnist's training.coupling): exact OT within classes and
/// across, and Sinkhorn's plan, equal to the CPU's on the same tensors (the cost is float64 on the device, the
/// assignment solved on the host); then OT-CFM steps of a class-conditional UNet, its pairs within classes.
void couplings(const torch::Device& dev) {
  auto gen = gm::make_generator(31);
  const int64_t n = 96;
  const auto x0 = torch::randn({n, 1, 28, 28}, gen), x1 = torch::randn({n, 1, 28, 28}, gen);
  const auto y = torch::randint(10, {n}, gen, torch::kInt64);
  const gm::ExactOTCoupling exact;
  const auto within = gm::pair_within_classes(exact, x0.to(dev), x1.to(dev), y.to(dev), gm::make_generator(1, dev));
  const auto within_cpu = gm::pair_within_classes(exact, x0, x1, y, gm::make_generator(1));
  const auto across = exact.pair(x0.to(dev), x1.to(dev), gm::make_generator(1, dev));
  const auto plan = gm::SinkhornCoupling{}.plan(x0.to(dev), x1.to(dev));
  const auto plan_cpu = gm::SinkhornCoupling{}.plan(x0, x1);
  const double plan_diff = ((plan.cpu() - plan_cpu).abs().max() / plan_cpu.abs().max()).item<double>();
  const bool placed = all_on({within, across, plan}, dev);
  const bool same = torch::equal(within.cpu(), within_cpu) && torch::equal(across.cpu(), exact.pair(x0, x1, gm::make_generator(1)));
  report(placed && same && torch::equal(y.index_select(0, within_cpu), y) && plan_diff < 1e-9,
         "couplings of 96 28x28 images on " + dev.str() + ": exact OT within classes and across " +
             (same ? "equal to" : "differ from") + " the CPU's" + fmt(", Sinkhorn plan max relative |diff| %.1e", plan_diff) +
             (placed ? "" : " (not all on the device)"));
  torch::manual_seed(0);
  OTImageFlow trainer(small_unet(), gm::TrainOptions().lr(1e-3).batch_size(32).device(dev).precision("bf16").label_dropout(0.1));
  if (!trainer.couples_within_classes()) report(false, "OT-CFM with a class-conditional UNet does not pair within classes");
  image_steps("OT-CFM (exact OT within classes) UNet training", trainer, dev);
}

/// 2-D data drawn from a generator on `dev` lands on `dev` (flow_2d --device=cuda's batches).
void vector_data(const torch::Device& dev) {
  auto gen = gm::make_generator(4, dev);
  bool ok = true;
  std::string where;
  for (const char* name : {"checkerboard", "moons", "8gaussians", "spirals"}) {
    auto x = gm::data::toy2d(name, 64, gen);
    ok = ok && x.device() == dev && x.size(0) == 64;
    where += std::string(name) + " " + x.device().str() + ", ";
  }
  auto ring = gm::GaussianMixture::from_toml(gm_source_dir() / "configs/mixtures/ring8.toml", torch::kFloat32);
  auto m = ring.sample(64, gen);
  gm::data::Features feats(torch::randn({100, 3}));
  auto f = feats.batch(64, gen);
  ok = ok && m.device() == dev && f.device() == dev && torch::isfinite(m).all().item<bool>();
  report(ok, "2-D data from a generator on " + dev.str() + ": " + where + "mixture " + m.device().str() + ", features " + f.device().str());
}

/// 20 steps, a checkpoint, 20 more equal 40 straight, weights and EMA bit for bit; the EMA is updated after
/// the resume (its shadows must be on the device).
void exact_resume(const torch::Device& dev) {
  const auto dir = std::filesystem::temp_directory_path() / ("gm_gpu_resume_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto make = [&] {
    torch::manual_seed(0);
    return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(128).layers(3)), gm::TrainOptions().lr(1e-3).seed(5).device(dev));
  };
  auto data = [&](Flow& t) { return gm::data::checkerboard(512, t.generator()); };
  Flow straight = make();
  gm::EMA ema_a(0.99);
  for (int64_t i = 0; i < 40; ++i) {
    straight.train_step(data(straight));
    ema_a.update(*straight.net());
  }
  Flow first = make();
  gm::EMA ema_b(0.99);
  gm::Checkpointer ck(dir, 20, 2, "", &ema_b);
  for (int64_t i = 0; i < 20; ++i) {
    first.train_step(data(first));
    ema_b.update(*first.net());
  }
  ck.save(first);
  Flow resumed = make();
  gm::EMA ema_c(0.99);
  gm::Checkpointer ck2(dir, 20, 2, "", &ema_c);
  const bool restored = ck2.restore_latest(resumed).has_value();
  for (int64_t i = 20; i < 40; ++i) {
    resumed.train_step(data(resumed));
    ema_c.update(*resumed.net());
  }
  bool same = restored, ema_same = restored;
  auto a = straight.net()->parameters(), b = resumed.net()->parameters();
  for (size_t i = 0; i < a.size(); ++i) same = same && torch::equal(a[i], b[i]);
  for (size_t i = 0; i < ema_a.shadow().size() && ema_same; ++i) ema_same = torch::equal(ema_a.shadow()[i], ema_c.shadow()[i]);
  report(same && ema_same && all_on(ema_c.shadow(), dev),
         "exact resume on " + dev.str() + ": 20 steps, checkpoint, 20 more equal 40 straight, weights and EMA bit for bit");
  std::filesystem::remove_all(dir);
}

/// A checkpoint written on `from` resumes on `to`: the step, the weights and the EMA carry over, the random
/// stream restarts from (seed, step) (said in the log), training goes on, and no checkpoint is deleted.
void cross_device_resume(const torch::Device& from, const torch::Device& to) {
  const auto dir = std::filesystem::temp_directory_path() / ("gm_gpu_cross_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto make = [&](const torch::Device& d) {
    torch::manual_seed(0);
    return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(64).layers(2)), gm::TrainOptions().lr(1e-3).seed(5).device(d));
  };
  Flow a = make(from);
  gm::EMA ema_a(0.99);
  gm::Checkpointer ck(dir, 10, 3, "", &ema_a);
  a.fit([&](int64_t) { return gm::data::checkerboard(256, a.generator()); }, 20, ema_a, ck);
  Flow b = make(to);
  gm::EMA ema_b(0.99);
  std::vector<std::string> said;
  gm::Checkpointer ck2(dir, 10, 3, "", &ema_b, [&](const std::string& s) { said.push_back(s); });
  const auto step = ck2.restore_latest(b);
  bool same = step && *step == 20;
  auto pa = a.net()->parameters(), pb = b.net()->parameters();
  for (size_t i = 0; i < pa.size() && same; ++i) same = torch::equal(pa[i].cpu(), pb[i].cpu());
  for (size_t i = 0; i < ema_a.shadow().size() && same; ++i) same = torch::equal(ema_a.shadow()[i].cpu(), ema_b.shadow()[i].cpu());
  const bool noted = from.type() == to.type() ||
                     (!said.empty() && said.back().find("random stream restarts") != std::string::npos);
  b.fit([&](int64_t) { return gm::data::checkerboard(256, b.generator()); }, 30, ema_b, ck2);
  const bool kept = std::filesystem::exists(dir / "step_20") && std::filesystem::exists(dir / "step_30");
  report(same && noted && kept && b.step() == 30 && all_on(ema_b.shadow(), to),
         "a checkpoint of " + from.str() + " resumes on " + to.str() + " at step 20 (weights and EMA carried, random stream "
         "restarted and said), trains to 30, keeps its checkpoints");
  std::filesystem::remove_all(dir);
}

/// Class-conditional sampling with guidance by DPM++(2M) SDE: the Brownian tree's seed is drawn from the
/// sampling generator on `dev`.
void guided_sde_sampling(const torch::Device& dev) {
  torch::manual_seed(0);
  ImageFlow trainer(small_unet(), gm::TrainOptions().device(dev));
  gm::Conditioning cond;
  cond.labels = torch::arange(8, torch::kInt64) % 10;
  cond.guidance = 2.0;
  auto x = trainer.sample(gm::SampleOptions().n(8).nfe(10).grid("logsnr").conditioning(cond)
                              .noise(trainer.initial_noise({8, 1, 28, 28})), gm::DPMPP2MSDESampler{});
  cond.seeds = gm::sample_seeds(1, 0, 8);
  auto xs = trainer.sample(gm::SampleOptions().n(8).nfe(10).grid("logsnr").conditioning(cond)
                               .noise(trainer.initial_noise({8, 1, 28, 28}, cond.seeds)), gm::DPMPP2MSDESampler{});
  report(x.device() == dev && x.size(0) == 8 && torch::isfinite(x).all().item<bool>() && torch::isfinite(xs).all().item<bool>(),
         "guided sampling (w = 2) with dpmpp_2m_sde on " + dev.str() + ", from the trainer's generator and per-sample seeds");
}

gm::data::ImageSet random_images() {
  gm::data::ImageSet set;
  set.images = torch::randint(0, 256, {64, 1, 8, 8}, gm::make_generator(1), torch::kInt64).to(torch::kUInt8);
  set.labels = torch::randint(0, 10, {64}, gm::make_generator(2), torch::kInt64);
  set.num_classes = 10;
  return set;
}

void image_batches(const torch::Device& dev) {
  gm::data::ImageData data(random_images(), gm::data::ImageData::Options().seed(1).hflip(true).device(dev));
  auto gen = gm::make_generator(2, dev);
  auto b = data.batch(0, 16, gen);
  report(b.x.device() == dev && b.y.device() == dev && b.x.size(0) == 16,
         "an image batch with flips on " + dev.str() + " (pinned memory, non-blocking copy, flips drawn on the device)");
  auto set = random_images();
  gm::data::ImageData deq(set, gm::data::ImageData::Options().seed(1).dequantize(true).device(dev));
  auto d = deq.batch(0, 16, gen);
  // Batch 0 holds the images of the epoch's permutation; decoding gives every pixel back.
  const bool in_range = d.x.device() == dev && d.x.min().item<double>() > -1 && d.x.max().item<double>() < 1;
  auto back = deq.decode(d.x);
  bool exact = true;
  for (int64_t i = 0; i < 16 && exact; ++i) {
    bool found = false;
    for (int64_t j = 0; j < 64 && !found; ++j) found = torch::equal(back[i], set.images[j]);
    exact = found;
  }
  report(in_range && exact, "data.dequantize on " + dev.str() + ": batches in (-1, 1) on the device, decoded back to their pixels");
}

/// The MLP's steps with the loss read every step and every 25th: the same losses bit for bit (the same
/// kernels, read later), and the time per step of each.
void deferred_steps(const torch::Device& dev) {
  auto run = [&](int64_t every, std::vector<double>& losses) {
    torch::manual_seed(0);
    Flow trainer(gm::MLP(gm::MLPOptions().dim(2).hidden(256).layers(3)),
                 gm::TrainOptions().lr(1e-3).clip_norm(1.0).device(dev).sync_every(every));
    const int steps = rehearsal ? 50 : 400;
    std::vector<gm::StepStats> stats;
    for (int i = 0; i < 10; ++i) stats.push_back(trainer.train_step(gm::data::checkerboard(4096, trainer.generator())));
    if (dev.is_cuda()) torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 10; i < steps; ++i) stats.push_back(trainer.train_step(gm::data::checkerboard(4096, trainer.generator())));
    gm::StepStats::resolve(stats);  // reads what is still on the device
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / (steps - 10);
    for (const auto& st : stats) losses.push_back(st.loss);
    return ms;
  };
  std::vector<double> each, deferred;
  const double ms_each = run(1, each), ms_deferred = run(25, deferred);
  report(each == deferred && std::isfinite(each.back()),
         "MLP steps on " + dev.str() + " read every step and every 25th: the same losses; " +
             fmt("%.3f ms/step read every step, %.3f ms/step every 25th", ms_each, ms_deferred));
}

/// The UNet's samples in bf16 (sampling.precision) against fp32 from the same noise, and their time.
void bf16_sampling(const torch::Device& dev) {
  torch::manual_seed(0);
  ImageFlow trainer(small_unet(), gm::TrainOptions().device(dev));
  for (int i = 0; i < 3; ++i) {
    auto y = torch::arange(16, torch::kInt64) % 10;
    trainer.train_step(gm::Batch{torch::randn({16, 1, 28, 28}, trainer.generator(), gm::on_generator(trainer.generator())), y.to(dev)});
  }
  const int64_t n = rehearsal ? 8 : 256;
  const auto noise = trainer.initial_noise({n, 1, 28, 28});
  auto draw = [&](const std::string& precision, double& ms) {
    auto o = gm::SampleOptions().n(n).nfe(rehearsal ? 4 : 20).noise(noise).precision(precision);
    trainer.sample(o);  // warm-up (cuDNN picks its kernels)
    if (dev.is_cuda()) torch::cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    auto x = trainer.sample(o);
    if (dev.is_cuda()) torch::cuda::synchronize();
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return x;
  };
  double ms32 = 0, ms16 = 0;
  const auto a = draw("fp32", ms32), b = draw("bf16", ms16);
  const double diff = (a - b).abs().max().item<double>();
  report(torch::isfinite(b).all().item<bool>() && diff < 0.5 && b.scalar_type() == torch::kFloat32,
         "UNet sampling in bf16 on " + dev.str() + fmt(": max |bf16 - fp32| %.3g, ", diff) +
             fmt("%.1f ms in fp32, %.1f ms in bf16", ms32, ms16) + " (" + std::to_string(n) + " samples)");
}

/// Batches gathered ahead on a worker thread (on by default on CUDA) equal batches gathered in step.
void prefetched_batches(const torch::Device& dev) {
  const auto opts = gm::data::ImageData::Options().seed(1).hflip(true).device(dev);
  gm::data::ImageData plain(random_images(), gm::data::ImageData::Options(opts).prefetch(false)),
      ahead(random_images(), gm::data::ImageData::Options(opts).prefetch(true));
  auto g1 = gm::make_generator(2, dev), g2 = gm::make_generator(2, dev);
  bool same = true;
  for (const int64_t step : {0, 1, 2, 3, 7, 8}) {
    const auto a = plain.batch(step, 16, g1), b = ahead.batch(step, 16, g2);
    same = same && torch::equal(a.x, b.x) && torch::equal(a.y, b.y) && b.x.device() == dev;
  }
  report(same, "image batches gathered ahead on a worker thread on " + dev.str() + ": equal to those gathered in step");
}

/// A data-parallel rank's rows of an image batch (`Trainer::shard_rows`: flips, dequantisation noise and
/// augmentation drawn on the device for the whole batch and cut to the rows) equal the whole batch's rows;
/// a data.source draw on the device indexes a copy of the images there, and gives source images.
void image_rows_and_source(const torch::Device& dev) {
  const auto set = random_images();
  gm::data::ImageData data(set, gm::data::ImageData::Options().seed(1).hflip(true).dequantize(true).augment(1.0).device(dev));
  auto g1 = gm::make_generator(2, dev), g2 = gm::make_generator(2, dev);
  const auto rows = torch::tensor({1, 2, 5, 6, 9}, torch::kInt64);
  double worst = 0;
  bool same = true;
  for (const int64_t step : {0, 1, 2}) {
    const auto all = data.batch(step, 10, g1), mine = data.batch(step, 10, g2, rows);
    const auto r = rows.to(all.x.device());
    worst = std::max(worst, (mine.x - all.x.index_select(0, r)).abs().max().item<double>());
    same = same && mine.x.device() == dev && torch::equal(mine.a, all.a.index_select(0, r)) &&
           torch::equal(mine.y, all.y.index_select(0, r));
  }
  gm::data::ImageData source(set, gm::data::ImageData::Options().seed(1).device(dev));
  const auto s = source.draw(32, g1);
  const auto u = ((s + 1) * 127.5).round().to(torch::kCPU, torch::kUInt8);
  bool from_source = s.device() == dev;
  for (int64_t i = 0; i < 32 && from_source; ++i) {
    bool found = false;
    for (int64_t j = 0; j < set.size() && !found; ++j) found = torch::equal(u[i], set.images[j]);
    from_source = found;
  }
  report(same && worst < 1e-4 && from_source,
         "a rank's rows of an image batch on " + dev.str() + fmt(" (flips, noise, augmentation): max |diff| %.2g", worst) +
             " to the whole batch's, labels equal; data.source draws on the device are source images");
}

/// Which scaled-dot-product-attention kernel LibTorch picks for the UNet's and DiT's bf16 attention shapes.
void sdpa_backend(const torch::Device& dev) {
  if (!dev.is_cuda()) return;
  const char* names[] = {"math", "flash", "memory-efficient", "cuDNN", "overrideable"};
  std::string picks;
  bool fused = true;
  for (auto shape : {std::vector<int64_t>{128, 2, 196, 32}, std::vector<int64_t>{128, 6, 196, 64}}) {
    auto q = torch::randn(shape, torch::TensorOptions().dtype(torch::kBFloat16).device(dev));
    const auto choice = at::_fused_sdp_choice(q, q, q, {}, 0.0, false);
    const bool known = choice >= 0 && choice < 5;
    fused = fused && known && choice != 0;
    picks += (picks.empty() ? "" : ", ") + std::to_string(shape[1]) + "x" + std::to_string(shape[3]) + " heads: " +
             (known ? names[choice] : "error " + std::to_string(choice));
  }
  report(fused, "SDPA kernel for bf16 attention on " + dev.str() + ": " + picks);
}

void nccl_one_rank(const torch::Device& dev) {
  if (!dev.is_cuda()) return;
  gm::dist::Env env;
  env.port = 29400 + static_cast<int>(::getpid() % 500);
  gm::dist::Group group(env, std::chrono::seconds(60), dev, /*even_alone=*/true);
  auto t = torch::arange(4, torch::kFloat32).to(dev);
  group.all_reduce_sum(t);
  auto cpu = torch::ones({2}, torch::kFloat64);  // a CPU tensor goes through the GPU and back
  group.broadcast(cpu);
  report(group.backend() == "nccl" && torch::equal(t.cpu(), torch::arange(4, torch::kFloat32)) &&
             torch::equal(cpu, torch::ones({2}, torch::kFloat64)),
         "a 1-rank NCCL group (" + group.backend() + "): all-reduce and broadcast");
}

}  // namespace

int main() {
  const char* forced = std::getenv("GM_GPU_CHECK_DEVICE");
  rehearsal = forced && std::string(forced) == "cpu";
  if (!rehearsal && !torch::cuda::is_available()) {
    std::printf("skipped: no CUDA GPU is visible (torch::cuda::is_available() is false)\n");
    return 77;
  }
  const torch::Device dev = rehearsal ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, 0);
  std::printf("gpu_check: %s, %d CUDA device(s), torch %s\n", rehearsal ? "rehearsal on the CPU" : "on CUDA",
              static_cast<int>(torch::cuda::device_count()), TORCH_VERSION);
  std::fflush(stdout);
  auto g = gm::GaussianMixture::from_toml(gm_source_dir() / "configs/mixtures/ring8.toml");
  if (!rehearsal) {  // CUDA against the CPU; on the CPU alone the unit tests cover every sampler
    guarded("samplers on VP", [&] { samplers_agree<gm::VP>(g, dev); });
    guarded("samplers on Linear", [&] { samplers_agree<gm::Linear>(g, dev); });
  }
  guarded("2-D data", [&] { vector_data(dev); });
  train_precisions(dev);
  guarded("exact resume", [&] { exact_resume(dev); });
  guarded("CPU to device resume", [&] { cross_device_resume(torch::kCPU, dev); });
  if (dev.is_cuda()) guarded("device to CPU resume", [&] { cross_device_resume(dev, torch::kCPU); });
  guarded("guided SDE sampling", [&] { guided_sde_sampling(dev); });
  guarded("couplings", [&] { couplings(dev); });
  guarded("image batches", [&] { image_batches(dev); });
  guarded("prefetched batches", [&] { prefetched_batches(dev); });
  guarded("image rows and source", [&] { image_rows_and_source(dev); });
  guarded("deferred steps", [&] { deferred_steps(dev); });
  guarded("bf16 sampling", [&] { bf16_sampling(dev); });
  guarded("SDPA", [&] { sdpa_backend(dev); });
  guarded("NCCL", [&] { nccl_one_rank(dev); });
  std::printf("gpu_check: %d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
