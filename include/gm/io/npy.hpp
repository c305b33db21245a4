#pragma once
/// @file
/// Writing and reading NumPy .npy files (format 1.0, little-endian float32 / float64, C order).

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>

#include <torch/types.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <zlib.h>
#endif


namespace gm::io {

std::string encode_npy(const torch::Tensor& t, const std::string& where);

/// Write a tensor of any shape as .npy (format 1.0, C order), readable by numpy.load, keeping its dtype:
/// float32/64 ('<f4', '<f8'), float16 ('<f2'), int64/32/16/8 ('<i8', '<i4', '<i2', '|i1'), uint8 ('|u1') or
/// bool ('|b1'); another dtype is a `gm::Error`.  Written atomically (temporary file and rename), so a
/// failed write leaves no truncated file.
void write_npy(const std::filesystem::path& path, const torch::Tensor& t);
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_npy(const std::filesystem::path& path, const torch::Tensor& t) {
  write_file_atomic(path, encode_npy(t, path.string()));
}
#endif

/// Write named tensors as an uncompressed .npz (a zip of .npy files, as numpy.savez writes it), e.g.
/// {"arr_0", samples} for ADM's evaluator; atomically.  Each array must be below 4 GiB (no zip64).
void write_npz(const std::filesystem::path& path, const std::vector<std::pair<std::string, torch::Tensor>>& arrays);
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_npz(const std::filesystem::path& path, const std::vector<std::pair<std::string,
                         torch::Tensor>>& arrays) {
  std::string zip, central;
  auto u16 = [](std::string& s, uint32_t v) { s.push_back(static_cast<char>(v & 0xff)), s.push_back(static_cast<char>((v >> 8) & 0xff)); };
  auto u32 = [&](std::string& s, uint32_t v) { u16(s, v & 0xffff), u16(s, v >> 16); };
  for (const auto& [name, t] : arrays) {
    const std::string data = encode_npy(t, path.string()), file = name + ".npy";
    if (data.size() >= 0xffffffffull || zip.size() >= 0xffffffffull - data.size()) {
      throw Error("gm: " + path.string() + ": arrays of 4 GiB and more need zip64, which gm does not write");
    }
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
    const auto offset = static_cast<uint32_t>(zip.size()), size = static_cast<uint32_t>(data.size());
    // local file header: version 2.0, stored, DOS date 1980-01-01
    u32(zip, 0x04034b50), u16(zip, 20), u16(zip, 0), u16(zip, 0), u16(zip, 0), u16(zip, 0x21), u32(zip, crc);
    u32(zip, size), u32(zip, size), u16(zip, static_cast<uint32_t>(file.size())), u16(zip, 0);
    zip += file + data;
    u32(central, 0x02014b50), u16(central, 20), u16(central, 20), u16(central, 0), u16(central, 0), u16(central, 0);
    u16(central, 0x21), u32(central, crc), u32(central, size), u32(central, size);
    u16(central, static_cast<uint32_t>(file.size())), u16(central, 0), u16(central, 0), u16(central, 0), u16(central, 0);
    u32(central, 0), u32(central, offset);
    central += file;
  }
  const auto cd_offset = static_cast<uint32_t>(zip.size()), cd_size = static_cast<uint32_t>(central.size());
  zip += central;
  const auto n = static_cast<uint32_t>(arrays.size());
  u32(zip, 0x06054b50), u16(zip, 0), u16(zip, 0), u16(zip, n), u16(zip, n), u32(zip, cd_size), u32(zip, cd_offset), u16(zip, 0);
  write_file_atomic(path, zip);
}
#endif

/// The bytes of a .npy file holding `t` (see write_npy); `where` names it in errors.
std::string encode_npy(const torch::Tensor& t, const std::string& where);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::string encode_npy(const torch::Tensor& t, const std::string& where) {
  auto x = t.detach().to(torch::kCPU).contiguous();
  std::string descr;
  switch (x.scalar_type()) {
    case torch::kFloat32: descr = "<f4"; break;
    case torch::kFloat64: descr = "<f8"; break;
    case torch::kFloat16: descr = "<f2"; break;
    case torch::kInt64: descr = "<i8"; break;
    case torch::kInt32: descr = "<i4"; break;
    case torch::kInt16: descr = "<i2"; break;
    case torch::kInt8: descr = "|i1"; break;
    case torch::kUInt8: descr = "|u1"; break;
    case torch::kBool: descr = "|b1"; break;
    default: throw Error("gm: " + where + ": .npy of dtype " + std::string(c10::toString(x.scalar_type())) +
                         " is not supported");
  }
  std::string shape = "(";
  for (int64_t i = 0; i < x.dim(); ++i) shape += std::to_string(x.size(i)) + (x.dim() == 1 || i + 1 < x.dim() ? "," : "");
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  const auto len = static_cast<uint16_t>(header.size());
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(len & 0xff));
  bytes.push_back(static_cast<char>(len >> 8));
  bytes += header;
  bytes.append(static_cast<const char*>(x.data_ptr()), static_cast<size_t>(x.numel() * x.element_size()));
  return bytes;
}
#endif

}  // namespace gm::io
