#!/usr/bin/env python3
"""Where the time of the Python fp32 UNet training step goes (the step bench_train's `unet` row times): three
steps under torch.profiler on 2 threads, summarised by kernel family.  Both gm and Python run these libtorch
kernels, so the shares bound what gm's own code can save.

Usage: /usr/bin/python3 benchmarks/python/profile_unet.py
"""
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_image  # noqa: E402  (the same UNet as bench_train's baseline)


def main():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = train_image.UNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0, y0 = torch.randn(128, 1, 28, 28), torch.randint(10, (128,))

    def step():
        t = torch.rand(128)
        eps = torch.randn_like(x0)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * eps
        loss = ((net(xt, t, y0) - (eps - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    share = lambda *names: 100 * sum(e.self_cpu_time_total for e in events if any(n in e.key.lower() for n in names)) / total
    print("self CPU %.0f ms/step: convolution %.1f%%, dropout (bernoulli_) %.1f%%, matrix products %.1f%%, "
          "group norm %.1f%%" % (total / 3e3, share("conv", "mkldnn", "thnn"), share("bernoulli"), share("aten::mm", "bmm", "addmm"),
                                  share("group_norm")))
    print(events.table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
