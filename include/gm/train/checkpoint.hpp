#pragma once
/// @file
/// Pre-emption-safe checkpoints with bit-exact resume, and stopping cleanly on SIGTERM or SIGINT.

#include <gm/error.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/trainer.hpp>

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/types.h>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace gm {

/// SIGTERM and SIGINT (Slurm pre-emption, Ctrl-C) only set a flag; the training loop sees it at the end of
/// the step, saves a checkpoint and returns.  `install()` sets the handlers; `requested()` reads the flag.
struct StopSignal {
  static std::atomic<int>& flag() {
    static std::atomic<int> f{0};
    return f;
  }
  static void handler(int sig) { flag().store(sig); }
  static void install() {
    std::signal(SIGTERM, &StopSignal::handler);
    std::signal(SIGINT, &StopSignal::handler);
  }
  static int requested() { return flag().load(); }
  static void reset() { flag().store(0); }
};

namespace detail {

inline uint32_t file_crc(const std::filesystem::path& p, uint64_t& size) {
  std::ifstream f(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size = bytes.size();
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

inline void fsync_path(const std::filesystem::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw Error("gm: " + p.string() + ": cannot open to sync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error("gm: " + p.string() + ": fsync failed");
}

inline void write_text_synced(const std::filesystem::path& p, const std::string& text) {
  {
    std::ofstream f(p, std::ios::binary);
    if (!f || !(f << text) || !f.flush()) throw Error("gm: " + p.string() + ": cannot write file");
  }
  fsync_path(p, false);
}

}  // namespace detail

/// Trainer callback that writes checkpoints into `dir` every `every` steps, at the end, and when a stop
/// signal arrives (then it stops training), keeping the newest `keep`.
///
/// A checkpoint `step_<N>/` holds the model (parameters and buffers), the EMA weights, the optimiser
/// state, the step, the trainer's RNG state (which also fixes the data order, since data are drawn from it)
/// and the resolved config.  It is written into a temporary folder, each file fsynced, renamed into place,
/// and then a COMMIT marker listing every file's size and CRC-32 is written last.  `restore_latest` loads
/// the newest checkpoint whose marker and files check out, and skips, saying so, one that is truncated or
/// has no marker.  Training N steps, stopping, and resuming to 2N gives bit-identical weights on the CPU.
class Checkpointer {
 public:
  Checkpointer(std::filesystem::path dir, int64_t every, int64_t keep, std::string config_toml, EMA* ema = nullptr,
               std::function<void(const std::string&)> log = {})
      : dir_(std::move(dir)), every_(every), keep_(std::max<int64_t>(1, keep)), config_(std::move(config_toml)),
        ema_(ema), log_(std::move(log)) {}

  template <class T>
  bool on_step_end(T& trainer, const StepStats& s) {
    const int sig = StopSignal::requested();
    if (sig != 0 || (every_ > 0 && s.step % every_ == 0)) save(trainer);
    if (sig != 0) {
      say("stopped by signal " + std::to_string(sig) + " at step " + std::to_string(s.step) + "; checkpoint saved");
      stopped_by_signal_ = true;
      return true;
    }
    return false;
  }
  template <class T>
  void on_train_end(T& trainer) {
    if (last_saved_ != trainer.step()) save(trainer);
  }
  bool stopped_by_signal() const { return stopped_by_signal_; }

  /// Write a checkpoint of the trainer's current state.
  template <class T>
  void save(T& trainer) {
    namespace fs = std::filesystem;
    const int64_t step = trainer.step();
    const fs::path final_dir = dir_ / ("step_" + std::to_string(step));
    const fs::path tmp = dir_ / (".tmp_step_" + std::to_string(step));
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) throw Error("gm: " + tmp.string() + ": cannot create folder: " + ec.message());
    {
      torch::serialize::OutputArchive a;
      trainer.net()->save(a);
      a.save_to((tmp / "model.pt").string());
    }
    {
      torch::serialize::OutputArchive a;
      trainer.optimizer().save(a);
      a.save_to((tmp / "optimizer.pt").string());
    }
    {
      torch::serialize::OutputArchive a;
      a.write("step", torch::tensor(step, torch::kLong));
      a.write("rng", trainer.generator().get_state());
      if (ema_) {
        a.write("ema_updates", torch::tensor(ema_->updates(), torch::kLong));
        for (size_t i = 0; i < ema_->shadow().size(); ++i) a.write("ema_" + std::to_string(i), ema_->shadow()[i]);
      }
      a.save_to((tmp / "state.pt").string());
    }
    detail::write_text_synced(tmp / "config.toml", config_);
    std::ostringstream marker;
    for (const char* f : {"model.pt", "optimizer.pt", "state.pt", "config.toml"}) {
      detail::fsync_path(tmp / f, false);
      uint64_t size = 0;
      const uint32_t crc = detail::file_crc(tmp / f, size);
      marker << f << ' ' << size << ' ' << crc << '\n';
    }
    detail::fsync_path(tmp, true);
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir, ec);
    if (ec) throw Error("gm: " + final_dir.string() + ": cannot rename checkpoint into place: " + ec.message());
    detail::fsync_path(dir_, true);
    detail::write_text_synced(final_dir / "COMMIT.tmp", marker.str());
    fs::rename(final_dir / "COMMIT.tmp", final_dir / "COMMIT", ec);
    if (ec) throw Error("gm: " + final_dir.string() + ": cannot commit checkpoint: " + ec.message());
    detail::fsync_path(final_dir, true);
    last_saved_ = step;
    prune();
  }

  /// Load the newest valid checkpoint into the trainer (and the EMA); returns its step, or nothing when
  /// there is none.  Invalid ones are skipped with a message.
  template <class T>
  std::optional<int64_t> restore_latest(T& trainer) {
    for (const auto& [step, path] : list()) {
      std::string why;
      if (!valid(path, why)) {
        say("skipping checkpoint " + path.string() + ": " + why);
        continue;
      }
      {
        torch::serialize::InputArchive a;
        a.load_from((path / "model.pt").string());
        trainer.net()->load(a);
      }
      {
        torch::serialize::InputArchive a;
        a.load_from((path / "optimizer.pt").string());
        trainer.optimizer().load(a);
      }
      torch::serialize::InputArchive a;
      a.load_from((path / "state.pt").string());
      torch::Tensor step_t, rng;  // one fresh tensor per read: read() rebinds storage it cannot resize
      a.read("step", step_t);
      trainer.set_step(step_t.template item<int64_t>());
      a.read("rng", rng);
      trainer.generator().set_state(rng.clone());
      if (ema_) {
        std::vector<torch::Tensor> shadow;
        for (size_t i = 0;; ++i) {
          torch::Tensor s;
          if (!a.try_read("ema_" + std::to_string(i), s)) break;
          shadow.push_back(s.clone());
        }
        torch::Tensor updates;
        a.read("ema_updates", updates);
        ema_->restore(std::move(shadow), updates.template item<int64_t>());
      }
      last_saved_ = step;
      say("resumed from " + path.string());
      return step;
    }
    return std::nullopt;
  }

  /// Checkpoint folders, newest first.
  std::vector<std::pair<int64_t, std::filesystem::path>> list() const {
    std::vector<std::pair<int64_t, std::filesystem::path>> out;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir_, ec)) return out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("step_", 0) != 0) continue;
      try {
        out.emplace_back(std::stoll(name.substr(5)), e.path());
      } catch (...) {
      }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    return out;
  }

  /// Whether a checkpoint folder has its COMMIT marker and every file listed there with its size and CRC.
  static bool valid(const std::filesystem::path& path, std::string& why) {
    std::ifstream m(path / "COMMIT");
    if (!m) {
      why = "no COMMIT marker (interrupted while writing)";
      return false;
    }
    std::string file;
    uint64_t size = 0;
    uint32_t crc = 0;
    int files = 0;
    while (m >> file >> size >> crc) {
      uint64_t actual = 0;
      std::error_code ec;
      if (!std::filesystem::exists(path / file, ec)) {
        why = file + " is missing";
        return false;
      }
      const uint32_t c = detail::file_crc(path / file, actual);
      if (actual != size) {
        why = file + " has " + std::to_string(actual) + " bytes, expected " + std::to_string(size) + " (truncated)";
        return false;
      }
      if (c != crc) {
        why = file + " fails its checksum";
        return false;
      }
      ++files;
    }
    if (files < 4) {
      why = "COMMIT marker is incomplete";
      return false;
    }
    return true;
  }

 private:
  void say(const std::string& line) {
    if (log_) log_(line);
  }
  void prune() {
    auto all = list();
    for (size_t i = static_cast<size_t>(keep_); i < all.size(); ++i) {
      std::error_code ec;
      std::filesystem::remove_all(all[i].second, ec);
    }
  }

  std::filesystem::path dir_;
  int64_t every_, keep_;
  std::string config_;
  EMA* ema_;
  std::function<void(const std::string&)> log_;
  int64_t last_saved_ = -1;
  bool stopped_by_signal_ = false;
};

}  // namespace gm
