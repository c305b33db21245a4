#pragma once
// Small helpers the benchmark binaries share.

#include <gm/error.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace gm::bench {

/// gm's source tree and scripts/setup.sh's Python, as CMake configured them (benchmarks/paths.cpp, compiled
/// apart so that no heavy translation unit holds a path of its clone and ccache serves it to every clone).
const char* source_dir();
const char* python();

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

/// The median of v (the mean of the middle two for an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// printf-style formatting of one number.
inline std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// A child process spoken to through its stdin and stdout, one line at a time.
class Child {
 public:
  /// Runs argv with the environment changed by `extra_env`: "NAME=value" sets, "NAME" unsets; `name` (the
  /// benchmark's) heads its errors.
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env, std::string name = "bench_train")
      : name_(std::move(name)) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw gm::Error(name_ + ": pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw gm::Error(name_ + ": fork failed");
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      for (const auto& e : extra_env) {  // "NAME=value" sets, "NAME" unsets
        if (e.find('=') == std::string::npos) {
          unsetenv(e.c_str());
        } else {
          putenv(const_cast<char*>(e.c_str()));
        }
      }
      execv(args[0], args.data());
      std::fprintf(stderr, "%s: cannot run %s\n", name_.c_str(), argv[0].c_str());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
  }
  ~Child() {
    if (to_) {
      std::fputs("quit\n", to_);
      std::fclose(to_);
    }
    if (from_) std::fclose(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void send(const std::string& line) {
    std::fputs((line + "\n").c_str(), to_);
    std::fflush(to_);
  }
  /// The next line, or an error naming what the child was asked when it died.
  std::string receive(const std::string& what) {
    char buf[4096];
    if (!std::fgets(buf, sizeof buf, from_)) throw gm::Error(name_ + ": the child process exited during " + what);
    std::string s(buf);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }

 private:
  std::string name_;
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
};

}  // namespace gm::bench
