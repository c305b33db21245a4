// Evaluation: the Fréchet distance against closed forms and scipy's sqrtm, likelihoods against the oracle,
// feature networks (gm's classifier and TorchScript), cached reference statistics, and the .npz export.

#include "helpers.hpp"

#include <gm/data/gaussian_mixture.hpp>
#include <gm/eval/feature_net.hpp>
#include <gm/eval/frechet.hpp>
#include <gm/eval/kid.hpp>
#include <gm/io/npy.hpp>
#include <gm/eval/likelihood.hpp>
#include <gm/process/all.hpp>
#include <gm/sampler/all.hpp>

#include <torch/version.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace {

Eigen::MatrixXd random_spd(int d, std::mt19937_64& rng, double ridge = 0.1) {
  std::normal_distribution<double> n(0, 1);
  Eigen::MatrixXd a(d, d);
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) a(i, j) = n(rng);
  }
  return a * a.transpose() / d + ridge * Eigen::MatrixXd::Identity(d, d);
}

}  // namespace

TEST_CASE("Fréchet distance: closed forms") {
  std::mt19937_64 rng(1);
  // Equal Gaussians: 0.  A shift only: |mu1 - mu2|^2.
  const auto s = random_spd(6, rng);
  Eigen::VectorXd mu = Eigen::VectorXd::LinSpaced(6, -1, 1);
  CHECK(gm::frechet_distance(mu, s, mu, s) == doctest::Approx(0).epsilon(1e-9).scale(1));
  Eigen::VectorXd mu2 = mu;
  mu2(2) += 3;
  CHECK(gm::frechet_distance(mu, s, mu2, s) == doctest::Approx(9).epsilon(1e-9));
  // Diagonal covariances: sum (sqrt(a_i) - sqrt(b_i))^2.
  Eigen::VectorXd a(4), b(4);
  a << 1, 4, 9, 0.25;
  b << 4, 1, 9, 1;
  double expect = 0;
  for (int i = 0; i < 4; ++i) expect += std::pow(std::sqrt(a(i)) - std::sqrt(b(i)), 2);
  const Eigen::VectorXd z = Eigen::VectorXd::Zero(4);
  CHECK(gm::frechet_distance(z, a.asDiagonal().toDenseMatrix(), z, b.asDiagonal().toDenseMatrix()) ==
        doctest::Approx(expect).epsilon(1e-12));
  // Commuting covariances (the same eigenvectors, rotated): the same formula on their eigenvalues.
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(random_spd(4, rng));
  const Eigen::MatrixXd q = qr.householderQ();
  const Eigen::MatrixXd sa = q * a.asDiagonal() * q.transpose(), sb = q * b.asDiagonal() * q.transpose();
  CHECK(gm::frechet_distance(z, sa, z, sb) == doctest::Approx(expect).epsilon(1e-10));
  // Statistics of features: the mean and unbiased covariance.
  auto f = torch::tensor({1.0, 2.0, 3.0, 5.0, 5.0, 8.0}, torch::kFloat64).view({3, 2});
  auto st = gm::FeatureStats::of(f);
  CHECK(st.mu(0) == doctest::Approx(3));
  CHECK(st.sigma(1, 1) == doctest::Approx(9));
  CHECK(st.sigma(0, 1) == doctest::Approx(6));
  CHECK_THROWS_AS(gm::frechet_distance(z, sa, mu, s), gm::Error);
}

TEST_CASE("Fréchet distance agrees with scipy.linalg.sqrtm on random SPD matrices within 1e-6 relative") {
  auto dir = gm::test::fresh_dir("frechet");
  const auto data = dir / "fd.txt";
  if (!gm::test::run_python(dir, "fd.py",
                            "import sys, numpy as np\n"
                            "from scipy import linalg\n"
                            "rng = np.random.default_rng(7)\n"
                            "out = open(sys.argv[1], 'w')\n"
                            "for d in (2, 8, 32, 64):\n"
                            "    a = rng.standard_normal((d, d)); b = rng.standard_normal((d, d))\n"
                            "    s1 = a @ a.T / d + 0.05 * np.eye(d); s2 = b @ b.T / d + 0.05 * np.eye(d)\n"
                            "    m1 = rng.standard_normal(d); m2 = rng.standard_normal(d)\n"
                            "    c = linalg.sqrtm(s1 @ s2).real\n"
                            "    fd = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(c)\n"
                            "    out.write(' '.join(repr(float(v)) for v in [d, fd, *m1, *m2, *s1.ravel(), *s2.ravel()]) + '\\n')\n",
                            data.string())) {
    FAIL("the reference script failed under " << std::string(gm::test::python()) << " (scripts/setup.sh makes it): see " << dir.string());
    std::filesystem::remove_all(dir);
    return;
  }
  std::ifstream in(data);
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    double dd, ref;
    ls >> dd >> ref;
    const int d = static_cast<int>(dd);
    Eigen::VectorXd m1(d), m2(d);
    Eigen::MatrixXd s1(d, d), s2(d, d);
    for (int i = 0; i < d; ++i) ls >> m1(i);
    for (int i = 0; i < d; ++i) ls >> m2(i);
    for (int i = 0; i < d * d; ++i) ls >> s1(i / d, i % d);
    for (int i = 0; i < d * d; ++i) ls >> s2(i / d, i % d);
    INFO("d = " << d);
    CHECK(std::abs(gm::frechet_distance(m1, s1, m2, s2) - ref) <= 1e-6 * std::abs(ref));
    ++cases;
  }
  CHECK(cases == 4);
  std::filesystem::remove_all(dir);
}

TEST_CASE_TEMPLATE("the probability-flow likelihood of mixture data with its exact velocity is the true log-density",
                   S, gm::Linear, gm::VP, gm::VE) {
  const auto g = gm::GaussianMixture::from_toml((gm::test::source_dir() / "configs/mixtures/ring8.toml"), torch::kFloat64);
  gm::Interpolant<S> ip;
  gm::Field field(ip, gm::Predict<gm::Velocity>{},
                  [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.velocity(x, t, ip); });
  auto gen = gm::make_generator(3);
  auto x = g.sample(32, gen);
  const gm::DopriSampler ref(gm::DopriSampler::Options().rtol(1e-5).atol(1e-5));
  const double t_eps = 1e-5;
  auto ll = gm::log_likelihood(field, x, gm::LikelihoodOptions().t_eps(t_eps), ref);
  // The ODE carries p_{t_eps}; the oracle knows it exactly.
  auto truth = g.log_prob(x, torch::full({32}, t_eps, gm::test::f64()), ip);
  const double err = (ll.log_p - truth).abs().max().template item<double>();
  MESSAGE(S::name << ": max |log p_ODE - log p| = " << err << " nats, " << ll.nfe << " evaluations");
  CHECK(err < 0.01);
  // A fixed-step RK4 run on 200 steps agrees too.
  auto rk = gm::log_likelihood(field, x, gm::LikelihoodOptions().t_eps(t_eps), gm::RK4Sampler{}, 200);
  CHECK((rk.log_p - truth).abs().max().template item<double>() < 0.05);
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::log_likelihood(field, x, gm::LikelihoodOptions().spacing("x")); }),
                           "spacing must be uniform or log"));
}

TEST_CASE("geometric steps in t suit nearly discrete data, uniform steps smooth data") {
  // Like dequantised pixels: modes of std 0.004 (about 1/256 of [-1, 1]); the velocity changes fastest near
  // t = 0, where the geometric grid puts its nodes.  On ring8 (std 0.3) uniform steps do better.
  gm::Interpolant<gm::Linear> ip;
  auto check = [&](const gm::GaussianMixture& g, bool log_wins) {
    gm::Field field(ip, gm::Predict<gm::Velocity>{},
                    [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.velocity(x, t, ip); });
    auto x = g.sample(32, gm::make_generator(5));
    const double t_eps = 1e-3;
    auto truth = g.log_prob(x, torch::full({32}, t_eps, gm::test::f64()), ip);
    auto err = [&](const char* spacing) {
      auto o = gm::LikelihoodOptions().t_eps(t_eps).spacing(spacing);
      return (gm::log_likelihood(field, x, o, gm::HeunSampler{}, 50).log_p - truth).abs().mean().template item<double>();
    };
    const double e_log = err("log"), e_uni = err("uniform");
    MESSAGE("Heun, 50 steps: mean error " << e_log << " nats (log), " << e_uni << " (uniform)");
    CHECK((log_wins ? e_log < e_uni / 10 : e_uni < e_log));
  };
  check(gm::GaussianMixture(torch::tensor({0.5, 0.5}, gm::test::f64()), torch::tensor({{-0.5, 0.25}, {0.5, -0.25}}, gm::test::f64()),
                            torch::tensor({0.004, 0.004}, gm::test::f64())),
        true);
  check(gm::GaussianMixture::from_toml((gm::test::source_dir() / "configs/mixtures/ring8.toml"), torch::kFloat64), false);
}

TEST_CASE("Hutchinson's divergence agrees with the exact one within its standard error" * gm::test::own_process) {
  const auto g = gm::GaussianMixture::from_toml((gm::test::source_dir() / "configs/mixtures/ring8.toml"), torch::kFloat64);
  gm::Interpolant<gm::Linear> ip;
  gm::Field field(ip, gm::Predict<gm::Velocity>{},
                  [g, ip](const torch::Tensor& x, const torch::Tensor& t) { return g.velocity(x, t, ip); });
  auto gen = gm::make_generator(4);
  auto x = g.sample(4, gen);
  const double t_eps = 1e-3;
  auto z = torch::cat({x, torch::zeros({4, 1}, gm::test::f64())}, 1);
  using Aug = gm::detail::AugmentedField<decltype(field)>;
  Aug exact_field(field, x.sizes().vec(), gm::LikelihoodOptions(), {});
  auto exact_div = -exact_field.velocity(z, 0.5).select(1, 2);  // div v at t = 0.5
  for (const std::string probe : {"rademacher", "gaussian"}) {
    INFO(probe);
    // 2000 single-probe estimates per point: their mean is within 4 standard errors of the exact divergence.
    const auto o = gm::LikelihoodOptions().divergence("hutchinson").probe(probe);
    std::vector<torch::Tensor> est;
    for (int r = 0; r < 2000; ++r) {
      auto zz = torch::randn({1, 4, 2}, gen, gm::test::f64());
      if (probe == "rademacher") zz = torch::sign(zz);
      Aug h(field, x.sizes().vec(), o, zz);
      est.push_back(-h.velocity(z, 0.5).select(1, 2));
    }
    auto all = torch::stack(est);  // [2000, 4]
    auto mean = all.mean(0), se = all.std(0) / std::sqrt(2000.0);
    MESSAGE(probe << ": max |mean - exact| / se = " << ((mean - exact_div).abs() / se).max().item<double>());
    CHECK(((mean - exact_div).abs() < 4 * se + 1e-12).all().item<bool>());
    CHECK((se > 0).all().item<bool>());
  }
  auto exact = gm::log_likelihood(field, x, gm::LikelihoodOptions().t_eps(t_eps), gm::RK4Sampler{}, 20);
  // K probes in one run shrink the spread.
  auto many = gm::log_likelihood(field, x, gm::LikelihoodOptions().t_eps(t_eps).divergence("hutchinson").probes(64),
                                 gm::RK4Sampler{}, 20, gen);
  CHECK((many.log_p - exact.log_p).abs().max().item<double>() < 0.5);
}

TEST_CASE("bits per dimension: a uniform density on [-1, 1]^D is 8 bits") {
  // p(y) = 2^-D on [-1, 1]^D, so u + v is uniform on [0, 256)^D: exactly 8 bits per dimension.
  const int64_t d = 784;
  auto log_p = torch::full({3}, -d * std::log(2.0), gm::test::f64());
  CHECK(gm::bits_per_dim(log_p, d).sub(8).abs().max().item<double>() < 1e-12);
  // A standard normal in [-1, 1] space at y = 0: -log N(0) / ln 2 + 7 per dimension.
  auto lp = torch::full({1}, -0.5 * d * std::log(2 * M_PI), gm::test::f64());
  CHECK(gm::bits_per_dim(lp, d).item<double>() == doctest::Approx(0.5 * std::log2(2 * M_PI) + 7));
}

TEST_CASE("a gm classifier saved and loaded as a feature network gives the same features and logits") {
  auto dir = gm::test::fresh_dir("feature_net");
  std::filesystem::create_directories(dir);
  torch::manual_seed(3);
  gm::ImageClassifier net(gm::ImageClassifierOptions().image_size(12).num_classes(3).width(8).features(5));
  net->eval();
  gm::save_classifier(dir / "c.safetensors", net);
  const auto fnet = gm::FeatureNet::load(dir / "c.safetensors");
  auto u8 = torch::randint(0, 256, {7, 1, 12, 12}, torch::kInt64).to(torch::kUInt8);
  torch::NoGradGuard ng;
  auto x = gm::ImageClassifierImpl::input(u8);
  CHECK(gm::test::max_abs(fnet.features(u8, 3), net->penultimate(x).to(torch::kFloat64)) < 1e-6);
  CHECK(gm::test::max_abs(fnet.logits(u8, 3), net->forward(x).to(torch::kFloat64)) < 1e-6);
  auto pred = net->forward(x).argmax(1);
  CHECK(gm::class_agreement(fnet, u8, pred) == 1.0);
  CHECK(gm::class_agreement(fnet, u8, (pred + 1).remainder(3)) == 0.0);
  CHECK(fnet.id().rfind("c-", 0) == 0);

  // Reference statistics: computed and cached once, then read back; another network's file is refused.
  const auto cache = dir / "cache" / "ref.safetensors";
  const auto a = gm::reference_stats(fnet, u8, cache);
  CHECK(std::filesystem::exists(cache));
  const auto b = gm::reference_stats(fnet, u8, cache);
  CHECK((a.mu - b.mu).cwiseAbs().maxCoeff() == 0);
  CHECK((a.sigma - b.sigma).cwiseAbs().maxCoeff() == 0);
  CHECK(std::abs(gm::frechet_distance(fnet, u8, a)) < 1e-9);
  gm::ImageClassifier other(gm::ImageClassifierOptions().image_size(12).num_classes(3).width(8).features(5));
  gm::save_classifier(dir / "d.safetensors", other);
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::reference_stats(gm::FeatureNet::load(dir / "d.safetensors"), u8, cache); }),
                           "statistics of another network"));
  // Other images of the same count (another folder, or this one at another resolution) do not share the
  // cache: their hash differs, names another file, and is checked when a file is read.
  auto other_u8 = (u8.to(torch::kInt32) + 1).clamp(0, 255).to(torch::kUInt8);
  CHECK(gm::content_hash(u8) == gm::content_hash(u8.clone()));
  CHECK(gm::content_hash(u8) != gm::content_hash(other_u8));
  CHECK(gm::content_hash(u8) != gm::content_hash(u8.reshape({u8.size(0), u8.size(1), -1})));  // the shape counts
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::reference_stats(fnet, other_u8, cache); }),
                           "statistics of another network or data set"));
  // Bad files: one-line errors naming them.
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::FeatureNet::load(dir / "none.pt"); }), "none.pt: no such file"));
  std::ofstream(dir / "junk.pt") << "not a module";
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::FeatureNet::load(dir / "junk.pt"); }),
                           "neither a gm .safetensors classifier nor a TorchScript file"));
  gm::io::write_safetensors(dir / "plain.safetensors", {{"w", torch::zeros({2})}});
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::FeatureNet::load(dir / "plain.safetensors"); }),
                           "is not a gm ImageClassifier"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a TorchScript feature network: features and logits methods, inputs in [0, 255]" * gm::test::own_process) {
  auto dir = gm::test::fresh_dir("feature_ts");
  if (!gm::test::run_python(dir, "f.py",
                            "import sys, torch\n"
                            "class F(torch.nn.Module):\n"
                            "    def forward(self, x):\n"
                            "        return x.flatten(1)[:, :4] * 2.0\n"
                            "    @torch.jit.export\n"
                            "    def logits(self, x):\n"
                            "        return x.flatten(1)[:, :3]\n"
                            "torch.jit.script(F()).save(sys.argv[1])\n",
                            (dir / "f.pt").string())) {
    FAIL("the reference script failed under " << std::string(gm::test::python()) << " (scripts/setup.sh makes it): see " << dir.string());
    std::filesystem::remove_all(dir);
    return;
  }
  const auto net = gm::FeatureNet::load(dir / "f.pt");
  auto u8 = torch::randint(0, 256, {5, 1, 4, 4}, torch::kInt64).to(torch::kUInt8);
  auto flat = u8.flatten(1).to(torch::kFloat64);
  CHECK(gm::test::max_abs(net.features(u8, 2), flat.slice(1, 0, 4) * 2) == 0);
  CHECK(net.has_logits());
  CHECK(gm::test::max_abs(net.logits(u8), flat.slice(1, 0, 3)) == 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("an AOTInductor feature network (.pt2): torch.export + aoti_compile_and_package, loaded by gm") {
  // Exporting compiles C++ (about 40 s on 2 cores), so the package is kept in the build tree, named after
  // the torch version, and made again only when it is missing.
  const auto cache = std::filesystem::current_path() / "test_cache";
  std::filesystem::create_directories(cache);
  const auto pkg = cache / ("features_torch" + std::string(TORCH_VERSION) + ".pt2"), ref = cache / "features_ref.txt";
  if (!std::filesystem::exists(pkg) || !std::filesystem::exists(ref)) {
    if (!gm::test::run_python(cache, "export_pt2.py",
                              "import os, sys, torch\n"
                              "class F(torch.nn.Module):\n"
                              "    def __init__(self):\n"
                              "        super().__init__(); self.l = torch.nn.Linear(16, 3)\n"
                              "    def forward(self, x):\n"
                              "        return torch.tanh(self.l(x.flatten(1) / 255.0))\n"
                              "torch.manual_seed(0)\n"
                              "m = F().eval()\n"
                              "x = torch.arange(5 * 16).reshape(5, 1, 4, 4).float() * 3 % 256\n"
                              "ep = torch.export.export(m, (x,), dynamic_shapes={'x': {0: torch.export.Dim('batch', min=1, max=4096)}})\n"
                              "tmp = os.path.join(os.path.dirname(sys.argv[1]), 'partial_' + os.path.basename(sys.argv[1]))\n"
                              "torch._inductor.aoti_compile_and_package(ep, package_path=tmp,\n"
                              "    inductor_configs={'aot_inductor.compile_wrapper_opt_level': 'O0'})\n"
                              "open(sys.argv[2], 'w').write(' '.join(repr(float(v)) for v in m(x).detach().flatten()))\n"
                              "os.replace(tmp, sys.argv[1])\n",
                              pkg.string() + " " + ref.string())) {
      FAIL("exporting the AOTInductor package failed under " << std::string(gm::test::python()) << ": see " << cache.string());
    }
  }
  const auto net = gm::FeatureNet::load(pkg);
  CHECK(gm::test::contains(net.describe(), "AOTInductor"));
  CHECK_FALSE(net.has_logits());
  auto u8 = (torch::arange(5 * 16, torch::kInt64).reshape({5, 1, 4, 4}) * 3).remainder(256).to(torch::kUInt8);
  std::ifstream in(ref);
  std::vector<double> expect;
  for (double v; in >> v;) expect.push_back(v);
  REQUIRE(expect.size() == 15);
  auto f = net.features(u8, 2);  // batches of 2, 2 and 1: the batch dimension is dynamic
  CHECK((f.sizes() == torch::IntArrayRef({5, 3})));
  CHECK(gm::test::max_abs(f, torch::tensor(expect, torch::kFloat64).view({5, 3})) < 1e-6);
  // A file that is no package is a one-line error naming it.
  gm::test::TempFile bad("not a zip", "bad_pt2", ".pt2");
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::FeatureNet::load(bad.path); }), "is not an AOTInductor package"));
}

TEST_CASE(".npz export: numpy reads uint8 NHWC arr_0 and int64 arr_1") {
  auto dir = gm::test::fresh_dir("npz");
  std::filesystem::create_directories(dir);
  auto x = torch::arange(2 * 3 * 4 * 1, torch::kInt64).remainder(256).to(torch::kUInt8).view({2, 3, 4, 1});
  auto y = torch::tensor({7, -1}, torch::kInt64);
  gm::io::write_npz(dir / "s.npz", {{"arr_0", x}, {"arr_1", y}});
  if (!gm::test::run_python(dir, "r.py",
                            "import sys, numpy as np\n"
                            "z = np.load(sys.argv[1])\n"
                            "a, b = z['arr_0'], z['arr_1']\n"
                            "assert sorted(z.files) == ['arr_0', 'arr_1'], z.files\n"
                            "assert a.dtype == np.uint8 and a.shape == (2, 3, 4, 1) and (a.ravel() == np.arange(24)).all()\n"
                            "assert b.dtype == np.int64 and list(b) == [7, -1]\n",
                            (dir / "s.npz").string())) {
    FAIL("numpy could not read the .npz");
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("KID is the unbiased MMD^2 under the cubic kernel: a naive double loop agrees, equal sets give ~0" * gm::test::own_process) {
  auto gen = gm::make_generator(3);
  auto a = torch::randn({40, 3}, gen, torch::kFloat64), b = torch::randn({40, 3}, gen, torch::kFloat64) + 0.7;
  // One subset of all rows: the estimate is permutation-invariant, so it is exactly the full-set MMD^2.
  const auto kid = gm::kernel_inception_distance(a, b, 1, 40, 5).first;
  auto k = [](const torch::Tensor& x, const torch::Tensor& y) { return std::pow((x * y).sum().item<double>() / 3 + 1, 3); };
  double kxx = 0, kyy = 0, kxy = 0;
  for (int64_t i = 0; i < 40; ++i) {
    for (int64_t j = 0; j < 40; ++j) {
      if (i != j) kxx += k(a[i], a[j]), kyy += k(b[i], b[j]);
      kxy += k(a[i], b[j]);
    }
  }
  const double naive = kxx / (40 * 39) + kyy / (40 * 39) - 2 * kxy / (40 * 40);
  CHECK(kid == doctest::Approx(naive).epsilon(1e-12));
  CHECK(kid > 0);
  auto c = torch::randn({2000, 8}, gen, torch::kFloat64), d = torch::randn({2000, 8}, gen, torch::kFloat64);
  const auto same = gm::kernel_inception_distance(c, d, 20, 1000, 1);
  const auto shifted = gm::kernel_inception_distance(c, d + 0.3, 20, 1000, 1);
  MESSAGE("KID equal distributions " << same.first << " +- " << same.second << ", shifted by 0.3: " << shifted.first);
  CHECK(std::abs(same.first) < 4 * same.second + 1e-3);
  // The spread as torch-fidelity reports it (metric_kid.py: float(np.std(mmds)), numpy's ddof = 0) over the
  // same subsets, and the mean as its np.mean.
  const auto values = gm::kid_subset_values(c, d, 20, 1000, 1);
  REQUIRE(values.size() == 20);
  const auto v = torch::tensor(values, torch::kFloat64);
  CHECK(same.first == doctest::Approx(v.mean().item<double>()).epsilon(1e-12));
  CHECK(same.second == doctest::Approx(v.std(/*unbiased=*/false).item<double>()).epsilon(1e-12));
  CHECK(same.second < v.std(/*unbiased=*/true).item<double>());
  CHECK(shifted.first > 10 * std::abs(same.first));
  CHECK(gm::test::contains(gm::test::error_of([&] { gm::kernel_inception_distance(c, d.slice(1, 0, 4)); }), "same width"));
}

TEST_CASE("precision and recall: equal sets cover each other, a far set neither, one mode of two half the recall") {
  auto gen = gm::make_generator(4);
  auto blob = [&](double x, int64_t n) { return torch::randn({n, 2}, gen, torch::kFloat64) * 0.3 + torch::tensor({x, 0.0}, torch::kFloat64); };
  auto real = torch::cat({blob(-3, 500), blob(3, 500)});
  auto same = gm::precision_recall(real, real);
  CHECK(same.precision == 1.0);
  CHECK(same.recall == 1.0);
  auto far = gm::precision_recall(real, blob(40, 300));
  CHECK(far.precision == 0.0);
  CHECK(far.recall == 0.0);
  auto one_mode = gm::precision_recall(real, blob(3, 1000));  // mode collapse: faithful but half the coverage
  MESSAGE("one mode of two: precision " << one_mode.precision << ", recall " << one_mode.recall);
  CHECK(one_mode.precision > 0.95);
  CHECK(one_mode.recall == doctest::Approx(0.5).epsilon(0.06));
}
