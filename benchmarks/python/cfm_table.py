#!/usr/bin/env python3
"""Tong et al.'s 2-D table, gm beside torchcfm: W2, normalised path energy and time per step.

Trains gm (build/examples/ot_flow_2d) and torchcfm (its own matchers and MLP) on the same tasks, with the same
data, network, optimiser, steps, batch and sampler, and scores both with POT's exact W2:

  tasks    N -> 8gaussians, moons -> 8gaussians, N -> moons, N -> scurve (source -> target; N a standard normal)
  methods  I-CFM and OT-CFM at sigma 0.1, SB-CFM at sigma 1 on the exact plan (torchcfm's defaults for it);
           pairs drawn from the plan with replacement, as torchcfm's sample_plan (gm: training.coupling_sample=plan)
  network  torchcfm's MLP: [x, t] -> 3 hidden layers of 64, SELU -> velocity; Adam 1e-3, constant, no EMA,
           no clipping (gm: model.widths=64,64,64, activation selu, time_embedding raw)
  data     torchcfm's own samplers (torchcfm.utils.sample_8gaussians, sample_moons, copied; the S-curve as sklearn's
           make_s_curve(noise=0.05), columns x and z): torchcfm draws a fresh batch each step, gm draws rows of a
           file of 100 000 draws of the same samplers (data.name=file, data.source=file)
  sampling Euler, 100 steps, 2000 samples from fresh source draws
  scores   W2 = sqrt(ot.emd2) between the samples and 2000 fresh target draws; the path energy PE, the mean
           of sum |dx|^2 / dt along the Euler steps (gm's path_energy metric); NPE = |PE - W2(source, target)^2|
           / W2(source, target)^2 (Tong et al. 2024, eq. 19), the reference W2 from 2000 draws of each
  time     mean ms per training step (gm: history.csv; torchcfm: the loop, data draws included), one thread

The paper trains 20 000 steps at batch 512; the defaults here are a CPU-sized cut (1000 steps, batch 512).

    .venv/bin/python benchmarks/python/cfm_table.py [--steps 1000] [--batch 512] [--seeds 3] [--out DIR]

Prints a Markdown table (mean +- std over seeds) and writes it with every run's numbers to DIR.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import ot
import torch
from torchcfm.conditional_flow_matching import (ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher,
                                                SchrodingerBridgeConditionalFlowMatcher)
from torchcfm.models.models import MLP

ROOT = Path(__file__).resolve().parents[2]
TASKS = [("N", "8gaussians"), ("moons", "8gaussians"), ("N", "moons"), ("N", "scurve")]
METHODS = ["I-CFM", "OT-CFM", "SB-CFM"]


# torchcfm.utils' samplers, copied because torchcfm.utils imports matplotlib and torchdyn: sample_8gaussians
# (eight_normal_sample(n, 2, scale=5, var=0.1)) and sample_moons (torchdyn's generate_moons(n, noise=0.2) * 3 - 1:
# points evenly spaced on the two half circles, both coordinates shifted by one uniform draw times the noise).
def sample_8gaussians(n):
    s = 1 / math.sqrt(2)
    centers = 5 * torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    noise = torch.distributions.MultivariateNormal(torch.zeros(2), math.sqrt(0.1) * torch.eye(2)).sample((n,))
    return centers[torch.multinomial(torch.ones(8), n, replacement=True)] + noise


def sample_moons(n):
    out, inn = n // 2, n - n // 2
    x = np.vstack([np.append(np.cos(np.linspace(0, np.pi, out)), 1 - np.cos(np.linspace(0, np.pi, inn))),
                   np.append(np.sin(np.linspace(0, np.pi, out)), 1 - np.sin(np.linspace(0, np.pi, inn)) - 0.5)]).T
    x += np.random.rand(n, 1) * 0.2
    return torch.Tensor(x) * 3 - 1


def sample_scurve(n):
    t = 3 * math.pi * (torch.rand(n) - 0.5)
    x = torch.stack([torch.sin(t), torch.sign(t) * (torch.cos(t) - 1)], 1)
    return (x + 0.05 * torch.randn(n, 2)).float()


def draw(name, n):
    if name == "N":
        return torch.randn(n, 2)
    return {"8gaussians": sample_8gaussians, "moons": sample_moons, "scurve": sample_scurve}[name](n).float()


def w2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return math.sqrt(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), ot.dist(a, b), numItermax=10_000_000))


def torchcfm_run(src, tgt, method, seed, steps, batch):
    torch.manual_seed(seed)
    np.random.seed(seed)
    matcher = {"I-CFM": lambda: ConditionalFlowMatcher(sigma=0.1),
               "OT-CFM": lambda: ExactOptimalTransportConditionalFlowMatcher(sigma=0.1),
               "SB-CFM": lambda: SchrodingerBridgeConditionalFlowMatcher(sigma=1.0, ot_method="exact")}[method]()
    model = MLP(dim=2, w=64, time_varying=True)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        x0, x1 = draw(src, batch), draw(tgt, batch)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        loss = torch.mean((model(torch.cat([xt, t[:, None]], -1)) - ut) ** 2)
        loss.backward()
        opt.step()
    ms = (time.perf_counter() - start) * 1e3 / steps
    with torch.no_grad():  # Euler from the source at t = 0 to the target at t = 1
        x, energy, dt = draw(src, 2000), torch.zeros(2000, dtype=torch.float64), 1.0 / 100
        for k in range(100):
            v = model(torch.cat([x, torch.full((2000, 1), k * dt)], -1))
            energy += (v.double() * dt).pow(2).sum(1) / dt
            x = x + dt * v
    return x.numpy(), energy.mean().item(), ms


def gm_run(binary, files, src, tgt, method, seed, steps, batch, workdir):
    coupling = {"I-CFM": "independent", "OT-CFM": "exact_ot", "SB-CFM": "schrodinger_bridge"}[method]
    args = [str(binary), "--config", str(ROOT / "configs/ot_flow_2d.toml"), "--workdir", str(workdir), "--seed", str(seed),
            "--data.name=file", "--data.path", str(files[tgt]), "--training.coupling", coupling,
            "--training.coupling_sample=plan", "--training.steps", str(steps), "--training.batch_size", str(batch),
            "--training.lr=1e-3", "--optim.name=adam", "--optim.schedule=constant", "--optim.warmup=0",
            "--training.clip_norm=0", "--training.ema_decay=0", "--training.threads=1", "--training.precision=fp32",
            "--training.log_every", str(steps), "--model.widths=64,64,64", "--model.activation=selu",
            "--model.time_embedding=raw", "--sampling.sampler=euler", "--sampling.nfe=100", "--sampling.n=2000",
            "--eval.density_map=false"]
    args += ["--data.source=gaussian"] if src == "N" else ["--data.source=file", "--data.source_path", str(files[src])]
    if method == "SB-CFM":
        args += ["--training.bridge_sigma=1", "--training.bridge_plan=exact"]
    else:
        args += ["--training.sigma_min=0.1"]
    out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    if out.returncode != 0:
        sys.exit(f"gm failed ({' '.join(args)}):\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    energy = float(re.search(r"path_energy ([0-9.eE+-]+)", out.stdout + out.stderr).group(1))
    history = np.genfromtxt(workdir / "history.csv", delimiter=",", names=True)
    samples = np.load(workdir / "samples" / f"step_{steps}.npy")
    return samples, energy, float(np.mean(np.atleast_1d(history["ms_per_step"])[1:]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--gm", default=str(ROOT / "build/examples/ot_flow_2d"))
    p.add_argument("--out", default=str(ROOT / "runs/cfm_table"))
    a = p.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1234)
    files = {}
    for name in ("8gaussians", "moons", "scurve"):
        files[name] = out / f"{name}.npy"
        np.save(files[name], draw(name, 100_000).numpy())
    rows, runs = [], []
    for src, tgt in TASKS:
        torch.manual_seed(99)
        ref = w2(draw(src, 2000), draw(tgt, 2000)) ** 2
        for method in METHODS:
            cell = {}
            for tool in ("gm", "torchcfm"):
                w, npe, ms = [], [], []
                for seed in range(a.seeds):
                    if tool == "gm":
                        x, pe, t = gm_run(a.gm, files, src, tgt, method, seed, a.steps, a.batch,
                                          out / f"gm_{src}_{tgt}_{method}_{seed}")
                    else:
                        x, pe, t = torchcfm_run(src, tgt, method, seed, a.steps, a.batch)
                    torch.manual_seed(1000 + seed)
                    w.append(w2(x, draw(tgt, 2000)))
                    npe.append(abs(pe - ref) / ref)
                    ms.append(t)
                    runs.append(dict(task=f"{src} -> {tgt}", method=method, tool=tool, seed=seed, w2=w[-1],
                                     npe=npe[-1], ms=t))
                    print(json.dumps(runs[-1]), flush=True)
                cell[tool] = (w, npe, ms)
            rows.append((f"{src} -> {tgt}", method, cell))

    def pm(v):
        return f"{statistics.mean(v):.3f} ± {statistics.stdev(v) if len(v) > 1 else 0:.3f}"

    lines = [f"| task | method | W2 gm | W2 torchcfm | NPE gm | NPE torchcfm | ms/step gm | ms/step torchcfm |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for task, method, cell in rows:
        g, t = cell["gm"], cell["torchcfm"]
        lines.append(f"| {task} | {method} | {pm(g[0])} | {pm(t[0])} | {pm(g[1])} | {pm(t[1])} | "
                     f"{statistics.mean(g[2]):.2f} | {statistics.mean(t[2]):.2f} |")
    table = "\n".join(lines)
    print(f"\n{a.steps} steps, batch {a.batch}, {a.seeds} seeds, one thread\n\n{table}")
    (out / "table.md").write_text(table + "\n")
    (out / "runs.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
