"""gm's image networks in PyTorch, to use a gm run's weights from Python.

gm (C++, LibTorch) exports a finished run's EMA weights as `weights.safetensors` (and `state_dict.pt`),
every parameter and buffer under the name gm's module gives it. This module defines `UNet` and `DiT` with
the same layers, names and forward pass as include/gm/nn/unet.hpp and include/gm/nn/dit.hpp, so those
weights load with `load_state_dict(strict=True)` and give gm's outputs (tested to float32 rounding by
the program test python_nets_match against gm's own forward pass).

    import gm_nets
    net = gm_nets.load_run("runs/fashion_mnist", image_size=28)   # the run's config.toml and weights
    out = net(x, t, y)        # x [B, C, H, W]; t [B] in [0, 1] (t = 1 is noise); y int64 [B] or None

What `out` means follows the run's prediction (`Predict<Velocity>`, `Predict<Noise>`, EDM's
preconditioning, ...): it is the raw network output, before gm's parameterisation turns it into a
velocity or a denoised image. Only torch is needed (safetensors files are read here).
"""
import json
import math
import struct
import tomllib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "DiT", "load_run", "read_safetensors"]

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def read_safetensors(path):
    """{name: tensor} of a .safetensors file (the format of Hugging Face's safetensors, read with torch alone)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = bytearray(data[8 + n + a:8 + n + b])
        flat = torch.frombuffer(raw, dtype=_DTYPES[info["dtype"]]) if b > a else torch.empty(0, dtype=_DTYPES[info["dtype"]])
        out[name] = flat.reshape(info["shape"]).clone()
    return out


class TimeFeatures(nn.Module):
    """Sinusoidal features of t in [0, 1] (t scaled by 1000 to play the step index), or random Fourier features."""

    def __init__(self, dim, kind="sinusoidal", fourier_scale=16.0):
        super().__init__()
        half = dim // 2
        if kind == "sinusoidal":
            freqs = 1000.0 * torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        elif kind == "fourier":
            freqs = 2 * math.pi * fourier_scale * torch.randn(half)  # the run's own come with its weights
        else:
            raise ValueError(f"time embedding must be sinusoidal or fourier, not {kind!r}")
        self.register_buffer("freqs", freqs)

    def forward(self, t, batch, dtype):
        t = t.expand(batch) if t.dim() == 0 else t
        arg = t.to(dtype)[:, None] * self.freqs.to(dtype)[None]
        return torch.cat([torch.cos(arg), torch.sin(arg)], 1)


class LabelEmbedding(nn.Module):
    """Class labels to vectors, with row `num_classes` for the null class of classifier-free guidance."""

    def __init__(self, num_classes, dim):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y, batch, device):
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.int64, device=device)
        return self.table(y)


def group_norm(groups, channels):
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class ResBlock(nn.Module):
    """ADM's residual block with the embedding as scale and shift of the second GroupNorm."""

    def __init__(self, cin, cout, emb, dropout, groups):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.norm2 = group_norm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over a feature map's pixels, with a residual connection."""

    def __init__(self, channels, head_channels, groups):
        super().__init__()
        self.heads = max(1, channels // max(1, head_channels))
        self.norm = group_norm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        b, c, hh, ww = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, hh * ww)
        q, k, v = (qkv[:, i].transpose(-2, -1) for i in range(3))  # [B, heads, HW, d]
        h = F.scaled_dot_product_attention(q, k, v).transpose(-2, -1).reshape(b, c, hh, ww)
        return x + self.proj(h)


class UNet(nn.Module):
    """gm::UNet (ADM / DDPM++ family): the options of gm::UNetOptions, by the same names."""

    def __init__(self, in_channels=1, image_size=28, channels=64, channel_mult=(1, 2, 2), res_blocks=2,
                 attention_resolutions=(7,), head_channels=32, dropout=0.1, groups=32, time_embedding="sinusoidal",
                 num_classes=0, cond_channels=0, augment_dim=0, times=1):
        super().__init__()
        self.in_channels, self.cond_channels, self.res_blocks = in_channels, cond_channels, res_blocks
        ch, emb, g = channels, 4 * channels, groups
        self.time = TimeFeatures(ch, time_embedding)
        # times = 2: a flow map u(x, t, r) (MeanFlow, shortcut, consistency): features of t - r through their own map
        self.interval = TimeFeatures(ch, time_embedding) if times == 2 else None
        self.interval_map = nn.Linear(ch, ch, bias=False) if times == 2 else None
        self.t1 = nn.Linear(ch, emb)
        self.t2 = nn.Linear(emb, emb)
        self.label = LabelEmbedding(num_classes, emb) if num_classes > 0 else None
        # EDM's augmentation labels, mapped without bias onto the time features (none at sampling)
        self.augment = nn.Linear(augment_dim, ch, bias=False) if augment_dim > 0 else None
        self.add_module("in", nn.Conv2d(in_channels + cond_channels, ch, 3, padding=1))
        levels = len(channel_mult)
        level_res = [image_size]
        for _ in range(1, levels):
            level_res.append((level_res[-1] + 1) // 2)
        for a in attention_resolutions:
            if a not in level_res:
                raise ValueError(f"attention at {a}: no level has that resolution (levels: {level_res})")
        attn_at = [r in attention_resolutions for r in level_res]
        self.down, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.down_attn_at, self.up_attn_at = [], []
        skips, cur = [ch], ch
        for level in range(levels):
            out = ch * channel_mult[level]
            for _ in range(res_blocks):
                self.down.append(ResBlock(cur, out, emb, dropout, g))
                self.down_attn_at.append(len(self.down_attn) if attn_at[level] else -1)
                if attn_at[level]:
                    self.down_attn.append(AttentionBlock(out, head_channels, g))
                cur = out
                skips.append(cur)
            if level + 1 < levels:
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
        self.mid1 = ResBlock(cur, cur, emb, dropout, g)
        self.mid_attn = AttentionBlock(cur, head_channels, g)
        self.mid2 = ResBlock(cur, cur, emb, dropout, g)
        for level in reversed(range(levels)):
            out = ch * channel_mult[level]
            for _ in range(res_blocks + 1):
                self.up.append(ResBlock(cur + skips.pop(), out, emb, dropout, g))
                self.up_attn_at.append(len(self.up_attn) if attn_at[level] else -1)
                if attn_at[level]:
                    self.up_attn.append(AttentionBlock(out, head_channels, g))
                cur = out
            if level > 0:
                self.upsample.append(nn.Conv2d(cur, cur, 3, padding=1))
        self.out_norm = group_norm(g, cur)
        self.out = nn.Conv2d(cur, in_channels, 3, padding=1)

    def forward(self, x, t, y=None, cond=None, aug=None):
        """t: [B] (or 0-d), or [B, 2] rows (t, r) for a network built with times=2."""
        b = x.shape[0]
        if t.dim() == 2:
            if self.interval is None:
                raise ValueError("this UNet takes one time (build it with times=2 for a flow map)")
            features = self.time(t[:, 0], b, x.dtype) + self.interval_map(self.interval(t[:, 0] - t[:, 1], b, x.dtype))
        else:
            features = self.time(t, b, x.dtype)
            if self.interval is not None:
                features = features + self.interval_map(self.interval(torch.zeros_like(t), b, x.dtype))
        if aug is not None and self.augment is not None:
            features = features + self.augment(aug.to(features.dtype))
        emb = self.t2(F.silu(self.t1(features)))
        if self.label is not None:
            emb = emb + self.label(y, b, x.device)
        h = torch.cat([x, cond.to(x.dtype)], 1) if self.cond_channels > 0 else x
        h = getattr(self, "in")(h)
        skips, d = [h], 0
        for i, block in enumerate(self.down):
            h = block(h, emb)
            if self.down_attn_at[i] >= 0:
                h = self.down_attn[self.down_attn_at[i]](h)
            skips.append(h)
            if (i + 1) % self.res_blocks == 0 and d < len(self.downsample):
                h = self.downsample[d](h)
                d += 1
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        u, per = 0, self.res_blocks + 1
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], 1), emb)
            if self.up_attn_at[i] >= 0:
                h = self.up_attn[self.up_attn_at[i]](h)
            if (i + 1) % per == 0 and u < len(self.upsample):
                h = F.interpolate(h, size=tuple(skips[-1].shape[2:]), mode="nearest")
                h = self.upsample[u](h)
                u += 1
        return self.out(F.silu(self.out_norm(h)))


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


def sincos_position_embedding(dim, grid):
    """MAE's and DiT's fixed 2-D sine-cosine position embedding: [grid^2, dim]."""
    omega = 1.0 / torch.pow(10000.0, torch.arange(dim // 4, dtype=torch.float64) / (dim / 4.0))
    pos = torch.arange(grid, dtype=torch.float64)
    gy, gx = pos.repeat_interleave(grid), pos.repeat(grid)

    def embed(p):
        out = p[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], 1)

    return torch.cat([embed(gx), embed(gy)], 1).float()


class DiTBlock(nn.Module):
    """A DiT block with adaLN-Zero conditioning."""

    def __init__(self, hidden, heads, mlp_ratio):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(hidden, int(hidden * mlp_ratio))
        self.fc2 = nn.Linear(int(hidden * mlp_ratio), hidden)
        self.ada = nn.Linear(hidden, 6 * hidden)

    def forward(self, x, c):
        b, n, d = x.shape
        m = self.ada(F.silu(c)).chunk(6, 1)
        h = modulate(self.norm1(x), m[0], m[1])
        qkv = self.qkv(h).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, d)
        out = x + m[2][:, None] * self.proj(a)
        h = modulate(self.norm2(out), m[3], m[4])
        h = self.fc2(F.gelu(self.fc1(h), approximate="tanh"))
        return out + m[5][:, None] * h


DIT_PRESETS = {"tiny": (128, 4, 4), "S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1152, 28, 16)}


class DiT(nn.Module):
    """gm::DiT (Peebles & Xie 2023): the options of gm::DiTOptions, by the same names."""

    def __init__(self, in_channels=1, image_size=28, patch=2, hidden=384, depth=12, heads=6, mlp_ratio=4.0,
                 num_classes=0):
        super().__init__()
        self.in_channels, self.image_size, self.patch = in_channels, image_size, patch
        grid = image_size // patch
        self.embed = nn.Conv2d(in_channels, hidden, patch, stride=patch)
        self.register_buffer("pos", sincos_position_embedding(hidden, grid)[None])
        self.time = TimeFeatures(256)
        self.t1 = nn.Linear(256, hidden)
        self.t2 = nn.Linear(hidden, hidden)
        self.label = LabelEmbedding(num_classes, hidden) if num_classes > 0 else None
        self.blocks = nn.ModuleList(DiTBlock(hidden, heads, mlp_ratio) for _ in range(depth))
        self.final_norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(hidden, 2 * hidden)
        self.final = nn.Linear(hidden, patch * patch * in_channels)

    def forward(self, x, t, y=None):
        b, p, c, g = x.shape[0], self.patch, self.in_channels, self.image_size // self.patch
        h = self.embed(x).flatten(2).transpose(1, 2) + self.pos.to(x.dtype)
        cond = self.t2(F.silu(self.t1(self.time(t, b, x.dtype))))
        if self.label is not None:
            cond = cond + self.label(y, b, x.device)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_ada(F.silu(cond)).chunk(2, 1)
        h = self.final(modulate(self.final_norm(h), shift, scale))
        return h.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, g * p, g * p)


def _ints(text):
    return [] if text in ("", "none") else [int(v) for v in str(text).split(",")]


def load_run(run, image_size=None, weights="weights.safetensors"):
    """The UNet or DiT of a gm run folder (its config.toml's model keys) with the run's exported EMA weights,
    in eval mode. Channels, classes and a DiT's image size come from the weights; a UNet with attention needs
    `image_size` (the data's height, which places its attention levels)."""
    run = Path(run)
    model = tomllib.loads((run / "config.toml").read_text()).get("model", {})
    state = read_safetensors(run / weights)
    classes = state["label.table.weight"].shape[0] - 1 if "label.table.weight" in state else 0
    if "emb_noise.weight" in state:
        raise NotImplementedError(f"{run}: an EDM2UNet run; gm_nets.py has no twin of gm::EDM2UNet yet")
    if "preset" in model:
        hidden, depth, heads = DIT_PRESETS[model["preset"]]
        hidden, depth, heads = model.get("hidden") or hidden, model.get("depth") or depth, model.get("heads") or heads
        patch = int(model.get("patch", 2))
        net = DiT(in_channels=state["embed.weight"].shape[1], image_size=math.isqrt(state["pos"].shape[1]) * patch,
                  patch=patch, hidden=hidden, depth=depth, heads=heads, num_classes=classes)
    else:
        attention = _ints(model.get("attention", "7"))
        if attention and image_size is None:
            raise ValueError(f"{run}: a UNet with attention at {attention} needs image_size (the data's height)")
        in_channels = state["out.weight"].shape[0]
        net = UNet(in_channels=in_channels, image_size=image_size or 0, channels=int(model["channels"]),
                   channel_mult=_ints(model["channel_mult"]), res_blocks=int(model["res_blocks"]),
                   attention_resolutions=attention, head_channels=int(model["head_channels"]),
                   dropout=float(model["dropout"]), time_embedding=model["time_embedding"], num_classes=classes,
                   cond_channels=state["in.weight"].shape[1] - in_channels,
                   augment_dim=state["augment.weight"].shape[1] if "augment.weight" in state else 0,
                   times=2 if "interval_map.weight" in state else 1)
    net.load_state_dict(state, strict=True)
    return net.eval()
