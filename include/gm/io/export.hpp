#pragma once
/// @file
/// Exporting weights for other tools: safetensors, and a state dict that Python's torch.load reads.

#include <gm/error.hpp>
#include <gm/io/file.hpp>

#include <torch/nn/module.h>
#include <torch/serialize.h>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace gm::io {

/// Named tensors of a module: its parameters and buffers, with their dotted names.
inline std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}

/// Write tensors in the safetensors format (huggingface/safetensors): an 8-byte little-endian header
/// length, a JSON header of dtype, shape and byte offsets with `{"__metadata__": {"format": "pt"}}`, then
/// the raw little-endian data.  float32, float64, bfloat16, float16 and int64 tensors.
inline void write_safetensors(const std::filesystem::path& path,
                              const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::vector<torch::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t0] : tensors) {
    auto t = t0.to(torch::kCPU).contiguous();
    std::string dtype;
    switch (t.scalar_type()) {
      case torch::kFloat32: dtype = "F32"; break;
      case torch::kFloat64: dtype = "F64"; break;
      case torch::kBFloat16: dtype = "BF16"; break;
      case torch::kFloat16: dtype = "F16"; break;
      case torch::kInt64: dtype = "I64"; break;
      default: throw Error("gm: " + path.string() + ": cannot export tensor '" + name + "' of this dtype");
    }
    std::string shape;
    for (int64_t i = 0; i < t.dim(); ++i) {
      if (i > 0) shape += ',';
      shape += std::to_string(t.size(i));
    }
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header += ",\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
              std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
    data.push_back(t);
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // align the data to 8 bytes
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  for (const auto& t : data) {
    out.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel() * t.element_size()));
  }
  write_file_atomic(path, out, "weights");
}

/// Write tensors as a pickled dict that Python's `torch.load(path)` returns as {name: tensor}
/// (torch::pickle_save of a c10::Dict).
inline void write_state_dict(const std::filesystem::path& path,
                             const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.to(torch::kCPU).contiguous());
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  write_file_atomic(path, std::string_view(bytes.data(), bytes.size()), "weights");
}

}  // namespace gm::io
