"""k-diffusion's own samplers (PyPI `k-diffusion`, k_diffusion/sampling.py) on gm's Gaussian-mixture oracle, for
tests/test_peers.cpp.

Reads the mixture (TOML) and the starting points x = 80 eps that test_peers.cpp wrote, builds Karras et al.'s
sigmas (rho 7, 0.002 to 80, then 0: get_sigmas_karras), and runs each sampler with the mixture's exact
denoiser D(x; sigma) = E[x0 | x0 + sigma eps]. The ancestral and SDE samplers run with s_noise = 0 (and a
noise sampler of zeros), which keeps everything eta changes in their updates but the drawn noise itself, so
gm and k-diffusion can be compared sample by sample. EDM's sampler is sample_heun with S_churn 40, S_min 0.05,
S_max 50 (ImageNet-64's), also at s_noise = 0. Writes sigmas.npy and <name>_out.npy into DIR.

Only k_diffusion/sampling.py is loaded, from the installed package: its package __init__ imports the whole
training stack (torchvision, kornia, clip, wandb), which these samplers do not use, so a stub package holds
the one helper sampling.py takes from k_diffusion.utils (append_dims, copied from there).
Usage: python kdiffusion_samplers.py MIXTURE.toml DIR STEPS
"""
import importlib.util
import pathlib
import sys
import types

import numpy as np
import torch

spec = importlib.util.find_spec("k_diffusion")
if spec is None:
    sys.exit("k-diffusion is not installed (scripts/setup.sh installs it with --no-deps)")
pkg_dir = pathlib.Path(spec.submodule_search_locations[0])
pkg = types.ModuleType("k_diffusion")
pkg.__path__ = [str(pkg_dir)]
utils = types.ModuleType("k_diffusion.utils")


def append_dims(x, target_dims):
    dims_to_append = target_dims - x.ndim
    return x[(...,) + (None,) * dims_to_append]


utils.append_dims = append_dims
pkg.utils = utils
sys.modules["k_diffusion"], sys.modules["k_diffusion.utils"] = pkg, utils
if importlib.util.find_spec("torchsde") is None:  # only its BrownianTree, which a given noise sampler replaces
    sys.modules["torchsde"] = types.ModuleType("torchsde")
sampling_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", pkg_dir / "sampling.py")
K = importlib.util.module_from_spec(sampling_spec)
sampling_spec.loader.exec_module(K)

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from mixture_oracle import Mixture  # noqa: E402

mixture = Mixture(sys.argv[1])
out = sys.argv[2]
steps = int(sys.argv[3])


def denoise(x, sigma):
    """k-diffusion's model: E[x0 | x0 + sigma eps], one sigma for the batch."""
    return mixture.denoise(x, 1.0, sigma[0])


sigmas = K.get_sigmas_karras(steps, 0.002, 80.0, 7.0).double()
sigmas[0] = 80.0  # get_sigmas_karras works in float32, where 80^(1/7) to the 7th is 80 - 2e-5; gm's t = 1 is 80
np.save(f"{out}/sigmas.npy", sigmas.numpy()[:, None])  # gm reads N x D arrays
x = torch.from_numpy(np.load(f"{out}/x1.npy")).double()
zeros = lambda a, b: torch.zeros_like(x)  # noqa: E731
runs = {
    "euler_ancestral": lambda: K.sample_euler_ancestral(denoise, x, sigmas, disable=True, s_noise=0.0),
    "dpm_2": lambda: K.sample_dpm_2(denoise, x, sigmas, disable=True),
    "dpm_2_ancestral": lambda: K.sample_dpm_2_ancestral(denoise, x, sigmas, disable=True, s_noise=0.0),
    "dpmpp_2s_ancestral": lambda: K.sample_dpmpp_2s_ancestral(denoise, x, sigmas, disable=True, s_noise=0.0),
    "dpmpp_sde": lambda: K.sample_dpmpp_sde(denoise, x, sigmas, disable=True, s_noise=0.0, noise_sampler=zeros),
    "dpmpp_2m_sde": lambda: K.sample_dpmpp_2m_sde(denoise, x, sigmas, disable=True, s_noise=0.0, noise_sampler=zeros),
    "dpmpp_3m_sde": lambda: K.sample_dpmpp_3m_sde(denoise, x, sigmas, disable=True, s_noise=0.0, noise_sampler=zeros),
    "lms": lambda: K.sample_lms(denoise, x, sigmas, disable=True),
    "edm_stochastic": lambda: K.sample_heun(denoise, x, sigmas, disable=True, s_churn=40.0, s_tmin=0.05, s_tmax=50.0,
                                            s_noise=0.0),
}
for name, run in runs.items():
    np.save(f"{out}/{name}_out.npy", run().numpy())
    print(f"{name}: done")
