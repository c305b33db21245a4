#pragma once
/// @file
/// Writing RGB images as PNG (zlib-compressed, no other dependency).

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>


#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <zlib.h>
#endif

namespace gm::io {

/// An 8-bit RGB raster, row-major, white by default.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3, 255) {}
  void set(int x, int y, std::array<uint8_t, 3> c) {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    auto* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
    p[0] = c[0];
    p[1] = c[1];
    p[2] = c[2];
  }
  /// Mix `c` into the pixel with weight `a` in [0, 1] (anti-aliased text, translucent lines).
  void blend(int x, int y, std::array<uint8_t, 3> c, double a) {
    if (x < 0 || y < 0 || x >= width || y >= height || a <= 0) return;
    auto* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
    for (int i = 0; i < 3; ++i) p[i] = static_cast<uint8_t>(std::lround(p[i] + (c[i] - p[i]) * std::min(a, 1.0)));
  }
};

namespace detail {
void put_u32(std::string& s, uint32_t v);
#if GM_HEADER_DEFINITIONS
GM_INLINE void put_u32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
#endif
void chunk(std::string& out, const char* type, const std::string& data);
#if GM_HEADER_DEFINITIONS
GM_INLINE void chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()),
                                           static_cast<uInt>(body.size()))));
}
#endif
}  // namespace detail

/// `img` encoded as a PNG file's bytes (8-bit RGB, deflate).
std::string encode_png(const Image& img);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string encode_png(const Image& img) {
  std::string raw;
  raw.reserve(static_cast<size_t>(img.height) * (img.width * 3 + 1));
  for (int y = 0; y < img.height; ++y) {
    raw.push_back('\0');  // filter: none
    raw.append(reinterpret_cast<const char*>(&img.rgb[static_cast<size_t>(y) * img.width * 3]),
               static_cast<size_t>(img.width) * 3);
  }
  uLongf len = compressBound(static_cast<uLong>(raw.size()));
  std::string z(len, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &len, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 6) != Z_OK) {
    throw Error("gm: PNG compression failed");
  }
  z.resize(len);
  std::string ihdr;
  detail::put_u32(ihdr, static_cast<uint32_t>(img.width));
  detail::put_u32(ihdr, static_cast<uint32_t>(img.height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit, RGB, deflate, no filter, no interlace
  std::string out = "\x89PNG\r\n\x1a\n";
  detail::chunk(out, "IHDR", ihdr);
  detail::chunk(out, "IDAT", z);
  detail::chunk(out, "IEND", "");
  return out;
}
#endif

/// Write `img` as a PNG file (8-bit RGB), atomically (see `write_file_atomic`).
void write_png(const std::filesystem::path& path, const Image& img);
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_png(const std::filesystem::path& path, const Image& img) { write_file_atomic(path,
                         encode_png(img)); }
#endif

}  // namespace gm::io
