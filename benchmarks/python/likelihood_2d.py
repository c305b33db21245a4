#!/usr/bin/env python3
"""The Python baseline of gm's bench_likelihood: the exact log-likelihood of a 2-D flow model, written the
way Meta's flow_matching computes it (flow_matching/solver/ode_solver.py, `ODESolver.compute_likelihood` with
`exact_divergence=True`): the state and the log-determinant as a tuple integrated by a torchdiffeq-style
fixed-grid solver, the divergence as a sum over dimensions of `torch.autograd.grad(u[:, i], x,
create_graph=True)[:, i]`, and the prior's log-density added at the end.  torchdiffeq is not packaged for
Debian, so its fixed-grid midpoint and rk4 steps (`_MidpointSolver`, `rk4_alt_step_func`) are written out
here as it writes them.

The network is gm's MLP ([x, t] -> (Linear, SiLU) x layers -> Linear) with the weights bench_likelihood
wrote to an .npz (p0, p1, ... in parameter order), the points `x`, and the reference log-likelihoods `ref`.
Time runs as in gm: data at t = t_eps, noise N(0, I) at t = 1.

It runs as a server: prints `ready <threads>`, then answers each line `run <method> <steps>` with
`ms <milliseconds> err <mean |log p - ref|>`, and stops at `quit` or end of input.

Usage: /usr/bin/python3 likelihood_2d.py --weights W.npz --layers 4 [--threads 1] [--t-eps 1e-5]
"""
import argparse
import math
import sys
import time

import numpy as np
import torch


def gradient(output, x, grad_outputs=None, create_graph=False):
    """flow_matching.utils.gradient."""
    if grad_outputs is None:
        grad_outputs = torch.ones_like(output).detach()
    return torch.autograd.grad(output, x, grad_outputs, create_graph=create_graph)[0]


def midpoint_step(func, t0, dt, y0):
    """torchdiffeq's _MidpointSolver._step_func on a tuple state."""
    half_dt = 0.5 * dt
    f0 = func(t0, y0)
    y_mid = tuple(y + f * half_dt for y, f in zip(y0, f0))
    return tuple(dt * f for f in func(t0 + half_dt, y_mid))


def rk4_step(func, t0, dt, y0):
    """torchdiffeq's rk4_alt_step_func (the 3/8 rule) on a tuple state."""
    k1 = func(t0, y0)
    k2 = func(t0 + dt / 3, tuple(y + dt * a / 3 for y, a in zip(y0, k1)))
    k3 = func(t0 + dt * 2 / 3, tuple(y + dt * (b - a / 3) for y, a, b in zip(y0, k1, k2)))
    k4 = func(t0 + dt, tuple(y + dt * (a - b + c) for y, a, b, c in zip(y0, k1, k2, k3)))
    return tuple((a + 3 * (b + c) + d) * dt * 0.125 for a, b, c, d in zip(k1, k2, k3, k4))


def odeint_fixed(func, y0, t0, t1, steps, step):
    y = y0
    dt = (t1 - t0) / steps
    for i in range(steps):
        dy = step(func, t0 + i * dt, dt, y)
        y = tuple(a + b for a, b in zip(y, dy))
    return y


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
    layers, width = [], x.shape[1] + 1
    for i in range(args.layers + 1):
        lin = torch.nn.Linear(params[2 * i].shape[1], params[2 * i].shape[0])
        with torch.no_grad():
            lin.weight.copy_(params[2 * i])
            lin.bias.copy_(params[2 * i + 1])
        layers.append(lin)
        if i < args.layers:
            layers.append(torch.nn.SiLU())
    net = torch.nn.Sequential(*layers).eval()

    def velocity_model(x, t):
        return net(torch.cat([x, t.expand(x.shape[0], 1)], 1))

    def compute_likelihood(x_data, steps, step):
        def dynamics_func(t, states):
            xt = states[0]
            with torch.set_grad_enabled(True):
                xt.requires_grad_()
                ut = velocity_model(xt, torch.tensor(t, dtype=xt.dtype))
                div = 0
                for i in range(ut.flatten(1).shape[1]):
                    div += gradient(ut[:, i], xt, create_graph=True)[:, i]
            return ut.detach(), div.detach()

        y_init = (x_data, torch.zeros(x_data.shape[0]))
        with torch.no_grad():
            x_noise, log_det = odeint_fixed(dynamics_func, y_init, args.t_eps, 1.0, steps, step)
        d = x_noise.shape[1]
        log_p1 = -0.5 * (x_noise ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi)
        return log_p1 + log_det

    print(f"ready {torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        step = {"midpoint": midpoint_step, "rk4": rk4_step}[cmd[1]]
        steps = int(cmd[2])
        start = time.perf_counter()
        log_p = compute_likelihood(x, steps, step)
        ms = (time.perf_counter() - start) * 1e3
        err = (log_p.double() - ref).abs().mean().item()
        print(f"ms {ms:.6f} err {err:.8g}", flush=True)


if __name__ == "__main__":
    main()
