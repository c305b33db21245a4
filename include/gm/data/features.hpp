#pragma once
/// @file
/// Feature-vector data sets: N x D matrices from NumPy .npy or CSV files, and mini-batches drawn from them.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/random.hpp>
#include <gm/io/file.hpp>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace gm::data {

torch::Tensor parse_npy(std::string_view bytes, const std::filesystem::path& path);
/// Read an N x D float32 or float64 matrix from a NumPy .npy file (format 1.x/2.x, little-endian, C order).
/// A missing or malformed file is a one-line `gm::Error` naming it.
torch::Tensor read_npy(const std::filesystem::path& path);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor read_npy(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("gm: " + path.string() + ": no such file");
  return parse_npy(io::read_file(path), path);
}
#endif

/// The same from the bytes of a .npy file; `path` names them in errors.
torch::Tensor parse_npy(std::string_view bytes, const std::filesystem::path& path);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor parse_npy(std::string_view bytes, const std::filesystem::path& path) {
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
  const std::string header(bytes.substr(start, header_len));
  torch::ScalarType dtype;
  if (header.find("'descr': '<f4'") != std::string::npos) dtype = torch::kFloat32;
  else if (header.find("'descr': '<f8'") != std::string::npos) dtype = torch::kFloat64;
  else throw bad("dtype must be little-endian float32 or float64 ('<f4', '<f8')");
  const bool fortran = header.find("'fortran_order': True") != std::string::npos;  // NumPy's save of a transpose
  if (!fortran && header.find("'fortran_order': False") == std::string::npos) throw bad("no fortran_order in its header");
  const auto lp = header.find("'shape': (");
  const auto rp = lp == std::string::npos ? std::string::npos : header.find(')', lp);
  if (rp == std::string::npos) throw bad("no shape");
  std::vector<int64_t> shape;
  std::stringstream ss(header.substr(lp + 10, rp - lp - 10));
  for (std::string part; std::getline(ss, part, ',');) {
    const auto b = part.find_first_not_of(' '), e = part.find_last_not_of(' ');
    if (b == std::string::npos) continue;
    const std::string dim = part.substr(b, e - b + 1);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(dim.c_str(), &end, 10);
    if (*end != '\0' || errno == ERANGE || v < 0) throw bad("bad shape entry '" + dim + "'");
    shape.push_back(v);
  }
  if (shape.size() != 2) throw bad("expected a 2-D array (N x D), got " + std::to_string(shape.size()) + "-D");
  if (shape[0] == 0) throw bad("it has no rows");
  if (shape[1] == 0) throw bad("its rows have no columns");
  const size_t elem = dtype == torch::kFloat32 ? 4 : 8;
  const size_t data_at = start + header_len;
  if (static_cast<uint64_t>(shape[0]) > (bytes.size() - data_at) / elem / static_cast<uint64_t>(shape[1])) {
    throw bad("shape (" + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + ") needs more than the " +
              std::to_string(bytes.size() - data_at) + " data bytes it has");
  }
  const size_t need = static_cast<size_t>(shape[0] * shape[1]) * elem;
  if (bytes.size() - data_at != need) {
    throw bad("has " + std::to_string(bytes.size() - data_at) + " data bytes, shape needs " + std::to_string(need));
  }
  auto out = torch::empty(fortran ? std::vector<int64_t>{shape[1], shape[0]} : shape, torch::TensorOptions().dtype(dtype));
  std::memcpy(out.data_ptr(), bytes.data() + data_at, need);
  return fortran ? out.t().contiguous() : out;
}
#endif

torch::Tensor parse_csv(std::istream& f, const std::filesystem::path& path, std::string* header = nullptr);
/// Read an N x D matrix of numbers from a CSV file (comma-separated; a UTF-8 byte-order mark is ignored).
/// The first row is taken as a header of column names only when none of its cells is a number, and then
/// `header` (if given) receives it, so a caller can say it was skipped.  Rows of different length or a
/// non-number are a one-line `gm::Error` naming file and line.
torch::Tensor read_csv(const std::filesystem::path& path, std::string* header = nullptr);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor read_csv(const std::filesystem::path& path, std::string* header) {
  std::ifstream f(path);
  if (!f) throw Error("gm: " + path.string() + ": no such file");
  return parse_csv(f, path, header);
}
#endif

/// The same from a stream of CSV text; `path` names it in errors.
torch::Tensor parse_csv(std::istream& f, const std::filesystem::path& path, std::string* header);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor parse_csv(std::istream& f, const std::filesystem::path& path, std::string* header) {
  std::vector<double> values;
  int64_t cols = -1, rows = 0, line_no = 0;
  for (std::string line; std::getline(f, line);) {
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<double> row;
    std::stringstream ss(line);
    int numbers = 0, cells = 0;
    for (std::string cell; std::getline(ss, cell, ',');) {
      char* end = nullptr;
      const double v = std::strtod(cell.c_str(), &end);
      while (end && (*end == ' ' || *end == '\t')) ++end;
      const bool number = !cell.empty() && end != cell.c_str() && *end == '\0';
      numbers += number;
      ++cells;
      row.push_back(v);
    }
    if (numbers != cells) {
      if (rows == 0 && cols < 0 && numbers == 0) {  // a header line: no cell is a number
        cols = static_cast<int64_t>(row.size());
        if (header) *header = line;
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
#endif

/// Largest magnitude gm accepts in training data: beyond it, squares in the loss overflow float32.
inline constexpr double max_feature_magnitude = 1e18;

/// Throws a one-line `gm::Error` naming the file and the first row (1-based) holding a value that is not
/// finite or exceeds `max_feature_magnitude`.
void check_values(const torch::Tensor& x, const std::filesystem::path& path);
#if GM_HEADER_DEFINITIONS
GM_INLINE void check_values(const torch::Tensor& x, const std::filesystem::path& path) {
  auto bad = (~torch::isfinite(x)) | (x.abs() > max_feature_magnitude);
  if (!bad.any().item<bool>()) return;
  const auto row = bad.any(1).nonzero()[0][0].item<int64_t>();
  const auto col = bad[row].nonzero()[0][0].item<int64_t>();
  throw Error("gm: " + path.string() + ": row " + std::to_string(row + 1) + ", column " + std::to_string(col + 1) +
              " is " + std::to_string(x[row][col].item<double>()) + "; data must be finite with |x| <= 1e18");
}
#endif

/// Read features from a .npy or .csv file, by extension, and check every value (`check_values`).  `header`
/// receives a CSV header row that was skipped.
torch::Tensor read_features(const std::filesystem::path& path, std::string* header = nullptr);
#if GM_HEADER_DEFINITIONS
GM_INLINE torch::Tensor read_features(const std::filesystem::path& path, std::string* header) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error("gm: " + path.string() + ": is a folder, not a data file");
  const auto ext = path.extension().string();
  torch::Tensor x;
  if (ext == ".npy") x = read_npy(path);
  else if (ext == ".csv") x = read_csv(path, header);
  else throw Error("gm: " + path.string() + ": feature files must be .npy or .csv");
  check_values(x, path);
  return x;
}
#endif

/// A fixed N x D data set; `batch(n, gen)` draws n rows uniformly with replacement from the generator, so
/// the data order is part of the trainer's RNG state and resumes exactly.  The rows are drawn on the
/// generator's device: the first batch for a device copies the data set there once (a CUDA trainer then
/// gathers its batches on the GPU, with no copy or synchronisation per step).
class Features {
 public:
  explicit Features(torch::Tensor data);
  /// The file's rows as `dtype`; `header` receives a CSV header row that was skipped.
  static Features from_file(const std::filesystem::path& path, torch::ScalarType dtype = torch::kFloat32,
                            std::string* header = nullptr);
  int64_t size() const { return data_.size(0); }
  int64_t dim() const { return data_.size(1); }
  const torch::Tensor& tensor() const { return data_; }
  torch::Tensor batch(int64_t n, const at::Generator& gen = {}) const;

 private:
  torch::Tensor data_;
  mutable torch::Tensor on_device_;  // data_ on the last generator's device, when that is not data_'s
};

#if GM_HEADER_DEFINITIONS
GM_INLINE Features::Features(torch::Tensor data) : data_(std::move(data)) {
  TORCH_CHECK(data_.dim() == 2 && data_.size(0) > 0, "gm: Features needs an N x D tensor with N > 0");
}

GM_INLINE auto Features::from_file(const std::filesystem::path& path, torch::ScalarType dtype, std::string* header)
    -> Features {
  return Features(read_features(path, header).to(dtype));
}

GM_INLINE auto Features::batch(int64_t n, const at::Generator& gen) const -> torch::Tensor {
  auto idx = torch::randint(0, data_.size(0), {n}, gen, on_generator(gen, torch::kLong));
  if (idx.device() == data_.device()) return data_.index_select(0, idx);
  if (!on_device_.defined() || on_device_.device() != idx.device()) on_device_ = data_.to(idx.device());
  return on_device_.index_select(0, idx);
}
#endif  // GM_HEADER_DEFINITIONS

}  // namespace gm::data
