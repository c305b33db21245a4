#pragma once
/// @file
/// `gm::StepProfiler`: a Trainer callback that records a few training steps with LibTorch's profiler (Kineto,
/// the engine behind `torch.profiler`) and says where their time went: a Chrome trace and a table of each
/// operator's self time, as `prof.key_averages().table(sort_by="self_cpu_time_total")` prints it in Python.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <c10/core/Device.h>
#if GM_HEADER_DEFINITIONS
#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/cuda.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace gm {

/// One operator's share of the profiled steps.
struct ProfileRow {
  std::string name;   ///< the ATen operator ("aten::convolution_backward") or CUDA kernel name
  double self_ms = 0;  ///< time in it, children excluded, per step
  int64_t calls = 0;   ///< calls per step (rounded)
};

/// What a profile found: host operators by self time and, on a GPU, kernels by device time, per step.
struct ProfileSummary {
  int64_t steps = 0;
  double host_ms = 0;    ///< the summed self time of the host operators, per step
  double device_ms = 0;  ///< the summed time of the device kernels, per step (0 on a CPU)
  std::vector<ProfileRow> host, device;  ///< largest first

  /// The table: one line per operator, `rows` of each kind.
  std::string table(size_t rows = 20) const;
};

namespace detail {

/// Self times from nested intervals on each thread: an event's children are the events that start and end
/// inside it on the same thread.  `events`: (thread, start ns, duration ns, name).
std::map<std::string, std::pair<double, int64_t>> self_times(
    std::vector<std::tuple<uint64_t, uint64_t, uint64_t, std::string>> events);

#if GM_HEADER_DEFINITIONS
GM_INLINE std::map<std::string, std::pair<double, int64_t>> self_times(
    std::vector<std::tuple<uint64_t, uint64_t, uint64_t, std::string>> events) {
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    if (std::get<0>(a) != std::get<0>(b)) return std::get<0>(a) < std::get<0>(b);
    if (std::get<1>(a) != std::get<1>(b)) return std::get<1>(a) < std::get<1>(b);
    return std::get<2>(a) > std::get<2>(b);  // the enclosing event first
  });
  std::vector<double> child(events.size(), 0.0);
  std::vector<size_t> open;  // indices of the enclosing events, innermost last
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& [thread, start, dur, name] = events[i];
    while (!open.empty()) {
      const auto& p = events[open.back()];
      if (std::get<0>(p) == thread && start < std::get<1>(p) + std::get<2>(p)) break;
      open.pop_back();
    }
    if (!open.empty()) child[open.back()] += static_cast<double>(dur);
    open.push_back(i);
  }
  std::map<std::string, std::pair<double, int64_t>> out;
  for (size_t i = 0; i < events.size(); ++i) {
    auto& [ns, calls] = out[std::get<3>(events[i])];
    ns += std::max(0.0, static_cast<double>(std::get<2>(events[i])) - child[i]);
    ++calls;
  }
  return out;
}

/// Kineto writes a line to stderr as it starts and stops ("USDT: ... profiler_start") and, on a machine
/// without a GPU, an error about the device count: not the user's business.  Holds stderr on /dev/null.
class QuietStderr {
 public:
  QuietStderr() {
    std::cerr.flush();
    std::fflush(stderr);
    saved_ = ::dup(2);
    const int null = ::open("/dev/null", O_WRONLY);
    if (saved_ >= 0 && null >= 0) ::dup2(null, 2);
    if (null >= 0) ::close(null);
  }
  ~QuietStderr() {
    std::cerr.flush();
    std::fflush(stderr);
    if (saved_ >= 0) {
      ::dup2(saved_, 2);
      ::close(saved_);
    }
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_ = -1;
};
#endif  // GM_HEADER_DEFINITIONS

}  // namespace detail

/// Records training steps `warmup + 1` to `warmup + steps` of a run with LibTorch's Kineto profiler (CPU
/// operators, and CUDA kernels on a GPU), then writes `<dir>/profile.json`, a Chrome trace (open it in
/// chrome://tracing or https://ui.perfetto.dev), and `<dir>/profile.txt`, the table of summary().  The
/// steps counted are this run's, so a resumed run profiles its own first steps.  Profiling costs time: the
/// profiled steps run slower (input shapes are recorded too) and count in the run's mean step time.
class StepProfiler {
 public:
  /// `log`: told the table's first rows when the profile is written (may be empty).
  StepProfiler(std::filesystem::path dir, int64_t steps, torch::Device device, int64_t warmup = 3,
               std::function<void(const std::string&)> log = {})
      : dir_(std::move(dir)), steps_(steps), warmup_(warmup), device_(device), log_(std::move(log)) {}

  template <class T, class Stats>
  void on_step_end(T&, const Stats&) {
    if (steps_ <= 0 || finished_) return;
    ++seen_;
    if (seen_ == warmup_) start();
    else if (seen_ == warmup_ + steps_) stop();
  }
  template <class T>
  void on_train_begin(T&) {
    if (steps_ > 0 && warmup_ <= 0 && !started_) start();
  }
  /// A run that ends inside the profiled steps writes what it recorded.
  template <class T>
  void on_train_end(T&) {
    if (started_ && !finished_) stop();
  }

  bool finished() const { return finished_; }
  const ProfileSummary& summary() const { return summary_; }

 private:
  void start();
  void stop();

  std::filesystem::path dir_;
  int64_t steps_, warmup_;
  torch::Device device_;
  std::function<void(const std::string&)> log_;
  int64_t seen_ = 0;
  bool started_ = false, finished_ = false;
  ProfileSummary summary_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE std::string ProfileSummary::table(size_t rows) const {
  std::string s;
  char buf[512];
  auto part = [&](const char* what, const std::vector<ProfileRow>& list, double total) {
    std::snprintf(buf, sizeof buf, "%-58s %10s %7s %8s\n", what, "ms/step", "share", "calls");
    s += buf;
    for (size_t i = 0; i < std::min(rows, list.size()); ++i) {
      const auto& r = list[i];
      const auto name = r.name.size() > 58 ? r.name.substr(0, 55) + "..." : r.name;
      std::snprintf(buf, sizeof buf, "%-58s %10.2f %6.1f%% %8lld\n", name.c_str(), r.self_ms,
                    total > 0 ? 100.0 * r.self_ms / total : 0.0, static_cast<long long>(r.calls));
      s += buf;
    }
    std::snprintf(buf, sizeof buf, "%-58s %10.2f\n", "total", total);
    s += buf;
  };
  std::snprintf(buf, sizeof buf, "profile of %lld training steps, per step:\n", static_cast<long long>(steps));
  s += buf;
  part("host operator (self time)", host, host_ms);
  if (!device.empty()) part("device kernel", device, device_ms);
  return s;
}

GM_INLINE void StepProfiler::start() {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  std::set<ActivityType> activities{ActivityType::CPU};
  if (device_.is_cuda()) activities.insert(ActivityType::CUDA);
  const prof::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO, /*report_input_shapes=*/true);
  ::setenv("KINETO_LOG_LEVEL", "5", /*overwrite=*/0);  // Kineto's own log: off unless the user set it
  detail::QuietStderr quiet;
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  started_ = true;
}

GM_INLINE void StepProfiler::stop() {
  namespace prof = torch::autograd::profiler;
  if (device_.is_cuda()) torch::cuda::synchronize();
  std::unique_ptr<prof::ProfilerResult> result;
  {
    detail::QuietStderr quiet;
    result = prof::disableProfiler();
  }
  finished_ = true;
  const int64_t profiled = std::max<int64_t>(1, seen_ - warmup_);
  std::vector<std::tuple<uint64_t, uint64_t, uint64_t, std::string>> host, kernels;
  for (const auto& e : result->events()) {
    if (e.isAsync()) continue;
    (e.deviceType() == c10::DeviceType::CPU ? host : kernels)
        .emplace_back(e.deviceType() == c10::DeviceType::CPU ? e.startThreadId() : 0, e.startNs(), e.durationNs(),
                      e.name());
  }
  auto rows = [&](const auto& times, double& total) {
    std::vector<ProfileRow> out;
    total = 0;
    for (const auto& [name, v] : times) {
      const double ms = v.first / 1e6 / static_cast<double>(profiled);
      total += ms;
      out.push_back({name, ms, (v.second + profiled / 2) / profiled});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.self_ms > b.self_ms; });
    return out;
  };
  summary_.steps = profiled;
  summary_.host = rows(detail::self_times(std::move(host)), summary_.host_ms);
  // Kernels on one stream do not nest: each one's time is its own.
  std::map<std::string, std::pair<double, int64_t>> k;
  for (const auto& [thread, start, dur, name] : kernels) {
    k[name].first += static_cast<double>(dur);
    ++k[name].second;
  }
  summary_.device = rows(k, summary_.device_ms);
  std::filesystem::create_directories(dir_);
  result->save((dir_ / "profile.json").string());
  std::FILE* f = std::fopen((dir_ / "profile.txt").string().c_str(), "w");
  if (!f) throw Error("gm: cannot write " + (dir_ / "profile.txt").string());
  const auto text = summary_.table(40);
  std::fputs(text.c_str(), f);
  std::fclose(f);
  if (log_) log_(summary_.table(12) + "profile: " + (dir_ / "profile.txt").string() + ", trace " + (dir_ / "profile.json").string());
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm
