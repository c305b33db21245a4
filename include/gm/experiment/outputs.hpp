#pragma once
/// @file
/// What an experiment writes about its samples: the samples themselves (.npy, PNG grids, labels), the
/// preview of 2-D points, the metrics in the log and TensorBoard, eval.json, and a 2-D model's log-density map.

#include <gm/detail/compiled.hpp>
#include <gm/data/batch.hpp>
#include <gm/error.hpp>
#include <gm/eval/likelihood.hpp>
#include <gm/io/file.hpp>
#include <gm/io/grid.hpp>
#include <gm/io/npy.hpp>
#include <gm/io/plot.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/io/tensorboard.hpp>
#include <gm/metric.hpp>
#include <gm/sampler/explicit_rk.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/run_dir.hpp>
#include <gm/train/trainer.hpp>

#include <torch/types.h>

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gm {

/// An example's own scores of its samples (`Experiment::run`'s `eval`): vectors as float32 [n, d] on the
/// CPU, images as uint8 [n, C, H, W].  Empty: none.
using MetricsFn = std::function<Metrics(const torch::Tensor&)>;

/// Image data for `Experiment::run`: `batch(step, n, generator)` returns a `gm::Batch` (data encoded into
/// the model's space, labels), and `decode(x)` maps samples back to uint8 images [n, C, H, W].
template <class D>
concept ImageSource = requires(const D& d, const at::Generator& g, const torch::Tensor& x) {
  { d.batch(int64_t{}, int64_t{}, g) } -> std::convertible_to<Batch>;
  { d.decode(x) } -> std::convertible_to<torch::Tensor>;
};
/// Image data that can gather, encode and augment only a data-parallel rank's rows of a batch:
/// `batch(step, n, generator, rows)` (see `gm::data::ImageData::batch`).
template <class D>
concept ShardedImageSource = ImageSource<D> && requires(const D& d, const at::Generator& g, const torch::Tensor& r) {
  { d.batch(int64_t{}, int64_t{}, g, r) } -> std::convertible_to<Batch>;
};

/// A preview of samples as a picture: for 2-D points a density figure on axes fitted to them, titled
/// `title`; nothing for other shapes (image grids come with image data).
std::optional<io::Image> preview_image(const torch::Tensor& x, const std::string& title);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::optional<io::Image> preview_image(const torch::Tensor& x, const std::string& title) {
  if (x.dim() != 2 || x.size(1) != 2) return std::nullopt;
  auto c = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  io::PlotOptions o;
  o.title = title, o.x_label = "x1", o.y_label = "x2", o.width = 620, o.height = 600;
  return io::scatter_density_plot(std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()), o);
}
#endif
namespace experiment {

/// A run's record of one evaluation: (name, value) pairs in the order they were measured.
using Record = std::vector<std::pair<std::string, double>>;

/// training.debug: the one data point the run overfits, as debug_target.npy (and .png for images).
template <class Data>
void write_debug_target(RunDir& run, const Batch& one, const Data& data) {
  io::write_npy(run.path() / "debug_target.npy", one.x.to(torch::kCPU).to(torch::kFloat32));
  if constexpr (ImageSource<Data>) io::write_png(run.path() / "debug_target.png", io::image_grid(data.decode(one.x), 1));
}

/// `eval`'s metrics of `x` into the log and into TensorBoard as `prefix`/<name> at `step`.
void log_metrics(RunDir& run, io::EventWriter& events, const MetricsFn& eval, const torch::Tensor& x,
                 const std::string& prefix, int64_t step);
#if GM_HEADER_DEFINITIONS
GM_INLINE void log_metrics(RunDir& run, io::EventWriter& events, const MetricsFn& eval, const torch::Tensor& x,
                           const std::string& prefix, int64_t step) {
  if (!eval) return;
  Record scalars;
  for (const auto& m : eval(x)) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " %.4f", m.value);
    run.log(m.name + buf + (m.note.empty() ? "" : " (" + m.note + ")"));
    scalars.emplace_back(prefix + "/" + m.name, m.value);
  }
  if (!scalars.empty()) events.scalars(step, scalars);
}
#endif

/// Samples `x` into `stem`.npy (a fresh name in the run folder) and a preview `stem`.png, also in TensorBoard
/// as `tag`; then `eval`'s metrics as `prefix`/<name>.  Image data: uint8 NHWC .npy, the labels beside it,
/// a PNG grid of `cols` columns and the image condition's grid; vectors: float32 .npy, a density preview.
template <class Data>
void write_samples(RunDir& run, io::EventWriter& events, torch::Tensor x, const Conditioning& cond, int64_t cols,
                   const Data& data, const std::string& stem, const std::string& tag, const std::string& prefix,
                   int64_t step, const MetricsFn& eval) {
  const auto npy = run.unused(stem, ".npy");
  const auto png = npy.parent_path() / (npy.stem().string() + ".png");
  std::optional<io::Image> img;
  if constexpr (ImageSource<Data>) {
    const auto u8 = data.decode(x);  // uint8 [n, C, H, W]
    io::write_npy(npy, u8.permute({0, 2, 3, 1}).contiguous());
    if (cond.labels.defined()) {
      io::write_npy(npy.parent_path() / (npy.stem().string() + "_labels.npy"), cond.labels.to(torch::kCPU));
    }
    if (cond.image.defined()) {  // what the samples were conditioned on, in the same layout
      io::write_png(npy.parent_path() / (npy.stem().string() + "_condition.png"), io::image_grid(data.decode(cond.image), cols));
    }
    img = io::image_grid(u8, cols);
    x = u8;  // what eval sees: the images
  } else {
    x = x.to(torch::kCPU).to(torch::kFloat32);  // what eval sees
    io::write_npy(npy, x);
    img = preview_image(x, std::to_string(x.size(0)) + " samples, step " + std::to_string(step));
  }
  if (img) {
    io::write_png(png, *img);
    events.image(tag, *img, step);
  }
  log_metrics(run, events, eval, x, prefix, step);
}

/// The samples `grid.png` shows and its column count, as training's previews lay them out: with labels of
/// several classes, one row per class (up to 10 classes) of its first samples, as many as the smallest class
/// has (at most 10); else the first 100 in rows of 10.
std::pair<torch::Tensor, int64_t> grid_rows(const torch::Tensor& labels, int64_t n);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::pair<torch::Tensor, int64_t> grid_rows(const torch::Tensor& labels, int64_t n) {
  const auto first = std::pair{torch::arange(std::min<int64_t>(n, 100), torch::kInt64), int64_t{10}};
  if (!labels.defined() || labels.numel() == 0) return first;
  const auto l = labels.to(torch::kCPU, torch::kInt64).contiguous();
  std::map<int64_t, std::vector<int64_t>> by_class;  // class -> its first 10 samples
  for (int64_t i = 0; i < l.numel(); ++i) {
    auto& v = by_class[l.data_ptr<int64_t>()[i]];
    if (v.size() < 10) v.push_back(i);
  }
  if (by_class.size() < 2) return first;
  size_t cols = 10;
  for (const auto& [c, v] : by_class) cols = std::min(cols, v.size());
  std::vector<int64_t> rows;
  for (const auto& [c, v] : by_class) {
    if (rows.size() >= 10 * cols) break;
    rows.insert(rows.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(cols));
  }
  return {torch::tensor(rows, torch::kInt64), static_cast<int64_t>(cols)};
}
#endif

/// `--mode=eval`'s samples in `dir`: images as samples.npz (uint8 NHWC `arr_0` and labels `arr_1`, the layout
/// of ADM's evaluator), grid.png (`grid_rows`: one row per class, as the training previews), and with `pngs` one PNG per sample in images/; vectors
/// as samples.npy.
void write_eval_samples(const std::filesystem::path& dir, const torch::Tensor& samples, const torch::Tensor& labels,
                        bool images, bool pngs);
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_eval_samples(const std::filesystem::path& dir, const torch::Tensor& samples,
                                  const torch::Tensor& labels, bool images, bool pngs) {
  if (!images) {
    io::write_npy(dir / "samples.npy", samples);
    return;
  }
  const int64_t n = samples.size(0);
  std::vector<std::pair<std::string, torch::Tensor>> arrays{{"arr_0", samples.permute({0, 2, 3, 1}).contiguous()}};
  if (labels.defined()) arrays.emplace_back("arr_1", labels);
  io::write_npz(dir / "samples.npz", arrays);
  const auto [rows, cols] = grid_rows(labels, n);
  io::write_png(dir / "grid.png", io::image_grid(samples.index_select(0, rows), cols));
  if (!pngs) return;
  std::filesystem::create_directories(dir / "images");
  for (int64_t i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
    io::write_png(dir / "images" / name, io::image_grid(samples.slice(0, i, i + 1), 1, 0, 255, 1));
  }
}
#endif

/// One evaluation's record into the log, TensorBoard (`tag`/<name> at `step`) and eval.json, which keeps every
/// evaluation of the run, oldest first.  `head` is the record's JSON fields before the numbers (without
/// braces); a non-finite number is written as null.
void append_eval_record(RunDir& run, io::EventWriter& events, int64_t step, const std::string& head,
                        const Record& record, const std::string& tag = "eval");
#if GM_HEADER_DEFINITIONS
GM_INLINE void append_eval_record(RunDir& run, io::EventWriter& events, int64_t step, const std::string& head,
                                  const Record& record, const std::string& tag) {
  std::string json = "{" + head;
  Record scalars;
  for (const auto& [k, v] : record) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    json += ", \"" + k + "\": " + (std::isfinite(v) ? std::string(buf) : "null");
    run.log("eval " + k + " " + buf);
    scalars.emplace_back(tag + "/" + k, v);
  }
  json += "}";
  events.scalars(step, scalars);
  std::string all = "[\n" + json + "\n]\n";
  std::error_code ec;
  if (std::filesystem::is_regular_file(run.path() / "eval.json", ec)) {
    auto old = io::read_file(run.path() / "eval.json");
    const auto end = old.rfind(']');
    if (end == std::string::npos) throw Error("gm: " + (run.path() / "eval.json").string() + " is damaged; move it away");
    old.erase(end);
    while (!old.empty() && (old.back() == '\n' || old.back() == ' ')) old.pop_back();
    all = old + (old.size() > 1 ? ",\n" : "\n") + json + "\n]\n";
  }
  run.write("eval.json", all);
}
#endif

/// A 2-D model's log-density on a 96 x 96 grid over a square window that holds the bulk of `reference` (data
/// draws, `io::bulk_range`), by the probability-flow ODE with the exact divergence (RK4, 40 steps, from the
/// EMA weights): `log_density.npy` (float32 [96, 96], row 0 at the top) and `log_density.png` (viridis, the
/// top 8 nats of the map, with axes and a colour bar), also in TensorBoard, as flow_matching's 2-D notebook
/// shows it.
template <class T>
void log_density_map(RunDir& run, io::EventWriter& events, T& trainer, EMA& ema, const torch::Device& device,
                     const torch::Tensor& reference) {
  constexpr int n = 96;
  const auto ref = reference.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const std::vector<float> xy(ref.data_ptr<float>(), ref.data_ptr<float>() + ref.numel());
  const auto rx = io::bulk_range(xy, 0), ry = io::bulk_range(xy, 1);
  const double half = 0.5 * std::max(rx.second - rx.first, ry.second - ry.first);
  const double cx = 0.5 * (rx.first + rx.second), cy = 0.5 * (ry.first + ry.second);
  auto cells = [&](double c) {  // cell centres across [c - half, c + half]
    return torch::linspace(c - half + half / n, c + half - half / n, n);
  };
  auto gx = cells(cx).repeat({n}), gy = cells(cy).flip({0}).repeat_interleave(n);  // row 0 at the top
  auto points = torch::stack({gx, gy}, 1).to(device);
  EMA::Swap swap(ema, *trainer.net());
  trainer.net()->eval();
  auto field = trainer.make_field();
  const auto start = std::chrono::steady_clock::now();
  const Likelihood ll = log_likelihood(field, points, LikelihoodOptions().t_eps(1e-3), RK4Sampler{}, 40);
  const torch::Tensor lp = ll.log_p.to(torch::kCPU, torch::kFloat32).contiguous();
  const double top = lp.max().item<double>();
  io::PlotOptions o;
  o.title = "log-density, step " + std::to_string(trainer.step());
  o.x_label = "x1", o.y_label = "x2", o.width = 700, o.height = 600;
  o.x_range = std::pair{cx - half, cx + half}, o.y_range = std::pair{cy - half, cy + half};
  auto img = io::heat_plot(std::vector<float>(lp.data_ptr<float>(), lp.data_ptr<float>() + lp.numel()), n, top - 8, top, o,
                           "log p");
  io::write_npy(run.path() / "log_density.npy", lp.view({n, n}));
  io::write_png(run.path() / "log_density.png", img);
  events.image("log_density", img, trainer.step());
  char line[200];
  std::snprintf(line, sizeof line, "log-density map: log_density.png (%d x %d points over [%.3g, %.3g] x [%.3g, %.3g], "
                "max %.3f nats, %.1f s)", n, n, cx - half, cx + half, cy - half, cy + half, top,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  run.log(line);
}

}  // namespace experiment
}  // namespace gm
