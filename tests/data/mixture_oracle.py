"""A gm mixture TOML file (isotropic Gaussian mixture) and its exact denoiser, for the peer scripts that run
other libraries' samplers on gm's oracle (diffusers_samplers.py, kdiffusion_samplers.py)."""
import tomllib

import torch


class Mixture:
    def __init__(self, path):
        mix = tomllib.load(open(path, "rb"))
        self.w = torch.tensor(mix["weights"], dtype=torch.float64)
        self.mu = torch.tensor(mix["means"], dtype=torch.float64)
        self.s = torch.tensor(mix["stds"], dtype=torch.float64)

    def denoise(self, x, alpha, sigma):
        """E[x0 | x_t] for x_t = alpha x0 + sigma eps (alpha, sigma numbers), x0 from the mixture."""
        w, mu, s = self.w, self.mu, self.s
        var = alpha ** 2 * s ** 2 + sigma ** 2                                  # [K]
        d = x.shape[1]
        diff = x[:, None, :] - alpha * mu[None]                                 # [N, K, D]
        logp = torch.log(w) - 0.5 * (diff ** 2).sum(-1) / var - 0.5 * d * torch.log(2 * torch.pi * var)
        r = torch.softmax(logp, 1)                                              # [N, K]
        post = mu[None] + (alpha * s ** 2 / var)[None, :, None] * diff           # [N, K, D]
        return (r[..., None] * post).sum(1)
