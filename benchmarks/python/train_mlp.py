#!/usr/bin/env python3
"""The Python PyTorch baseline of gm's bench_train: the training step a researcher writes by hand.

It trains the same network as gm's MLP (input [x, t] -> (Linear, SiLU) x layers -> Linear) with the same
rectified-flow loss (x_t = (1 - t) x0 + t eps, target eps - x0, mean squared error), the same Adam, learning
rate, clipping, EMA, batch, precision and thread count as the gm step it is compared with.  It is written the
way the seed repositories write it (Meta flow_matching's 2-D example, DiT's train.py): an nn.Sequential, the
default Adam, clip_grad_norm_, and an EMA loop under no_grad.

It runs as a server so bench_train can alternate it with gm's step without paying Python's start-up each time:
after building the model it prints `ready <threads>`, then answers each line `run N` on stdin with
`ms <milliseconds for N steps> loss <last loss>`, and stops at `quit` or end of input.

Usage: .venv/bin/python train_mlp.py --batch 256 --hidden 256 --layers 2 [--dim 2] [--lr 1e-3] [--clip 0]
       [--ema 0] [--precision fp32|bf16] [--threads 0] [--seed 0] [--device cpu|cuda] [--compile]

--compile runs the network under torch.compile (inductor): the step a researcher gets from PyTorch 2.x's
compiler, without changing the rest of the script.
"""
import argparse
import os

import torch

from bench_server import add_device_args, device_settings, serve


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--clip", type=float, default=0.0, help="max gradient norm, 0 for none")
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay, 0 for no EMA")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: torch.autocast('cpu', torch.bfloat16) around forward and loss")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads; 0: torch's default for fp32, every core for bf16 (as gm's auto)")
    ap.add_argument("--seed", type=int, default=0)
    add_device_args(ap)
    args = ap.parse_args()
    device, autocast_type, sync = device_settings(args)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    elif args.precision == "bf16":
        torch.set_num_threads(os.cpu_count())
    torch.manual_seed(args.seed)
    layers, width = [], args.dim + 1  # raw time: t is one extra input feature
    for _ in range(args.layers):
        layers += [torch.nn.Linear(width, args.hidden), torch.nn.SiLU()]
        width = args.hidden
    layers.append(torch.nn.Linear(width, args.dim))
    net = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    forward = torch.compile(net) if args.compile else net
    ema = [p.detach().clone() for p in net.parameters()] if args.ema > 0 else None
    x0 = torch.randn(args.batch, args.dim, device=device)  # a fixed batch: the step is timed, not the data source

    def step():
        t = torch.rand(args.batch, 1, device=device)
        eps = torch.randn_like(x0)
        xt = (1 - t) * x0 + t * eps
        with torch.autocast(autocast_type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = forward(torch.cat([xt, t], 1))
        loss = ((out.float() - (eps - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                for e, p in zip(ema, net.parameters()):
                    e.mul_(args.ema).add_(p, alpha=1 - args.ema)
        return loss

    serve(step, f"ready {torch.get_num_threads()}", sync)


if __name__ == "__main__":
    main()
