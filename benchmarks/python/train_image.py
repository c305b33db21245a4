#!/usr/bin/env python3
"""The Python PyTorch baseline of gm's bench_train for image networks: gm's UNet and DiT written by hand.

The networks are the ones gm builds (include/gm/nn/unet.hpp, dit.hpp), layer for layer and with the same
parameter count (printed at start-up), trained the way the seed repositories train them: class-conditional
rectified flow (x_t = (1 - t) x0 + t eps, target eps - x0), label dropout to the null class, MSE, Adam,
clipping at 1, EMA 0.999, on a fixed batch of [batch, 1, 28, 28] images.

--precision fp32: everything in float32.  --precision bf16: torch.autocast('cpu', bfloat16) around the
forward pass, which LibTorch 1.13 rejects in GroupNorm ("expected scalar type BFloat16 but found Float"), so
for the UNet each GroupNorm casts its input to float32 (the fix a researcher would write).

Server protocol as train_mlp.py: prints `ready <threads> <params>`, answers `run N` with `ms <ms> loss <loss>`.

Usage: .venv/bin/python train_image.py --net unet|dit --batch 128 [--channels 32] [--mult 1,2,2] [--blocks 1]
       [--attention 7] [--hidden 128 --depth 4 --heads 4 --patch 2] [--precision fp32|bf16] [--threads 0]
       [--device cpu|cuda] [--compile]
"""
import argparse
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_server import add_device_args, device_settings, serve


def group_norm(groups, ch):
    g = min(groups, ch)
    while ch % g:
        g -= 1
    return GroupNorm32(g, ch)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm in float32 whatever autocast does to its input."""

    def forward(self, x):
        return super().forward(x.float())


class TimeFeatures(nn.Module):
    def __init__(self, dim):
        super().__init__()
        half = dim // 2
        self.register_buffer("freqs", 1000.0 * torch.exp(-math.log(10000.0) * torch.arange(half) / half))

    def forward(self, t):
        arg = t[:, None] * self.freqs[None]
        return torch.cat([torch.cos(arg), torch.sin(arg)], 1)


def attention(q, k, v):
    # PyTorch 2.x's fused attention, as gm's networks use it (gm::nn::attention).
    return F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, dropout, groups):
        super().__init__()
        self.norm1 = group_norm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, 2 * cout)
        self.norm2 = group_norm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x))).float()
        scale, shift = self.emb(F.silu(emb)).float()[:, :, None, None].chunk(2, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h))).float()
        return (self.skip(x).float() if self.skip is not None else x) + h


class AttentionBlock(nn.Module):
    def __init__(self, ch, head_ch, groups):
        super().__init__()
        self.heads = max(1, ch // head_ch)
        self.norm = group_norm(groups, ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, hh, ww = x.shape
        qkv = self.qkv(self.norm(x)).float().reshape(b, 3, self.heads, c // self.heads, hh * ww)
        q, k, v = (qkv[:, i].transpose(-2, -1) for i in range(3))
        h = attention(q, k, v).float().transpose(-2, -1).reshape(b, c, hh, ww)
        return x + self.proj(h).float()


class UNet(nn.Module):
    def __init__(self, cin=1, size=28, ch=32, mult=(1, 2, 2), blocks=1, attn=(7,), head_ch=32, dropout=0.1,
                 groups=32, classes=10):
        super().__init__()
        emb = 4 * ch
        self.blocks, self.classes = blocks, classes
        self.time = TimeFeatures(ch)
        self.t1, self.t2 = nn.Linear(ch, emb), nn.Linear(emb, emb)
        self.label = nn.Embedding(classes + 1, emb)
        self.inp = nn.Conv2d(cin, ch, 3, padding=1)
        skips, cur, res = [ch], ch, size
        self.down, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for lvl, m in enumerate(mult):
            for _ in range(blocks):
                self.down.append(ResBlock(cur, ch * m, emb, dropout, groups))
                self.down_attn.append(AttentionBlock(ch * m, head_ch, groups) if res in attn else nn.Identity())
                cur = ch * m
                skips.append(cur)
            if lvl + 1 < len(mult):
                self.downsample.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
                res = (res + 1) // 2
        self.mid1 = ResBlock(cur, cur, emb, dropout, groups)
        self.mid_attn = AttentionBlock(cur, head_ch, groups)
        self.mid2 = ResBlock(cur, cur, emb, dropout, groups)
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for lvl in reversed(range(len(mult))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(cur + skips.pop(), ch * mult[lvl], emb, dropout, groups))
                self.up_attn.append(AttentionBlock(ch * mult[lvl], head_ch, groups) if res in attn else nn.Identity())
                cur = ch * mult[lvl]
            if lvl > 0:
                self.upsample.append(nn.Conv2d(cur, cur, 3, padding=1))
                res *= 2
        self.out_norm = group_norm(groups, cur)
        self.out = nn.Conv2d(cur, cin, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, t, y):
        emb = self.t2(F.silu(self.t1(self.time(t)).float())).float() + self.label(y)
        h = self.inp(x).float()
        hs, d = [h], 0
        for i, (blk, att) in enumerate(zip(self.down, self.down_attn)):
            h = att(blk(h, emb))
            hs.append(h)
            if (i + 1) % self.blocks == 0 and d < len(self.downsample):
                h = self.downsample[d](h).float()
                d += 1
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        u = 0
        for i, (blk, att) in enumerate(zip(self.up, self.up_attn)):
            h = att(blk(torch.cat([h, hs.pop()], 1), emb))
            if (i + 1) % (self.blocks + 1) == 0 and u < len(self.upsample):
                h = F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest")
                h = self.upsample[u](h).float()
                u += 1
        return self.out(F.silu(self.out_norm(h))).float()


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    def __init__(self, d, heads, ratio):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(d, int(d * ratio)), nn.Linear(int(d * ratio), d)
        self.ada = nn.Linear(d, 6 * d)

    def forward(self, x, c):
        b, n, d = x.shape
        m = self.ada(F.silu(c)).float().chunk(6, 1)
        h = modulate(self.norm1(x), m[0], m[1])
        qkv = self.qkv(h).float().reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = attention(qkv[0], qkv[1], qkv[2]).float().transpose(1, 2).reshape(b, n, d)
        out = x + m[2][:, None] * self.proj(a).float()
        h = modulate(self.norm2(out), m[3], m[4])
        h = self.fc2(F.gelu(self.fc1(h).float(), approximate="tanh")).float()
        return out + m[5][:, None] * h


class DiT(nn.Module):
    def __init__(self, cin=1, size=28, patch=2, d=128, depth=4, heads=4, ratio=4.0, classes=10):
        super().__init__()
        self.p, self.cin, self.g = patch, cin, size // patch
        self.embed = nn.Conv2d(cin, d, patch, stride=patch)
        self.register_buffer("pos", torch.zeros(1, self.g * self.g, d))
        self.time = TimeFeatures(256)
        self.t1, self.t2 = nn.Linear(256, d), nn.Linear(d, d)
        self.label = nn.Embedding(classes + 1, d)
        self.blocks = nn.ModuleList(DiTBlock(d, heads, ratio) for _ in range(depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_ada, self.final = nn.Linear(d, 2 * d), nn.Linear(d, patch * patch * cin)

    def forward(self, x, t, y):
        b = x.shape[0]
        h = self.embed(x).float().flatten(2).transpose(1, 2) + self.pos
        c = self.t2(F.silu(self.t1(self.time(t)).float())).float() + self.label(y)
        for blk in self.blocks:
            h = blk(h, c)
        m = self.final_ada(F.silu(c)).float().chunk(2, 1)
        h = self.final(modulate(self.final_norm(h), m[0], m[1])).float()
        g, p = self.g, self.p
        return h.reshape(b, g, g, p, p, self.cin).permute(0, 5, 1, 3, 2, 4).reshape(b, self.cin, g * p, g * p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", choices=["unet", "dit"], required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--mult", default="1,2,2")
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--attention", default="7")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    add_device_args(ap)
    args = ap.parse_args()
    device, autocast_type, sync = device_settings(args)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    else:
        torch.set_num_threads(os.cpu_count())
    torch.manual_seed(args.seed)
    if args.net == "unet":
        net = UNet(size=args.size, ch=args.channels, mult=[int(m) for m in args.mult.split(",")], blocks=args.blocks,
                   attn=[int(a) for a in args.attention.split(",") if a])
    else:
        net = DiT(size=args.size, patch=args.patch, d=args.hidden, depth=args.depth, heads=args.heads)
    net = net.to(device)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    forward = torch.compile(net) if args.compile else net
    ema = [p.detach().clone() for p in net.parameters()]
    x0 = torch.randn(args.batch, 1, args.size, args.size, device=device)
    y0 = torch.randint(10, (args.batch,), device=device)

    def step():
        t = torch.rand(args.batch, device=device)
        eps = torch.randn_like(x0)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        y = torch.where(torch.rand(args.batch, device=device) < 0.1, torch.full_like(y0, 10), y0)
        with torch.autocast(autocast_type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = forward(xt, t, y)
        loss = ((out.float() - (eps - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.mul_(0.999).add_(p, alpha=0.001)
        return loss

    serve(step, f"ready {torch.get_num_threads()} {params}", sync)


if __name__ == "__main__":
    main()
