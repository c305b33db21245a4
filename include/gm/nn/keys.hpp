#pragma once
/// @file
/// Config keys for gm's networks: `model.*`, declared once and read back into options.

#include <gm/io/config.hpp>
#include <gm/nn/mlp.hpp>

#include <cstdint>

namespace gm {

/// Declare `model.hidden`, `model.layers`, `model.activation`, `model.time_embedding` with the defaults of
/// `d` (the options of Meta flow_matching's 2-D example but 256 wide, unless given).
inline void add_mlp_keys(Config& cfg, const MLPOptions& d = MLPOptions().hidden(256).layers(4).time_embedding("raw")) {
  cfg.add<int64_t>("model.hidden", d.hidden(), "MLP width", check::in_range(1, 1 << 16));
  cfg.add<int64_t>("model.layers", d.layers(), "MLP hidden layers", check::in_range(1, 64));
  cfg.add<std::string>("model.activation", d.activation(), "activation", check::one_of({"silu", "relu", "gelu", "tanh"}));
  cfg.add<std::string>("model.time_embedding", d.time_embedding(), "time embedding (raw: t itself, as flow_matching)",
                       check::one_of({"sinusoidal", "fourier", "raw"}));
}

/// An MLP for `dim`-dimensional data from the `model.*` keys.
inline MLP make_mlp(const Config& cfg, int64_t dim) {
  return MLP(MLPOptions()
                 .dim(dim)
                 .hidden(cfg.get<int64_t>("model.hidden"))
                 .layers(cfg.get<int64_t>("model.layers"))
                 .activation(cfg.get<std::string>("model.activation"))
                 .time_embedding(cfg.get<std::string>("model.time_embedding")));
}

}  // namespace gm
