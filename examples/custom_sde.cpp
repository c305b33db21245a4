// How to add a new process to gm: write one small struct with alpha(t) and sigma(t).
//
// Everything else, derivatives, log-SNR and its inverse, the SDE drift and diffusion, conversions between
// parameterisations, comes from gm: derivatives by autograd and the log-SNR inverse by bisection unless
// the struct supplies them.  This example defines a "polynomial" variance-preserving process, checks it
// against the concept, draws x_t from ring8's data and prints the SNR curve.
//
// Run: ./build/examples/custom_sde [--mixture configs/mixtures/ring8.toml]

#include <gm/io/cli.hpp>
#include <gm/io/file.hpp>
#include <gm/sampler.hpp>

#include <cstdio>
#include <string>

// --- the new process: alpha(t) = 1 - t, sigma(t) = sin(pi t / 2): a linear decay of the signal with a
// trigonometric noise ramp.  Smooth on [0, 1], alpha(1) = 0, log-SNR decreasing.  That is all gm needs.
struct LinSin {
  static constexpr std::string_view name = "lin_sin";
  torch::Tensor alpha(const torch::Tensor& t) const { return 1 - t; }
  torch::Tensor sigma(const torch::Tensor& t) const { return torch::sin(0.5 * M_PI * t); }
};
static_assert(gm::check_schedule<LinSin>());  // a sentence per missing member if it were wrong
// ------------------------------------------------------------------------------------------------------

int main(int argc, char** argv) try {
  CLI::App app{"Defines a new process in ~10 lines and shows what gm derives from it."};
  std::string mixture = "configs/mixtures/ring8.toml";
  app.add_option("--mixture", mixture, "Gaussian-mixture TOML file for the data");
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  const auto data = gm::GaussianMixture::from_toml(gm::io::find_data_file(mixture), torch::kFloat32);
  gm::Interpolant<LinSin> process;
  auto gen = gm::make_generator(0);

  // Draw x_t for a batch of data at random times.
  auto x0 = data.sample(4096, gen);
  auto eps = torch::randn(x0.sizes(), gen, x0.options());
  auto t = gm::UniformTime().sample(x0.size(0), process, gen, x0.options());
  auto xt = process.sample(x0, eps, t);
  std::printf("process %s: drew x_t of shape [%lld, %lld]; E|x_t|^2 = %.3f\n", std::string(gm::Interpolant<LinSin>::name).c_str(),
              static_cast<long long>(xt.size(0)), static_cast<long long>(xt.size(1)),
              xt.pow(2).sum(1).mean().item<double>());

  // The SNR curve, and what gm derived: alpha', sigma', g^2, and the exact log p_t of the data's mixture.
  std::printf("%6s %10s %10s %12s %10s %10s %12s\n", "t", "alpha", "sigma", "log-SNR", "alpha'", "g^2",
              "E log p_t");
  for (double tv : {0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}) {
    auto ti = torch::full({x0.size(0)}, tv);
    auto xi = process.sample(x0, eps, ti);
    auto t0 = torch::tensor(tv);
    std::printf("%6.2f %10.4f %10.4f %12.4f %10.4f %10.4f %12.4f\n", tv, process.alpha(t0).item<double>(),
                process.sigma(t0).item<double>(), process.log_snr(t0).item<double>(),
                process.d_alpha(t0).item<double>(), process.diffusion_sq(t0).item<double>(),
                data.log_prob(xi, ti, process).mean().item<double>());
  }
  // Its log-SNR inverse came from bisection; check it round-trips.
  auto grid = torch::linspace(0.05, 0.95, 19);
  const double err = (process.t_from_log_snr(process.log_snr(grid)) - grid).abs().max().item<double>();
  std::printf("t_from_log_snr(log_snr(t)) round-trip error: %.2e\n", err);

  // Every sampler works on the new process.  The model here is the exact oracle's velocity.
  gm::Field field(process, gm::Predict<gm::Velocity>{},
                  [&](const torch::Tensor& x, const torch::Tensor& tt) { return data.velocity(x, tt, process); });
  auto x1 = torch::randn({4096, 2}, gen);  // p_1 = N(0, I): alpha(1) = 0, sigma(1) = 1
  const double exact = data.log_prob(data.sample(4096, gen)).mean().item<double>();
  auto report = [&](const char* name, const torch::Tensor& x) {
    std::printf("%-28s NFE %3lld   mean log p_data(samples) = %.3f   (exact samples: %.3f)\n", name,
                static_cast<long long>(field.nfe()), data.log_prob(x).mean().item<double>(), exact);
    field.reset_counters();
  };
  report("heun, uniform grid", gm::integrate(gm::HeunSampler{}, field, x1, gm::UniformGrid().nodes(10, 1e-3, process)));
  report("dpm-solver++(2m), log-snr", gm::integrate(gm::DPMSolverPP2M{}, field, x1, gm::LogSnrGrid().nodes(20, 1e-3, process)));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 2;
}
