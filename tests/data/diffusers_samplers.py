"""diffusers' own schedulers (PyPI `diffusers`) on gm's Gaussian-mixture oracle, for tests/test_peers.cpp.

Reads the mixture (TOML), gm's VP alpha(t)^2 at t = k / 1000 (k = 1..1000) and the starting points that
test_peers.cpp wrote, runs each scheduler with the mixture's exact model, and writes for each the times in
gm's convention (data at 0, noise at 1) at which it evaluated, and its final samples:
  - DDIMScheduler (eta 0, epsilon prediction, leading spacing), its alphas_cumprod = gm's VP at
    t = (k + 1) / 1000;
  - DPMSolverMultistepScheduler (DPM-Solver++(2M), midpoint form) and UniPCMultistepScheduler (bh2, order 2)
    with their defaults (linspace spacing, lower order at the final step to sigma = 0) on the same betas;
  - FlowMatchEulerDiscreteScheduler (velocity prediction), its sigmas = gm's Linear times.
Usage: python diffusers_samplers.py MIXTURE.toml DIR STEPS
"""
import pathlib
import sys

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from mixture_oracle import Mixture  # noqa: E402

denoise = Mixture(sys.argv[1]).denoise
out = sys.argv[2]
steps = int(sys.argv[3])


# DDIM on gm's VP.
ac = torch.from_numpy(np.load(f"{out}/vp_alpha2.npy")).double()              # [1000]: t = 1/1000 .. 1
betas = 1 - ac / torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])


# The VP schedulers, each from the same points; DDIM's step has eta = 0 by default.
def multistep(name, sched):
    sched.set_timesteps(steps)
    x = torch.from_numpy(np.load(f"{out}/vp_x1.npy")).double()
    for ts in sched.timesteps:
        a2 = ac[int(ts)]
        alpha, sigma = a2.sqrt(), (1 - a2).sqrt()
        eps = (x - alpha * denoise(x, alpha, sigma)) / sigma
        x = sched.step(eps, ts, x).prev_sample.double()
    np.save(f"{out}/{name}_nodes.npy", np.append((sched.timesteps.numpy() + 1) / 1000.0, 0.0).reshape(-1, 1))
    np.save(f"{out}/{name}_out.npy", x.numpy())


multistep("ddim", DDIMScheduler(num_train_timesteps=1000, trained_betas=betas.numpy(), clip_sample=False,
                              set_alpha_to_one=True, prediction_type="epsilon", timestep_spacing="leading"))
multistep("dpmpp2m", DPMSolverMultistepScheduler(num_train_timesteps=1000, trained_betas=betas.numpy(),
                                                 algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                                                 prediction_type="epsilon"))
multistep("unipc", UniPCMultistepScheduler(num_train_timesteps=1000, trained_betas=betas.numpy(), solver_order=2,
                                           solver_type="bh2", predict_x0=True, prediction_type="epsilon"))

# Flow-matching Euler on gm's Linear interpolant: x_t = (1 - t) x0 + t eps, velocity eps - x0.
fm = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
fm.set_timesteps(steps)
x = torch.from_numpy(np.load(f"{out}/linear_x1.npy")).double()
for i, ts in enumerate(fm.timesteps):
    t = fm.sigmas[i].double()
    x0 = denoise(x, 1 - t, t)
    v = (x - x0) / t                                                        # eps - x0 = (x_t - x0) / t
    x = fm.step(v, ts, x).prev_sample.double()
np.save(f"{out}/euler_nodes.npy", fm.sigmas.double().numpy().reshape(-1, 1))
np.save(f"{out}/euler_out.npy", x.numpy())
print("diffusers", __import__("diffusers").__version__, "ok")
