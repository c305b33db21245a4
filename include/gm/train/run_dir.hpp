#pragma once
/// @file
/// The experiment folder (`--workdir`): resolved config, log, history, samples and plots of one run.

#include <gm/error.hpp>
#include <gm/io/plot.hpp>
#include <gm/train/trainer.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gm {

/// One run's folder.  It refuses a folder that already holds a run, so nothing written is overwritten.
/// `log` prints a line and appends it to log.txt.
class RunDir {
 public:
  explicit RunDir(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    if (std::filesystem::exists(dir_ / "config.toml", ec)) {
      throw Error("gm: " + dir_.string() + " already holds a run (config.toml); choose another --workdir");
    }
    std::filesystem::create_directories(dir_ / "samples", ec);
    if (ec) throw Error("gm: " + dir_.string() + ": cannot create folder: " + ec.message());
    log_.open(dir_ / "log.txt", std::ios::app);
    if (!log_) throw Error("gm: " + (dir_ / "log.txt").string() + ": cannot write file");
  }

  const std::filesystem::path& path() const { return dir_; }

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

 private:
  std::filesystem::path dir_;
  std::ofstream log_;
};

/// Trainer callback: appends step, loss, lr, grad_norm, ms_per_step to history.csv every step, prints a
/// progress line every `every` steps (plain lines, no carriage returns), and plots loss.png at the end.
class History {
 public:
  History(RunDir& dir, int64_t every, int64_t total) : dir_(dir), every_(every), total_(total) {
    csv_.open(dir.path() / "history.csv");
    csv_ << "step,loss,lr,grad_norm,ms_per_step\n";
  }
  template <class T>
  void on_step_end(T&, const StepStats& s) {
    csv_ << s.step << ',' << s.loss << ',' << s.lr << ',' << s.grad_norm << ',' << s.ms << '\n';
    steps_.push_back(static_cast<double>(s.step));
    losses_.push_back(s.loss);
    ms_sum_ += s.ms;
    window_ += s.loss;
    ++count_;
    if (s.step % every_ == 0 || s.step == total_) {
      const double ms = ms_sum_ / static_cast<double>(steps_.size());
      const double eta = ms * static_cast<double>(total_ - s.step) / 1000;
      char buf[160];
      std::snprintf(buf, sizeof buf, "step %6lld/%lld  loss %.4f  lr %.2e  %.0f it/s  eta %.0fs",
                    static_cast<long long>(s.step), static_cast<long long>(total_), window_ / count_, s.lr,
                    1000 / ms, eta);
      dir_.log(buf);
      window_ = 0;
      count_ = 0;
    }
  }
  template <class T>
  void on_train_end(T&) {
    csv_.flush();
    io::PlotOptions o;
    o.title = "training loss";
    o.x_label = "step";
    o.y_label = "loss";
    o.log_y = true;
    io::write_png(dir_.path() / "loss.png", io::line_plot({{"loss", steps_, losses_}}, o));
  }
  /// Mean milliseconds per training step so far.
  double mean_ms() const { return steps_.empty() ? 0 : ms_sum_ / static_cast<double>(steps_.size()); }

 private:
  RunDir& dir_;
  int64_t every_, total_;
  std::ofstream csv_;
  std::vector<double> steps_, losses_;
  double ms_sum_ = 0, window_ = 0;
  int64_t count_ = 0;
};

}  // namespace gm
