#pragma once
/// @file
/// Encoders between stored 8-bit images and the space a model works in: pixels in [-1, 1], or the latents of
/// a user's TorchScript autoencoder (the latent-diffusion set-up of Rombach et al. 2022, used by DiT).

#include <gm/detail/compiled.hpp>
#include <gm/random.hpp>
#include <gm/error.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <torch/script.h>
#endif

namespace gm::data {

/// uint8 images to [-1, 1] and back.
///
/// Without dequantisation a value u in 0..255 maps to 2 u / 255 - 1, and decoding rounds back.  With
/// uniform dequantisation (Theis et al. 2016; Ho et al. 2019, Flow++) u maps to 2 (u + v) / 256 - 1 with v
/// ~ U[0, 1) (on a grid of 2^15 points, so that float32 holds u + v exactly), so the model sees a continuous
/// density whose likelihood bounds the discrete one; decoding takes the bin floor(256 (x + 1) / 2), and gives
/// every pixel back.  Decoding clamps to 0..255 either way.
struct PixelEncoder {
  bool dequantize = false;

  /// uint8 [B, C, H, W] to float32 in [-1, 1]; dequantisation noise is drawn from `gen`.  With `rows`, u8
  /// holds those rows of a batch of `n` (a data-parallel rank's share), and the noise is drawn for all n
  /// rows and cut to them, so each row gets what it would in the whole batch.
  torch::Tensor encode(const torch::Tensor& u8, const at::Generator& gen = {}, const torch::Tensor& rows = {},
                       int64_t n = 0) const;
  /// Float [B, C, H, W] in (about) [-1, 1] to uint8, clamped.
  torch::Tensor decode(const torch::Tensor& x) const;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto PixelEncoder::encode(const torch::Tensor& u8, const at::Generator& gen, const torch::Tensor& rows,
                                    int64_t n) const -> torch::Tensor {
  auto x = u8.to(torch::kFloat32);
  if (!dequantize) return x * (2.0 / 255.0) - 1.0;
  auto shape = x.sizes().vec();
  if (rows.defined()) shape[0] = n;
  auto r = torch::rand(shape, gen, on_generator(gen, x.options()));  // on the generator's device
  r = keep_rows(r, rows).to(x.device());
  // v on 2^15 points centred in their cells: u + v then fits float32's 24 bits, so the encoding is exact and
  // decoding's floor gives u back for every pixel (a continuous v rounds to u + 1 near the cell's top).
  auto v = (torch::floor(r * 32768.0) + 0.5) * (1.0 / 32768.0);
  return (x + v) * (2.0 / 256.0) - 1.0;
}

GM_INLINE auto PixelEncoder::decode(const torch::Tensor& x) const -> torch::Tensor {
  auto u = (x.detach().to(torch::kFloat32) + 1.0) * 0.5;
  u = dequantize ? torch::floor(u * 256.0) : torch::round(u * 255.0);
  return u.clamp(0, 255).to(torch::kUInt8);
}
#endif  // GM_HEADER_DEFINITIONS

/// A latent autoencoder brought by the user as a TorchScript file with methods `encode(x)` and `decode(z)`:
/// x is an image batch in [-1, 1], z its latent batch.  Latents are multiplied by `scale` after encoding
/// and divided by it before decoding (Stable Diffusion's VAE uses 0.18215 so latents have unit variance).
/// torch.jit.script compiles only `forward` and what it calls, so mark the two methods `@torch.jit.export`.
///
/// Example (Python, once):
/// @code{.py}
/// class VAE(torch.nn.Module):
///     @torch.jit.export
///     def encode(self, x): ...     # [B, 3, 256, 256] -> [B, 4, 32, 32]
///     @torch.jit.export
///     def decode(self, z): ...
/// torch.jit.script(VAE()).save("vae.pt")
/// @endcode
class LatentEncoder {
 public:
  /// Load `path` onto `device`; a missing file, a file that is not TorchScript, or a module without
  /// `encode` and `decode` is a one-line `gm::Error` naming the file.
  LatentEncoder(const std::filesystem::path& path, double scale = 1.0, torch::Device device = torch::kCPU);

  /// [-1, 1] images to scaled latents, without gradients.
  torch::Tensor encode(const torch::Tensor& x);
  /// Scaled latents back to images in [-1, 1].
  torch::Tensor decode(const torch::Tensor& z);
  const std::string& path() const { return path_; }

 private:
  torch::Tensor call(const char* method, const torch::Tensor& x);
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  std::shared_ptr<torch::jit::Module> module_;  // TorchScript; declared only, so users need not parse torch/script.h
  double scale_;
  std::string path_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE LatentEncoder::LatentEncoder(const std::filesystem::path& path, double scale, torch::Device device)
    : scale_(scale), path_(path.string()) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("gm: " + path_ + ": no such file");
  try {
    module_ = std::make_shared<torch::jit::Module>(torch::jit::load(path_, device));
  } catch (const c10::Error& e) {
    throw Error("gm: " + path_ + ": not a TorchScript module (" + first_line(e.what_without_backtrace()) + ")");
  }
  for (const char* m : {"encode", "decode"}) {
    if (!module_->find_method(m)) {
      throw Error("gm: " + path_ + ": the TorchScript module has no method '" + std::string(m) + "'");
    }
  }
  module_->eval();
  if (!(std::isfinite(scale) && scale > 0)) throw Error("gm: latent scale must be a positive number");
}

GM_INLINE auto LatentEncoder::encode(const torch::Tensor& x) -> torch::Tensor {
  torch::NoGradGuard ng;
  return call("encode", x) * scale_;
}

GM_INLINE auto LatentEncoder::decode(const torch::Tensor& z) -> torch::Tensor {
  torch::NoGradGuard ng;
  return call("decode", z / scale_);
}

GM_INLINE auto LatentEncoder::call(const char* method, const torch::Tensor& x) -> torch::Tensor {
  auto out = module_->get_method(method)({x});
  if (!out.isTensor()) throw Error("gm: " + path_ + ": " + method + " did not return a tensor");
  return out.toTensor();
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::data
