#pragma once
/// @file
/// Exporting weights for other tools: safetensors, and a state dict that Python's torch.load reads.

#include <gm/error.hpp>
#include <gm/io/file.hpp>
#include <gm/io/safetensors.hpp>

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
inline NamedTensors named_tensors(const torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
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
