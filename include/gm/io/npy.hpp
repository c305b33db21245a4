#pragma once
/// @file
/// Writing and reading NumPy .npy files (format 1.0, little-endian float32 / float64, C order).

#include <gm/error.hpp>

#include <torch/types.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace gm::io {

/// Write a float32 or float64 tensor of any shape as .npy, readable by numpy.load.
inline void write_npy(const std::filesystem::path& path, const torch::Tensor& t) {
  auto x = t.detach().to(torch::kCPU).contiguous();
  std::string descr;
  if (x.scalar_type() == torch::kFloat32) descr = "<f4";
  else if (x.scalar_type() == torch::kFloat64) descr = "<f8";
  else x = x.to(torch::kFloat32), descr = "<f4";
  std::string shape = "(";
  for (int64_t i = 0; i < x.dim(); ++i) shape += std::to_string(x.size(i)) + (x.dim() == 1 || i + 1 < x.dim() ? "," : "");
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error("gm: " + path.string() + ": cannot write file");
  const uint16_t len = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.put(static_cast<char>(len & 0xff));
  f.put(static_cast<char>(len >> 8));
  f << header;
  f.write(static_cast<const char*>(x.data_ptr()), static_cast<std::streamsize>(x.numel() * x.element_size()));
  if (!f) throw Error("gm: " + path.string() + ": write failed");
}

}  // namespace gm::io
