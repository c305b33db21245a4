#pragma once
/// @file
/// Line plots rendered to PNG with no plotting stack: linear or log axes with round-number ticks
/// (1, 2, 5 x 10^k), axes fitted to the data, anti-aliased DejaVu Sans text, translucent raw curves
/// under smoothed ones, and a legend.  `scatter_density_plot` draws 2-D samples and `heat_plot` a scalar
/// field (a log-density map) with a colour bar, on the same axes.

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

namespace detail {

/// A figure's plot area in pixels and the data ranges it shows; `px`/`py` map data to pixels.
struct Frame {
  int left = 0, right = 0, top = 0, bottom = 0;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool log_x = false, log_y = false;
  double px(double v) const {
    const auto f = [&](double u) { return log_x ? std::log10(u) : u; };
    return left + (f(v) - f(x0)) / (f(x1) - f(x0)) * (right - left);
  }
  double py(double v) const {
    const auto f = [&](double u) { return log_y ? std::log10(u) : u; };
    return bottom - (f(v) - f(y0)) / (f(y1) - f(y0)) * (bottom - top);
  }
};

/// Lay out a figure of `o.width` x `o.height` with `right_margin` pixels right of the plot area (a legend, a
/// colour bar), and draw its grid, axes, round-number ticks and their labels, the axis labels and the title.
/// `xr`, `yr` are the data ranges; with `equal_aspect` the narrower one widens about its centre so a data
/// unit is as long on both axes (2-D points).
Frame draw_axes(Image& img, const PlotOptions& o, std::pair<double, double> xr, std::pair<double, double> yr,
                int right_margin, bool equal_aspect = false);
#if GM_HEADER_DEFINITIONS
GM_INLINE Frame draw_axes(Image& img, const PlotOptions& o, std::pair<double, double> xr, std::pair<double, double> yr,
                          int right_margin, bool equal_aspect) {
  Frame f;
  f.log_x = o.log_x, f.log_y = o.log_y;
  f.x0 = xr.first, f.x1 = xr.second, f.y0 = yr.first, f.y1 = yr.second;
  auto label = [](const Ticks& t, double v) {
    return tick_label(v, t.step > 0 ? t.step : std::pow(10.0, std::floor(std::log10(v) + 1e-9)));
  };
  auto layout = [&]() {
    const Ticks yt = nice_ticks(f.y0, f.y1, o.log_y);
    int label_w = 0;
    for (double v : yt.at) label_w = std::max(label_w, text_width(label(yt, v)));
    f.left = std::max(60, label_w + 24);
    f.right = o.width - right_margin;
    f.top = o.title.empty() ? 24 : 24 + text_height(true) + 16;
    f.bottom = o.height - 64;
  };
  layout();
  if (equal_aspect && !o.log_x && !o.log_y) {
    const double per_x = (f.x1 - f.x0) / (f.right - f.left), per_y = (f.y1 - f.y0) / (f.bottom - f.top);
    if (per_x > per_y) {
      const double c = 0.5 * (f.y0 + f.y1), h = 0.5 * per_x * (f.bottom - f.top);
      f.y0 = c - h, f.y1 = c + h;
    } else {
      const double c = 0.5 * (f.x0 + f.x1), h = 0.5 * per_y * (f.right - f.left);
      f.x0 = c - h, f.x1 = c + h;
    }
    layout();  // the y labels of the widened range may be wider
  }
  const Ticks xt = nice_ticks(f.x0, f.x1, o.log_x), yt = nice_ticks(f.y0, f.y1, o.log_y);
  const detail::Color grid{228, 228, 228}, axis{40, 40, 40}, ink{30, 30, 30};
  const int th = text_height();
  for (double v : xt.at) {
    const double x = f.px(v);
    detail::line(img, x, f.top, x, f.bottom, grid, 1);
    detail::line(img, x, f.bottom, x, f.bottom + 5, axis, 1);
    const auto s = label(xt, v);
    draw_text(img, static_cast<int>(std::lround(x)) - text_width(s) / 2, f.bottom + 8, s, ink);
  }
  for (double v : yt.at) {
    const double y = f.py(v);
    detail::line(img, f.left, y, f.right, y, grid, 1);
    detail::line(img, f.left - 5, y, f.left, y, axis, 1);
    const auto s = label(yt, v);
    draw_text(img, f.left - 9 - text_width(s), static_cast<int>(std::lround(y)) - th / 2, s, ink);
  }
  detail::line(img, f.left, f.bottom, f.right, f.bottom, axis, 1);
  detail::line(img, f.left, f.top, f.left, f.bottom, axis, 1);
  if (!o.title.empty()) draw_text(img, f.left, 18, o.title, ink, true);
  draw_text(img, (f.left + f.right) / 2 - text_width(o.x_label) / 2, f.bottom + 14 + th, o.x_label, ink);
  draw_text(img, std::max(4, f.left - text_width(o.y_label) / 2), f.top - th - 6, o.y_label, ink);
  return f;
}
#endif

/// Viridis-like colour of u in [0, 1] (dark purple to yellow), by five stops of matplotlib's viridis.
Color viridis(double u);
#if GM_HEADER_DEFINITIONS
GM_INLINE Color viridis(double u) {
  static constexpr std::array<std::array<double, 3>, 5> stops{{{68, 1, 84}, {59, 82, 139}, {33, 145, 140},
                                                               {94, 201, 98}, {253, 231, 37}}};
  u = (std::isfinite(u) ? std::clamp(u, 0.0, 1.0) : 0.0) * (stops.size() - 1);
  const auto k = std::min<size_t>(static_cast<size_t>(u), stops.size() - 2);
  const double f = u - static_cast<double>(k);
  Color px{};
  for (size_t i = 0; i < 3; ++i) px[i] = static_cast<uint8_t>(std::lround(stops[k][i] + f * (stops[k + 1][i] - stops[k][i])));
  return px;
}
#endif

}  // namespace detail

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
  int legend_w = 0;
  for (const auto& s : series) {
    if (!s.name.empty()) legend_w = std::max(legend_w, text_width(s.name) + 44);
  }
  const detail::Frame f = detail::draw_axes(img, o, fit(true, o.log_x, o.x_range), fit(false, o.log_y, o.y_range),
                                            legend_w ? legend_w + 24 : 24);
  const detail::Color ink{30, 30, 30};
  const int th = text_height();
  const detail::Clip clip{f.left + 1, f.top, f.right, f.bottom - 1};
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
      const double X = f.px(s.x[i]), Y = f.py(s.y[i]);
      if (have_prev) detail::line(img, qx, qy, X, Y, c, s.thickness, s.opacity, clip);
      if (s.x.size() <= 60 && s.opacity >= 1) {  // markers only where points are few enough to tell apart
        for (int dy = -3; dy <= 3; ++dy) detail::line(img, X - 3, Y + dy, X + 3, Y + dy, c, 1, 1, clip);
      }
      qx = X, qy = Y, have_prev = true;
    }
    if (s.name.empty()) continue;
    const int ly = f.top + 4 + legend_row++ * (th + 8);
    detail::line(img, f.right + 16, ly + th / 2, f.right + 40, ly + th / 2, c, 3, std::max(s.opacity, 0.5));
    draw_text(img, f.right + 46, ly, s.name, ink);
  }
  return img;
}
#endif

/// The range of 2-D points' coordinate `coord` (0: x, 1: y; xy holds x0, y0, x1, y1, ...) that holds their
/// bulk: the 0.5% to 99.5% quantiles, padded by 10% of the span; non-finite points are ignored, and no points
/// give [-1, 1].
std::pair<double, double> bulk_range(const std::vector<float>& xy, int coord);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::pair<double, double> bulk_range(const std::vector<float>& xy, int coord) {
  std::vector<double> v;
  for (size_t i = 0; i + 1 < xy.size(); i += 2) {
    if (std::isfinite(xy[i]) && std::isfinite(xy[i + 1])) v.push_back(xy[i + static_cast<size_t>(coord)]);
  }
  if (v.empty()) return {-1.0, 1.0};
  auto quantile = [&](double q) {
    const auto k = static_cast<std::ptrdiff_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + k, v.end());
    return v[static_cast<size_t>(k)];
  };
  const double lo = quantile(0.005), hi = quantile(0.995), pad = 0.1 * std::max(hi - lo, 1e-6);
  return {lo - pad, hi + pad};
}
#endif

/// 2-D points xy as a figure: their histogram (darker = denser, square-root scale so faint regions show) on
/// axes with ticks, labels and `o.title`, over `o.x_range` x `o.y_range` or else the points' `bulk_range`,
/// one data unit as long on both axes.
Image scatter_density_plot(const std::vector<float>& xy, PlotOptions o);
#if GM_HEADER_DEFINITIONS
GM_INLINE Image scatter_density_plot(const std::vector<float>& xy, PlotOptions o) {
  o.log_x = o.log_y = false;
  Image img(o.width, o.height);
  const detail::Frame f = detail::draw_axes(img, o, o.x_range ? *o.x_range : bulk_range(xy, 0),
                                            o.y_range ? *o.y_range : bulk_range(xy, 1), 24, true);
  const int cell = xy.size() / 2 < 5000 ? 3 : 2;  // pixels per histogram bin: few points get larger dots
  const int nx = std::max(1, (f.right - f.left - 1) / cell), ny = std::max(1, (f.bottom - f.top - 1) / cell);
  std::vector<int> count(static_cast<size_t>(nx) * ny, 0);
  int peak = 1;
  for (size_t i = 0; i + 1 < xy.size(); i += 2) {
    if (!std::isfinite(xy[i]) || !std::isfinite(xy[i + 1])) continue;
    const double cx = std::floor((f.px(xy[i]) - f.left - 1) / cell), cy = std::floor((f.py(xy[i + 1]) - f.top) / cell);
    if (cx < 0 || cy < 0 || cx >= nx || cy >= ny) continue;
    peak = std::max(peak, ++count[static_cast<size_t>(cy) * nx + static_cast<size_t>(cx)]);
  }
  for (int r = 0; r < ny; ++r) {
    for (int c = 0; c < nx; ++c) {
      const int k = count[static_cast<size_t>(r) * nx + c];
      if (k == 0) continue;
      const double v = std::sqrt(static_cast<double>(k) / peak);
      const auto g = static_cast<uint8_t>(std::lround(200 * (1 - v)));
      for (int y = 0; y < cell; ++y) {
        for (int x = 0; x < cell; ++x) img.set(f.left + 1 + c * cell + x, f.top + r * cell + y, {g, g, static_cast<uint8_t>(std::min(255.0, g + 55.0))});
      }
    }
  }
  return img;
}
#endif

/// A scalar field on a window as a figure: `values` holds n x n numbers, row 0 at the top, over
/// `o.x_range` x `o.y_range` (both required), drawn in viridis from `lo` to `hi` (values below `lo`, and NaN,
/// at `lo`) on axes with ticks and `o.title` (one data unit as long on both), with a colour bar labelled
/// `bar_label` at the right.
Image heat_plot(const std::vector<float>& values, int n, double lo, double hi, PlotOptions o, const std::string& bar_label);
#if GM_HEADER_DEFINITIONS
GM_INLINE Image heat_plot(const std::vector<float>& values, int n, double lo, double hi, PlotOptions o,
                          const std::string& bar_label) {
  o.log_x = o.log_y = false;
  const auto xr = o.x_range.value_or(std::pair{0.0, 1.0}), yr = o.y_range.value_or(std::pair{0.0, 1.0});
  Image img(o.width, o.height);
  const int bar_w = 18, margin = 40 + bar_w + std::max(text_width(bar_label) / 2, 60);
  const detail::Frame f = detail::draw_axes(img, o, xr, yr, margin, true);
  for (int y = f.top; y < f.bottom; ++y) {
    for (int x = f.left + 1; x <= f.right; ++x) {
      const double dx = f.x0 + (x + 0.5 - f.left) / (f.right - f.left) * (f.x1 - f.x0);
      const double dy = f.y1 - (y + 0.5 - f.top) / (f.bottom - f.top) * (f.y1 - f.y0);
      const int c = static_cast<int>(std::floor((dx - xr.first) / (xr.second - xr.first) * n));
      const int r = static_cast<int>(std::floor((yr.second - dy) / (yr.second - yr.first) * n));
      if (c < 0 || r < 0 || c >= n || r >= n) continue;
      const double v = values[static_cast<size_t>(r) * n + c];
      img.set(x, y, detail::viridis(hi > lo ? (v - lo) / (hi - lo) : 0.0));
    }
  }
  // The colour bar: lo at the bottom, hi at the top, with round-number ticks.
  const int bx = f.right + 24;
  for (int y = f.top; y <= f.bottom; ++y) {
    const auto c = detail::viridis(static_cast<double>(f.bottom - y) / (f.bottom - f.top));
    for (int x = bx; x < bx + bar_w; ++x) img.set(x, y, c);
  }
  const detail::Color axis{40, 40, 40}, ink{30, 30, 30};
  const Ticks t = nice_ticks(lo, hi, false, 5);
  const int th = text_height();
  for (double v : t.at) {
    if (v < lo || v > hi) continue;
    const double y = f.bottom - (v - lo) / (hi - lo) * (f.bottom - f.top);
    detail::line(img, bx + bar_w, y, bx + bar_w + 4, y, axis, 1);
    draw_text(img, bx + bar_w + 7, static_cast<int>(std::lround(y)) - th / 2, tick_label(v, t.step), ink);
  }
  draw_text(img, bx + bar_w / 2 - text_width(bar_label) / 2, f.top - th - 6, bar_label, ink);
  return img;
}
#endif

}  // namespace gm::io
