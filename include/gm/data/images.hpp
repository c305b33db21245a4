#pragma once
/// @file
/// `gm::data::ImageData`: an image data set in memory as an experiment's data source: epoch permutations from
/// (seed, epoch), random flips, labels, and an encoder to the model's space.

#include <gm/detail/compiled.hpp>
#include <gm/data/augment.hpp>
#include <gm/data/batch.hpp>
#include <gm/data/encoders.hpp>
#include <gm/data/image_files.hpp>
#include <gm/error.hpp>
#include <gm/io/config.hpp>
#include <gm/random.hpp>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/types.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <future>
#include <mutex>
#include <optional>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

namespace gm::data {

/// An image data set as an experiment's data source.
///
/// Images stay in memory as uint8 with their labels.  Batch k holds the samples at positions k B .. k B +
/// B - 1 of the concatenated epoch permutations, and the permutation of epoch e is drawn from (seed, e)
/// alone, so a run resumed at step k sees exactly the batches an uninterrupted run sees.  Flips and
/// dequantisation noise come from the trainer's generator, which checkpoints save.  Batches are encoded
/// into the model's space: pixels in [-1, 1] (`PixelEncoder`) or a TorchScript autoencoder's latents
/// (`LatentEncoder`); `decode` maps samples back to uint8 images.
///
/// Config keys (`add_keys`): `data.name` (fashion_mnist, mnist, cifar10, folder), `data.root`,
/// `data.resolution` and `data.channels` (folders), `data.hflip`, `data.augment`, `data.dequantize`, `data.encoder`
/// (pixel, or a TorchScript file), `data.latent_scale`, `data.limit`.
class ImageData {
 public:
  /// What `from_config` reads.
  struct Options {
    TORCH_ARG(bool, hflip) = false;       ///< flip each image left-right with probability 1/2
    /// EDM's non-leaky augmentation with this probability (`AugmentPipe`; 0: none); batches carry its labels.
    TORCH_ARG(double, augment) = 0.0;
    TORCH_ARG(bool, dequantize) = false;  ///< uniform dequantisation (see PixelEncoder)
    TORCH_ARG(uint64_t, seed) = 0;        ///< seed of the epoch permutations
    TORCH_ARG(std::string, encoder) = "pixel";  ///< "pixel", or the path of a TorchScript autoencoder
    TORCH_ARG(double, latent_scale) = 1.0;      ///< latents are multiplied by this after encoding
    TORCH_ARG(torch::Device, device) = torch::kCPU;  ///< where batches (and the autoencoder) live
    /// Gather (and on CUDA pin) the next step's images on a worker thread while this step trains, as a
    /// PyTorch DataLoader's worker with pin_memory does.  The batches are the same either way: the worker
    /// only selects rows; flips, noise and augmentation still draw from the trainer's generator in order.
    /// `from_config` turns it on for CUDA; on a CPU the worker would take a core from the step.
    TORCH_ARG(bool, prefetch) = false;
  };

  ImageData(ImageSet set, Options options);

  /// Declare the `data.*` keys with these defaults.
  static void add_keys(Config& cfg, const std::string& name = "fashion_mnist",
                       const std::string& root = "/usr/share/datasets/fashion-mnist");

  /// The data set the keys name, read and checked (split "train" or "test").
  static ImageData from_config(const Config& cfg, torch::Device device = torch::kCPU,
                               const std::string& split = "train");

  /// The images the keys name, as uint8 (no encoder).
  static ImageSet read(const Config& cfg, const std::string& split = "train");

  /// Declare `data.source` (gaussian, or a data set as `data.name` names one) and `data.source_root`: the
  /// distribution at t = 1, where the flow starts when sampling (a data-to-data flow; with a coupling,
  /// OT-CFM between two image sets).  A folder source is read at `data.resolution` and `data.channels`.
  static void add_source_keys(Config& cfg);
  /// The source the keys name, read (its training split) and encoded as `data` encodes (the same pixel
  /// encoder or autoencoder, no flips or augmentation), checked to have `data`'s sample shape; nothing for
  /// `gaussian`.
  static std::optional<ImageData> source_from_config(const Config& cfg, const ImageData& data);
  /// `n` images drawn uniformly with replacement from `gen` (on `gen`'s device), encoded: a source's draw
  /// for `Trainer::set_source`.  On a GPU the images (up to 1 GiB) are copied to it once, so a draw reads
  /// nothing back to the host.  With `rows`, only those rows of the n draws are gathered and encoded (a
  /// data-parallel rank's share, `Trainer::RowSource`), the indices and noise drawn for all n.
  torch::Tensor draw(int64_t n, const at::Generator& gen, const torch::Tensor& rows = {}) const;

  /// Batch `step` of `n` samples: the data encoded (float32, [n, ...sample_shape()]) and the labels, and
  /// with `augment` the augmentation labels [n, augment_dim()].  With `rows` (a data-parallel rank's
  /// share, `Trainer::shard_rows(n)`), only those rows of the batch are gathered, encoded and augmented;
  /// flips, dequantisation noise and augmentation are drawn for all n rows and cut to them, so the rows
  /// are those of the whole batch (augmentation to float rounding) and `gen` ends where the whole batch
  /// leaves it; the batch says `global = n`.
  Batch batch(int64_t step, int64_t n, const at::Generator& gen, const torch::Tensor& rows = {}) const;
  /// A batch on the training device: to a GPU through page-locked memory, so the copy runs asynchronously
  /// on the current stream (the kernels that use it are queued behind it) while the CPU goes on.
  torch::Tensor to_device(const torch::Tensor& t) const;
  /// uint8 images [B, C, H, W] into the model's space (with `rows`: those rows of a batch of `n`, the
  /// dequantisation noise drawn for all n, as `PixelEncoder::encode`).
  torch::Tensor encode(const torch::Tensor& u8, const at::Generator& gen = {}, const torch::Tensor& rows = {},
                       int64_t n = 0) const;
  /// Samples in the model's space back to uint8 images [B, C, H, W] on the CPU.
  torch::Tensor decode(const torch::Tensor& x) const;

  /// The shape of one encoded sample ([C, H, W]).
  const std::vector<int64_t>& sample_shape() const { return shape_; }
  /// The images' own shape [C, H, W] (before any latent encoder).
  std::vector<int64_t> pixel_shape() const { return set_.images.sizes().slice(1).vec(); }
  int64_t num_classes() const { return set_.num_classes; }
  /// Augmentation labels per sample that the network must take (`UNetOptions::augment_dim`): 9 with
  /// `data.augment` > 0, else 0.
  int64_t augment_dim() const { return options_.augment() > 0 ? AugmentPipe::label_dim : 0; }
  /// Whether the model works on pixels (not on an autoencoder's latents): bits per dimension apply.
  bool pixels() const { return latent_ == nullptr; }
  const ImageSet& set() const { return set_; }
  int64_t size() const { return set_.size(); }
  /// "fashion-mnist (train): 60000 images 1x28x28, 10 classes".
  std::string describe() const;

 private:
  /// Sample indices at global positions [start, start + n) of the epoch permutations.
  torch::Tensor indices(int64_t start, int64_t n) const;
  /// The permutation of `epoch`, from (seed, epoch) alone; the last one is cached.
  const torch::Tensor& permutation(int64_t epoch) const;
  std::string shape_text() const;
  /// The images of data set `name` (as `data.name` names one) under `root`.
  static ImageSet read_set(const std::string& name, const std::filesystem::path& root, const Config& cfg,
                           const std::string& split);
  /// The uint8 images and labels of batch `step` (page-locked for a GPU), from the worker where it
  /// prepared this one; then the worker starts on the next.
  std::pair<torch::Tensor, torch::Tensor> gather(int64_t step, int64_t n, const torch::Tensor& rows) const;

  struct Gathered {
    int64_t step = -1, n = 0;
    torch::Tensor rows;  // the rows of the batch it holds (undefined: all)
    torch::Tensor x, y;
    bool holds(int64_t s, int64_t k, const torch::Tensor& r) const {
      return step == s && n == k && rows.defined() == r.defined() && (!r.defined() || rows.equal(r));
    }
  };

  ImageSet set_;
  Options options_;
  PixelEncoder pixel_;
  std::shared_ptr<LatentEncoder> latent_;
  std::vector<int64_t> shape_;
  mutable std::shared_ptr<std::mutex> mutex_ = std::make_shared<std::mutex>();
  mutable torch::Tensor cached_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::shared_future<Gathered> next_;  // the worker's batch (prefetch)
  mutable torch::Tensor on_device_;             // draw: the images on the generator's GPU
  mutable std::pair<torch::Tensor, torch::Tensor> rows_;  // batch: the rows it was last given, on the generator's device
};

#if GM_HEADER_DEFINITIONS
GM_INLINE ImageData::ImageData(ImageSet set, Options options) : set_(std::move(set)), options_(std::move(options)) {
  if (set_.size() == 0) throw Error("gm: " + set_.source + ": no images");
  // Checked once here, on the CPU, so that the networks need not read labels back from a GPU each step.
  if (set_.labels.defined() && set_.labels.numel() > 0 && set_.num_classes > 0 &&
      (set_.labels.min().item<int64_t>() < 0 || set_.labels.max().item<int64_t>() >= set_.num_classes)) {
    throw Error("gm: " + set_.source + ": a label outside 0.." + std::to_string(set_.num_classes - 1));
  }
  pixel_.dequantize = options_.dequantize();
  if (!(options_.augment() >= 0 && options_.augment() <= 1)) throw Error("gm: data.augment must be in [0, 1]");
  if (options_.augment() > 0 && options_.encoder() != "pixel") {
    throw Error("gm: data.augment works on pixels; it cannot be combined with data.encoder = " + options_.encoder());
  }
  if (options_.encoder() != "pixel") {
    latent_ = std::make_shared<LatentEncoder>(options_.encoder(), options_.latent_scale(), options_.device());
  }
  shape_ = batch(0, 1, make_generator(0)).x.sizes().vec();
  shape_.erase(shape_.begin());
}

GM_INLINE void ImageData::add_keys(Config& cfg, const std::string& name, const std::string& root) {
  cfg.add<std::string>("data.name", name, "fashion_mnist or mnist (IDX files), cifar10 (binary batches), folder",
                       check::one_of({"fashion_mnist", "mnist", "cifar10", "folder"}));
  cfg.add<std::string>("data.root", root, "folder of the data set's files");
  cfg.add<int64_t>("data.resolution", 32, "image size for data.name = folder (resize + centre crop)",
                   check::in_range(1, 4096));
  cfg.add<int64_t>("data.channels", 3, "channels for data.name = folder (1: grey, 3: RGB)", check::in_range(1, 3));
  cfg.add<bool>("data.hflip", false, "random horizontal flips");
  cfg.add<double>("data.augment", 0.0, "EDM's non-leaky augmentation probability (0.12 for CIFAR-10; 0: none): "
                  "flips, scale, rotation, anisotropy, translation, with 9 labels into the network", check::in_range(0, 1));
  cfg.add<bool>("data.dequantize", false, "uniform dequantisation of the 8-bit pixels");
  cfg.add<std::string>("data.encoder", "pixel", "pixel, or a TorchScript autoencoder file with encode/decode");
  cfg.add<double>("data.latent_scale", 1.0, "latents are multiplied by this (SD's VAE: 0.18215)", check::positive());
  cfg.add<int64_t>("data.limit", 0, "use only the first N images (0: all)", check::at_least(0));
}

GM_INLINE auto ImageData::from_config(const Config& cfg, torch::Device device, const std::string& split) -> ImageData {
  return ImageData(read(cfg, split), Options()
                                         .hflip(cfg.get<bool>("data.hflip"))
                                         .augment(cfg.get<double>("data.augment"))
                                         .dequantize(cfg.get<bool>("data.dequantize"))
                                         .seed(static_cast<uint64_t>(cfg.get<int64_t>("seed")))
                                         .encoder(cfg.get<std::string>("data.encoder"))
                                         .latent_scale(cfg.get<double>("data.latent_scale"))
                                         .prefetch(device.is_cuda())
                                         .device(device));
}

GM_INLINE void ImageData::add_source_keys(Config& cfg) {
  cfg.add<std::string>("data.source", "gaussian",
                       "where the flow starts (t = 1): gaussian noise, or a second image set: fashion_mnist, "
                       "mnist, cifar10, folder (read from data.source_root at data.resolution and data.channels)",
                       check::one_of({"gaussian", "fashion_mnist", "mnist", "cifar10", "folder"}));
  cfg.add<std::string>("data.source_root", "", "folder of data.source's files");
}

GM_INLINE auto ImageData::source_from_config(const Config& cfg, const ImageData& data) -> std::optional<ImageData> {
  const auto name = cfg.get<std::string>("data.source");
  if (name == "gaussian") return std::nullopt;
  const auto root = cfg.get<std::string>("data.source_root");
  if (root.empty()) throw Error("gm: data.source_root is required when data.source is " + name);
  auto set = read_set(name, root, cfg, "train");
  Options o = data.options_;
  o.hflip(false).augment(0.0).prefetch(false);
  ImageData source(std::move(set), o);
  if (source.sample_shape() != data.sample_shape()) {
    throw Error("gm: data.source (" + source.describe() + ") has samples of shape " + source.shape_text() +
                ", the data's are " + data.shape_text());
  }
  return source;
}

GM_INLINE auto ImageData::draw(int64_t n, const at::Generator& gen, const torch::Tensor& rows) const -> torch::Tensor {
  auto idx = torch::randint(set_.size(), {n}, gen, on_generator(gen, torch::kInt64));
  idx = keep_rows(idx, rows);
  if (idx.is_cuda() && set_.images.nbytes() <= (int64_t{1} << 30)) {
    if (!on_device_.defined() || on_device_.device() != idx.device()) on_device_ = set_.images.to(idx.device());
    return encode(on_device_.index_select(0, idx).to(options_.device()), gen, rows, n);
  }
  return encode(to_device(set_.images.index_select(0, idx.to(torch::kCPU))), gen, rows, n);
}

GM_INLINE auto ImageData::read(const Config& cfg, const std::string& split) -> ImageSet {
  auto s = read_set(cfg.get<std::string>("data.name"), cfg.get<std::string>("data.root"), cfg, split);
  if (const int64_t limit = cfg.get<int64_t>("data.limit"); limit > 0 && limit < s.size()) {
    s.images = s.images.slice(0, 0, limit).contiguous();
    s.labels = s.labels.slice(0, 0, limit).contiguous();
  }
  return s;
}

GM_INLINE auto ImageData::read_set(const std::string& name, const std::filesystem::path& root, const Config& cfg,
                                   const std::string& split) -> ImageSet {
  ImageSet s;
  if (name == "fashion_mnist" || name == "mnist") {
    s = read_mnist(root, split);
    if (name == "fashion_mnist") {
      s.class_names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    }
  } else if (name == "cifar10") {
    s = read_cifar10(root, split);
  } else {
    s = read_image_folder(root, static_cast<int>(cfg.get<int64_t>("data.resolution")),
                          static_cast<int>(cfg.get<int64_t>("data.channels")), split);
  }
  return s;
}

GM_INLINE auto ImageData::batch(int64_t step, int64_t n, const at::Generator& gen, const torch::Tensor& rows) const
    -> Batch {
  const auto got = gather(step, n, rows);
  auto x = to_device(got.first);
  auto y = to_device(got.second);
  const int64_t m = x.size(0);  // n, or this rank's rows
  // The rows on the generator's device, where the draws are cut: copied there once, not every step.
  if (rows.defined() && !(rows_.first.is_same(rows) && rows_.second.device() == on_generator(gen).device())) {
    rows_ = {rows, rows.to(on_generator(gen).device())};
  }
  const auto keep = rows.defined() ? rows_.second : torch::Tensor();
  if (options_.hflip()) {  // drawn on the generator's device (the trainer's), where the batch now is
    auto flip = keep_rows(torch::rand({n}, gen, on_generator(gen)) < 0.5, keep);
    x = torch::where(flip.to(x.device()).view({m, 1, 1, 1}), x.flip({3}), x);
  }
  const auto encoded = encode(x, gen, keep, n);
  Batch b{encoded, y};
  if (options_.augment() > 0) {
    std::tie(b.x, b.a) = AugmentPipe(AugmentPipe::Options().p(options_.augment()))(encoded, gen, keep, n);
  }
  b.global = rows.defined() ? n : 0;
  return b;
}

GM_INLINE auto ImageData::gather(int64_t step, int64_t n, const torch::Tensor& rows) const
    -> std::pair<torch::Tensor, torch::Tensor> {
  const bool pin = options_.device().is_cuda();
  auto select = [pin](const torch::Tensor& all, const torch::Tensor& idx) {
    auto rows = all.index_select(0, idx);
    return pin ? rows.pin_memory() : rows;
  };
  Gathered got;
  if (next_.valid()) {
    got = next_.get();  // waits for the worker: it and this thread never read the permutation cache at once
    next_ = {};
  }
  // The batch's indices, and of them this rank's rows.
  auto batch_indices = [&](int64_t s) {
    auto idx = indices(s * n, n);
    return keep_rows(idx, rows);
  };
  if (!got.holds(step, n, rows)) {
    const auto idx = batch_indices(step);
    got = {step, n, rows, select(set_.images, idx), select(set_.labels, idx)};
  }
  if (options_.prefetch()) {
    // The indices here (the permutation cache is this thread's); the worker holds only tensors, so it
    // outlives nothing it uses.
    auto idx = batch_indices(step + 1);
    next_ = std::async(std::launch::async, [images = set_.images, labels = set_.labels, idx, select, step, n, rows] {
              return Gathered{step + 1, n, rows, select(images, idx), select(labels, idx)};
            }).share();
  }
  return {got.x, got.y};
}

GM_INLINE auto ImageData::to_device(const torch::Tensor& t) const -> torch::Tensor {
  if (!options_.device().is_cuda()) return t.to(options_.device());
  return (t.is_pinned() ? t : t.pin_memory()).to(options_.device(), /*non_blocking=*/true);
}

GM_INLINE auto ImageData::encode(const torch::Tensor& u8, const at::Generator& gen, const torch::Tensor& rows,
                                 int64_t n) const -> torch::Tensor {
  auto x = pixel_.encode(u8, gen, rows, n);
  return latent_ ? latent_->encode(x) : x;
}

GM_INLINE auto ImageData::decode(const torch::Tensor& x) const -> torch::Tensor {
  auto px = latent_ ? latent_->decode(x.to(options_.device())) : x;
  return pixel_.decode(px).to(torch::kCPU);  // with data.dequantize, floor(256 u) inverts the encoding
}

GM_INLINE auto ImageData::describe() const -> std::string {
  const auto& im = set_.images;
  std::string s = set_.source + ": " + std::to_string(set_.size()) + " images " + std::to_string(im.size(1)) + "x" +
                  std::to_string(im.size(2)) + "x" + std::to_string(im.size(3)) + ", " +
                  std::to_string(set_.num_classes) + " classes";
  if (latent_) s += ", latents " + shape_text() + " from " + latent_->path();
  if (options_.augment() > 0) {
    char buf[96];
    std::snprintf(buf, sizeof buf, ", EDM augmentation p = %g (%lld labels)", options_.augment(),
                  static_cast<long long>(AugmentPipe::label_dim));
    s += buf;
  }
  return s;
}

GM_INLINE auto ImageData::indices(int64_t start, int64_t n) const -> torch::Tensor {
  const int64_t size = set_.size();
  auto out = torch::empty({n}, torch::kInt64);
  auto* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < n;) {
    const int64_t pos = start + i, epoch = pos / size, at = pos % size;
    const auto& perm = permutation(epoch);
    const int64_t take = std::min(n - i, size - at);
    std::copy(perm.data_ptr<int64_t>() + at, perm.data_ptr<int64_t>() + at + take, o + i);
    i += take;
  }
  return out;
}

GM_INLINE auto ImageData::permutation(int64_t epoch) const -> const torch::Tensor& {
  std::lock_guard<std::mutex> lock(*mutex_);
  if (epoch != cached_epoch_) {
    auto gen = make_generator(options_.seed() * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
    cached_ = torch::randperm(set_.size(), gen, on_generator(gen, torch::kInt64));
    cached_epoch_ = epoch;
  }
  return cached_;
}

GM_INLINE auto ImageData::shape_text() const -> std::string {
  std::string s;
  for (auto d : shape_) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::data
