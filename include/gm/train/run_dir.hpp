#pragma once
/// @file
/// The experiment folder (`--workdir`): resolved config, log, history, samples and plots of one run.

#include <gm/error.hpp>
#include <gm/io/config.hpp>
#include <gm/io/plot.hpp>
#include <gm/train/trainer.hpp>
#include <gm/version.hpp>

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace gm {

/// One run's folder (`--workdir`).
///
/// `create_or_resume`: a new folder gets config.toml (the resolved config) and meta.json (version, git
/// commit if known, host, start time, command line); a folder that already holds a run is resumed when its
/// config matches in every key but those in `may_change`, and refused, naming the key, otherwise.
/// `existing`: the folder must hold a run (for `--mode=sample`).  `log` prints a line and appends it to
/// log.txt.  Nothing already written is overwritten.
class RunDir {
 public:
  enum class Open { create_or_resume, existing };

  RunDir(std::filesystem::path dir, const Config& cfg, const std::vector<std::string>& may_change, int argc,
         char** argv, Open how = Open::create_or_resume)
      : dir_(std::move(dir)) {
    std::error_code ec;
    const bool exists = std::filesystem::exists(dir_ / "config.toml", ec);
    if (!exists && how == Open::existing) {
      throw Error("gm: " + dir_.string() + " holds no run (no config.toml); train one first or fix --workdir");
    }
    if (exists) {
      Config saved = cfg;
      saved.load_file(dir_ / "config.toml");
      for (const auto& k : cfg.keys()) {
        bool free = false;
        for (const auto& m : may_change) free = free || k == m || (m.back() == '.' && k.rfind(m, 0) == 0);
        if (!free && saved.text(k) != cfg.text(k)) {
          throw Error("gm: " + dir_.string() + " holds a run with " + k + " = " + saved.text(k) + ", not " +
                      cfg.text(k) + "; only training.steps may change when resuming (or choose another --workdir)");
        }
      }
      resuming_ = true;
    }
    std::filesystem::create_directories(dir_ / "samples", ec);
    if (ec) throw Error("gm: " + dir_.string() + ": cannot create folder: " + ec.message());
    log_.open(dir_ / "log.txt", std::ios::app);
    if (!log_) throw Error("gm: " + (dir_ / "log.txt").string() + ": cannot write file");
    if (how == Open::create_or_resume) {
      write("config.toml", cfg.to_toml());  // a new run, or training.steps changed
      if (!exists) write("meta.json", meta(argc, argv));
    }
  }

  const std::filesystem::path& path() const { return dir_; }
  /// Whether the folder already held this run.
  bool resuming() const { return resuming_; }

  /// Print `line` to stdout and append it to log.txt.
  void log(const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    log_ << line << '\n';
    log_.flush();
  }

  /// Write a text file into the folder.
  void write(const std::string& name, const std::string& text) {
    std::ofstream f(dir_ / name);
    if (!f || !(f << text)) throw Error("gm: " + (dir_ / name).string() + ": cannot write file");
  }

  /// A path in the folder that does not exist yet: `stem + ext`, else `stem_2 + ext`, `stem_3 + ext`, ...
  std::filesystem::path unused(const std::string& stem, const std::string& ext) const {
    auto p = dir_ / (stem + ext);
    for (int i = 2; std::filesystem::exists(p); ++i) p = dir_ / (stem + "_" + std::to_string(i) + ext);
    return p;
  }

 private:
  static std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      if (static_cast<unsigned char>(c) < 0x20) continue;
      out += c;
    }
    return out + "\"";
  }
  static std::string meta(int argc, char** argv) {
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

  bool resuming_ = false;
 private:
  std::filesystem::path dir_;
  std::ofstream log_;
};

/// Trainer callback: appends step, loss, lr, grad_norm, ms_per_step to history.csv every step, logs a
/// progress line (step, loss, lr, it/s, ETA) every `every` steps, and plots loss.png at the end.  When
/// stdout is a terminal the line also redraws in place, at most 10 times a second; carriage returns go to
/// the terminal only, never into log.txt.
class History {
 public:
  History(RunDir& dir, int64_t every, int64_t total)
      : dir_(dir), every_(every), total_(total), tty_(::isatty(::fileno(stdout)) == 1) {
    const bool fresh = !std::filesystem::exists(dir.path() / "history.csv");
    csv_.open(dir.path() / "history.csv", std::ios::app);  // a resumed run appends
    if (fresh) csv_ << "step,loss,lr,grad_norm,ms_per_step\n";
  }
  template <class T>
  void on_step_end(T&, const StepStats& s) {
    csv_ << s.step << ',' << s.loss << ',' << s.lr << ',' << s.grad_norm << ',' << s.ms << '\n';
    steps_.push_back(static_cast<double>(s.step));
    losses_.push_back(s.loss);
    ms_sum_ += s.ms;
    window_ += s.loss;
    ++count_;
    const bool periodic = s.step % every_ == 0 || s.step == total_;
    const auto now = std::chrono::steady_clock::now();
    if (!periodic && !(tty_ && now - last_draw_ >= std::chrono::milliseconds(100))) return;
    const double ms = ms_sum_ / static_cast<double>(steps_.size());
    const double eta = ms * static_cast<double>(total_ - s.step) / 1000;
    char buf[160];
    std::snprintf(buf, sizeof buf, "step %6lld/%lld  loss %.4f  lr %.2e  %.0f it/s  eta %.0fs",
                  static_cast<long long>(s.step), static_cast<long long>(total_), window_ / count_, s.lr, 1000 / ms,
                  eta);
    if (periodic) {
      if (tty_) std::printf("\r\033[K");
      dir_.log(buf);
      window_ = 0;
      count_ = 0;
    } else {
      std::printf("\r%s\033[K", buf);  // redraw in place; the terminal only
      std::fflush(stdout);
    }
    last_draw_ = now;
  }
  template <class T>
  void on_train_end(T&) {
    csv_.flush();
    io::PlotOptions o;
    o.title = "training loss";
    o.x_label = "step";
    o.y_label = "loss";
    o.log_y = true;
    // The mean loss over at most 200 equal windows of steps: readable however long the run.
    const size_t bins = std::min<size_t>(200, steps_.size());
    io::Series mean{"loss (window mean)", {}, {}};
    for (size_t b = 0; b < bins; ++b) {
      const size_t lo = b * steps_.size() / bins, hi = (b + 1) * steps_.size() / bins;
      double sum = 0;
      for (size_t i = lo; i < hi; ++i) sum += losses_[i];
      mean.x.push_back(steps_[hi - 1]);
      mean.y.push_back(sum / static_cast<double>(hi - lo));
    }
    io::write_png(dir_.path() / "loss.png", io::line_plot({mean}, o));
  }
  /// Mean milliseconds per training step so far.
  double mean_ms() const { return steps_.empty() ? 0 : ms_sum_ / static_cast<double>(steps_.size()); }

 private:
  RunDir& dir_;
  int64_t every_, total_;
  bool tty_;
  std::chrono::steady_clock::time_point last_draw_{};
  std::ofstream csv_;
  std::vector<double> steps_, losses_;
  double ms_sum_ = 0, window_ = 0;
  int64_t count_ = 0;
};

}  // namespace gm
