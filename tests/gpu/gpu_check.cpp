// gpu_check: the checks that need a CUDA GPU, one line each ("ok: ..." or "FAIL: ..."), exit 1 on any failure.
// Without a visible GPU it prints why and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE), never
// as passed.  scripts/gpu_check.sh runs it on a machine with a GPU.
//  - every deterministic sampler on CUDA agrees with the CPU on the mixture oracle (float64, VP and Linear);
//  - training steps on CUDA in fp32, in bf16 (autocast) and in fp16 (autocast with the dynamic loss scale);
//  - a checkpoint on CUDA resumes bit-exactly (weights, Adam state, the CUDA generator);
//  - a 1-rank NCCL process group all-reduces and broadcasts;
//  - an image batch with flips goes through pinned memory to the GPU.

#include <gm/data/gaussian_mixture.hpp>
#include <gm/data/images.hpp>
#include <gm/data/toy2d.hpp>
#include <gm/dist/group.hpp>
#include <gm/nn/unet.hpp>
#include <gm/process/all.hpp>
#include <gm/sampler/all.hpp>
#include <gm/trainer.hpp>
#include <gm/train/checkpoint.hpp>

#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

namespace {

int failures = 0;

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
    std::snprintf(buf, sizeof buf, "sampler %s on %s: CUDA - CPU max |diff| %.2e (float64)", name, std::string(S::name).c_str(), diff);
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

void train_precisions(const torch::Device& dev) {
  for (const std::string precision : {"fp32", "bf16", "fp16"}) {
    guarded("UNet step in " + precision, [&] {
      torch::manual_seed(0);
      ImageFlow trainer(gm::UNet(gm::UNetOptions().channels(16).channel_mult({1, 2}).num_classes(10)),
                        gm::TrainOptions().lr(1e-3).batch_size(32).device(dev).precision(precision).label_dropout(0.1));
      auto x = torch::randn({32, 1, 28, 28}).to(dev);
      auto y = torch::randint(10, {32}, torch::kInt64).to(dev);
      double first = 0, last = 0;
      for (int i = 0; i < 30; ++i) {
        const auto s = trainer.train_step(gm::Batch{x, y});
        (i == 0 ? first : last) = s.loss;
      }
      bool fp32_weights = true;
      for (const auto& p : trainer.net()->parameters()) fp32_weights = fp32_weights && p.scalar_type() == torch::kFloat32;
      char buf[200];
      std::snprintf(buf, sizeof buf, "UNet training on %s in %s (resolved %s): loss %.4f -> %.4f over 30 steps, fp32 weights%s",
                    dev.str().c_str(), precision.c_str(), gm::precision_name(trainer.precision()), first, last,
                    precision == "fp16" ? (", loss scale " + std::to_string(trainer.loss_scaler().scale)).c_str() : "");
      report(std::isfinite(last) && last < first && fp32_weights, buf);
    });
  }
}

void exact_resume(const torch::Device& dev) {
  const auto dir = std::filesystem::temp_directory_path() / ("gm_gpu_resume_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto make = [&] {
    torch::manual_seed(0);
    return Flow(gm::MLP(gm::MLPOptions().dim(2).hidden(128).layers(3)), gm::TrainOptions().lr(1e-3).seed(5).device(dev));
  };
  auto data = [&](int64_t step) { return gm::data::checkerboard(512, gm::make_generator(100 + static_cast<uint64_t>(step))); };
  Flow straight = make();
  gm::EMA ema_a(0.99);
  for (int64_t i = 0; i < 40; ++i) {
    straight.train_step(data(i));
    ema_a.update(*straight.net());
  }
  Flow first = make();
  gm::EMA ema_b(0.99);
  gm::Checkpointer ck(dir, 20, 2, "", &ema_b);
  for (int64_t i = 0; i < 20; ++i) {
    first.train_step(data(i));
    ema_b.update(*first.net());
  }
  ck.save(first);
  Flow resumed = make();
  gm::EMA ema_c(0.99);
  gm::Checkpointer ck2(dir, 20, 2, "", &ema_c);
  const bool restored = ck2.restore_latest(resumed).has_value();
  for (int64_t i = 20; i < 40; ++i) {
    resumed.train_step(data(i));
    ema_c.update(*resumed.net());
  }
  bool same = restored;
  auto a = straight.net()->parameters(), b = resumed.net()->parameters();
  for (size_t i = 0; i < a.size(); ++i) same = same && torch::equal(a[i], b[i]);
  report(same, "exact resume on " + dev.str() + ": 20 steps, checkpoint, 20 more equal 40 straight, bit for bit");
  std::filesystem::remove_all(dir);
}

void nccl_one_rank(const torch::Device& dev) {
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

void pinned_batches(const torch::Device& dev) {
  gm::data::ImageSet set;
  set.images = torch::randint(0, 256, {64, 1, 8, 8}, torch::kInt64).to(torch::kUInt8);
  set.labels = torch::randint(0, 10, {64}, torch::kInt64);
  set.num_classes = 10;
  gm::data::ImageData data(set, gm::data::ImageData::Options().seed(1).hflip(true).device(dev));
  auto gen = gm::make_generator(2, dev);
  auto b = data.batch(0, 16, gen);
  report(b.x.device() == dev && b.y.device() == dev && b.x.size(0) == 16,
         "an image batch with flips on " + dev.str() + " (pinned memory, non-blocking copy, flips drawn on the GPU)");
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::printf("skipped: no CUDA GPU is visible (torch::cuda::is_available() is false)\n");
    return 77;
  }
  const torch::Device dev(torch::kCUDA, 0);
  std::printf("gpu_check: %d CUDA device(s), torch %s\n", static_cast<int>(torch::cuda::device_count()), TORCH_VERSION);
  auto g = gm::GaussianMixture::from_toml(gm_source_dir() / "configs/mixtures/ring8.toml");
  guarded("samplers on VP", [&] { samplers_agree<gm::VP>(g, dev); });
  guarded("samplers on Linear", [&] { samplers_agree<gm::Linear>(g, dev); });
  train_precisions(dev);
  guarded("exact resume", [&] { exact_resume(dev); });
  guarded("NCCL", [&] { nccl_one_rank(dev); });
  guarded("pinned batches", [&] { pinned_batches(dev); });
  std::printf("gpu_check: %d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
