#pragma once
/// @file
/// Feature-vector data sets: N x D matrices from NumPy .npy or CSV files, and mini-batches drawn from them.

#include <gm/error.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace gm::data {

/// Read an N x D float32 or float64 matrix from a NumPy .npy file (format 1.x/2.x, little-endian, C order).
/// A missing or malformed file is a one-line `gm::Error` naming it.
inline torch::Tensor read_npy(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("gm: " + path.string() + ": no such file");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto bad = [&](const std::string& why) { return Error("gm: " + path.string() + ": not a usable .npy file: " + why); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw bad("missing the \\x93NUMPY magic");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0, start = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
    start = 12;
  } else {
    throw bad("unknown format version " + std::to_string(major));
  }
  if (start + header_len > bytes.size()) throw bad("truncated header");
  const std::string header = bytes.substr(start, header_len);
  torch::ScalarType dtype;
  if (header.find("'descr': '<f4'") != std::string::npos) dtype = torch::kFloat32;
  else if (header.find("'descr': '<f8'") != std::string::npos) dtype = torch::kFloat64;
  else throw bad("dtype must be little-endian float32 or float64 ('<f4', '<f8')");
  if (header.find("'fortran_order': False") == std::string::npos) throw bad("Fortran order is not supported");
  const auto lp = header.find("'shape': (");
  if (lp == std::string::npos) throw bad("no shape");
  std::vector<int64_t> shape;
  std::stringstream ss(header.substr(lp + 10, header.find(')', lp) - lp - 10));
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.find_first_not_of(' ') == std::string::npos) continue;
    shape.push_back(std::stoll(part));
  }
  if (shape.size() != 2) throw bad("expected a 2-D array (N x D), got " + std::to_string(shape.size()) + "-D");
  const size_t elem = dtype == torch::kFloat32 ? 4 : 8;
  const size_t need = static_cast<size_t>(shape[0] * shape[1]) * elem;
  const size_t data_at = start + header_len;
  if (bytes.size() - data_at != need) {
    throw bad("has " + std::to_string(bytes.size() - data_at) + " data bytes, shape needs " + std::to_string(need));
  }
  auto out = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  std::memcpy(out.data_ptr(), bytes.data() + data_at, need);
  return out;
}

/// Read an N x D matrix of numbers from a CSV file (comma-separated; an optional first line of column names
/// is skipped).  Rows of different length or a non-number are a one-line `gm::Error` naming file and line.
inline torch::Tensor read_csv(const std::filesystem::path& path) {
  std::ifstream f(path);
  if (!f) throw Error("gm: " + path.string() + ": no such file");
  std::vector<double> values;
  int64_t cols = -1, rows = 0, line_no = 0;
  for (std::string line; std::getline(f, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<double> row;
    std::stringstream ss(line);
    bool numeric = true;
    for (std::string cell; std::getline(ss, cell, ',');) {
      char* end = nullptr;
      const double v = std::strtod(cell.c_str(), &end);
      while (end && *end == ' ') ++end;
      if (cell.empty() || end == cell.c_str() || *end != '\0') numeric = false;
      row.push_back(v);
    }
    if (!numeric) {
      if (rows == 0 && cols < 0) {  // a header line
        cols = static_cast<int64_t>(row.size());
        continue;
      }
      throw Error("gm: " + path.string() + ":" + std::to_string(line_no) + ": not a number in this row");
    }
    if (cols >= 0 && static_cast<int64_t>(row.size()) != cols) {
      throw Error("gm: " + path.string() + ":" + std::to_string(line_no) + ": " + std::to_string(row.size()) +
                  " columns, expected " + std::to_string(cols));
    }
    cols = static_cast<int64_t>(row.size());
    values.insert(values.end(), row.begin(), row.end());
    ++rows;
  }
  if (rows == 0) throw Error("gm: " + path.string() + ": no data rows");
  return torch::tensor(values, torch::kFloat64).reshape({rows, cols});
}

/// Read features from a .npy or .csv file, by extension.
inline torch::Tensor read_features(const std::filesystem::path& path) {
  const auto ext = path.extension().string();
  if (ext == ".npy") return read_npy(path);
  if (ext == ".csv") return read_csv(path);
  throw Error("gm: " + path.string() + ": feature files must be .npy or .csv");
}

/// A fixed N x D data set; `batch(n, gen)` draws n rows uniformly with replacement from the generator, so
/// the data order is part of the trainer's RNG state and resumes exactly.
class Features {
 public:
  explicit Features(torch::Tensor data) : data_(std::move(data)) {
    TORCH_CHECK(data_.dim() == 2 && data_.size(0) > 0, "gm: Features needs an N x D tensor with N > 0");
  }
  static Features from_file(const std::filesystem::path& path, torch::ScalarType dtype = torch::kFloat32) {
    return Features(read_features(path).to(dtype));
  }
  int64_t size() const { return data_.size(0); }
  int64_t dim() const { return data_.size(1); }
  const torch::Tensor& tensor() const { return data_; }
  torch::Tensor batch(int64_t n, const at::Generator& gen = {}) const {
    auto idx = torch::randint(0, data_.size(0), {n}, gen, torch::TensorOptions().dtype(torch::kLong));
    return data_.index_select(0, idx);
  }

 private:
  torch::Tensor data_;
};

}  // namespace gm::data
