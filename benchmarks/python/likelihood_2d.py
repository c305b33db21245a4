#!/usr/bin/env python3
"""The Python baseline of gm's bench_likelihood: the exact log-likelihood of a 2-D flow model computed by Meta's
flow_matching package itself (PyPI `flow-matching`: `flow_matching.solver.ODESolver.compute_likelihood` with
`exact_divergence=True`, which integrates the state and the log-determinant with `torchdiffeq.odeint`, PyPI
`torchdiffeq`, and takes the divergence as a sum over dimensions of `torch.autograd.grad(u[:, i], x,
create_graph=True)[:, i]`).

The network is gm's MLP ([x, t] -> (Linear, SiLU) x layers -> Linear) with the weights bench_likelihood
wrote to an .npz (p0, p1, ... in parameter order), the points `x`, and the reference log-likelihoods `ref`.
gm's time has data at t = t_eps and noise N(0, I) at t = 1; flow_matching's has data at s = 1 and noise at
s = 0, so the model flow_matching sees is u(x, s) = -(1 - t_eps) v(x, t) at t = 1 - s (1 - t_eps), and the time
grid is the `steps` + 1 points from s = 1 to 0 (the fixed-grid steps gm takes).

It runs as a server: prints `ready <threads>`, then answers each line `run <method> <steps>` with
`ms <milliseconds> err <mean |log p - ref|>`, and stops at `quit` or end of input.  The methods are
torchdiffeq's: midpoint, rk4 (its 3/8-rule step).

Usage: .venv/bin/python likelihood_2d.py --weights W.npz --layers 4 [--threads 1] [--t-eps 1e-5]
"""
import argparse
import math
import sys
import time

import numpy as np
import torch
from flow_matching.solver import ODESolver
from flow_matching.utils import ModelWrapper


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--t-eps", type=float, default=1e-5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    z = np.load(args.weights)
    params = [torch.from_numpy(z[f"p{i}"]) for i in range(2 * (args.layers + 1))]
    x = torch.from_numpy(z["x"])
    ref = torch.from_numpy(z["ref"]).double()
    layers = []
    for i in range(args.layers + 1):
        lin = torch.nn.Linear(params[2 * i].shape[1], params[2 * i].shape[0])
        with torch.no_grad():
            lin.weight.copy_(params[2 * i])
            lin.bias.copy_(params[2 * i + 1])
        layers.append(lin)
        if i < args.layers:
            layers.append(torch.nn.SiLU())
    net = torch.nn.Sequential(*layers).eval()
    span = 1.0 - args.t_eps

    class Velocity(ModelWrapper):
        """gm's velocity in flow_matching's time."""

        def forward(self, x, t, **extras):
            tg = (1.0 - t * span).to(x.dtype).reshape(1, 1).expand(x.shape[0], 1)
            return -span * self.model(torch.cat([x, tg], 1))

    solver = ODESolver(velocity_model=Velocity(net))

    def log_p0(x0):
        return -0.5 * (x0 ** 2).sum(1) - 0.5 * x0.shape[1] * math.log(2 * math.pi)

    print(f"ready {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        method, steps = cmd[1], int(cmd[2])
        grid = torch.linspace(1.0, 0.0, steps + 1)
        start = time.perf_counter()
        _, log_p = solver.compute_likelihood(x_1=x, log_p0=log_p0, step_size=None, method=method, time_grid=grid,
                                             exact_divergence=True)
        ms = (time.perf_counter() - start) * 1e3
        err = (log_p.double() - ref).abs().mean().item()
        print(f"ms {ms:.6f} err {err:.8g}", flush=True)


if __name__ == "__main__":
    main()
