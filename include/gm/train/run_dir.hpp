#pragma once
/// @file
/// The experiment folder (`--workdir`): resolved config, log, history, samples and plots of one run.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/config.hpp>
#include <gm/io/file.hpp>
#include <gm/io/plot.hpp>
#include <gm/train/trainer.hpp>
#include <gm/version.hpp>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string_view>
#include <utility>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <cstring>
#endif

namespace gm {

/// One run's folder (`--workdir`).
///
/// `create_or_resume`: a new folder gets config.toml (the resolved config) and meta.json (version, git
/// commit if known, host, start time, command line); a folder that already holds a run is resumed when its
/// config has the same values in every key that defines the run, i.e. all but those in `may_change` (an
/// entry ending in '.' frees a whole section), and refused, naming the key, otherwise.
/// `existing`: the folder must hold a run (for `--mode=sample`).  `log` prints a line and appends it to
/// log.txt.  Nothing already written is overwritten.
class RunDir {
 public:
  enum class Open { create_or_resume, existing };

  /// Checks that the folder holds this run or none, then takes the folder's lock (`flock` on <dir>/.lock, held
  /// until this process ends, even by SIGKILL): a second process on the same run folder is a one-line
  /// `gm::Error`, "run folder ... in use by pid N", before it writes anything.
  RunDir(std::filesystem::path dir, const Config& cfg, const std::vector<std::string>& may_change, int argc,
         char** argv, Open how = Open::create_or_resume);
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  const std::filesystem::path& path() const { return dir_; }
  /// Whether the folder already held this run.
  bool resuming() const { return resuming_; }

  /// Print `line` to stdout and append it to log.txt.
  void log(const std::string& line);

  /// Write a text file into the folder (atomically: a reader sees the old file or the new one).
  void write(const std::string& name, const std::string& text) { io::write_file_atomic(dir_ / name, text); }

  /// A path in the folder that does not exist yet: `stem + ext`, else `stem_2 + ext`, `stem_3 + ext`, ...
  std::filesystem::path unused(const std::string& stem, const std::string& ext) const;

 private:
  static std::string json_string(const std::string& s);
  static std::string meta(int argc, char** argv);

  void lock();

  bool resuming_ = false;
  std::filesystem::path dir_;
  std::ofstream log_;
  int lock_fd_ = -1;  // <dir>/.lock, flock'd
};

#if GM_HEADER_DEFINITIONS
GM_INLINE RunDir::RunDir(std::filesystem::path dir, const Config& cfg, const std::vector<std::string>& may_change,
                         int argc, char** argv, Open how) : dir_(std::move(dir)) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(dir_ / "config.toml", ec);
  if (!exists && how == Open::existing) {
    throw Error("gm: " + dir_.string() + " holds no run (no config.toml); train one first or fix --workdir");
  }
  if (exists) {
    Config saved = cfg;
    saved.load_file(dir_ / "config.toml");
    std::string free_list;
    for (const auto& m : may_change) free_list += (free_list.empty() ? "" : ", ") + m + (m.back() == '.' ? "*" : "");
    for (const auto& k : cfg.keys()) {
      bool free = false;
      for (const auto& m : may_change) free = free || k == m || (m.back() == '.' && k.rfind(m, 0) == 0);
      if (!free && saved.text(k) != cfg.text(k)) {
        throw Error("gm: " + dir_.string() + " holds a run with " + k + " = " + saved.text(k) + ", not " +
                    cfg.text(k) + "; a resumed run may change only " + free_list + " (or choose another --workdir)");
      }
    }
    resuming_ = true;
  }
  std::filesystem::create_directories(dir_ / "samples", ec);
  if (ec) throw Error("gm: " + dir_.string() + ": cannot create folder: " + ec.message());
  lock();
  log_.open(dir_ / "log.txt", std::ios::app);
  if (!log_) throw Error("gm: " + (dir_ / "log.txt").string() + ": cannot write file");
  if (how == Open::create_or_resume) {
    write("config.toml", cfg.to_toml());  // a new run, or training.steps changed
    if (!exists) write("meta.json", meta(argc, argv));
  }
}

GM_INLINE RunDir::~RunDir() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

GM_INLINE void RunDir::lock() {
  const auto file = dir_ / ".lock";
  lock_fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw Error("gm: " + file.string() + ": cannot open: " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const auto n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
    ::close(lock_fd_);
    lock_fd_ = -1;
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    pid.erase(std::remove(pid.begin(), pid.end(), '\n'), pid.end());
    throw Error("gm: run folder " + dir_.string() + " in use by pid " + pid +
                " (another process trains, samples or evaluates in it); wait for it, or choose another --workdir");
  }
  const auto text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, text.data(), text.size(), 0) < 0) {
    throw Error("gm: " + file.string() + ": cannot write: " + std::strerror(errno));
  }
}

GM_INLINE void RunDir::log(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  log_ << line << '\n';
  log_.flush();
}

GM_INLINE auto RunDir::unused(const std::string& stem, const std::string& ext) const -> std::filesystem::path {
  auto p = dir_ / (stem + ext);
  for (int i = 2; std::filesystem::exists(p); ++i) p = dir_ / (stem + "_" + std::to_string(i) + ext);
  return p;
}

GM_INLINE auto RunDir::json_string(const std::string& s) -> std::string {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}

GM_INLINE auto RunDir::meta(int argc, char** argv) -> std::string {
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  std::string commit;
  if (FILE* p = ::popen("git rev-parse HEAD 2>/dev/null", "r")) {
    char buf[64] = "";
    if (std::fgets(buf, sizeof buf, p)) commit = buf;
    ::pclose(p);
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == ' ')) commit.pop_back();
  }
  char when[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? ", " : "") + json_string(argv[i]);
  return "{\n  \"gm_version\": " + json_string(version_string) + ",\n  \"git_commit\": " +
         (commit.empty() ? "null" : json_string(commit)) + ",\n  \"host\": " + json_string(host) +
         ",\n  \"start_time\": " + json_string(when) + ",\n  \"command_line\": [" + cmd + "]\n}\n";
}
#endif  // GM_HEADER_DEFINITIONS

/// Trainer callback: the run's history.  Appends step, loss, lr, grad_norm, ms_per_step to history.csv
/// every step (one whole row per write, so a killed run leaves no torn line), logs a progress line (step,
/// loss, lr, it/s, ETA) every `every` steps, and draws loss.png at the end from the whole run.  When
/// stdout is a terminal the line also redraws in place, at most 10 times a second; carriage returns go to
/// the terminal only, never into log.txt.
///
/// A resumed run first cuts history.csv back to the restored step (rows logged after the checkpoint, and a
/// torn last line, are dropped), so every step appears exactly once, and the plot and `mean_ms` cover the
/// whole run, not only this process's steps.
class History {
 public:
  History(RunDir& dir, int64_t every, int64_t total)
      : dir_(dir), every_(every), total_(total), tty_(::isatty(::fileno(stdout)) == 1) {}

  template <class T>
  void on_train_begin(T& trainer) {
    load(trainer.step());
  }
  template <class T>
  void on_step_end(T&, const StepStats& s) {
    const bool periodic = s.step % every_ == 0 || s.step == total_;
    const auto now = std::chrono::steady_clock::now();
    const bool draw = periodic || (tty_ && now - last_draw_ >= std::chrono::milliseconds(100));
    pending_.push_back(s);
    // Steps whose numbers are still on the device wait for the next line (one read for all of them).
    if (s.values.defined() && !draw && pending_.size() < static_cast<size_t>(every_)) return;
    flush();
    if (!draw) return;
    const double rate_ms = (ms_sum_ - before_ms_) / static_cast<double>(steps_.size() - loaded_);  // this process's
    const double eta = rate_ms * static_cast<double>(total_ - s.step) / 1000;
    char buf[160];
    std::snprintf(buf, sizeof buf, "step %6lld/%lld  loss %.4f  lr %.2e  %.0f it/s  eta %.0fs",
                  static_cast<long long>(s.step), static_cast<long long>(total_), window_ / count_, s.lr,
                  1000 / rate_ms, eta);
    if (periodic) {
      if (tty_) std::printf("\r\033[K");
      dir_.log(buf);
      if (const auto w = spread_warning(); !w.empty()) dir_.log(w);
      window_ = 0;
      count_ = 0;
      window_ms_.clear();
    } else {
      std::printf("\r%s\033[K", buf);  // redraw in place; the terminal only
      std::fflush(stdout);
    }
    last_draw_ = now;
  }
  template <class T>
  void on_train_end(T&) {
    flush();
    plot();
  }

  /// Draw loss.png from the whole history: the raw loss, translucent, under a centred moving average,
  /// on a linear axis fitted to the data (log when it spans more than 30x).
  void plot() const;

  /// Mean milliseconds per training step over the whole run (every row of history.csv).
  double mean_ms() const { return steps_.empty() ? 0 : ms_sum_ / static_cast<double>(steps_.size()); }
  /// Steps recorded, this process's and earlier ones'.
  size_t size() const { return steps_.size(); }

 private:
  static constexpr const char* header = "step,loss,lr,grad_norm,ms_per_step\n";

  /// Once per run: a line when a window's step times vary widely (the 90th percentile over 3x the median and
  /// 5 ms above it; not the first window, nor one of under 20 steps), as when other processes take the
  /// cores from torch's threads; else "".
  std::string spread_warning();

  /// Read history.csv up to `step`, cut what lies beyond (rows after the checkpoint, a torn last line),
  /// and open it for appending.
  void load(int64_t step);

  RunDir& dir_;
  int64_t every_, total_;
  bool tty_;
  std::chrono::steady_clock::time_point last_draw_{};
  io::AppendFile csv_;
  std::vector<double> steps_, losses_;
  double ms_sum_ = 0, before_ms_ = 0, window_ = 0;
  int64_t count_ = 0;
  size_t loaded_ = 0;  // rows read back from an earlier process
  std::vector<double> window_ms_;  // this window's step times
  std::vector<StepStats> pending_;  // steps not yet written (numbers still on the device)

  /// Read the pending steps' numbers (one synchronisation) and write their rows.
  void flush() {
    StepStats::resolve(pending_);
    for (const auto& p : pending_) {
      char row[160];
      std::snprintf(row, sizeof row, "%lld,%.9g,%.9g,%.9g,%.6g\n", static_cast<long long>(p.step), p.loss, p.lr,
                    p.grad_norm, p.ms);
      csv_.append(row);
      steps_.push_back(static_cast<double>(p.step));
      losses_.push_back(p.loss);
      ms_sum_ += p.ms;
      window_ += p.loss;
      window_ms_.push_back(p.ms);
      ++count_;
    }
    pending_.clear();
  }
  bool warned_spread_ = false;
  int64_t windows_ = 0;  // windows of at least 20 steps seen
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void History::plot() const {
  if (steps_.empty()) return;
  const size_t n = steps_.size(), half = std::max<size_t>(1, n / 100);
  std::vector<double> prefix(n + 1, 0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + (std::isfinite(losses_[i]) ? losses_[i] : 0);
  io::Series raw{"loss", steps_, losses_, 0, n > 2000 ? 0.12 : 0.3, 1}, smooth{"moving average", steps_, {}, 11, 1, 2};
  for (size_t i = 0; i < n; ++i) {
    const size_t lo = i >= half ? i - half : 0, hi = std::min(n, i + half + 1);
    smooth.y.push_back((prefix[hi] - prefix[lo]) / static_cast<double>(hi - lo));
  }
  // The y range: the smoothed curve and the raw loss without its 0.5% most extreme points on each side.
  std::vector<double> sorted;
  for (double v : losses_) {
    if (std::isfinite(v)) sorted.push_back(v);
  }
  if (sorted.empty()) return;
  std::sort(sorted.begin(), sorted.end());
  double lo = sorted[sorted.size() / 200], hi = sorted[sorted.size() - 1 - sorted.size() / 200];
  for (double v : smooth.y) lo = std::min(lo, v), hi = std::max(hi, v);
  io::PlotOptions o;
  o.title = "training loss";
  o.x_label = "step";
  o.y_label = "loss";
  o.log_y = lo > 0 && hi / lo > 30;
  o.y_range = std::pair{lo, hi};
  io::write_file_atomic(dir_.path() / "loss.png", io::encode_png(io::line_plot({raw, smooth}, o)));
}

GM_INLINE auto History::spread_warning() -> std::string {
  // Not the first window (its first steps allocate and warm up), nor windows of a few steps.
  if (warned_spread_ || window_ms_.size() < 20 || ++windows_ == 1) return "";
  auto ms = window_ms_;
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2], p90 = ms[ms.size() * 9 / 10];
  if (!(p90 > 3 * median && p90 - median > 5)) return "";
  warned_spread_ = true;
  char buf[400];
  std::snprintf(buf, sizeof buf, "warning: step times vary widely (median %.1f ms, 90th percentile %.1f ms over the last "
                "%zu steps): other processes are taking the cores from torch's threads; --training.threads=1 "
                "loses least on a busy machine (README, \"A busy machine\")", median, p90, ms.size());
  return buf;
}

GM_INLINE void History::load(int64_t step) {
  const auto path = dir_.path() / "history.csv";
  const std::string text = io::read_file(path);
  size_t keep = 0;
  if (text.rfind(header, 0) == 0) {
    keep = std::string_view(header).size();
    for (size_t at = keep; at < text.size();) {
      const size_t nl = text.find('\n', at);
      if (nl == std::string::npos) break;  // a torn last line
      std::stringstream row(text.substr(at, nl - at));
      long long s = 0;
      double loss = 0, lr = 0, norm = 0, ms = 0;
      char c1 = 0, c2 = 0, c3 = 0, c4 = 0;
      if (!(row >> s >> c1 >> loss >> c2 >> lr >> c3 >> norm >> c4 >> ms) || s > step ||
          (!steps_.empty() && static_cast<double>(s) <= steps_.back())) {
        break;
      }
      steps_.push_back(static_cast<double>(s));
      losses_.push_back(loss);
      ms_sum_ += ms;
          keep = at = nl + 1;
    }
  }
  std::error_code ec;
  if (keep == 0) {
    io::write_file_atomic(path, header);
  } else if (keep != text.size()) {
    std::filesystem::resize_file(path, keep, ec);
    if (ec) throw Error("gm: " + path.string() + ": cannot truncate: " + ec.message());
  }
  before_ms_ = ms_sum_;
  loaded_ = steps_.size();
  csv_ = io::AppendFile(path);
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
