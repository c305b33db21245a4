#pragma once
/// @file
/// Line plots rendered to PNG with no plotting stack: linear or log axes with round-number ticks
/// (1, 2, 5 x 10^k), axes fitted to the data, anti-aliased DejaVu Sans text, translucent raw curves
/// under smoothed ones, and a legend.  `density_image` draws 2-D samples.

#include <gm/detail/compiled.hpp>
#include <gm/io/detail/font_data.hpp>
#include <gm/io/png.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gm::io {

/// One named curve.  `color` picks a palette entry (-1: by position), `opacity` < 1 draws it translucent
/// (a raw curve under its smoothed one), `thickness` is in pixels; a series with an empty name stays out of
/// the legend.
struct Series {
  std::string name;
  std::vector<double> x, y;
  int color = -1;
  double opacity = 1.0;
  int thickness = 2;
};

/// How to draw a `line_plot`.  Without `x_range` / `y_range` each axis fits the data.
struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  int width = 880, height = 560;
  std::optional<std::pair<double, double>> x_range, y_range;
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

/// Pixels drawn by `line` must fall inside this rectangle (inclusive).
struct Clip {
  int x0 = 0, y0 = 0, x1 = std::numeric_limits<int>::max(), y1 = std::numeric_limits<int>::max();
};

void fill_rect(Image& img, int x0, int y0, int x1, int y1, Color c);
#if GM_HEADER_DEFINITIONS
GM_INLINE void fill_rect(Image& img, int x0, int y0, int x1, int y1, Color c) {
  for (int y = y0; y <= y1; ++y) {
    for (int x = x0; x <= x1; ++x) img.set(x, y, c);
  }
}
#endif

void line(Image& img, double x0, double y0, double x1, double y1, Color c, int thick = 2, double opacity = 1,
          const Clip& clip = {});
#if GM_HEADER_DEFINITIONS
GM_INLINE void line(Image& img, double x0, double y0, double x1, double y1, Color c, int thick, double opacity,
                    const Clip& clip) {
  const int steps = static_cast<int>(std::max(std::abs(x1 - x0), std::abs(y1 - y0))) + 1;
  for (int i = 0; i <= steps; ++i) {
    const double u = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + u * (x1 - x0)));
    const int y = static_cast<int>(std::lround(y0 + u * (y1 - y0)));
    for (int yy = y - thick / 2; yy <= y + (thick - 1) / 2; ++yy) {
      for (int xx = x - thick / 2; xx <= x + (thick - 1) / 2; ++xx) {
        if (xx < clip.x0 || xx > clip.x1 || yy < clip.y0 || yy > clip.y1) continue;
        if (opacity >= 1) img.set(xx, yy, c);
        else img.blend(xx, yy, c, opacity);
      }
    }
  }
}
#endif

const fonts::Font& font(bool bold);
#if GM_HEADER_DEFINITIONS
GM_INLINE const fonts::Font& font(bool bold) { return bold ? fonts::bold : fonts::regular; }
#endif

/// `raw` rounded to the nearest of 1, 2, 5 or 10 x 10^k: a round tick spacing.
double nice_step(double raw);
#if GM_HEADER_DEFINITIONS
GM_INLINE double nice_step(double raw) {
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}
#endif

}  // namespace detail

/// Width in pixels of `text` in the plot font.
int text_width(std::string_view text, bool bold = false);
#if GM_HEADER_DEFINITIONS
GM_INLINE int text_width(std::string_view text, bool bold) {
  int w = 0;
  for (char c : text) {
    if (c >= 32 && c < 127) w += detail::font(bold).glyphs[c - 32].advance;
  }
  return w;
}
#endif

/// Line height in pixels of the plot font.
int text_height(bool bold = false);
#if GM_HEADER_DEFINITIONS
GM_INLINE int text_height(bool bold) { return detail::font(bold).ascent + detail::font(bold).descent; }
#endif

/// Draw `text` (printable ASCII) anti-aliased with its top-left corner at (x, y); returns its width.
int draw_text(Image& img, int x, int y, std::string_view text, std::array<uint8_t, 3> color = {0, 0, 0},
              bool bold = false);
#if GM_HEADER_DEFINITIONS
GM_INLINE int draw_text(Image& img, int x, int y, std::string_view text, std::array<uint8_t, 3> color, bool bold) {
  const auto& f = detail::font(bold);
  int pen = x;
  const int baseline = y + f.ascent;
  for (char c : text) {
    if (c < 32 || c >= 127) continue;
    const auto& g = f.glyphs[c - 32];
    for (int r = 0; r < g.h; ++r) {
      for (int col = 0; col < g.w; ++col) {
        const unsigned char a = f.pixels[g.at + static_cast<size_t>(r) * g.w + col];
        if (a) img.blend(pen + g.x + col, baseline + g.y + r, color, a / 255.0);
      }
    }
    pen += g.advance;
  }
  return pen - x;
}
#endif

/// Tick positions: `at`, and `step`, their spacing when evenly spaced (0 for 1-2-5 ticks on a log axis).
struct Ticks {
  std::vector<double> at;
  double step = 0;
};

/// Round-number ticks covering [lo, hi]: multiples of 1, 2 or 5 x 10^k on a linear axis (about `target` of
/// them); on a log axis the decades, or 1-2-5 (or 1..9) within them when the range spans little, or even
/// linear ticks when it spans too little for those.
Ticks nice_ticks(double lo, double hi, bool log, int target = 6);
#if GM_HEADER_DEFINITIONS
GM_INLINE Ticks nice_ticks(double lo, double hi, bool log, int target) {
  Ticks t;
  if (!(hi > lo)) return {{lo}, 0};
  if (log) {
    const double decades = std::log10(hi / lo);
    const int stride = decades > 8 ? static_cast<int>(std::ceil(decades / 8)) : 1;
    for (const auto& mantissas : std::vector<std::vector<int>>{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}}) {
      t.at.clear();
      for (int k = static_cast<int>(std::floor(std::log10(lo))); k <= static_cast<int>(std::ceil(std::log10(hi))); ++k) {
        if (((k % stride) + stride) % stride != 0) continue;
        for (int m : mantissas) {
          const double v = m * std::pow(10.0, k);
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.at.push_back(v);
        }
      }
      if (t.at.size() >= 3) return t;
    }
  }
  t.at.clear();
  t.step = detail::nice_step((hi - lo) / std::max(1, target - 1));
  for (double v = std::ceil(lo / t.step - 1e-9) * t.step; v <= hi + t.step * 1e-9; v += t.step) {
    t.at.push_back(std::abs(v) < t.step * 1e-9 ? 0.0 : v);
  }
  return t;
}
#endif

/// A tick label: "1000", "0.25", "2e-05" (exponents only below 1e-3 or from 1e6), with as many decimals as
/// the tick spacing needs and no more.
std::string tick_label(double v, double spacing);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string tick_label(double v, double spacing) {
  char buf[48];
  const double a = std::abs(v);
  if (v == 0) return "0";
  if (a < 1e-3 || a >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
  }
  const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(spacing) + 1e-9)), 0, 6);
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
#endif

/// Render curves on shared axes (linear or log), with round-number ticks and a light grid, each axis fitted
/// to the data unless given, markers at the data points of short opaque series, and a legend.  Non-finite
/// points, and non-positive ones on a log axis, are left out; lines are clipped to the axes.
Image line_plot(const std::vector<Series>& series, const PlotOptions& o);
#if GM_HEADER_DEFINITIONS
GM_INLINE Image line_plot(const std::vector<Series>& series, const PlotOptions& o) {
  Image img(o.width, o.height);
  auto ok = [&](double v, bool log) { return std::isfinite(v) && (!log || v > 0); };
  auto fit = [&](bool is_x, bool log, const std::optional<std::pair<double, double>>& given) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    if (given) {
      lo = given->first, hi = given->second;
    } else {
      for (const auto& s : series) {
        for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
          if (!ok(s.x[i], o.log_x) || !ok(s.y[i], o.log_y)) continue;
          lo = std::min(lo, is_x ? s.x[i] : s.y[i]);
          hi = std::max(hi, is_x ? s.x[i] : s.y[i]);
        }
      }
    }
    if (!std::isfinite(lo)) lo = log ? 1 : 0, hi = log ? 10 : 1;
    if (log) {  // pad 4% of the span in log space
      if (hi <= lo) lo /= 2, hi *= 2;
      const double pad = std::pow(hi / lo, 0.04);
      return std::pair{lo / pad, hi * pad};
    }
    if (hi <= lo) {
      const double d = lo == 0 ? 1 : std::abs(lo) * 0.1;
      lo -= d, hi += d;
    }
    const double pad = 0.04 * (hi - lo);
    return std::pair{lo - pad, hi + pad};
  };
  // Plain variables, not structured bindings: lambdas below capture them (clang < 16 cannot capture bindings).
  const auto xr = fit(true, o.log_x, o.x_range), yr = fit(false, o.log_y, o.y_range);
  const double x0 = xr.first, x1 = xr.second, y0 = yr.first, y1 = yr.second;
  const Ticks xt = nice_ticks(x0, x1, o.log_x), yt = nice_ticks(y0, y1, o.log_y);
  auto label = [](const Ticks& t, double v) {
    return tick_label(v, t.step > 0 ? t.step : std::pow(10.0, std::floor(std::log10(v) + 1e-9)));
  };

  int label_w = 0;
  for (double v : yt.at) label_w = std::max(label_w, text_width(label(yt, v)));
  int legend_w = 0;
  for (const auto& s : series) {
    if (!s.name.empty()) legend_w = std::max(legend_w, text_width(s.name) + 44);
  }
  const int left = std::max(60, label_w + 24), right = o.width - (legend_w ? legend_w + 24 : 24);
  const int top = o.title.empty() ? 24 : 24 + text_height(true) + 16, bottom = o.height - 64;
  auto tx = [&](double v) { return o.log_x ? std::log10(v) : v; };
  auto ty = [&](double v) { return o.log_y ? std::log10(v) : v; };
  auto px = [&](double v) { return left + (tx(v) - tx(x0)) / (tx(x1) - tx(x0)) * (right - left); };
  auto py = [&](double v) { return bottom - (ty(v) - ty(y0)) / (ty(y1) - ty(y0)) * (bottom - top); };

  const detail::Color grid{228, 228, 228}, axis{40, 40, 40}, ink{30, 30, 30};
  const int th = text_height();
  for (double v : xt.at) {
    const double x = px(v);
    detail::line(img, x, top, x, bottom, grid, 1);
    detail::line(img, x, bottom, x, bottom + 5, axis, 1);
    const auto s = label(xt, v);
    draw_text(img, static_cast<int>(std::lround(x)) - text_width(s) / 2, bottom + 8, s, ink);
  }
  for (double v : yt.at) {
    const double y = py(v);
    detail::line(img, left, y, right, y, grid, 1);
    detail::line(img, left - 5, y, left, y, axis, 1);
    const auto s = label(yt, v);
    draw_text(img, left - 9 - text_width(s), static_cast<int>(std::lround(y)) - th / 2, s, ink);
  }
  detail::line(img, left, bottom, right, bottom, axis, 1);
  detail::line(img, left, top, left, bottom, axis, 1);
  if (!o.title.empty()) draw_text(img, left, 18, o.title, ink, true);
  draw_text(img, (left + right) / 2 - text_width(o.x_label) / 2, bottom + 14 + th, o.x_label, ink);
  draw_text(img, std::max(4, left - text_width(o.y_label) / 2), top - th - 6, o.y_label, ink);

  const detail::Clip clip{left + 1, top, right, bottom - 1};
  int legend_row = 0;
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const auto c = detail::palette[static_cast<size_t>(s.color >= 0 ? s.color : static_cast<int>(k)) % detail::palette.size()];
    bool have_prev = false;
    double qx = 0, qy = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!ok(s.x[i], o.log_x) || !ok(s.y[i], o.log_y)) {
        have_prev = false;
        continue;
      }
      const double X = px(s.x[i]), Y = py(s.y[i]);
      if (have_prev) detail::line(img, qx, qy, X, Y, c, s.thickness, s.opacity, clip);
      if (s.x.size() <= 60 && s.opacity >= 1) {  // markers only where points are few enough to tell apart
        for (int dy = -3; dy <= 3; ++dy) detail::line(img, X - 3, Y + dy, X + 3, Y + dy, c, 1, 1, clip);
      }
      qx = X, qy = Y, have_prev = true;
    }
    if (s.name.empty()) continue;
    const int ly = top + 4 + legend_row++ * (th + 8);
    detail::line(img, right + 16, ly + th / 2, right + 40, ly + th / 2, c, 3, std::max(s.opacity, 0.5));
    draw_text(img, right + 46, ly, s.name, ink);
  }
  return img;
}
#endif

/// A 2-D histogram of points x [n, 2] over [lo, hi]^2 as an image (darker = denser), for 2-D samples.
Image density_image(const std::vector<float>& xy, double lo, double hi, int size = 400);
#if GM_HEADER_DEFINITIONS
GM_INLINE Image density_image(const std::vector<float>& xy, double lo, double hi, int size) {
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
#endif

/// A scalar field as a picture: `values` holds n x n numbers, row 0 at the top, each cell drawn as a
/// `scale` x `scale` block in a viridis-like colour map from `lo` (dark purple) to `hi` (yellow).  Values
/// below `lo` (and NaN) are drawn at `lo`.  Used for log-density maps of 2-D models.
Image heat_image(const std::vector<float>& values, int n, double lo, double hi, int scale = 4);
#if GM_HEADER_DEFINITIONS
GM_INLINE Image heat_image(const std::vector<float>& values, int n, double lo, double hi, int scale) {
  static constexpr std::array<std::array<double, 3>, 5> stops{{{68, 1, 84}, {59, 82, 139}, {33, 145, 140},
                                                               {94, 201, 98}, {253, 231, 37}}};
  Image img(n * scale, n * scale);
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      const double v = values[static_cast<size_t>(r) * n + c];
      double u = std::isfinite(v) && hi > lo ? (v - lo) / (hi - lo) : 0.0;
      u = std::clamp(u, 0.0, 1.0) * (stops.size() - 1);
      const auto k = std::min<size_t>(static_cast<size_t>(u), stops.size() - 2);
      const double f = u - static_cast<double>(k);
      std::array<uint8_t, 3> px{};
      for (int i = 0; i < 3; ++i) px[i] = static_cast<uint8_t>(std::lround(stops[k][i] + f * (stops[k + 1][i] - stops[k][i])));
      for (int y = 0; y < scale; ++y) {
        for (int x = 0; x < scale; ++x) img.set(c * scale + x, r * scale + y, px);
      }
    }
  }
  return img;
}
#endif

}  // namespace gm::io
