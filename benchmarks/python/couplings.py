#!/usr/bin/env python3
"""bench_coupling's peer: POT's couplings and torchcfm's training steps, timed on what gm sends.

Protocol (one line each way, after `ready`):
  load <x0.npy> <x1.npy>      the batch pair; answers `ok <n>`
  emd <R>                     ot.emd on the squared distances (float64, as torchcfm's OTPlanSampler does),
                              R times: `ms <median ms> cost <sum(plan * M)>`
  sinkhorn <eps> <R>          ot.sinkhorn(a, b, M, eps) (POT's plain iteration, stopThr 1e-9, 1000 iterations):
                              `ms <median ms> cost <sum(plan * M)>`
  step <method> <n> <R>       torchcfm's training step at batch n: `ms <median ms of R steps>`; method icfm
                              (ConditionalFlowMatcher), otcfm (ExactOptimalTransportConditionalFlowMatcher) or
                              sbcfm (SchrodingerBridgeConditionalFlowMatcher, sigma 1, its default exact plan),
                              each with sigma_min 0 (sbcfm: sigma 1), torchcfm's MLP (3 x 64, SELU, time input) and
                              Adam 1e-3, x0 ~ N(0, I) and x1 the batch loaded last repeated to n rows.
  quit
"""
import statistics
import sys
import time

import numpy as np
import ot
import torch
from torchcfm.conditional_flow_matching import (ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher,
                                                SchrodingerBridgeConditionalFlowMatcher)
from torchcfm.models.models import MLP


def timed(fn, reps):
    times, out = [], None
    for _ in range(reps):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    torch.manual_seed(0)
    x0 = x1 = M = None
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        if cmd[0] == "load":
            x0, x1 = np.load(cmd[1]), np.load(cmd[2])
            M = torch.cdist(torch.from_numpy(x0), torch.from_numpy(x1)).pow(2).numpy()
            print(f"ok {x0.shape[0]}", flush=True)
        elif cmd[0] == "emd":
            a, b = ot.unif(M.shape[0]), ot.unif(M.shape[1])
            ms, plan = timed(lambda: ot.emd(a, b, M), int(cmd[1]))
            print(f"ms {ms:.6f} cost {float((plan * M).sum()):.17g}", flush=True)
        elif cmd[0] == "sinkhorn":
            a, b, eps = ot.unif(M.shape[0]), ot.unif(M.shape[1]), float(cmd[1])
            ms, plan = timed(lambda: ot.sinkhorn(a, b, M, eps, numItermax=1000, stopThr=1e-9), int(cmd[2]))
            print(f"ms {ms:.6f} cost {float((plan * M).sum()):.17g}", flush=True)
        elif cmd[0] == "step":
            method, n, reps = cmd[1], int(cmd[2]), int(cmd[3])
            fm = {"icfm": lambda: ConditionalFlowMatcher(sigma=0.0),
                  "otcfm": lambda: ExactOptimalTransportConditionalFlowMatcher(sigma=0.0),
                  "sbcfm": lambda: SchrodingerBridgeConditionalFlowMatcher(sigma=1.0)}[method]()
            net = MLP(dim=2, w=64, time_varying=True)
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            target = torch.from_numpy(x1).float()
            target = target.repeat((n + target.shape[0] - 1) // target.shape[0], 1)[:n]

            def step():
                opt.zero_grad()
                source = torch.randn(n, 2)
                t, xt, ut = fm.sample_location_and_conditional_flow(source, target)
                loss = torch.mean((net(torch.cat([xt, t[:, None]], dim=-1)) - ut) ** 2)
                loss.backward()
                opt.step()
                return loss

            timed(step, 3)  # warm-up
            ms, _ = timed(step, reps)
            print(f"ms {ms:.6f}", flush=True)


if __name__ == "__main__":
    main()
