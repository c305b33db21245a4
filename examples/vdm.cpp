// Variational Diffusion Models (Kingma et al. 2021) on Fashion-MNIST: a learned monotone noise schedule, the
// continuous-time ELBO of 8-bit pixels as the loss (in bits/dim), antithetic stratified times, noise
// prediction.  --mode=eval reports the test ELBO (eval.elbo_n images) beside the probability-flow bpd.
#include <gm/data/images.hpp>
#include <gm/experiment.hpp>
#include <gm/io/plot.hpp>
#include <gm/io/png.hpp>
#include <gm/nn/keys.hpp>

using VDM = gm::Trainer<gm::Interpolant<gm::LearnedSchedule>, gm::Predict<gm::Noise>, gm::UNet, gm::DDIMSampler,
                        gm::StratifiedTime, gm::VDMELBO>;

// gamma(t) of the trained schedule beside the one it started from, as schedule.png in the run folder.
void plot_schedule(const std::filesystem::path& dir, const gm::LearnedSchedule& trained, const gm::MonotoneGammaOptions& o) {
  torch::NoGradGuard ng;
  auto t = torch::linspace(0, 1, 201);
  auto series = [&](const char* name, const gm::LearnedSchedule& s) {
    auto g = s.gamma(t).to(torch::kFloat64).contiguous();
    return gm::io::Series{name, std::vector<double>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel()),
                          std::vector<double>(g.data_ptr<double>(), g.data_ptr<double>() + g.numel())};
  };
  gm::io::PlotOptions po;
  po.title = "VDM noise schedule gamma(t) = -log SNR(t)";
  po.x_label = "t", po.y_label = "gamma";
  gm::io::write_png(dir / "schedule.png", gm::io::line_plot({series("initial", gm::LearnedSchedule(o)), series("trained", trained)}, po));
}

int main(int argc, char** argv) {
  gm::Experiment ex("vdm", "VDM: a learned noise schedule trained on the ELBO of 8-bit Fashion-MNIST.");
  gm::data::ImageData::add_keys(ex.config());
  gm::add_unet_keys(ex.config(), gm::UNetOptions().channels(32).res_blocks(1));
  auto& cfg = ex.config();
  cfg.add<double>("vdm.gamma_min", -13.3, "gamma(0) = -log SNR at t = 0 at initialisation");
  cfg.add<double>("vdm.gamma_max", 5.0, "gamma(1) at initialisation");
  cfg.add<int64_t>("vdm.features", 1024, "width of the schedule's monotone network", gm::check::at_least(1));
  cfg.add<bool>("vdm.learn_endpoints", true, "train gamma(0) and gamma(1) on the ELBO");
  cfg.add<bool>("vdm.learn_shape", true, "train the schedule's shape between them");
  cfg.add<bool>("vdm.minimise_variance", true, "train the shape to minimise the variance of the loss (else the ELBO)");
  cfg.set_default("training.steps", 1500).set_default("training.batch_size", 128).set_default("training.lr", 1e-3);
  cfg.set_default("training.checkpoint_every", 250);
  cfg.set_default("training.log_every", 50).set_default("sampling.n", 100).set_default("sampling.nfe", 100);
  cfg.set_default("sampling.sampler", "ddim").set_default("data.hflip", false);
  return ex.main(argc, argv, [&] {
    if (cfg.get<bool>("data.dequantize") || cfg.get<std::string>("data.encoder") != "pixel") {
      throw gm::Error("gm: vdm models 8-bit pixels with a discrete decoder: data.dequantize must be false and "
                      "data.encoder pixel");
    }
    const auto options = gm::MonotoneGammaOptions()
                             .gamma_min(cfg.get<double>("vdm.gamma_min"))
                             .gamma_max(cfg.get<double>("vdm.gamma_max"))
                             .features(cfg.get<int64_t>("vdm.features"))
                             .learn_endpoints(cfg.get<bool>("vdm.learn_endpoints"))
                             .learn_shape(cfg.get<bool>("vdm.learn_shape"))
                             .minimise_variance(cfg.get<bool>("vdm.minimise_variance"));
    auto data = gm::data::ImageData::from_config(cfg, ex.device());
    gm::LearnedSchedule schedule(options);
    auto net = gm::make_unet(cfg, data.sample_shape(), 0);  // unconditional: the ELBO is of p(x)
    schedule.attach(*net);  // trained, averaged and checkpointed with the network
    VDM trainer(net, ex.train_options(), gm::Interpolant<gm::LearnedSchedule>(schedule), {},
                gm::StratifiedTime(gm::StratifiedTime::Options().antithetic(true)), gm::VDMELBO{});
    ex.run(trainer, data);
    if (cfg.get<std::string>("mode") != "check") plot_schedule(cfg.get<std::string>("workdir"), schedule, options);
  });
}
