#pragma once
/// @file
/// Minimal line and scatter plots rendered to PNG, so benchmarks and runs can show curves with no
/// plotting stack: log or linear axes, decade ticks, a legend, and a built-in 3x5 pixel font.

#include <gm/io/png.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace gm::io {

/// One named curve.
struct Series {
  std::string name;
  std::vector<double> x, y;
};

/// How to draw a `line_plot`.
struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  int width = 880, height = 560;
};

namespace detail {

using Color = std::array<uint8_t, 3>;
inline constexpr std::array<Color, 16> palette{{{31, 119, 180},
                                                 {255, 127, 14},
                                                 {44, 160, 44},
                                                 {214, 39, 40},
                                                 {148, 103, 189},
                                                 {140, 86, 75},
                                                 {227, 119, 194},
                                                 {127, 127, 127},
                                                 {188, 189, 34},
                                                 {23, 190, 207},
                                                 {0, 0, 0},
                                                 {0, 0, 128},
                                                 {128, 0, 0},
                                                 {0, 100, 0},
                                                 {255, 215, 0},
                                                 {0, 255, 127}}};

/// A 3x5 glyph as 15 bits, rows top to bottom, 3 bits a row (most significant = left).
inline uint16_t glyph(char c) {
  if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  switch (c) {
    case '0': return 0b111'101'101'101'111;
    case '1': return 0b010'110'010'010'111;
    case '2': return 0b111'001'111'100'111;
    case '3': return 0b111'001'111'001'111;
    case '4': return 0b101'101'111'001'001;
    case '5': return 0b111'100'111'001'111;
    case '6': return 0b111'100'111'101'111;
    case '7': return 0b111'001'001'001'001;
    case '8': return 0b111'101'111'101'111;
    case '9': return 0b111'101'111'001'111;
    case 'a': return 0b010'101'111'101'101;
    case 'b': return 0b110'101'110'101'110;
    case 'c': return 0b011'100'100'100'011;
    case 'd': return 0b110'101'101'101'110;
    case 'e': return 0b111'100'110'100'111;
    case 'f': return 0b111'100'110'100'100;
    case 'g': return 0b011'100'101'101'011;
    case 'h': return 0b101'101'111'101'101;
    case 'i': return 0b111'010'010'010'111;
    case 'j': return 0b001'001'001'101'010;
    case 'k': return 0b101'101'110'101'101;
    case 'l': return 0b100'100'100'100'111;
    case 'm': return 0b101'111'111'101'101;
    case 'n': return 0b110'101'101'101'101;
    case 'o': return 0b010'101'101'101'010;
    case 'p': return 0b110'101'110'100'100;
    case 'q': return 0b010'101'101'110'011;
    case 'r': return 0b110'101'110'101'101;
    case 's': return 0b011'100'010'001'110;
    case 't': return 0b111'010'010'010'010;
    case 'u': return 0b101'101'101'101'111;
    case 'v': return 0b101'101'101'101'010;
    case 'w': return 0b101'101'111'111'101;
    case 'x': return 0b101'101'010'101'101;
    case 'y': return 0b101'101'010'010'010;
    case 'z': return 0b111'001'010'100'111;
    case '-': return 0b000'000'111'000'000;
    case '+': return 0b000'010'111'010'000;
    case '.': return 0b000'000'000'000'010;
    case ',': return 0b000'000'000'010'100;
    case ':': return 0b000'010'000'010'000;
    case '_': return 0b000'000'000'000'111;
    case '=': return 0b000'111'000'111'000;
    case '/': return 0b001'001'010'100'100;
    case '(': return 0b010'100'100'100'010;
    case ')': return 0b010'001'001'001'010;
    case '|': return 0b010'010'010'010'010;
    default: return 0;
  }
}

inline void fill_rect(Image& img, int x0, int y0, int x1, int y1, Color c) {
  for (int y = y0; y <= y1; ++y) {
    for (int x = x0; x <= x1; ++x) img.set(x, y, c);
  }
}

inline void line(Image& img, double x0, double y0, double x1, double y1, Color c, int thick = 2) {
  const int steps = static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
  for (int i = 0; i <= steps; ++i) {
    const double u = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + u * (x1 - x0)));
    const int y = static_cast<int>(std::lround(y0 + u * (y1 - y0)));
    fill_rect(img, x - thick / 2, y - thick / 2, x + (thick - 1) / 2, y + (thick - 1) / 2, c);
  }
}

}  // namespace detail

/// Draw `text` with its top-left corner at (x, y); each font pixel is `scale` pixels.  Returns the width.
inline int draw_text(Image& img, int x, int y, std::string_view text, std::array<uint8_t, 3> color = {0, 0, 0},
                     int scale = 2) {
  int cx = x;
  for (char c : text) {
    const uint16_t g = detail::glyph(c);
    for (int r = 0; r < 5; ++r) {
      for (int col = 0; col < 3; ++col) {
        if (g & (1u << (14 - (r * 3 + col)))) {
          detail::fill_rect(img, cx + col * scale, y + r * scale, cx + col * scale + scale - 1,
                            y + r * scale + scale - 1, color);
        }
      }
    }
    cx += 4 * scale;
  }
  return cx - x;
}

/// Render curves on shared axes (log or linear), with decade ticks on log axes, markers at the data points
/// and a legend.  Non-finite points, and non-positive ones on a log axis, are left out.
inline Image line_plot(const std::vector<Series>& series, const PlotOptions& o) {
  Image img(o.width, o.height);
  const int left = 90, right = o.width - 190, top = 64, bottom = o.height - 60;
  auto tx = [&](double v) { return o.log_x ? std::log10(v) : v; };
  auto ty = [&](double v) { return o.log_y ? std::log10(v) : v; };
  auto ok = [&](double v, bool log) { return std::isfinite(v) && (!log || v > 0); };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!ok(s.x[i], o.log_x) || !ok(s.y[i], o.log_y)) continue;
      x0 = std::min(x0, tx(s.x[i]));
      x1 = std::max(x1, tx(s.x[i]));
      y0 = std::min(y0, ty(s.y[i]));
      y1 = std::max(y1, ty(s.y[i]));
    }
  }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (o.log_x) x0 = std::floor(x0), x1 = std::max(std::ceil(x1), x0 + 1);
  if (o.log_y) y0 = std::floor(y0), y1 = std::max(std::ceil(y1), y0 + 1);
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double v) { return left + (tx(v) - x0) / (x1 - x0) * (right - left); };
  auto py = [&](double v) { return bottom - (ty(v) - y0) / (y1 - y0) * (bottom - top); };

  const detail::Color grid{225, 225, 225}, axis{0, 0, 0};
  auto tick_label = [](double e, bool log) {
    if (!log) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3g", e);
      return std::string(buf);
    }
    const int k = static_cast<int>(std::lround(e));
    if (k >= 0 && k <= 4) return std::to_string(static_cast<long long>(std::lround(std::pow(10.0, k))));
    return "1e" + std::to_string(k);
  };
  // Grid lines and tick labels: decades (and 2..9 minor lines) on log axes, 5 divisions on linear ones.
  auto ticks = [&](double lo, double hi, bool log, auto&& draw) {
    if (log) {
      for (int k = static_cast<int>(lo); k <= static_cast<int>(hi); ++k) {
        draw(static_cast<double>(k), true);
        for (int m = 2; m <= 9 && k < static_cast<int>(hi); ++m) draw(k + std::log10(m), false);
      }
    } else {
      for (int i = 0; i <= 5; ++i) draw(lo + (hi - lo) * i / 5, true);
    }
  };
  ticks(x0, x1, o.log_x, [&](double e, bool major) {
    const double x = left + (e - x0) / (x1 - x0) * (right - left);
    detail::line(img, x, top, x, bottom, grid, major ? 1 : 1);
    if (major) {
      auto s = tick_label(e, o.log_x);
      draw_text(img, static_cast<int>(x) - static_cast<int>(s.size()) * 4, bottom + 8, s);
    }
  });
  ticks(y0, y1, o.log_y, [&](double e, bool major) {
    const double y = bottom - (e - y0) / (y1 - y0) * (bottom - top);
    detail::line(img, left, y, right, y, grid, 1);
    if (major) {
      auto s = tick_label(e, o.log_y);
      draw_text(img, left - 8 - static_cast<int>(s.size()) * 8, static_cast<int>(y) - 5, s);
    }
  });
  detail::line(img, left, bottom, right, bottom, axis, 2);
  detail::line(img, left, top, left, bottom, axis, 2);
  draw_text(img, left, 8, o.title, axis, 3);
  draw_text(img, (left + right) / 2 - static_cast<int>(o.x_label.size()) * 4, bottom + 32, o.x_label);
  draw_text(img, 8, top - 18, o.y_label);

  for (size_t k = 0; k < series.size(); ++k) {
    const auto c = detail::palette[k % detail::palette.size()];
    const auto& s = series[k];
    bool have_prev = false;
    double qx = 0, qy = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!ok(s.x[i], o.log_x) || !ok(s.y[i], o.log_y)) {
        have_prev = false;
        continue;
      }
      const double X = px(s.x[i]), Y = py(s.y[i]);
      if (have_prev) detail::line(img, qx, qy, X, Y, c, 2);
      if (s.x.size() <= 60) {  // markers only where points are few enough to tell apart
        detail::fill_rect(img, static_cast<int>(X) - 3, static_cast<int>(Y) - 3, static_cast<int>(X) + 3,
                          static_cast<int>(Y) + 3, c);
      }
      qx = X, qy = Y, have_prev = true;
    }
    const int ly = top + 6 + static_cast<int>(k) * 20;
    detail::fill_rect(img, right + 16, ly, right + 36, ly + 9, c);
    draw_text(img, right + 44, ly, s.name);
  }
  return img;
}

/// A 2-D histogram of points x [n, 2] over [lo, hi]^2 as an image (darker = denser), for 2-D samples.
inline Image density_image(const std::vector<float>& xy, double lo, double hi, int size = 400) {
  Image img(size, size);
  std::vector<int> count(static_cast<size_t>(size) * size, 0);
  int peak = 1;
  for (size_t i = 0; i + 1 < xy.size(); i += 2) {
    const int cx = static_cast<int>((xy[i] - lo) / (hi - lo) * size);
    const int cy = static_cast<int>((hi - xy[i + 1]) / (hi - lo) * size);
    if (cx < 0 || cy < 0 || cx >= size || cy >= size) continue;
    peak = std::max(peak, ++count[static_cast<size_t>(cy) * size + cx]);
  }
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const int c = count[static_cast<size_t>(y) * size + x];
      if (c == 0) continue;
      const double v = std::sqrt(static_cast<double>(c) / peak);  // square root: faint regions stay visible
      const auto g = static_cast<uint8_t>(std::lround(230 * (1 - v)));
      img.set(x, y, {g, g, static_cast<uint8_t>(std::min(255.0, g + 40.0))});
    }
  }
  return img;
}

}  // namespace gm::io
