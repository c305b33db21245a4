#pragma once
/// @file
/// Pre-emption-safe checkpoints with bit-exact resume, and stopping cleanly on SIGTERM or SIGINT.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/export.hpp>
#include <gm/io/file.hpp>
#include <gm/io/safetensors.hpp>
#include <gm/random.hpp>
#include <gm/train/ema.hpp>
#include <gm/train/posthoc_ema.hpp>
#include <gm/train/trainer.hpp>

#include <torch/types.h>

#include <c10/util/Exception.h>


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
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <zlib.h>
#endif

namespace gm {

/// SIGTERM, SIGINT and SIGUSR1 (a scheduler's pre-emption, Ctrl-C, Slurm's `--signal=USR1@T` warning) only
/// set a flag; the training loop sees it at the end of the step, saves a checkpoint and returns.  `install()`
/// sets the handlers; `requested()` reads the flag.
struct StopSignal {
  static std::atomic<int>& flag();
  static void handler(int sig) { flag().store(sig); }
  static void install();
  static int requested() { return flag().load(); }
  static void reset() { flag().store(0); }
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto StopSignal::flag() -> std::atomic<int>& {
  static std::atomic<int> f{0};
  return f;
}

GM_INLINE void StopSignal::install() {
  std::signal(SIGTERM, &StopSignal::handler);
  std::signal(SIGINT, &StopSignal::handler);
  std::signal(SIGUSR1, &StopSignal::handler);
}
#endif  // GM_HEADER_DEFINITIONS

namespace detail {

/// CRC-32 of any number of bytes (zlib's crc32 takes 32-bit lengths: fed in pieces of 1 GiB).
uint32_t crc_of(std::string_view bytes, size_t piece = size_t{1} << 30);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint32_t crc_of(std::string_view bytes, size_t piece) {
  uLong crc = crc32(0, nullptr, 0);
  for (size_t at = 0; at < bytes.size(); at += piece) {
    const size_t n = std::min(bytes.size() - at, piece);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(crc);
}
#endif

uint32_t file_crc(const std::filesystem::path& p, uint64_t& size);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint32_t file_crc(const std::filesystem::path& p, uint64_t& size) {
  const std::string bytes = io::read_file(p);
  size = bytes.size();
  return crc_of(bytes);
}
#endif

/// Whether every floating-point tensor is finite.
bool all_finite(const std::vector<torch::Tensor>& ts);
#if GM_HEADER_DEFINITIONS
GM_INLINE bool all_finite(const std::vector<torch::Tensor>& ts) {
  for (const auto& t : ts) {
    if (t.defined() && t.is_floating_point() && !torch::isfinite(t).all().template item<bool>()) return false;
  }
  return true;
}
#endif

void fsync_path(const std::filesystem::path& p, bool directory);
#if GM_HEADER_DEFINITIONS
GM_INLINE void fsync_path(const std::filesystem::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) throw IoError("gm: " + p.string() + ": cannot open to sync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError("gm: " + p.string() + ": fsync failed");
}
#endif

}  // namespace detail

/// Trainer callback that writes checkpoints into `dir` every `every` steps, at the end, and when a stop
/// signal arrives (then it stops training), keeping the newest `keep`.
///
/// A checkpoint `step_<N>/` holds, as safetensors files (read by gm's own checked parser, never by
/// LibTorch's archive loader), the model (parameters and buffers), the EMA weights, the optimiser state,
/// the step, the trainer's RNG state (which also fixes the data order, since data are drawn from it)
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

  /// Under data parallelism: only the rank that `writes` (rank 0) saves, every rank waits at `barrier`
  /// after each save so none runs ahead, and `any` makes a signal on any rank stop every rank at the same
  /// step.
  void set_data_parallel(bool writes, std::function<void()> barrier, std::function<bool(bool)> any);

  /// Also save and restore these post-hoc EMA profiles (`PowerEMA`), for an exact resume.
  void set_power_ema(PowerEMA* phema) { phema_ = phema; }

  template <class T>
  bool on_step_end(T& trainer, const StepStats& s) {
    const int sig = StopSignal::requested();
    const bool stop = any_ ? any_(sig != 0) : sig != 0;  // a signal on any rank stops every rank
    if (stop || (every_ > 0 && s.step % every_ == 0)) save_shared(trainer);
    if (stop) {
      say((sig != 0 ? "stopped by signal " + std::to_string(sig) : std::string("stopped (another rank was signalled)")) +
          " at step " + std::to_string(s.step) + "; checkpoint saved");
      stopped_by_signal_ = true;
      return true;
    }
    return false;
  }
  template <class T>
  void on_train_end(T& trainer) {
    if (last_saved_ != trainer.step()) save_shared(trainer);
  }
  /// `save` by the writing rank, then every rank waits for it.
  template <class T>
  void save_shared(T& trainer) {
    if (writes_) save(trainer);
    else last_saved_ = trainer.step();
    if (barrier_) barrier_();
  }
  bool stopped_by_signal() const { return stopped_by_signal_; }

  /// Write a checkpoint of the trainer's current state.  Weights (or EMA weights) that are not finite are
  /// never written: a `gm::NonFiniteError` instead.  A write that fails (a full disk) removes the partial
  /// temporary folder, keeps every earlier checkpoint, and throws a `gm::IoError` naming the path, the
  /// reason and the checkpoint.
  template <class T>
  void save(T& trainer) {
    namespace fs = std::filesystem;
    const int64_t step = trainer.step();
    const std::string name = "step_" + std::to_string(step);
    if (!detail::all_finite(trainer.net()->parameters()) || (ema_ && !detail::all_finite(ema_->shadow()))) {
      throw NonFiniteError("gm: the weights are not finite at step " + std::to_string(step) +
                               "; checkpoint " + name + " not written",
                           step, std::nan(""), std::nan(""));
    }
    const std::vector<std::pair<std::string, std::string>> files{
        {"model.safetensors", io::encode_safetensors(io::named_tensors(*trainer.net()))},
        {"optimizer.safetensors", io::encode_safetensors(trainer.optimizer().state_tensors())},
        {"state.safetensors", io::encode_safetensors(state_tensors(trainer))},
        {"config.toml", config_}};

    const fs::path final_dir = dir_ / name;
    const fs::path tmp = dir_ / (".tmp_" + name);
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) throw IoError("gm: " + tmp.string() + ": cannot create folder: " + ec.message());
    try {
      std::ostringstream marker;
      for (const auto& [file, bytes] : files) {
        io::write_file_atomic(tmp / file, bytes, "checkpoint " + name);
        marker << file << ' ' << bytes.size() << ' ' << detail::crc_of(bytes) << '\n';
      }
      detail::fsync_path(tmp, true);
      fs::remove_all(final_dir, ec);  // an uncommitted leftover of an earlier try at this step
      fs::rename(tmp, final_dir, ec);
      if (ec) throw IoError("gm: " + final_dir.string() + ": cannot rename checkpoint into place: " + ec.message());
      detail::fsync_path(dir_, true);
      io::write_file_atomic(final_dir / "COMMIT", marker.str(), "checkpoint " + name);
      detail::fsync_path(final_dir, true);
    } catch (...) {
      fs::remove_all(tmp, ec);
      if (!fs::exists(final_dir / "COMMIT", ec)) fs::remove_all(final_dir, ec);
      throw;
    }
    last_saved_ = step;
    prune(step);
  }

  /// Load the newest valid checkpoint into the trainer (and the EMA); returns its step, or nothing when
  /// there is none.  One that fails its marker check or does not load (a damaged or foreign file, a folder
  /// in place of a file, tensors that do not fit the model) is skipped with the reason logged; every file
  /// is parsed and checked before anything in the trainer changes, so a skipped one changes nothing.
  /// When every checkpoint is bad, the run says so and starts from step 0.
  template <class T>
  std::optional<int64_t> restore_latest(T& trainer) {
    const auto all = list();
    if (all.empty()) return std::nullopt;
    for (const auto& [step, path] : all) {
      std::error_code ec;
      if (std::filesystem::exists(path / "model.pt", ec) && !std::filesystem::exists(path / "model.safetensors", ec)) {
        throw Error("gm: " + path.string() + " was written by gm 0.1 (torch archives), which this gm does not read; "
                    "finish that run with gm 0.1, or start a new --workdir");
      }
      std::string why;
      if (!valid(path, why)) {
        say("skipping checkpoint " + path.string() + ": " + why);
        continue;
      }
      try {
        load(trainer, path);
      } catch (const std::exception& e) {
        say("skipping checkpoint " + path.string() + ": cannot be loaded: " + first_line(e));
        continue;
      }
      last_saved_ = step;
      say("resumed from " + path.string() + (note_.empty() ? "" : "; " + note_));
      return step;
    }
    say("no valid checkpoint in " + dir_.string() + "; starting from step 0");
    return std::nullopt;
  }

  /// Load the checkpoint folder `path` (checked like those of restore_latest) into the trainer and the EMA;
  /// returns its step.  A missing, damaged or foreign checkpoint is a one-line `gm::Error` naming it.
  template <class T>
  int64_t restore(T& trainer, const std::filesystem::path& path) {
    std::string why;
    if (!valid(path, why)) throw Error("gm: checkpoint " + path.string() + " cannot be used: " + why);
    try {
      load(trainer, path);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error("gm: checkpoint " + path.string() + " cannot be loaded: " + first_line(e));
    }
    say("loaded " + path.string() + (note_.empty() ? "" : "; " + note_));
    return trainer.step();
  }

  /// Checkpoint folders, newest first.
  std::vector<std::pair<int64_t, std::filesystem::path>> list() const;

  /// Whether a checkpoint folder has its COMMIT marker and every file listed there with its size and CRC.
  static bool valid(const std::filesystem::path& path, std::string& why);

 private:
  bool writes_ = true;
  std::function<void()> barrier_;
  std::function<bool(bool)> any_;

  void say(const std::string& line);
  /// After writing `step`: keep the newest `keep` committed checkpoints up to it (the one just written
  /// always among them); remove older ones, uncommitted folders (never restorable), stale temporary
  /// folders, and checkpoints newer than `step` (a resumed run restored an older one, so those were
  /// invalid or abandoned).
  void prune(int64_t step);

  static std::string first_line(const std::exception& e);

  /// The step, the RNG state and the EMA as named tensors (a checkpoint's state.safetensors).
  template <class T>
  io::NamedTensors state_tensors(T& trainer) const {
    io::NamedTensors out{{"step", torch::tensor(trainer.step(), torch::kLong)},
                         {"rng", trainer.generator().get_state()},
                         {"rng_device", text_tensor(device_type_text(trainer.generator().device()))}};
    if (trainer.precision() == Precision::fp16) {  // the dynamic loss scale: scale, good steps, skipped steps
      const auto& s = trainer.loss_scaler();
      out.emplace_back("loss_scale", torch::tensor({s.scale, static_cast<double>(s.good_steps), static_cast<double>(s.skipped)},
                                                   torch::kFloat64));
    }
    if (ema_) {
      out.emplace_back("ema_updates", torch::tensor(ema_->updates(), torch::kLong));
      for (size_t i = 0; i < ema_->shadow().size(); ++i) out.emplace_back("ema_" + std::to_string(i), ema_->shadow()[i]);
    }
    if (phema_ && phema_->active() && phema_->step() > 0) {
      for (size_t k = 0; k < phema_->sigma_rels().size(); ++k) {
        const auto& prof = phema_->profile(k);
        for (size_t i = 0; i < prof.size(); ++i) out.emplace_back(phema_name(k, i), prof[i].second);
      }
    }
    return out;
  }

  /// Load the checkpoint at `path`: parse and check every file against the trainer first (names, shapes,
  /// dtypes, sizes), then copy; a `gm::Error` says what does not fit, before anything changed.
  template <class T>
  void load(T& trainer, const std::filesystem::path& path) {
    auto read = [&](const char* file) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path / file, ec)) throw Error(std::string(file) + " is not a file");
      return io::parse_safetensors(io::read_file(path / file), path / file);
    };
    const auto model = read("model.safetensors");
    const auto optim = read("optimizer.safetensors");
    const auto state = read("state.safetensors");

    const auto targets = io::named_tensors(*trainer.net());
    if (model.size() != targets.size()) {
      throw Error("model.safetensors holds " + std::to_string(model.size()) + " tensors, the model " +
                  std::to_string(targets.size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      if (model[i].first != targets[i].first || !fits(model[i].second, targets[i].second)) {
        throw Error("model.safetensors: '" + model[i].first + "' does not fit the model's '" + targets[i].first + "'");
      }
    }
    if (const auto why = trainer.optimizer().check_state_tensors(optim); !why.empty()) {
      throw Error("optimizer.safetensors: " + why);
    }
    torch::Tensor step, rng, rng_device, updates, loss_scale;
    std::vector<torch::Tensor> shadow, phema;  // phema: profile k's parameter i at k * params + i
    const auto rng_now = trainer.generator().get_state();
    const auto params = trainer.net()->parameters();
    for (const auto& [name, t] : state) {
      if (name == "step" || name == "ema_updates") {
        if (t.dim() != 0 || t.scalar_type() != torch::kLong || t.template item<int64_t>() < 0) {
          throw Error("state.safetensors: " + name + " must be an int64 >= 0");
        }
        (name == "step" ? step : updates) = t;
      } else if (name == "loss_scale") {
        if (t.dim() != 1 || t.size(0) != 3 || t.scalar_type() != torch::kFloat64 || !(t[0].template item<double>() >= 1)) {
          throw Error("state.safetensors: loss_scale must be float64 [scale >= 1, good steps, skipped steps]");
        }
        loss_scale = t;
      } else if (name == "rng") {
        rng = t;
      } else if (name == "rng_device") {
        if (t.dim() != 1 || t.scalar_type() != torch::kUInt8) throw Error("state.safetensors: rng_device must be uint8 text");
        rng_device = t;
      } else if (ema_ && name == "ema_" + std::to_string(shadow.size()) && shadow.size() < params.size() &&
                 fits(t, params[shadow.size()])) {
        shadow.push_back(t);
      } else if (phema_ && phema_->active() && phema.size() < phema_->sigma_rels().size() * params.size() &&
                 name == phema_name(phema.size() / params.size(), phema.size() % params.size()) &&
                 fits(t, params[phema.size() % params.size()])) {
        phema.push_back(t);
      } else {
        throw Error("state.safetensors: unexpected or misfitting tensor '" + name + "'");
      }
    }
    if (!step.defined() || !rng.defined() || (ema_ && !updates.defined()) ||
        (ema_ && !shadow.empty() && shadow.size() != params.size())) {
      throw Error("state.safetensors: incomplete (step, rng, EMA)");
    }
    // A generator's state is the device's own (the CPU's Mersenne twister, CUDA's Philox seed and offset):
    // one saved on another device cannot be set.  Such a checkpoint resumes with everything else exact and
    // the random stream restarted from (seed, step); checkpoints before rng_device are told by the size.
    const std::string here = device_type_text(trainer.generator().device());
    const std::string saved = rng_device.defined() ? text_of(rng_device) : fits(rng, rng_now) ? here : "another device";
    const bool moved = saved != here;
    if (!moved && !fits(rng, rng_now)) throw Error("state.safetensors: rng does not fit this generator");
    if (phema_ && phema_->active() && step.template item<int64_t>() > 0 &&
        phema.size() != phema_->sigma_rels().size() * params.size()) {
      throw Error("state.safetensors: no post-hoc EMA profiles (this run's checkpoints were written without training.phema)");
    }

    note_.clear();
    torch::NoGradGuard ng;  // everything fits: apply
    for (size_t i = 0; i < targets.size(); ++i) targets[i].second.copy_(model[i].second);
    trainer.optimizer().load_state_tensors(optim);
    if (moved) {
      trainer.generator().set_current_seed(mix_seed(trainer.options().seed(), static_cast<uint64_t>(step.template item<int64_t>())));
      note_ = "the checkpoint's random stream was saved on " + saved + " and cannot be set on " + here +
              ": weights, optimiser state and EMA resume exactly, the random stream restarts from (seed, step)";
    } else {
      trainer.generator().set_state(rng);
    }
    trainer.set_step(step.template item<int64_t>());
    if (loss_scale.defined()) {  // kept by an fp16 run; a run resumed in another precision ignores it
      auto& s = trainer.loss_scaler();
      s.scale = loss_scale[0].template item<double>();
      s.good_steps = static_cast<int64_t>(loss_scale[1].template item<double>());
      s.skipped = static_cast<int64_t>(loss_scale[2].template item<double>());
    }
    // The averages live where the parameters do (a file's tensors are read onto the CPU).
    for (size_t i = 0; i < shadow.size(); ++i) shadow[i] = shadow[i].to(params[i].device());
    for (size_t i = 0; i < phema.size(); ++i) phema[i] = phema[i].to(params[i % params.size()].device());
    if (ema_) ema_->restore(std::move(shadow), updates.template item<int64_t>());
    if (phema_ && phema_->active()) phema_->restore(*trainer.net(), phema, trainer.step());
  }

  static std::string phema_name(size_t k, size_t i) { return "phema_" + std::to_string(k) + "_" + std::to_string(i); }

  static bool fits(const torch::Tensor& have, const torch::Tensor& want);
  /// "cpu", "cuda": the kind of device whose generator state a checkpoint holds (any CUDA device's fits another's).
  static std::string device_type_text(torch::Device d) { return torch::Device(d.type()).str(); }
  static torch::Tensor text_tensor(const std::string& s) {
    return torch::from_blob(const_cast<char*>(s.data()), {static_cast<int64_t>(s.size())}, torch::kUInt8).clone();
  }
  static std::string text_of(const torch::Tensor& t) {
    const auto c = t.contiguous();
    return {reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel())};
  }

  std::filesystem::path dir_;
  int64_t every_, keep_;
  std::string config_;
  EMA* ema_;
  PowerEMA* phema_ = nullptr;
  std::function<void(const std::string&)> log_;
  int64_t last_saved_ = -1;
  bool stopped_by_signal_ = false;
  std::string note_;  // what the last load could not restore exactly, said with "resumed from"
};

#if GM_HEADER_DEFINITIONS
GM_INLINE void Checkpointer::set_data_parallel(bool writes, std::function<void()> barrier,
                                               std::function<bool(bool)> any) {
  writes_ = writes, barrier_ = std::move(barrier), any_ = std::move(any);
}

GM_INLINE auto Checkpointer::list() const -> std::vector<std::pair<int64_t, std::filesystem::path>> {
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

GM_INLINE auto Checkpointer::valid(const std::filesystem::path& path, std::string& why) -> bool {
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
    if (!std::filesystem::is_regular_file(path / file, ec)) {
      why = file + " is not a file";
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

GM_INLINE void Checkpointer::say(const std::string& line) {
  if (log_) log_(line);
}

GM_INLINE void Checkpointer::prune(int64_t step) {
  std::error_code ec;
  int64_t kept = 0;
  for (const auto& [s, path] : list()) {
    const bool committed = std::filesystem::is_regular_file(path / "COMMIT", ec);
    if (s == step || (s < step && committed && kept < keep_)) {
      ++kept;
      continue;
    }
    std::filesystem::remove_all(path, ec);
  }
  for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    if (e.path().filename().string().rfind(".tmp_step_", 0) == 0) std::filesystem::remove_all(e.path(), ec);
  }
}

GM_INLINE auto Checkpointer::first_line(const std::exception& e) -> std::string {
  std::string s = e.what();
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) s = c->what_without_backtrace();
  return gm::first_line(s);
}

GM_INLINE auto Checkpointer::fits(const torch::Tensor& have, const torch::Tensor& want) -> bool {
  return have.sizes().equals(want.sizes()) && have.scalar_type() == want.scalar_type();
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
