#pragma once
/// @file
/// Readers of image data sets into memory as uint8: IDX files (MNIST, Fashion-MNIST; plain or gzip),
/// CIFAR-10's binary batches, and folders of PNG/JPEG/BMP files with one subfolder per class.  Every
/// malformed file is a one-line `gm::Error` naming the file and what is wrong, never a crash.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <zlib.h>
#endif

namespace gm::data {

/// An image data set in memory: uint8 images [N, C, H, W] and int64 labels [N] in [0, num_classes).
struct ImageSet {
  torch::Tensor images;                  ///< uint8 [N, C, H, W]
  torch::Tensor labels;                  ///< int64 [N]
  int64_t num_classes = 0;               ///< label count (the null class of guidance is num_classes)
  std::vector<std::string> class_names;  ///< one per class, where the source names them
  std::string source;                    ///< what was read, for logs

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

namespace detail {

/// The bytes of a file, or a one-line error naming it.
std::string read_bytes(const std::filesystem::path& path);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string read_bytes(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("gm: " + path.string() + ": no such file");
  auto bytes = io::read_file(path);
  return bytes;
}
#endif

/// The bytes, gunzipped when they start with gzip's magic; at most `max_out` bytes of output.
std::string maybe_gunzip(std::string bytes, const std::string& name, size_t max_out = size_t{1} << 32);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string maybe_gunzip(std::string bytes, const std::string& name, size_t max_out) {
  if (bytes.size() < 2 || static_cast<uint8_t>(bytes[0]) != 0x1f || static_cast<uint8_t>(bytes[1]) != 0x8b) {
    return bytes;
  }
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw Error("gm: " + name + ": cannot start gzip decompression");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(bytes.size());
  int rc = Z_OK;
  char buf[1 << 16];
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      throw Error("gm: " + name + ": corrupt gzip data" + (rc == Z_BUF_ERROR ? " (truncated)" : ""));
    }
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > max_out) {
      inflateEnd(&zs);
      throw Error("gm: " + name + ": decompresses to more than " + std::to_string(max_out) + " bytes");
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw Error("gm: " + name + ": truncated gzip data");
    }
  }
  inflateEnd(&zs);
  return out;
}
#endif

uint32_t be32(const std::string_view b, size_t at);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint32_t be32(const std::string_view b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) | (uint32_t(uint8_t(b[at + 2])) << 8) |
         uint32_t(uint8_t(b[at + 3]));
}
#endif

std::string lower(std::string s);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
#endif

}  // namespace detail

/// Parse an IDX file's bytes (LeCun's MNIST format: two zero bytes, the type 0x08 for unsigned bytes, the
/// number of dimensions, each dimension as a big-endian int32, then the data).  Returns a uint8 tensor of
/// those dimensions.  `name` names the file in errors.
torch::Tensor parse_idx(std::string_view b, const std::string& name);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor parse_idx(std::string_view b, const std::string& name) {
  if (b.size() < 4) throw Error("gm: " + name + ": not an IDX file (" + std::to_string(b.size()) + " bytes)");
  if (b[0] != 0 || b[1] != 0) throw Error("gm: " + name + ": not an IDX file (bad magic)");
  if (static_cast<uint8_t>(b[2]) != 0x08) {
    throw Error("gm: " + name + ": IDX data type " + std::to_string(static_cast<uint8_t>(b[2])) +
                " is not unsigned bytes (0x08)");
  }
  const int ndim = static_cast<uint8_t>(b[3]);
  if (ndim < 1 || ndim > 4) throw Error("gm: " + name + ": IDX with " + std::to_string(ndim) + " dimensions");
  if (b.size() < 4 + 4 * static_cast<size_t>(ndim)) throw Error("gm: " + name + ": truncated IDX header");
  std::vector<int64_t> dims;
  uint64_t count = 1;
  for (int i = 0; i < ndim; ++i) {
    const uint32_t d = detail::be32(b, 4 + 4 * static_cast<size_t>(i));
    if (d > (1u << 30)) throw Error("gm: " + name + ": IDX dimension " + std::to_string(d) + " is too large");
    dims.push_back(d);
    count *= d;
    if (count > (uint64_t{1} << 34)) throw Error("gm: " + name + ": IDX data too large");
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (b.size() - header != count) {
    throw Error("gm: " + name + ": IDX header says " + std::to_string(count) + " bytes of data but the file has " +
                std::to_string(b.size() - header) + (b.size() - header < count ? " (truncated)" : ""));
  }
  auto t = torch::empty(dims, torch::kUInt8);
  if (count) std::memcpy(t.data_ptr<uint8_t>(), b.data() + header, count);
  return t;
}
#endif

/// Images and labels from a pair of IDX files (plain or .gz).  Images are [N, H, W] (one channel) or
/// [N, H, W, C]; labels [N] with values below 256.
ImageSet read_idx(const std::filesystem::path& images, const std::filesystem::path& labels);
#if GM_HEADER_DEFINITIONS
GM_INLINE ImageSet read_idx(const std::filesystem::path& images, const std::filesystem::path& labels) {
  auto img = parse_idx(detail::maybe_gunzip(detail::read_bytes(images), images.string()), images.string());
  auto lab = parse_idx(detail::maybe_gunzip(detail::read_bytes(labels), labels.string()), labels.string());
  if (img.dim() != 3 && img.dim() != 4) {
    throw Error("gm: " + images.string() + ": IDX images need 3 or 4 dimensions, not " + std::to_string(img.dim()));
  }
  if (lab.dim() != 1) throw Error("gm: " + labels.string() + ": IDX labels need 1 dimension, not " + std::to_string(lab.dim()));
  if (lab.size(0) != img.size(0)) {
    throw Error("gm: " + labels.string() + ": " + std::to_string(lab.size(0)) + " labels for " +
                std::to_string(img.size(0)) + " images in " + images.string());
  }
  if (img.size(0) == 0) throw Error("gm: " + images.string() + ": no images");
  ImageSet s;
  s.images = img.dim() == 3 ? img.unsqueeze(1).contiguous() : img.permute({0, 3, 1, 2}).contiguous();
  s.labels = lab.to(torch::kInt64);
  s.num_classes = s.labels.max().item<int64_t>() + 1;
  s.source = images.string();
  return s;
}
#endif

/// The split `split` ("train" or "test") of MNIST-style IDX files in `root`: train-images-idx3-ubyte and
/// train-labels-idx1-ubyte, or t10k-*, each plain or .gz (as Debian's dataset-fashion-mnist installs them
/// in /usr/share/datasets/fashion-mnist).
ImageSet read_mnist(const std::filesystem::path& root, const std::string& split);
#if GM_HEADER_DEFINITIONS
GM_INLINE ImageSet read_mnist(const std::filesystem::path& root, const std::string& split) {
  const std::string prefix = split == "test" ? "t10k" : "train";
  auto find = [&](const std::string& stem) {
    for (const auto* ext : {"", ".gz"}) {
      std::error_code ec;
      auto p = root / (stem + ext);
      if (std::filesystem::is_regular_file(p, ec)) return p;
    }
    throw Error("gm: " + (root / (stem + ".gz")).string() + ": no such file (data.root must hold " + stem +
                "[.gz]; on Debian: apt-get install dataset-fashion-mnist)");
  };
  const auto images = find(prefix + "-images-idx3-ubyte");
  const auto labels = find(prefix + "-labels-idx1-ubyte");
  auto s = read_idx(images, labels);
  s.source = root.string() + " (" + split + ")";
  return s;
}
#endif

/// Parse CIFAR-10 binary records: each is one label byte (0-9) followed by 3072 bytes, the R, G and B
/// planes of a 32x32 image.  Appends to `images` and `labels`.
void parse_cifar10(std::string_view b, const std::string& name, std::vector<uint8_t>& images,
                   std::vector<int64_t>& labels);
#if GM_HEADER_DEFINITIONS
GM_INLINE void parse_cifar10(std::string_view b, const std::string& name, std::vector<uint8_t>& images,
                             std::vector<int64_t>& labels) {
  constexpr size_t record = 1 + 3 * 32 * 32;
  if (b.empty()) throw Error("gm: " + name + ": empty CIFAR-10 batch");
  if (b.size() % record != 0) {
    throw Error("gm: " + name + ": " + std::to_string(b.size()) + " bytes is not a whole number of CIFAR-10 records (" +
                std::to_string(record) + " bytes each; truncated?)");
  }
  for (size_t at = 0; at < b.size(); at += record) {
    const uint8_t label = static_cast<uint8_t>(b[at]);
    if (label > 9) {
      throw Error("gm: " + name + ": record " + std::to_string(at / record) + " has label " + std::to_string(label) +
                  " (CIFAR-10 labels are 0-9)");
    }
    labels.push_back(label);
    images.insert(images.end(), b.begin() + static_cast<std::ptrdiff_t>(at + 1),
                  b.begin() + static_cast<std::ptrdiff_t>(at + record));
  }
}
#endif

/// CIFAR-10's binary version in `root`: data_batch_1.bin ... data_batch_5.bin (split "train") or
/// test_batch.bin ("test").  Every file must be present.
ImageSet read_cifar10(const std::filesystem::path& root, const std::string& split);
#if GM_HEADER_DEFINITIONS
GM_INLINE ImageSet read_cifar10(const std::filesystem::path& root, const std::string& split) {
  std::vector<std::string> files;
  if (split == "test") files = {"test_batch.bin"};
  else for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
  std::vector<uint8_t> images;
  std::vector<int64_t> labels;
  for (const auto& f : files) {
    const auto p = root / f;
    parse_cifar10(detail::read_bytes(p), p.string(), images, labels);
  }
  ImageSet s;
  const auto n = static_cast<int64_t>(labels.size());
  s.images = torch::from_blob(images.data(), {n, 3, 32, 32}, torch::kUInt8).clone();
  s.labels = torch::from_blob(labels.data(), {n}, torch::kInt64).clone();
  s.num_classes = 10;
  s.class_names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  s.source = root.string() + " (CIFAR-10 " + split + ")";
  return s;
}
#endif

/// Decode one PNG, JPEG or BMP file's bytes with stb_image into `channels` channels (1 or 3), resize it so
/// its shorter side is `resolution` and crop the centre square (torchvision's Resize + CenterCrop).
/// Returns uint8 [channels, resolution, resolution].  An image stb cannot decode, or one larger than
/// `max_pixels`, is a one-line error naming `name`.
torch::Tensor decode_image(std::string_view bytes, const std::string& name, int resolution, int channels,
                           int64_t max_pixels = int64_t{1} << 26);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor decode_image(std::string_view bytes, const std::string& name, int resolution, int channels,
                                     int64_t max_pixels) {
  if (bytes.empty()) throw Error("gm: " + name + ": empty image file");
  if (bytes.size() > (size_t{1} << 31)) throw Error("gm: " + name + ": image file too large");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &n)) {
    throw Error("gm: " + name + ": cannot decode image (" + std::string(stbi_failure_reason()) + ")");
  }
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > max_pixels) {
    throw Error("gm: " + name + ": image of " + std::to_string(w) + "x" + std::to_string(h) + " pixels is too large");
  }
  std::unique_ptr<stbi_uc, void (*)(void*)> px(stbi_load_from_memory(data, len, &w, &h, &n, channels), stbi_image_free);
  if (!px) throw Error("gm: " + name + ": cannot decode image (" + std::string(stbi_failure_reason()) + ")");
  // Resize so the shorter side is `resolution`, then crop the centre.
  const double scale = static_cast<double>(resolution) / std::min(w, h);
  const int rw = std::max(resolution, static_cast<int>(std::lround(w * scale)));
  const int rh = std::max(resolution, static_cast<int>(std::lround(h * scale)));
  std::vector<uint8_t> resized(static_cast<size_t>(rw) * rh * channels);
  if (rw == w && rh == h) {
    std::memcpy(resized.data(), px.get(), resized.size());
  } else if (!stbir_resize_uint8(px.get(), w, h, 0, resized.data(), rw, rh, 0, channels)) {
    throw Error("gm: " + name + ": cannot resize image");
  }
  auto hwc = torch::from_blob(resized.data(), {rh, rw, channels}, torch::kUInt8);
  const int64_t top = (rh - resolution) / 2, left = (rw - resolution) / 2;
  return hwc.slice(0, top, top + resolution).slice(1, left, left + resolution).permute({2, 0, 1}).contiguous();
}
#endif

/// A folder with one subfolder per class holding PNG, JPEG or BMP files, as torchvision's ImageFolder reads
/// it: classes are the subfolder names in sorted order, files are read in sorted order, each decoded,
/// resized and centre-cropped to `resolution` with `channels` channels (see `decode_image`).  Files with
/// other extensions are skipped; a class folder without images is an error.  Split "test" reads root/test/
/// (a subfolder of the train split's root, which is then not a class, or a sibling of root/train/); its
/// classes and labels are the train split's, and a class the train split does not have is an error.
ImageSet read_image_folder(const std::filesystem::path& root, int resolution, int channels,
                           const std::string& split = "train");
#if GM_HEADER_DEFINITIONS
GM_INLINE ImageSet read_image_folder(const std::filesystem::path& root, int resolution, int channels,
                                     const std::string& split) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) throw Error("gm: " + root.string() + ": no such folder");
  if (resolution < 1 || resolution > 4096) throw Error("gm: image resolution must be 1..4096");
  if (channels != 1 && channels != 3) throw Error("gm: image channels must be 1 or 3");
  if (split != "train" && split != "test") throw Error("gm: an image folder's split must be train or test, not '" + split + "'");
  // The splits: root/train/ and root/test/ when root/train/ exists; else root itself (its test/ aside) and
  // root/test/.  The classes are the train split's, in both.
  const bool siblings = std::filesystem::is_directory(root / "train", ec);
  const auto train_dir = siblings ? root / "train" : root;
  const auto dir = split == "train" ? train_dir : root / "test";
  if (!std::filesystem::is_directory(dir, ec)) {
    throw Error("gm: " + root.string() + ": no test/ folder for the test split (expected root/test/<class>/<image>)");
  }
  auto subfolders = [&](const std::filesystem::path& d) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(d, ec)) {
      const auto name = e.path().filename().string();
      if (e.is_directory() && !(d == root && !siblings && name == "test")) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  const auto classes = subfolders(train_dir);
  if (classes.empty()) throw Error("gm: " + train_dir.string() + ": no class subfolders (expected root/<class>/<image>)");
  for (const auto& name : subfolders(dir)) {
    if (!std::binary_search(classes.begin(), classes.end(), name)) {
      throw Error("gm: " + (dir / name).string() + ": class '" + name + "' is not a class of the train split (" +
                  train_dir.string() + ")");
    }
  }
  ImageSet s;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (size_t k = 0; k < classes.size(); ++k) {
    const auto folder = dir / classes[k];
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(folder, ec)) {
      for (const auto& e : std::filesystem::directory_iterator(folder, ec)) {
        const auto ext = detail::lower(e.path().extension().string());
        if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp")) {
          files.push_back(e.path());
        }
      }
    }
    if (files.empty() && split == "train") {
      throw Error("gm: " + folder.string() + ": no PNG, JPEG or BMP images in this class folder");
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      images.push_back(decode_image(io::read_file(f), f.string(), resolution, channels));
      labels.push_back(static_cast<int64_t>(k));
    }
  }
  if (images.empty()) throw Error("gm: " + dir.string() + ": no PNG, JPEG or BMP images in its class subfolders");
  s.images = torch::stack(images);
  s.labels = torch::tensor(labels, torch::kInt64);
  s.class_names = classes;
  s.num_classes = static_cast<int64_t>(classes.size());
  s.source = dir.string() + " (image folder, " + std::to_string(s.num_classes) + " classes)";
  return s;
}
#endif

}  // namespace gm::data
