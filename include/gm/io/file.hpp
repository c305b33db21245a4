#pragma once
/// @file
/// Files written so that a crash, a kill or a full disk never leaves a torn or half-written output: whole
/// files by temporary file and rename, logs by appending whole records in one system call.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <cstdlib>

#include <fcntl.h>
#include <unistd.h>

namespace gm::io {

namespace detail {
std::string errno_text(int err);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string errno_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}
#endif
/// Write all of `bytes` to `fd`; false (errno set) on failure.
bool write_all(int fd, std::string_view bytes);
#if GM_HEADER_DEFINITIONS
GM_INLINE bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}
#endif
}  // namespace detail

/// Write `bytes` to `path` atomically: into `path` + ".tmp", flushed to disk, then renamed over `path`.  A
/// reader sees the old file or the new one, never a part.  A file that cannot be created (no such folder)
/// is a `gm::Error`; a write that fails (a full disk) is a `gm::IoError` `gm: <path>: no space left on
/// device while writing <what>`, after which the temporary file is removed and `path` is untouched.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, const std::string& what = "");
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, const std::string& what) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("gm: " + path.string() + ": cannot write file: " + detail::errno_text(errno));
  const bool ok = detail::write_all(fd, bytes) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = ok ? errno : err;
    ::unlink(tmp.c_str());
    throw IoError("gm: " + path.string() + ": " + detail::errno_text(e) + " while writing" + (what.empty() ? "" : " " + what));
  }
}
#endif

/// The whole content of a file ("" when it is missing, not a regular file, or cannot be read).
std::string read_file(const std::filesystem::path& path);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return "";
  try {
    std::ifstream f(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    return "";
  }
}
#endif

/// A file that grows by whole records: each `append` is one `write` system call on an O_APPEND descriptor,
/// so a killed process leaves either the whole record or none of it (no torn line in a log).
class AppendFile {
 public:
  AppendFile() = default;
  explicit AppendFile(const std::filesystem::path& path);
  AppendFile(AppendFile&& o) noexcept : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)) {}
  AppendFile& operator=(AppendFile&& o) noexcept {
    if (this != &o) {
      close();
      path_ = std::move(o.path_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  ~AppendFile() { close(); }

  bool is_open() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }

  /// Append one record; a one-line `gm::IoError` naming the file when the write fails (a full disk, say).
  void append(std::string_view record);

 private:
  void close();
  std::filesystem::path path_;
  int fd_ = -1;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE AppendFile::AppendFile(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error("gm: " + path.string() + ": cannot write file: " + detail::errno_text(errno));
}

GM_INLINE void AppendFile::append(std::string_view record) {
  if (fd_ < 0) throw IoError("gm: " + path_.string() + ": file is not open");
  if (!detail::write_all(fd_, record)) {
    throw IoError("gm: " + path_.string() + ": " + detail::errno_text(errno) + " while appending");
  }
}

GM_INLINE void AppendFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}
#endif  // GM_HEADER_DEFINITIONS

/// Where gm looks for a relative data path (a config, a mixture file) that is not in the working folder:
/// the folders in $GM_DATA_DIR (':'-separated), then gm's installed data (<prefix>/share/gm, holding configs/)
/// and gm's source tree, as known to the build that compiled this code.  So `--config configs/flow_2d.toml`
/// and the examples' default `configs/mixtures/ring8.toml` work from any folder.
std::vector<std::filesystem::path> data_dirs();
/// `p` itself when it exists or is absolute; else the first `data_dirs()` entry that holds it; else `p`
/// unchanged (the reader then names it in its error).
std::filesystem::path find_data_file(const std::filesystem::path& p);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<std::filesystem::path> data_dirs() {
  std::vector<std::filesystem::path> out;
  if (const char* env = std::getenv("GM_DATA_DIR"); env && *env) {
    std::string_view rest(env);
    while (!rest.empty()) {
      const auto cut = rest.find(':');
      if (cut != 0) out.emplace_back(std::string(rest.substr(0, cut)));
      if (cut == std::string_view::npos) break;
      rest.remove_prefix(cut + 1);
    }
  }
#ifdef GM_INSTALL_DATA_DIR
  out.emplace_back(GM_INSTALL_DATA_DIR);
#endif
#ifdef GM_SOURCE_DATA_DIR
  out.emplace_back(GM_SOURCE_DATA_DIR);
#endif
  return out;
}

GM_INLINE std::filesystem::path find_data_file(const std::filesystem::path& p) {
  std::error_code ec;
  if (p.empty() || p.is_absolute() || std::filesystem::exists(p, ec)) return p;
  for (const auto& dir : data_dirs()) {
    if (std::filesystem::exists(dir / p, ec)) return dir / p;
  }
  return p;
}
#endif

}  // namespace gm::io
