#pragma once
/// @file
/// Feature networks for sample quality: gm's own `ImageClassifier` (an offline "FD-FMNIST" and class
/// agreement), any TorchScript file (the Inception network of clean-fid and EDM, DINOv2) or AOTInductor
/// package (.pt2), and reference
/// statistics of a data set cached in a file.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/eval/frechet.hpp>
#include <gm/io/file.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/io/export.hpp>
#include <gm/nn/classifier.hpp>

#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>
#endif

namespace gm {

/// Save a trained `ImageClassifier` as safetensors, its options in the metadata, for `FeatureNet::load`.
void save_classifier(const std::filesystem::path& path, ImageClassifier& net);
#if GM_HEADER_DEFINITIONS
GM_INLINE void save_classifier(const std::filesystem::path& path, ImageClassifier& net) {
  const auto& o = net->options();
  io::write_safetensors(path, io::named_tensors(*net),
                        {{"format", "pt"}, {"gm.model", "ImageClassifier"}, {"channels", std::to_string(o.channels())},
                         {"image_size", std::to_string(o.image_size())}, {"num_classes", std::to_string(o.num_classes())},
                         {"width", std::to_string(o.width())}, {"features", std::to_string(o.features())}});
}
#endif

/// A network that maps uint8 images [N, C, H, W] to feature vectors, and optionally to class logits.
///
/// `load(path)` reads either
/// - a `.safetensors` file written by `save_classifier` (gm's `ImageClassifier`, examples/classifier.cpp):
///   features are its penultimate layer, logits its output; or
/// - a TorchScript file (`torch.jit.save`): its `features(x)` method if it has one, else `forward(x)`, gives
///   the features, and a `logits(x)` method, if present, the logits; or
/// - an AOTInductor package (`.pt2`, PyTorch 2.x's successor to TorchScript: `torch.export.export` then
///   `torch._inductor.aoti_compile_and_package`, loaded with `torch::inductor::AOTIModelPackageLoader`): its
///   model gives the features (a package compiles for one device, so export it for the one you evaluate on,
///   with a dynamic batch dimension).
/// x is float32 [N, C, H, W] in [0, 255], the convention of the Inception TorchScript file that clean-fid and
/// EDM use; resizing and channel handling are the module's business.
class FeatureNet {
 public:
  using Fn = std::function<torch::Tensor(const torch::Tensor&)>;

  FeatureNet(std::string id, std::string description, Fn features, Fn logits = {})
      : id_(std::move(id)), description_(std::move(description)), features_(std::move(features)), logits_(std::move(logits)) {}

  /// Load the feature network in `path` onto `device`; a missing or unreadable file, or a file of neither
  /// kind, is a one-line `gm::Error` naming it.
  static FeatureNet load(const std::filesystem::path& path, torch::Device device = torch::kCPU);

  /// Features [N, F] (float64, CPU) of uint8 images [N, C, H, W], in batches of `batch`.
  torch::Tensor features(const torch::Tensor& u8, int64_t batch = 500) const { return batched(features_, u8, batch); }
  /// Whether the network gives class logits.
  bool has_logits() const { return static_cast<bool>(logits_); }
  /// Class logits [N, K] (float64, CPU) of uint8 images.
  torch::Tensor logits(const torch::Tensor& u8, int64_t batch = 500) const;
  /// The file's stem and a hash of its bytes, naming cached reference statistics.
  const std::string& id() const { return id_; }
  const std::string& describe() const { return description_; }

 private:
  static torch::Tensor batched(const Fn& fn, const torch::Tensor& u8, int64_t batch);
  static std::string file_hash(const std::filesystem::path& path);
  static void load_into(torch::nn::Module& net, const io::NamedTensors& tensors, const std::filesystem::path& path);

  std::string id_, description_;
  Fn features_, logits_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto FeatureNet::load(const std::filesystem::path& path, torch::Device device) -> FeatureNet {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error("gm: feature network " + path.string() + ": no such file (train gm's with build/examples/classifier)");
  }
  const std::string id = path.stem().string() + "-" + file_hash(path);
  if (path.extension() == ".safetensors") {
    std::map<std::string, std::string> meta;
    auto tensors = io::read_safetensors(path, &meta);
    if (meta["gm.model"] != "ImageClassifier") {
      throw Error("gm: " + path.string() + " is not a gm ImageClassifier (its metadata has no gm.model = ImageClassifier)");
    }
    auto opt = [&](const char* key) {
      try {
        return std::stoll(meta.at(key));
      } catch (const std::exception&) {
        throw Error("gm: " + path.string() + ": metadata '" + key + "' missing or not a number");
      }
    };
    ImageClassifier net(ImageClassifierOptions()
                            .channels(opt("channels"))
                            .image_size(opt("image_size"))
                            .num_classes(opt("num_classes"))
                            .width(opt("width"))
                            .features(opt("features")));
    load_into(*net, tensors, path);
    net->to(device);
    net->eval();
    auto run = [net, device](const torch::Tensor& u8, bool logits) mutable {
      torch::NoGradGuard ng;
      auto x = ImageClassifierImpl::input(u8.to(device));
      return logits ? net->forward(x) : net->penultimate(x);
    };
    char text[160];
    std::snprintf(text, sizeof text, "gm ImageClassifier %s (%lld features, %lld classes)", path.string().c_str(),
                  static_cast<long long>(net->options().features()),
                                         static_cast<long long>(net->options().num_classes()));
    return FeatureNet(id, text, [run](const torch::Tensor& u8) mutable { return run(u8, false); },
                      [run](const torch::Tensor& u8) mutable { return run(u8, true); });
  }
  if (path.extension() == ".pt2") {
    std::shared_ptr<torch::inductor::AOTIModelPackageLoader> pkg;
    try {
      pkg = std::make_shared<torch::inductor::AOTIModelPackageLoader>(path.string(), "model", false, 1,
                                                                      device.is_cuda() ? device.index() : -1);
    } catch (const std::exception& e) {
      throw Error("gm: feature network " + path.string() + " is not an AOTInductor package this LibTorch can load: " +
                  first_line(e.what()));
    }
    auto run = [pkg, device](const torch::Tensor& u8) {
      torch::NoGradGuard ng;
      auto out = pkg->run({u8.to(device).to(torch::kFloat32).contiguous()});
      if (out.empty()) throw Error("gm: the feature network's AOTInductor model returned nothing");
      return out.front();
    };
    return FeatureNet(id, "AOTInductor " + path.string(), run);
  }
  std::shared_ptr<torch::jit::Module> m;
  try {
    m = std::make_shared<torch::jit::Module>(torch::jit::load(path.string(), device));
  } catch (const std::exception&) {
    throw Error("gm: feature network " + path.string() + " is neither a gm .safetensors classifier nor a TorchScript file");
  }
  m->eval();
  const bool has_features = m->find_method("features").has_value(), has_logits = m->find_method("logits").has_value();
  auto call = [m, device](const char* method, const torch::Tensor& u8) {
    torch::NoGradGuard ng;
    auto x = u8.to(device).to(torch::kFloat32);
    auto out = m->get_method(method)({x});
    if (!out.isTensor()) throw Error(std::string("gm: the feature network's ") + method + " did not return a tensor");
    return out.toTensor();
  };
  Fn logits;
  if (has_logits) logits = [call](const torch::Tensor& u8) { return call("logits", u8); };
  return FeatureNet(id, "TorchScript " + path.string(),
                    [call, has_features](const torch::Tensor& u8) { return call(has_features ? "features" : "forward",
                                         u8); },
                    logits);
}

GM_INLINE auto FeatureNet::logits(const torch::Tensor& u8, int64_t batch) const -> torch::Tensor {
  if (!logits_) throw Error("gm: feature network " + description_ + " gives no class logits");
  return batched(logits_, u8, batch);
}

GM_INLINE auto FeatureNet::batched(const Fn& fn, const torch::Tensor& u8, int64_t batch) -> torch::Tensor {
  if (u8.dim() != 4 || u8.scalar_type() != torch::kUInt8) {
    throw Error("gm: feature networks take uint8 images [N, C, H, W]");
  }
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < u8.size(0); i += batch) {
    auto f = fn(u8.slice(0, i, std::min(i + batch, u8.size(0))));
    if (f.dim() != 2) f = f.flatten(1);
    out.push_back(f.detach().to(torch::kCPU, torch::kFloat64));
  }
  return torch::cat(out);
}

namespace detail {
/// 64-bit FNV-1a, fed piece by piece; `hex()` is its 16 hex digits.
struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};
}  // namespace detail

GM_INLINE auto FeatureNet::file_hash(const std::filesystem::path& path) -> std::string {
  const std::string bytes = io::read_file(path);
  detail::Fnv1a f;
  f.add(bytes.data(), bytes.size());
  return f.hex().substr(0, 12);
}

GM_INLINE void FeatureNet::load_into(torch::nn::Module& net, const io::NamedTensors& tensors,
                                     const std::filesystem::path& path) {
  io::load_named(net, tensors, path.string());
}
#endif  // GM_HEADER_DEFINITIONS

/// A 64-bit FNV-1a hash of a tensor's shape, dtype and bytes, as 16 hex digits: what names, and checks, a
/// cache of statistics of exactly these images (two folders of the same size, or one folder at two
/// resolutions, hash differently).
std::string content_hash(const torch::Tensor& t);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string content_hash(const torch::Tensor& t) {
  const auto c = t.contiguous().to(torch::kCPU);
  detail::Fnv1a f;
  for (const int64_t d : c.sizes()) f.add(&d, sizeof d);
  const auto dtype = static_cast<int>(c.scalar_type());
  f.add(&dtype, sizeof dtype);
  f.add(c.data_ptr(), c.nbytes());
  return f.hex();
}
#endif

/// The feature statistics of the data set `images` (uint8 [N, C, H, W]) under `net`, cached in `file`:
/// read when the file holds statistics of the same network and images (`content_hash`), else computed and
/// written there (like ADM's reference batches: compute once, reuse for every evaluation).
FeatureStats reference_stats(const FeatureNet& net, const torch::Tensor& images, const std::filesystem::path& file);
#if GM_HEADER_DEFINITIONS
GM_INLINE FeatureStats reference_stats(const FeatureNet& net, const torch::Tensor& images,
                                       const std::filesystem::path& file) {
  std::error_code ec;
  const std::string n = std::to_string(images.size(0)), hash = content_hash(images);
  if (std::filesystem::is_regular_file(file, ec)) {
    std::map<std::string, std::string> meta;
    auto t = io::read_safetensors(file, &meta);
    if (meta["features"] != net.id() || meta["n"] != n || meta["images"] != hash || t.size() != 2) {
      throw Error("gm: " + file.string() + " holds statistics of another network or data set; remove it to recompute");
    }
    FeatureStats s;
    for (auto& [name, v] : t) {
      auto c = v.to(torch::kFloat64).contiguous();
      if (name == "mu") s.mu = Eigen::Map<const Eigen::VectorXd>(c.data_ptr<double>(), c.numel());
      if (name == "sigma") s.sigma = Eigen::Map<const Eigen::MatrixXd>(c.data_ptr<double>(), c.size(0), c.size(1));
    }
    s.n = images.size(0);
    return s;
  }
  FeatureStats s = FeatureStats::of(net.features(images));
  const auto d = static_cast<int64_t>(s.mu.size());
  auto mu = torch::from_blob(s.mu.data(), {d}, torch::kFloat64).clone();
  auto sigma = torch::from_blob(s.sigma.data(), {d, d}, torch::kFloat64).clone();  // symmetric: layout-free
  std::filesystem::create_directories(file.parent_path(), ec);
  io::write_safetensors(file, {{"mu", mu}, {"sigma", sigma}}, {{"format", "pt"}, {"features", net.id()}, {"n", n}, {"images", hash}});
  return s;
}
#endif

/// The Fréchet distance between the features of `images` and `reference` under `net`.
double frechet_distance(const FeatureNet& net, const torch::Tensor& images, const FeatureStats& reference);
#if GM_HEADER_DEFINITIONS
GM_INLINE double frechet_distance(const FeatureNet& net, const torch::Tensor& images, const FeatureStats& reference) {
  const auto s = FeatureStats::of(net.features(images));
  return frechet_distance(s.mu, s.sigma, reference.mu, reference.sigma);
}
#endif

/// The share of `images` whose predicted class (`net`'s logits) is `labels` [N].
double class_agreement(const FeatureNet& net, const torch::Tensor& images, const torch::Tensor& labels);
#if GM_HEADER_DEFINITIONS
GM_INLINE double class_agreement(const FeatureNet& net, const torch::Tensor& images, const torch::Tensor& labels) {
  auto pred = net.logits(images).argmax(1);
  return (pred == labels.to(torch::kCPU).to(torch::kInt64)).to(torch::kFloat64).mean().item<double>();
}
#endif

}  // namespace gm
