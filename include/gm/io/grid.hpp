#pragma once
/// @file
/// `gm::io::image_grid`: a batch of images as one picture, as torchvision's make_grid lays it out.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/png.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gm::io {

/// uint8 images [N, C, H, W] (C = 1 or 3) as a grid of `cols` columns (0: about square), `pad` pixels of
/// `pad_value` between and around them, each image enlarged `scale` times by pixel repetition (0: enough
/// that a cell is at least 64 pixels).  Returns an RGB image; grey images are repeated over the channels.
Image image_grid(const torch::Tensor& images, int64_t cols = 0, int pad = 2, uint8_t pad_value = 255,
                 int scale = 0);
#if GM_HEADER_DEFINITIONS
GM_INLINE Image image_grid(const torch::Tensor& images, int64_t cols, int pad, uint8_t pad_value, int scale) {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3) || images.scalar_type() != torch::kUInt8) {
    throw Error("gm: image_grid needs uint8 images [N, 1 or 3, H, W]");
  }
  const auto x = images.to(torch::kCPU).contiguous();
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  if (cols <= 0) cols = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n)))));
  cols = std::min(cols, std::max<int64_t>(n, 1));
  const int64_t rows = (n + cols - 1) / cols;
  if (scale <= 0) scale = static_cast<int>(std::max<int64_t>(1, 64 / std::max(h, w)));
  const int64_t ch = h * scale, cw = w * scale;
  Image img(static_cast<int>(cols * (cw + pad) + pad), static_cast<int>(rows * (ch + pad) + pad));
  std::fill(img.rgb.begin(), img.rgb.end(), pad_value);
  const uint8_t* p = x.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ox = pad + (i % cols) * (cw + pad), oy = pad + (i / cols) * (ch + pad);
    for (int64_t yy = 0; yy < ch; ++yy) {
      for (int64_t xx = 0; xx < cw; ++xx) {
        const int64_t sy = yy / scale, sx = xx / scale;
        std::array<uint8_t, 3> px{};
        for (int k = 0; k < 3; ++k) px[k] = p[((i * c + (c == 3 ? k : 0)) * h + sy) * w + sx];
        img.set(static_cast<int>(ox + xx), static_cast<int>(oy + yy), px);
      }
    }
  }
  return img;
}
#endif

}  // namespace gm::io
