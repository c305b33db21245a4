#pragma once
/// @file
/// Writing and reading NumPy .npy files (format 1.0, little-endian float32 / float64, C order).

#include <gm/error.hpp>
#include <gm/io/file.hpp>

#include <torch/types.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gm::io {

/// Write a tensor of any shape as .npy (format 1.0, C order), readable by numpy.load, keeping its dtype:
/// float32/64 ('<f4', '<f8'), float16 ('<f2'), int64/32/16/8 ('<i8', '<i4', '<i2', '|i1'), uint8 ('|u1') or
/// bool ('|b1'); another dtype is a `gm::Error`.  Written atomically (temporary file and rename), so a
/// failed write leaves no truncated file.
inline void write_npy(const std::filesystem::path& path, const torch::Tensor& t) {
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
    default: throw Error("gm: " + path.string() + ": .npy of dtype " + std::string(c10::toString(x.scalar_type())) +
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
  write_file_atomic(path, bytes);
}

}  // namespace gm::io
