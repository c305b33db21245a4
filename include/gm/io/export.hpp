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
#include <map>
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

/// Copy `tensors` into `m`'s parameters and buffers by name (cast to each one's dtype and device): every one
/// of `m`'s must be there with its shape, and none may be left over; else a one-line `gm::Error` naming `what`
/// (the file) and the tensor.
void load_named(torch::nn::Module& m, const NamedTensors& tensors, const std::string& what);
#if GM_HEADER_DEFINITIONS
GM_INLINE void load_named(torch::nn::Module& m, const NamedTensors& tensors, const std::string& what) {
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  torch::NoGradGuard ng;
  for (auto& [name, target] : named_tensors(m)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw Error("gm: " + what + ": no tensor '" + name + "' for this network");
    if (!it->second.sizes().equals(target.sizes())) {
      throw Error("gm: " + what + ": tensor '" + name + "' has shape " + c10::str(it->second.sizes()) +
                  ", this network's has " + c10::str(target.sizes()));
    }
    target.copy_(it->second);
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    throw Error("gm: " + what + ": tensor '" + by_name.begin()->first + "' is not in this network (" +
                std::to_string(by_name.size()) + " left over)");
  }
}
#endif

/// Which weights `load_weights` takes from a checkpoint folder: the EMA (what gm samples and exports) or the
/// trained weights themselves.
enum class Weights { ema, trained };

/// Load weights gm wrote into `m`, which must be the same network (the run's model keys); a missing, extra or
/// misshapen tensor is a one-line `gm::Error` naming the file and the tensor.  `path` is:
/// - a `.safetensors` file of named tensors (`weights.safetensors`, the EMA weights of a finished run);
/// - a run folder: its `weights.safetensors`;
/// - a checkpoint folder (`<run>/checkpoints/step_N`): its model.safetensors (buffers included), then its
///   EMA weights over the parameters unless `which` is `Weights::trained`.
///
/// @code
/// auto net = gm::make_mlp(cfg, 2);
/// gm::load_weights(*net, "runs/flow_2d");                          // runs/flow_2d/weights.safetensors
/// gm::load_weights(*net, "runs/flow_2d/checkpoints/step_4000");   // that checkpoint's EMA
/// @endcode
void load_weights(torch::nn::Module& m, const std::filesystem::path& path, Weights which = Weights::ema);
#if GM_HEADER_DEFINITIONS
GM_INLINE void load_weights(torch::nn::Module& m, const std::filesystem::path& path, Weights which) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec) && std::filesystem::exists(path / "model.safetensors", ec)) {
    load_named(m, read_safetensors(path / "model.safetensors"), (path / "model.safetensors").string());
    if (which == Weights::trained) return;
    const auto state_file = path / "state.safetensors";
    std::map<std::string, torch::Tensor> state;
    for (auto& [name, t] : read_safetensors(state_file)) state.emplace(name, t);
    auto params = m.parameters();
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) {
      const auto it = state.find("ema_" + std::to_string(i));
      if (it == state.end()) {
        throw Error("gm: " + state_file.string() + ": no EMA weight ema_" + std::to_string(i) + " for this network (" +
                    std::to_string(params.size()) + " parameters; gm::io::Weights::trained loads the trained weights)");
      }
      if (!it->second.sizes().equals(params[i].sizes())) {
        throw Error("gm: " + state_file.string() + ": EMA weight ema_" + std::to_string(i) + " has shape " +
                    c10::str(it->second.sizes()) + ", this network's parameter has " + c10::str(params[i].sizes()));
      }
      params[i].copy_(it->second);
    }
    if (state.count("ema_" + std::to_string(params.size()))) {
      throw Error("gm: " + state_file.string() + ": more EMA weights than this network's " + std::to_string(params.size()) +
                  " parameters");
    }
    return;
  }
  const auto file = std::filesystem::is_directory(path, ec) ? path / "weights.safetensors" : path;
  load_named(m, read_safetensors(file), file.string());
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

namespace gm {
using io::load_weights;  ///< gm::load_weights(module, path): see gm::io::load_weights
using io::Weights;
}  // namespace gm
