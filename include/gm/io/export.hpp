#pragma once
/// @file
/// Exporting weights for other tools: safetensors, and a state dict that Python's torch.load reads.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/file.hpp>
#include <gm/io/safetensors.hpp>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#if GM_HEADER_DEFINITIONS  // what only the definitions need
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>
#endif

namespace gm::io {

/// Named tensors of a module: its parameters and buffers, with their dotted names.
NamedTensors named_tensors(const torch::nn::Module& m);
#if GM_HEADER_DEFINITIONS
GM_INLINE NamedTensors named_tensors(const torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}
#endif

/// Write tensors as a pickled dict that Python's `torch.load(path)` returns as {name: tensor}: the zip
/// container of torch.save with a pickle that uses only what `torch.load`'s default `weights_only=True`
/// (PyTorch >= 2.6) accepts.  torch::pickle_save tags a C++ dict with its TorchScript type
/// (torch.jit._pickle.restore_type_tag), which that default refuses, so the pickler runs here without
/// tags; the records are those of torch::pickle_save (data.pkl, data/<i> per storage).
void write_state_dict(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, torch::Tensor>>& tensors);
#if GM_HEADER_DEFINITIONS
GM_INLINE void write_state_dict(const std::filesystem::path& path, const std::vector<std::pair<std::string,
                                torch::Tensor>>& tensors) {
  c10::Dict<std::string, torch::Tensor> dict;
  // A copy of each: a parameter may view a larger buffer (FlatAdam's), whose whole storage would be written.
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().to(torch::kCPU).contiguous().clone());
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* b, size_t n) { pickle.insert(pickle.end(), b, b + n); }, nullptr, nullptr,
                              nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::string zip;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* b, size_t n) {
      zip.append(static_cast<const char*>(b), n);
      return n;
    });
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    const auto& storages = pickler.tensorData();
    for (size_t i = 0; i < storages.size(); ++i) {
      const auto& st = storages[i].storage();
      writer.writeRecord("data/" + std::to_string(i), st.data(), st.nbytes());
    }
    writer.writeEndOfFile();
  }
  write_file_atomic(path, zip, "weights");
}
#endif

}  // namespace gm::io
