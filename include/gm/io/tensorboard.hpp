#pragma once
/// @file
/// TensorBoard event files, written and read with no TensorFlow or protobuf library: TFRecord framing
/// around hand-encoded `tensorflow.Event` protobufs with scalar and PNG image summaries.
///
/// A TFRecord is: uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes, the data, uint32
/// masked CRC-32C of the data; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.  The fields written are
/// Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; },
/// Summary { repeated Value value = 1; }, Value { string tag = 1; float simple_value = 2; Image image = 4; },
/// Image { int32 height = 1; int32 width = 2; int32 colorspace = 3; bytes encoded_image_string = 4; }
/// (tensorflow/core/util/event.proto, framework/summary.proto).  `tensorboard --logdir runs/` shows them.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>
#include <gm/io/png.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

namespace gm::io {

namespace detail::tb {

/// CRC-32C (Castagnoli), the checksum of TFRecords.
uint32_t crc32c(std::string_view data);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint32_t crc32c(std::string_view data) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}
#endif
uint32_t masked_crc(std::string_view data);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint32_t masked_crc(std::string_view data) {
  const uint32_t c = crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}
#endif

void put_le(std::string& out, uint64_t v, int bytes);
#if GM_HEADER_DEFINITIONS
GM_INLINE void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
#endif
uint64_t get_le(std::string_view in, size_t at, int bytes);
#if GM_HEADER_DEFINITIONS
GM_INLINE uint64_t get_le(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}
#endif
void varint(std::string& out, uint64_t v);
#if GM_HEADER_DEFINITIONS
GM_INLINE void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
#endif
void key(std::string& out, int field, int wire);
#if GM_HEADER_DEFINITIONS
GM_INLINE void key(std::string& out, int field, int wire) { varint(out, static_cast<uint64_t>(field << 3 | wire)); }
#endif
void bytes_field(std::string& out, int field, std::string_view b);
#if GM_HEADER_DEFINITIONS
GM_INLINE void bytes_field(std::string& out, int field, std::string_view b) {
  key(out, field, 2);
  varint(out, b.size());
  out.append(b);
}
#endif

/// A TFRecord around `data`.
std::string record(std::string_view data);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string record(std::string_view data) {
  std::string out, len;
  put_le(len, data.size(), 8);
  out += len;
  put_le(out, masked_crc(len), 4);
  out.append(data);
  put_le(out, masked_crc(data), 4);
  return out;
}
#endif

/// Reads protobuf wire format; `ok` turns false on malformed input.
struct Reader {
  std::string_view in;
  size_t at = 0;
  bool ok = true;
  bool done() const { return !ok || at >= in.size(); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at >= in.size()) break;
      const auto b = static_cast<unsigned char>(in[at++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return 0;
  }
  std::string_view take(size_t n) {
    if (n > in.size() - at) {
      ok = false;
      return {};
    }
    auto s = in.substr(at, n);
    at += n;
    return s;
  }
  /// The next field: number, wire type, and its payload (varint value, fixed bits, or bytes).
  bool next(int& field, int& wire, uint64_t& value, std::string_view& bytes) {
    const uint64_t k = varint();
    if (!ok) return false;
    field = static_cast<int>(k >> 3), wire = static_cast<int>(k & 7);
    switch (wire) {
      case 0: value = varint(); break;
      case 1:
      case 5: {
        const int n = wire == 1 ? 8 : 4;
        const auto b = take(static_cast<size_t>(n));
        value = ok ? get_le(b, 0, n) : 0;
        break;
      }
      case 2: bytes = take(static_cast<size_t>(varint())); break;
      default: ok = false;
    }
    return ok;
  }
};

}  // namespace detail::tb

/// One decoded event: its time, step, and either the file-version header or summary values.
struct Event {
  /// One summary value: a scalar, or an image (its size and PNG bytes).
  struct Value {
    std::string tag;
    std::optional<float> scalar;
    int image_height = 0, image_width = 0;
    std::string image_png;
  };
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<Value> values;
};

/// The records of an event file: the decoded events, the byte offset where each record ends, and whether
/// the file ends in a torn (incomplete) record, as a killed writer can leave.
struct EventFile {
  std::vector<Event> events;
  std::vector<size_t> ends;
  bool torn = false;
};

/// Read an event file, checking the framing and both CRCs of every record.  A record whose CRC fails or
/// whose protobuf is malformed is a one-line `gm::Error` naming the file and the byte offset, or, with
/// `salvage`, ends the read there like an incomplete last record, which sets `torn`.
EventFile read_events(const std::filesystem::path& path, bool salvage = false);
#if GM_HEADER_DEFINITIONS
GM_INLINE EventFile read_events(const std::filesystem::path& path, bool salvage) {
  namespace tb = detail::tb;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("gm: " + path.string() + ": no such event file");
  const std::string bytes = read_file(path);
  const std::string_view in(bytes);
  EventFile out;
  size_t at = 0;
  auto bad = [&](const std::string& why) {
    return Error("gm: " + path.string() + ": byte " + std::to_string(at) + ": " + why);
  };
  while (at < in.size()) try {
    if (in.size() - at < 12) {
      out.torn = true;
      break;
    }
    const uint64_t len = tb::get_le(in, at, 8);
    if (static_cast<uint32_t>(tb::get_le(in, at + 8, 4)) != tb::masked_crc(in.substr(at, 8))) {
      throw bad("record length fails its CRC");
    }
    if (len > in.size() - at - 12 || in.size() - at - 12 - len < 4) {
      out.torn = true;
      break;
    }
    const std::string_view data = in.substr(at + 12, len);
    if (static_cast<uint32_t>(tb::get_le(in, at + 12 + len, 4)) != tb::masked_crc(data)) {
      throw bad("record data fails its CRC");
    }
    Event e;
    tb::Reader r{data};
    int field = 0, wire = 0;
    uint64_t v = 0;
    std::string_view b;
    while (!r.done() && r.next(field, wire, v, b)) {
      if (field == 1 && wire == 1) std::memcpy(&e.wall_time, &v, 8);
      else if (field == 2 && wire == 0) e.step = static_cast<int64_t>(v);
      else if (field == 3 && wire == 2) e.file_version = std::string(b);
      else if (field == 5 && wire == 2) {
        tb::Reader s{b};
        while (!s.done() && s.next(field, wire, v, b)) {
          if (field != 1 || wire != 2) continue;
          Event::Value val;
          tb::Reader vr{b};
          while (!vr.done() && vr.next(field, wire, v, b)) {
            if (field == 1 && wire == 2) val.tag = std::string(b);
            else if (field == 2 && wire == 5) {
              float f;
              const auto u = static_cast<uint32_t>(v);
              std::memcpy(&f, &u, 4);
              val.scalar = f;
            } else if (field == 4 && wire == 2) {
              tb::Reader ir{b};
              while (!ir.done() && ir.next(field, wire, v, b)) {
                if (field == 1 && wire == 0) val.image_height = static_cast<int>(v);
                else if (field == 2 && wire == 0) val.image_width = static_cast<int>(v);
                else if (field == 4 && wire == 2) val.image_png = std::string(b);
              }
              if (!ir.ok) r.ok = false;
            }
          }
          if (!vr.ok) r.ok = false;
          e.values.push_back(std::move(val));
        }
        if (!s.ok) r.ok = false;
      }
    }
    if (!r.ok) throw bad("malformed Event protobuf");
    at += 12 + len + 4;
    out.events.push_back(std::move(e));
    out.ends.push_back(at);
  } catch (const Error&) {
    if (!salvage) throw;
    out.torn = true;
    break;
  }
  return out;
}
#endif

/// Appends events to one TensorBoard event file in a run folder (`events.out.tfevents.<time>.<host>`),
/// one whole record per `write`, so a killed run leaves at most a torn last record, which the next open
/// cuts off.  A resumed run reopens the same file and `truncate_after(step)` drops what was logged after
/// the restored checkpoint, so each step appears once.
///
/// Example:
/// @code
/// gm::io::EventWriter tb("runs/a");
/// tb.scalars(100, {{"loss", 0.25}, {"lr", 1e-3}});
/// tb.image("samples", gm::io::scatter_density_plot(xy, {.title = "samples"}), 100);
/// @endcode
class EventWriter {
 public:
  explicit EventWriter(const std::filesystem::path& dir);

  const std::filesystem::path& path() const { return path_; }

  /// Drop every summary event with a step above `step`, and everything from a torn or damaged record on,
  /// keeping the header.
  void truncate_after(int64_t step);

  /// Scalars at `step`, in one event.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  void scalar(const std::string& tag, double value, int64_t step) { scalars(step, {{tag, value}}); }

  /// An RGB image at `step` (PNG-encoded).
  void image(const std::string& tag, const Image& img, int64_t step);

 private:
  static void event_header(std::string& e, int64_t step);
  void write_summary(int64_t step, const std::string& summary);

  std::filesystem::path path_;
  AppendFile file_;
};

#if GM_HEADER_DEFINITIONS
GM_INLINE EventWriter::EventWriter(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) == 0 && e.is_regular_file() && name > path_.filename().string()) {
      path_ = e.path();
    }
  }
  if (ec) throw Error("gm: " + dir.string() + ": cannot list folder: " + ec.message());
  if (path_.empty()) {
    char host[256] = "";
    ::gethostname(host, sizeof host - 1);
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    path_ = dir / ("events.out.tfevents." + std::to_string(now) + "." + host);
    file_ = AppendFile(path_);
    std::string e;
    event_header(e, 0);
    detail::tb::bytes_field(e, 3, "brain.Event:2");
    file_.append(detail::tb::record(e));
  } else {
    truncate_after(std::numeric_limits<int64_t>::max());  // cut a torn last record off
    file_ = AppendFile(path_);
  }
}

GM_INLINE void EventWriter::truncate_after(int64_t step) {
  const EventFile f = read_events(path_, true);
  size_t keep = 0;
  for (size_t i = 0; i < f.events.size(); ++i) {
    if (f.events[i].file_version.empty() && f.events[i].step > step) break;
    keep = f.ends[i];
  }
  std::error_code ec;
  if (keep != std::filesystem::file_size(path_, ec)) std::filesystem::resize_file(path_, keep, ec);
  if (ec) throw Error("gm: " + path_.string() + ": cannot truncate: " + ec.message());
}

GM_INLINE void EventWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::string summary;
  for (const auto& [tag, x] : values) {
    std::string v;
    detail::tb::bytes_field(v, 1, tag);
    detail::tb::key(v, 2, 5);
    const auto f = static_cast<float>(x);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    detail::tb::put_le(v, u, 4);
    detail::tb::bytes_field(summary, 1, v);
  }
  write_summary(step, summary);
}

GM_INLINE void EventWriter::image(const std::string& tag, const Image& img, int64_t step) {
  std::string im;
  detail::tb::key(im, 1, 0);
  detail::tb::varint(im, static_cast<uint64_t>(img.height));
  detail::tb::key(im, 2, 0);
  detail::tb::varint(im, static_cast<uint64_t>(img.width));
  detail::tb::key(im, 3, 0);
  detail::tb::varint(im, 3);  // RGB
  detail::tb::bytes_field(im, 4, encode_png(img));
  std::string v, summary;
  detail::tb::bytes_field(v, 1, tag);
  detail::tb::bytes_field(v, 4, im);
  detail::tb::bytes_field(summary, 1, v);
  write_summary(step, summary);
}

GM_INLINE void EventWriter::event_header(std::string& e, int64_t step) {
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  uint64_t bits;
  std::memcpy(&bits, &now, 8);
  detail::tb::key(e, 1, 1);
  detail::tb::put_le(e, bits, 8);
  detail::tb::key(e, 2, 0);
  detail::tb::varint(e, static_cast<uint64_t>(step));
}

GM_INLINE void EventWriter::write_summary(int64_t step, const std::string& summary) {
  std::string e;
  event_header(e, step);
  detail::tb::bytes_field(e, 5, summary);
  file_.append(detail::tb::record(e));
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::io
