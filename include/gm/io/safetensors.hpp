#pragma once
/// @file
/// The safetensors format (huggingface/safetensors), written and read by gm itself: an 8-byte
/// little-endian header length, a JSON header of each tensor's dtype, shape and byte offsets (and an
/// optional `__metadata__` of strings), then the raw little-endian data.  gm's checkpoints and weight
/// exports use it, so reading one never runs LibTorch's archive or TorchScript parsers.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>

#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gm::io {

/// Named tensors, in order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

namespace detail::st {

struct DType {
  const char* name;
  torch::ScalarType type;
};
inline constexpr DType dtypes[] = {{"F32", torch::kFloat32}, {"F64", torch::kFloat64}, {"BF16", torch::kBFloat16},
                                   {"F16", torch::kFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
                                   {"U8", torch::kUInt8},    {"BOOL", torch::kBool}};

std::string json_string(std::string_view s);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}
#endif

/// A strict reader of the JSON subset a safetensors header uses: objects, arrays, strings and
/// non-negative integers.  Errors throw a message for the caller to wrap.
struct Json {
  std::string_view s;
  size_t at = 0;
  int depth = 0;
  [[noreturn]] void fail(const std::string& why) const;
  void ws();
  bool eat(char c);
  void expect(char c);
  std::string string();
  uint64_t integer();
  std::vector<uint64_t> integers();
  /// Calls f(key) for each member of an object; f reads the value.
  template <class F>
  void object(F&& f) {
    if (++depth > 4) fail("nested too deeply");
    expect('{');
    if (!eat('}')) {
      do {
        ws();
        const std::string key = string();
        expect(':');
        f(key);
      } while (eat(','));
      expect('}');
    }
    --depth;
  }
};

#if GM_HEADER_DEFINITIONS
GM_INLINE auto Json::fail(const std::string& why) const -> [[noreturn]] void {
  throw std::runtime_error("header byte " + std::to_string(at) + ": " + why);
}

GM_INLINE void Json::ws() {
  while (at < s.size() && (s[at] == ' ' || s[at] == '\n' || s[at] == '\r' || s[at] == '\t')) ++at;
}

GM_INLINE auto Json::eat(char c) -> bool {
  ws();
  if (at < s.size() && s[at] == c) {
    ++at;
    return true;
  }
  return false;
}

GM_INLINE void Json::expect(char c) {
  if (!eat(c)) fail(std::string("expected '") + c + "'");
}

GM_INLINE auto Json::string() -> std::string {
  expect('"');
  std::string out;
  while (true) {
    if (at >= s.size()) fail("unterminated string");
    const char c = s[at++];
    if (c == '"') return out;
    if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
    if (c != '\\') {
      out += c;
      continue;
    }
    if (at >= s.size()) fail("unterminated escape");
    const char e = s[at++];
    switch (e) {
      case '"': case '\\': case '/': out += e; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        if (s.size() - at < 4) fail("short \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
          const char h = s[at++];
          v <<= 4;
          if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
          else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
          else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
          else fail("bad \\u escape");
        }
        if (v < 0x80) {
          out += static_cast<char>(v);
        } else if (v < 0x800) {
          out += static_cast<char>(0xc0 | (v >> 6));
          out += static_cast<char>(0x80 | (v & 0x3f));
        } else {
          out += static_cast<char>(0xe0 | (v >> 12));
          out += static_cast<char>(0x80 | ((v >> 6) & 0x3f));
          out += static_cast<char>(0x80 | (v & 0x3f));
        }
        break;
      }
      default: fail("bad escape");
    }
  }
}

GM_INLINE auto Json::integer() -> uint64_t {
  ws();
  if (at >= s.size() || s[at] < '0' || s[at] > '9') fail("expected a non-negative integer");
  uint64_t v = 0;
  while (at < s.size() && s[at] >= '0' && s[at] <= '9') {
    const auto d = static_cast<uint64_t>(s[at++] - '0');
    if (v > (UINT64_MAX - d) / 10) fail("integer too large");
    v = v * 10 + d;
  }
  return v;
}

GM_INLINE auto Json::integers() -> std::vector<uint64_t> {
  std::vector<uint64_t> out;
  expect('[');
  if (eat(']')) return out;
  do out.push_back(integer());
  while (eat(','));
  expect(']');
  return out;
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace detail::st

/// The bytes of a safetensors file holding `tensors` (float32/64, bfloat16, float16, int64/32, uint8, bool)
/// and string `metadata`.
std::string encode_safetensors(const NamedTensors& tensors,
                               const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string encode_safetensors(const NamedTensors& tensors, const std::map<std::string,
                                         std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "" : ",") + detail::st::json_string(k) + ":" + detail::st::json_string(v);
      first = false;
    }
    header += "}";
  }
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    auto t = t0.detach().to(torch::kCPU).contiguous();
    const char* dtype = nullptr;
    for (const auto& d : detail::st::dtypes) {
      if (d.type == t.scalar_type()) dtype = d.name;
    }
    if (!dtype) throw Error("gm: cannot write tensor '" + name + "' of dtype " + std::string(c10::toString(t.scalar_type())));
    std::string shape;
    for (int64_t i = 0; i < t.dim(); ++i) shape += (i ? "," : "") + std::to_string(t.size(i));
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header += std::string(header.size() > 1 ? "," : "") + detail::st::json_string(name) + ":{\"dtype\":\"" + dtype +
              "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + bytes) + "]}";
    offset += bytes;
    data.push_back(t);
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  out.reserve(out.size() + offset);
  for (const auto& t : data) {
    out.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel() * t.element_size()));
  }
  return out;
}
#endif

/// Parse safetensors bytes into named tensors (in the header's order) and metadata.  Everything is checked
/// before a tensor is made: the header's length and JSON, known dtypes, shapes whose size matches their
/// byte range, ranges inside the data and covering it without overlap, unique names.  Bad input is a
/// one-line `gm::Error` naming `file`.
NamedTensors parse_safetensors(std::string_view bytes, const std::filesystem::path& file,
                               std::map<std::string, std::string>* metadata = nullptr);
#if GM_HEADER_DEFINITIONS
GM_INLINE NamedTensors parse_safetensors(std::string_view bytes, const std::filesystem::path& file,
                                         std::map<std::string, std::string>* metadata) {
  auto bad = [&](const std::string& why) { return Error("gm: " + file.string() + ": not a usable safetensors file: " + why); };
  if (bytes.size() < 8) throw bad("shorter than its 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  if (n > bytes.size() - 8 || n > (uint64_t{100} << 20)) throw bad("header length " + std::to_string(n) + " is out of range");
  const std::string_view data = bytes.substr(8 + n);
  struct Entry {
    std::string name;
    torch::ScalarType type = torch::kFloat32;
    size_t elem = 0;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
  };
  std::vector<Entry> entries;
  detail::st::Json j{bytes.substr(8, n)};
  try {
    j.object([&](const std::string& key) {
      if (key == "__metadata__") {
        j.object([&](const std::string& k) {
          const std::string v = j.string();
          if (metadata) (*metadata)[k] = v;
        });
        return;
      }
      Entry e;
      e.name = key;
      bool have_dtype = false, have_shape = false, have_offsets = false;
      j.object([&](const std::string& field) {
        if (field == "dtype") {
          const std::string d = j.string();
          for (const auto& dt : detail::st::dtypes) {
            if (d == dt.name) e.type = dt.type, have_dtype = true;
          }
          if (!have_dtype) j.fail("unknown dtype '" + d + "'");
          e.elem = c10::elementSize(e.type);
        } else if (field == "shape") {
          for (uint64_t v : j.integers()) {
            if (v > (uint64_t{1} << 48)) j.fail("dimension too large");
            e.shape.push_back(static_cast<int64_t>(v));
          }
          if (e.shape.size() > 16) j.fail("too many dimensions");
          have_shape = true;
        } else if (field == "data_offsets") {
          const auto o = j.integers();
          if (o.size() != 2 || o[0] > o[1]) j.fail("data_offsets must be [begin, end]");
          e.begin = o[0], e.end = o[1];
          have_offsets = true;
        } else {
          j.fail("unknown field '" + field + "'");
        }
      });
      if (!have_dtype || !have_shape || !have_offsets) j.fail("tensor '" + key + "' lacks dtype, shape or data_offsets");
      entries.push_back(std::move(e));
    });
    j.ws();
    for (; j.at < j.s.size(); ++j.at) {
      if (j.s[j.at] != ' ') j.fail("trailing characters");
    }
  } catch (const std::runtime_error& e) {
    throw bad(e.what());
  }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& e : entries) {
    uint64_t count = 1;
    for (int64_t d : e.shape) {
      if (d != 0 && count > UINT64_MAX / static_cast<uint64_t>(d)) throw bad("tensor '" + e.name + "' is too large");
      count *= static_cast<uint64_t>(d);
    }
    if (count > UINT64_MAX / e.elem || count * e.elem != e.end - e.begin) {
      throw bad("tensor '" + e.name + "': its shape does not match its " + std::to_string(e.end - e.begin) + " bytes");
    }
    if (e.end > data.size()) throw bad("tensor '" + e.name + "' lies beyond the data");
    ranges.emplace_back(e.begin, e.end);
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    if (b != covered) throw bad("tensor data overlap or leave gaps");
    covered = e;
  }
  if (covered != data.size()) throw bad("the data holds " + std::to_string(data.size() - covered) + " stray bytes");
  NamedTensors out;
  for (const auto& e : entries) {
    for (const auto& o : out) {
      if (o.first == e.name) throw bad("tensor '" + e.name + "' appears twice");
    }
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
    if (e.end > e.begin) std::memcpy(t.data_ptr(), data.data() + e.begin, e.end - e.begin);
    if (e.type == torch::kBool && t.numel() > 0 && (t.view(torch::kUInt8) > 1).any().item<bool>()) {
      throw bad("tensor '" + e.name + "' holds a bool that is neither 0 nor 1");
    }
    out.emplace_back(e.name, std::move(t));
  }
  return out;
}
#endif

/// Write named tensors as a safetensors file, atomically (see `write_file_atomic`).
void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                                 const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata), "weights");
}
#endif

/// Read a safetensors file (see `parse_safetensors`).
NamedTensors read_safetensors(const std::filesystem::path& path, std::map<std::string,
                              std::string>* metadata = nullptr);
#if GM_HEADER_DEFINITIONS
GM_INLINE NamedTensors read_safetensors(const std::filesystem::path& path, std::map<std::string,
                                        std::string>* metadata) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("gm: " + path.string() + ": no such file");
  return parse_safetensors(read_file(path), path, metadata);
}
#endif

}  // namespace gm::io
