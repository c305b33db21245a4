// bench_samplers: compare samplers on the exact Gaussian-mixture oracle.
//
// For each schedule, grid, sampler and NFE it runs the sampler from the same n draws of p_1 on the exact
// mixture field, and reports the mean endpoint L2 error against an RK4 reference (>= 4000 steps, same ODE,
// same noise), the mean log-likelihood of the samples under the true data density (exact samples beside
// it), and wall and model-call time.  Markdown on stdout; results.csv and error_<schedule>_<grid>.png
// in --out.  `--grid optimized` also searches, for each deterministic sampler and NFE, the grid that
// minimises its endpoint error (gm::optimize_grid, on --train-n other draws), saves it in --out/grids/ and
// scores it on the same n draws as the fixed grids.
//
//   bench_samplers --mixture configs/mixtures/ring8.toml --schedule linear --grid uniform --t-end 1e-3
//                  --nfe 4,6,10,20,50 --samplers euler,heun,rk4,dpmpp2m,unipc --n 4000 --seed 1

#include <gm/data/toy2d.hpp>
#include <gm/io/cli.hpp>
#include <gm/io/file.hpp>
#include <gm/io/plot.hpp>
#include <gm/sampler.hpp>
#include <gm/type_list.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace {

using Schedules = gm::type_list<gm::Linear, gm::Trig, gm::VP, gm::SubVP, gm::VPCosine, gm::VE, gm::EDM>;
using Grids = gm::type_list<gm::UniformGrid, gm::LogSnrGrid, gm::EDMGrid, gm::QuadraticGrid>;
using Samplers = gm::AllSamplers;

struct Args {
  std::string mixture = "configs/mixtures/ring8.toml";
  std::vector<std::string> schedules{"linear"}, grids{"uniform"}, samplers{"euler", "heun", "rk4", "dpmpp2m", "unipc"};
  std::vector<int64_t> nfe{4, 6, 10, 20, 50};
  std::vector<double> dopri_tols{1e-2, 1e-3, 1e-4, 1e-5};
  double t_end = 1e-3;
  int64_t n = 4000, ref_steps = 4000;
  uint64_t seed = 1;
  std::string out = "runs/bench_samplers";
  bool force = false;
  bool optimized = false;  // --grid optimized: also search a grid per sampler and NFE (deterministic samplers)
  int64_t train_n = 1000, search_evals = 3000;
  std::string fit;  // NAME:K: the mixture is K components fitted by EM to 20000 draws of the 2-D toy NAME
};

struct Row {
  Row(std::string s, std::string g, std::string smp)
      : schedule(std::move(s)), grid(std::move(g)), sampler(std::move(smp)) {}
  std::string schedule, grid, sampler;
  int64_t nfe = 0, steps = 0;
  std::string note;  // "skipped: ..." for rows not run
  double err = 0, loglik = 0, exact_loglik = 0, wall_ms = 0, model_ms = 0;
};

// "all" expands to every name of the list; other names are checked by visit_by_name later.
template <class List>
std::vector<std::string> expand(const std::vector<std::string>& names) {
  if (names.size() == 1 && names[0] == "all") {
    std::vector<std::string> out;
    gm::for_each_type<List>([&]<class T>() { out.emplace_back(T::name); });
    return out;
  }
  return names;
}

template <class S>
S configured(double tol) {
  if constexpr (std::is_same_v<S, gm::DopriSampler>) {
    return gm::DopriSampler(gm::DopriSampler::Options().rtol(tol).atol(tol).max_nfe(100000));
  } else {
    return S{};
  }
}

template <class Sched>
void bench_schedule(const Args& a, const gm::GaussianMixture& gmm, std::vector<Row>& rows) {
  gm::Interpolant<Sched> ip;
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto gen = gm::make_generator(a.seed);
  // n draws of p_1 = the process's marginal at t = 1 (pure noise where alpha(1) = 0).
  auto x1 = ip.sample(gmm.sample(a.n, gen), torch::randn({a.n, gmm.dim()}, gen, f64), torch::tensor(1.0, f64));
  auto model = [&gmm, ip](const torch::Tensor& x, const torch::Tensor& t) { return gmm.velocity(x, t, ip); };
  gm::Field field(ip, gm::Predict<gm::Velocity>{}, model);
  auto ref = gm::integrate(gm::RK4Sampler{}, field, x1, gm::UniformGrid().nodes(a.ref_steps, a.t_end, ip));
  const double exact_ll = gmm.log_prob(gmm.sample(a.n, gen)).mean().item<double>();
  const std::string sname(Sched::name);

  auto run = [&](const auto& sampler, const std::vector<double>& grid, Row row) {
    field.reset_counters();
    const auto start = std::chrono::steady_clock::now();
    auto x = gm::integrate(sampler, field, x1, grid, gm::NoObserver{}, gm::make_generator(a.seed + 1));
    row.wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    row.model_ms = 1000 * field.model_seconds();
    row.nfe = field.nfe();
    row.err = (x - ref).norm(2, 1).mean().template item<double>();
    row.loglik = gmm.log_prob(x).mean().template item<double>();
    row.exact_loglik = exact_ll;
    rows.push_back(row);
  };

  // --grid optimized: grids searched on other draws of p_1 (train_n of them, their own RK4 reference),
  // started from the uniform, log-SNR and EDM grids, then scored on the n draws above like any grid.
  auto x1_train = ip.sample(gmm.sample(a.train_n, gen), torch::randn({a.train_n, gmm.dim()}, gen, f64), torch::tensor(1.0, f64));
  torch::Tensor ref_train;
  if (a.optimized) ref_train = gm::integrate(gm::RK4Sampler{}, field, x1_train, gm::UniformGrid().nodes(a.ref_steps, a.t_end, ip));

  for (const auto& samp : a.samplers) {
    gm::visit_by_name<Samplers>(samp, [&]<class S>() {
      if constexpr (!std::is_same_v<typename S::category, gm::adaptive_tag>) {
        if (a.optimized) {
          const S sampler{};
          const int64_t per = gm::evals_per_step(sampler);
          for (int64_t nfe : a.nfe) {
            Row row{sname, "optimized", std::string(S::name)};
            row.nfe = nfe;
            if constexpr (std::is_same_v<typename S::category, gm::sde_tag>) {
              row.note = "skipped: a stochastic sampler's endpoint is not a function of its grid";
              rows.push_back(row);
              continue;
            } else {
              if (nfe % per != 0) {
                row.note = "skipped: NFE not a multiple of " + std::to_string(per) + " evaluations a step";
                rows.push_back(row);
                continue;
              }
              row.steps = nfe / per;
              const auto start = std::chrono::steady_clock::now();
              auto grid = gm::optimize_grid(sampler, field, ip, x1_train, ref_train, row.steps, a.t_end,
                                            {gm::UniformGrid().nodes(row.steps, a.t_end, ip),
                                             gm::LogSnrGrid().nodes(row.steps, a.t_end, ip),
                                             gm::EDMGrid().nodes(row.steps, a.t_end, ip)},
                                            gm::GridSearchOptions().max_evals(a.search_evals));
              const double search_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
              grid.meta = {{"schedule", sname}, {"sampler", std::string(S::name)}, {"nfe", std::to_string(nfe)},
                           {"mixture", a.mixture}};
              std::filesystem::create_directories(std::filesystem::path(a.out) / "grids");
              grid.save(std::filesystem::path(a.out) / "grids" /
                        (sname + "_" + std::string(S::name) + "_nfe" + std::to_string(nfe) + ".toml"));
              std::fprintf(stderr, "bench_samplers: %s %s NFE %lld: grid searched in %.1f s\n", sname.c_str(),
                           std::string(S::name).c_str(), static_cast<long long>(nfe), search_s);
              run(sampler, grid.stored, row);
            }
          }
        }
      }
      if constexpr (std::is_same_v<typename S::category, gm::adaptive_tag>) {
        for (double tol : a.dopri_tols) {
          run(configured<S>(tol), {1.0, a.t_end}, Row{sname, "adaptive", std::string(S::name) + " tol=" + std::to_string(tol).substr(0, 7)});
        }
      } else {
        for (const auto& gname : a.grids) {
          gm::visit_by_name<Grids>(gname, [&]<class G>() {
            const S sampler{};
            const int64_t per = gm::evals_per_step(sampler);
            for (int64_t nfe : a.nfe) {
              Row row{sname, gname, std::string(S::name)};
              row.nfe = nfe;
              if (nfe % per != 0) {
                row.note = "skipped: NFE not a multiple of " + std::to_string(per) + " evaluations a step";
                rows.push_back(row);
                continue;
              }
              row.steps = nfe / per;
              run(sampler, G{}.nodes(row.steps, a.t_end, ip), row);
            }
          }, "grid");
        }
      }
    }, "sampler");
  }
}

std::string fmt(double v, const char* f = "%.4g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void report(const Args& a, const std::vector<Row>& rows) {
  std::printf("| schedule | grid | sampler | NFE | steps | endpoint L2 error | log-lik | exact log-lik | wall ms | "
              "model ms | overhead |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    if (!r.note.empty()) {
      std::printf("| %s | %s | %s | %lld | | %s | | | | | |\n", r.schedule.c_str(), r.grid.c_str(), r.sampler.c_str(),
                  static_cast<long long>(r.nfe), r.note.c_str());
      continue;
    }
    std::printf("| %s | %s | %s | %lld | %lld | %s | %s | %s | %s | %s | %s |\n", r.schedule.c_str(), r.grid.c_str(),
                r.sampler.c_str(), static_cast<long long>(r.nfe), static_cast<long long>(r.steps),
                fmt(r.err, "%.3e").c_str(), fmt(r.loglik, "%.4f").c_str(), fmt(r.exact_loglik, "%.4f").c_str(),
                fmt(r.wall_ms, "%.1f").c_str(), fmt(r.model_ms, "%.1f").c_str(),
                fmt(100 * (r.wall_ms - r.model_ms) / std::max(r.wall_ms, 1e-9), "%.0f%%").c_str());
  }

  std::filesystem::create_directories(a.out);
  std::ofstream csv(std::filesystem::path(a.out) / "results.csv");
  csv << "schedule,grid,sampler,nfe,steps,endpoint_l2_error,loglik,exact_loglik,wall_ms,model_ms,note\n";
  for (const auto& r : rows) {
    csv << r.schedule << ',' << r.grid << ',' << r.sampler << ',' << r.nfe << ',' << r.steps << ','
        << (r.note.empty() ? fmt(r.err, "%.6e") : "") << ',' << (r.note.empty() ? fmt(r.loglik, "%.6f") : "") << ','
        << (r.note.empty() ? fmt(r.exact_loglik, "%.6f") : "") << ',' << (r.note.empty() ? fmt(r.wall_ms, "%.3f") : "")
        << ',' << (r.note.empty() ? fmt(r.model_ms, "%.3f") : "") << ',' << r.note << '\n';
  }
  // One error-vs-NFE plot per schedule and grid; adaptive runs appear in every plot of their schedule.
  std::map<std::pair<std::string, std::string>, std::map<std::string, gm::io::Series>> plots;
  for (const auto& r : rows) {
    if (!r.note.empty() || r.grid == "adaptive") continue;
    auto& s = plots[{r.schedule, r.grid}][r.sampler];
    s.name = r.sampler;
    s.x.push_back(static_cast<double>(r.nfe));
    s.y.push_back(r.err);
  }
  for (auto& [key, by_sampler] : plots) {
    std::vector<gm::io::Series> series;
    for (auto& [name, s] : by_sampler) series.push_back(s);
    gm::io::Series adaptive{"dopri5", {}, {}};
    for (const auto& r : rows) {
      if (r.note.empty() && r.grid == "adaptive" && r.schedule == key.first) {
        adaptive.x.push_back(static_cast<double>(r.nfe));
        adaptive.y.push_back(r.err);
      }
    }
    if (!adaptive.x.empty()) series.push_back(adaptive);
    gm::io::PlotOptions o;
    o.title = key.first + " / " + key.second + " grid";
    o.x_label = "nfe";
    o.y_label = "endpoint l2 error";
    o.log_x = o.log_y = true;
    gm::io::write_png(std::filesystem::path(a.out) / ("error_" + key.first + "_" + key.second + ".png"),
                      gm::io::line_plot(series, o));
  }
  std::fprintf(stderr, "bench_samplers: wrote %s/results.csv and %zu plot(s)\n", a.out.c_str(), plots.size());
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"Compare samplers on the exact Gaussian-mixture oracle."};
  app.add_option("--mixture", a.mixture, "Gaussian-mixture TOML file (weights, means, stds)");
  app.add_option("--schedule", a.schedules, "schedules, comma-separated, or 'all': " + gm::names(Schedules{}))
      ->delimiter(',');
  app.add_option("--grid", a.grids, "time grids, comma-separated, or 'all': " + gm::names(Grids{}) +
                                        ", optimized (searched per sampler and NFE on the mixture; saved in --out/grids)")
      ->delimiter(',');
  app.add_option("--fit", a.fit, "NAME:K: use K Gaussians fitted by EM to the 2-D toy NAME (checkerboard, moons, "
                                 "8gaussians, spirals) instead of --mixture; written to --out")
      ->check([](const std::string& v) { return v.find(':') == std::string::npos ? "expected NAME:K" : ""; });
  app.add_option("--train-n", a.train_n, "draws the optimized grids are searched on (others than --n's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app.add_option("--search-evals", a.search_evals, "objective evaluations per start of the grid search")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app.add_option("--samplers", a.samplers, "samplers, comma-separated, or 'all': " + gm::names(Samplers{}))
      ->delimiter(',');
  app.add_option("--nfe", a.nfe, "model evaluations per sample, comma-separated")->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  app.add_option("--dopri-tol", a.dopri_tols, "rtol = atol values for dopri5")->delimiter(',')
      ->check(CLI::Range(1e-14, 1.0));
  app.add_option("--t-end", a.t_end, "final time, in [0, 1)")->check(CLI::Range(0.0, 0.999999));
  app.add_option("--n", a.n, "samples")->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--ref-steps", a.ref_steps, "RK4 steps of the reference solution (at least 4000)")
      ->check(CLI::Range(int64_t{4000}, int64_t{1} << 40));
  app.add_option("--seed", a.seed, "seed of the initial noise and of stochastic samplers");
  app.add_option("--out", a.out, "folder for results.csv and the plots");
  app.add_flag("--force", a.force, "overwrite results already in --out");
  if (auto code = gm::io::parse_args(app, argc, argv)) return *code;
  try {
    a.schedules = expand<Schedules>(a.schedules);
    a.optimized = std::erase(a.grids, std::string("optimized")) > 0;
    if (a.grids.size() == 1 && a.grids[0] == "all") a.optimized = true;
    a.grids = expand<Grids>(a.grids);
    a.samplers = expand<Samplers>(a.samplers);
    // Check every name before any work, so a typo fails at once.
    for (const auto& s : a.schedules) gm::visit_by_name<Schedules>(s, []<class>() {}, "schedule");
    for (const auto& g : a.grids) gm::visit_by_name<Grids>(g, []<class>() {}, "grid");
    for (const auto& s : a.samplers) gm::visit_by_name<Samplers>(s, []<class>() {}, "sampler");
    if (!a.force && std::filesystem::exists(std::filesystem::path(a.out) / "results.csv")) {
      throw gm::Error("gm: " + a.out + "/results.csv exists; pass --force to overwrite or choose another --out");
    }
    auto mixture = [&]() {
      if (a.fit.empty()) return gm::GaussianMixture::from_toml(gm::io::find_data_file(a.mixture));
      // A mixture with the shape of a toy data set, for grids meant for a network trained on it.
      const auto colon = a.fit.find(':');
      int64_t k = 0;
      try {
        k = colon == std::string::npos ? 0 : std::stoll(a.fit.substr(colon + 1));
      } catch (const std::exception&) {
      }
      if (k < 1) throw gm::Error("gm: --fit " + a.fit + ": expected NAME:K, e.g. checkerboard:64");
      const auto name = a.fit.substr(0, colon);
      auto gen = gm::make_generator(a.seed + 7);
      auto fitted = gm::GaussianMixture::fit(gm::data::toy2d(name, 20000, gen, torch::kFloat64), k, 300, gen);
      std::filesystem::create_directories(a.out);
      const auto file = std::filesystem::path(a.out) / ("fitted_" + name + "_k" + std::to_string(k) + ".toml");
      gm::io::write_file_atomic(file, "# " + std::to_string(k) + " isotropic Gaussians fitted by EM to 20000 draws of " +
                                          name + " (bench_samplers --fit)\n" + fitted.to_toml());
      a.mixture = file.string();
      std::fprintf(stderr, "bench_samplers: fitted %s; wrote %s\n", a.fit.c_str(), file.string().c_str());
      return fitted;
    };
    const auto gmm = mixture();
    torch::NoGradGuard no_grad;
    std::vector<Row> rows;
    for (const auto& s : a.schedules) {
      gm::visit_by_name<Schedules>(s, [&]<class S>() { bench_schedule<S>(a, gmm, rows); }, "schedule");
    }
    report(a, rows);
  } catch (const gm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
