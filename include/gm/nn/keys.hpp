#pragma once
/// @file
/// Config keys for gm's networks: `model.*`, declared once and read back into options.

#include <gm/detail/compiled.hpp>
#include <gm/error.hpp>
#include <gm/io/config.hpp>
#include <gm/nn/dit.hpp>
#include <gm/nn/edm2_unet.hpp>
#include <gm/nn/mlp.hpp>
#include <gm/nn/unet.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace gm {

namespace detail {
Config::Check int_list_check(bool allow_empty);
std::vector<int64_t> int_list(const Config& cfg, const std::string& key);
}  // namespace detail

/// Declare `model.hidden`, `model.layers`, `model.activation`, `model.widths`, `model.time_embedding` with the
/// defaults of `d` (the options of Meta flow_matching's 2-D example but 256 wide, unless given).

void add_mlp_keys(Config& cfg, const MLPOptions& d = MLPOptions().hidden(256).layers(4).time_embedding("raw"));
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_mlp_keys(Config& cfg, const MLPOptions& d) {
  cfg.add<int64_t>("model.hidden", d.hidden(), "MLP width", check::in_range(1, 1 << 16));
  cfg.add<int64_t>("model.layers", d.layers(), "MLP hidden layers", check::in_range(1, 64));
  cfg.add<std::string>("model.activation", d.activation(), "activation",
                       check::one_of({"silu", "relu", "gelu", "tanh", "selu"}));
  cfg.add<std::string>("model.widths", "", "each hidden layer's width, as \"64,128,64\" (empty: model.layers of "
                       "model.hidden)", detail::int_list_check(true));
  cfg.add<std::string>("model.time_embedding", d.time_embedding(), "time embedding (raw: t itself, as flow_matching)",
                       check::one_of({"sinusoidal", "fourier", "raw"}));
}
#endif

/// An MLP for `dim`-dimensional data from the `model.*` keys; `times` 2 for a flow map u(x, t, r).
MLP make_mlp(const Config& cfg, int64_t dim, int64_t times = 1);
#if GM_HEADER_DEFINITIONS
GM_INLINE MLP make_mlp(const Config& cfg, int64_t dim, int64_t times) {
  return MLP(MLPOptions()
                 .dim(dim)
                 .times(times)
                 .hidden(cfg.get<int64_t>("model.hidden"))
                 .layers(cfg.get<int64_t>("model.layers"))
                 .activation(cfg.get<std::string>("model.activation"))
                 .widths(detail::int_list(cfg, "model.widths"))
                 .time_embedding(cfg.get<std::string>("model.time_embedding")));
}
#endif

namespace detail {
/// "1,2,2" as {1, 2, 2}; "" as {}; anything else is "" with `ok` false.
std::vector<int64_t> int_list(const std::string& text, bool& ok);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<int64_t> int_list(const std::string& text, bool& ok) {
  std::vector<int64_t> out;
  ok = true;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string part = text.substr(at, end - at);
    if (part.empty() || part.size() > 6 || part.find_first_not_of("0123456789") != std::string::npos) {
      ok = false;
      return {};
    }
    out.push_back(std::stoll(part));
    at = end + 1;
    if (end == text.size() - 1) ok = false;  // a trailing comma
  }
  return out;
}
#endif
Config::Check int_list_check(bool allow_empty);
#if GM_HEADER_DEFINITIONS
GM_INLINE Config::Check int_list_check(bool allow_empty) {
  return [allow_empty](const Config::Value& v) -> std::string {
    const auto* s = std::get_if<std::string>(&v);
    bool ok = s != nullptr;
    if (ok && allow_empty && *s == "none") return "";
    const auto list = ok ? int_list(*s, ok) : std::vector<int64_t>{};
    bool positive = true;
    for (auto x : list) positive = positive && x > 0;
    return ok && positive && (allow_empty || !list.empty()) ? "" : "a comma-separated list of positive integers";
  };
}
#endif
std::vector<int64_t> int_list(const Config& cfg, const std::string& key);
#if GM_HEADER_DEFINITIONS
GM_INLINE std::vector<int64_t> int_list(const Config& cfg, const std::string& key) {
  bool ok = true;
  const auto text = cfg.get<std::string>(key);
  return text == "none" ? std::vector<int64_t>{} : int_list(text, ok);
}
#endif
}  // namespace detail

namespace detail {
/// The keys gm's two UNets share: channels, channel_mult, res_blocks, attention, head_channels, dropout,
/// class_conditional.
void add_unet_family_keys(Config& cfg, int64_t channels, const std::vector<int64_t>& mult, int64_t blocks,
                          const std::vector<int64_t>& attention, int64_t head_channels, double dropout);
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_unet_family_keys(Config& cfg, int64_t channels, const std::vector<int64_t>& mult, int64_t blocks,
                                    const std::vector<int64_t>& attention, int64_t head_channels, double dropout) {
  auto join = [](const std::vector<int64_t>& v) {
    std::string s;
    for (auto x : v) {
      if (!s.empty()) s += ',';
      s += std::to_string(x);
    }
    return s;
  };
  cfg.add<int64_t>("model.channels", channels, "UNet channels of the first level", check::in_range(1, 4096));
  cfg.add<std::string>("model.channel_mult", join(mult), "channel multiplier per level, e.g. 1,2,2",
                       detail::int_list_check(false));
  cfg.add<int64_t>("model.res_blocks", blocks, "residual blocks per level", check::in_range(1, 16));
  cfg.add<std::string>("model.attention", join(attention), "resolutions with self-attention, e.g. 7 or 16,8, or none",
                       detail::int_list_check(true));
  cfg.add<int64_t>("model.head_channels", head_channels, "channels per attention head", check::in_range(1, 4096));
  cfg.add<double>("model.dropout", dropout, "dropout in the residual blocks", check::in_range(0, 1));
  cfg.add<bool>("model.class_conditional", true, "condition on the class label (with a null class for guidance)");
}
#endif
/// `o` with the shared keys' values, for images of `shape` [C, H, W] with `num_classes` classes.
template <class Options>
Options unet_family_options(const Config& cfg, Options o, const std::vector<int64_t>& shape, int64_t num_classes) {
  o.in_channels(shape[0])
      .image_size(shape[1])
      .channels(cfg.get<int64_t>("model.channels"))
      .channel_mult(detail::int_list(cfg, "model.channel_mult"))
      .res_blocks(cfg.get<int64_t>("model.res_blocks"))
      .attention_resolutions(detail::int_list(cfg, "model.attention"))
      .head_channels(cfg.get<int64_t>("model.head_channels"))
      .dropout(cfg.get<double>("model.dropout"))
      .num_classes(cfg.get<bool>("model.class_conditional") ? num_classes : 0);
  return o;
}
}  // namespace detail

/// Declare the UNet's `model.*` keys: channels, channel_mult, res_blocks, attention (resolutions),
/// head_channels, dropout, time_embedding and class_conditional, with the defaults of `d`.
void add_unet_keys(Config& cfg, const UNetOptions& d = UNetOptions().channels(32));
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_unet_keys(Config& cfg, const UNetOptions& d) {
  detail::add_unet_family_keys(cfg, d.channels(), d.channel_mult(), d.res_blocks(), d.attention_resolutions(),
                               d.head_channels(), d.dropout());
  cfg.add<std::string>("model.time_embedding", d.time_embedding(), "sinusoidal or fourier",
                       check::one_of({"sinusoidal", "fourier"}));
}
#endif

/// Declare EDM2's UNet's `model.*` keys: those of `add_unet_keys` but the time embedding (EDM2's is
/// always MPFourier), with the defaults of `d`.
void add_edm2_unet_keys(Config& cfg, const EDM2UNetOptions& d = EDM2UNetOptions());
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_edm2_unet_keys(Config& cfg, const EDM2UNetOptions& d) {
  detail::add_unet_family_keys(cfg, d.channels(), d.channel_mult(), d.res_blocks(), d.attention_resolutions(),
                               d.head_channels(), d.dropout());
}
#endif

/// An EDM2UNet from the `model.*` keys for images of `shape` [C, H, W] with `num_classes` classes.
EDM2UNet make_edm2_unet(const Config& cfg, const std::vector<int64_t>& shape, int64_t num_classes);
#if GM_HEADER_DEFINITIONS
GM_INLINE EDM2UNet make_edm2_unet(const Config& cfg, const std::vector<int64_t>& shape, int64_t num_classes) {
  if (shape.size() != 3 || shape[1] != shape[2]) throw Error("gm: EDM2's UNet needs square image data [C, H, H]");
  return EDM2UNet(detail::unet_family_options(cfg, EDM2UNetOptions(), shape, num_classes));
}
#endif

/// A UNet from the `model.*` keys for images of `shape` [C, H, W] with `num_classes` classes,
/// `cond_channels` channels of an image condition and `augment_dim` augmentation labels
/// (`gm::data::ImageData::augment_dim()`); `times` 2 for a flow map u(x, t, r).
UNet make_unet(const Config& cfg, const std::vector<int64_t>& shape, int64_t num_classes, int64_t cond_channels = 0,
               int64_t augment_dim = 0, int64_t times = 1);
#if GM_HEADER_DEFINITIONS
GM_INLINE UNet make_unet(const Config& cfg, const std::vector<int64_t>& shape, int64_t num_classes,
                         int64_t cond_channels, int64_t augment_dim, int64_t times) {
  if (shape.size() != 3) throw Error("gm: a UNet needs image data [C, H, W]");
  return UNet(detail::unet_family_options(cfg, UNetOptions(), shape, num_classes)
                  .time_embedding(cfg.get<std::string>("model.time_embedding"))
                  .cond_channels(cond_channels)
                  .augment_dim(augment_dim)
                  .times(times));
}
#endif

/// Declare the DiT's `model.*` keys: preset (tiny, S, B, L, XL), patch, and hidden, depth and heads that
/// override the preset when non-zero, and class_conditional.
void add_dit_keys(Config& cfg, const std::string& preset = "tiny", int64_t patch = 2);
#if GM_HEADER_DEFINITIONS
GM_INLINE void add_dit_keys(Config& cfg, const std::string& preset, int64_t patch) {
  cfg.add<std::string>("model.preset", preset, "DiT size: tiny, S, B, L, XL", check::one_of({"tiny", "S", "B", "L", "XL"}));
  cfg.add<int64_t>("model.patch", patch, "patch size (must divide the image size)", check::in_range(1, 64));
  cfg.add<int64_t>("model.hidden", 0, "token width (0: the preset's)", check::in_range(0, 8192));
  cfg.add<int64_t>("model.depth", 0, "blocks (0: the preset's)", check::in_range(0, 128));
  cfg.add<int64_t>("model.heads", 0, "attention heads (0: the preset's)", check::in_range(0, 128));
  cfg.add<bool>("model.class_conditional", true, "condition on the class label (with a null class for guidance)");
}
#endif

/// A DiT from the `model.*` keys for images (or latents) of `shape` [C, H, W] with `num_classes` classes.
DiT make_dit(const Config& cfg, const std::vector<int64_t>& shape, int64_t num_classes);
#if GM_HEADER_DEFINITIONS
GM_INLINE DiT make_dit(const Config& cfg, const std::vector<int64_t>& shape, int64_t num_classes) {
  if (shape.size() != 3 || shape[1] != shape[2]) throw Error("gm: a DiT needs square image data [C, H, H]");
  auto o = DiTOptions().preset(cfg.get<std::string>("model.preset"));
  if (shape[1] % cfg.get<int64_t>("model.patch")) {
    throw Error("gm: model.patch = " + std::to_string(cfg.get<int64_t>("model.patch")) + " does not divide the image size " +
                std::to_string(shape[1]));
  }
  o.in_channels(shape[0]).image_size(shape[1]).patch(cfg.get<int64_t>("model.patch"));
  if (auto h = cfg.get<int64_t>("model.hidden")) o.hidden(h);
  if (auto d = cfg.get<int64_t>("model.depth")) o.depth(d);
  if (auto h = cfg.get<int64_t>("model.heads")) o.heads(h);
  if (o.hidden() % o.heads() || o.hidden() % 4) {
    throw Error("gm: model.hidden = " + std::to_string(o.hidden()) + " must be a multiple of 4 and of model.heads = " +
                std::to_string(o.heads()));
  }
  o.num_classes(cfg.get<bool>("model.class_conditional") ? num_classes : 0);
  return DiT(o);
}
#endif

}  // namespace gm
