"""Denoising diffusion probabilistic model (Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", 2020).

Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), β_t linear from β_1 to β_T,
α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s. A network ε_θ(x_t, t) is trained on the simple
loss E‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖² (their Algorithm 1), and samples come
from ancestral sampling (Algorithm 2) in the form of the authors' released code
(``clip_denoised``): predict x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t, clip it to the
training data's range, and draw from the Gaussian posterior q(x_{t−1} | x_t, x̂_0),

    x_{t−1} = c_0 x̂_0 + c_t x_t + σ̃_t z,   c_0 = √ᾱ_{t−1} β_t/(1 − ᾱ_t),
    c_t = √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t),   σ̃_t² = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t),   x_T ~ N(0, I).

(Without the clip, an under-trained ε_θ — the CPU budgets here are tiny — lets the
1/√α_t factors blow the samples up.)

ε_θ: 1-D convolutions over time with the channels as input channels (see
:mod:`dualdiv.generators.baselines.common`) — residual blocks with dilations 1, 2, 4, … (receptive
field ≈ the image width, no down-sampling, so any W works), GroupNorm, SiLU, and a
sinusoidal embedding of t added to every block, plus a per-t, per-channel gain on
x_t added to the output (the normalised blocks are blind to the scale of x_t, which
ε must follow; without this path the EEG samples came out with 3× the real spread).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError
from dualdiv.core.training import descend, seeded, torch_generator, torch_threads
from dualdiv.generators.base import register
from dualdiv.generators.baselines.common import TorchBaseline


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps → (B, dim) sinusoidal features (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResidualBlock(nn.Module):
    """x + Conv(SiLU(GN(Conv(SiLU(GN(x))) + emb))), dilated kernel-3 convolutions; x (B, C, W)."""

    def __init__(self, hidden: int, dilation: int, embed: int):
        super().__init__()
        groups = math.gcd(8, hidden)
        self.norm1, self.norm2 = nn.GroupNorm(groups, hidden), nn.GroupNorm(groups, hidden)
        self.conv1 = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.time = nn.Linear(embed, hidden)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x))) + self.time(emb)[:, :, None]  # (B, C, W)
        return x + self.conv2(self.act(self.norm2(h)))


class NoiseNet(nn.Module):
    """ε_θ(x_t, t): (B, H, W), (B,) → (B, H, W)."""

    def __init__(self, channels: int, width: int, hidden: int, embed: int = 64):
        super().__init__()
        n_blocks = max(2, math.ceil(math.log2(max(width, 2))) - 1)  # dilations 1..2^(n−1): field ≈ W
        self.embed = embed
        self.time = nn.Sequential(nn.Linear(embed, embed), nn.SiLU(), nn.Linear(embed, embed))
        self.inp = nn.Conv1d(channels, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, 2**i, embed) for i in range(n_blocks))
        self.out = nn.Sequential(nn.GroupNorm(math.gcd(8, hidden), hidden), nn.SiLU(),
                                 nn.Conv1d(hidden, channels, 3, padding=1))
        self.skip = nn.Linear(embed, channels)  # per-t, per-channel gain on x_t (ε ≈ x_t at large t)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.embed))  # (B, embed)
        h = self.inp(x)  # (B, hidden, W)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h) + self.skip(emb)[:, :, None] * x  # (B, H, W)


@register("ddpm")
class DDPM(TorchBaseline):
    """DDPM with a dilated 1-D conv noise predictor.

    diffusion_steps: T (sampling costs T network passes). beta_start, beta_end: linear
    β schedule (Ho et al.: 1e-4, 0.02 with T = 1000; other T rescale both by 1000/T so
    the total noise stays alike).
    hidden: conv width. max_iterations, max_seconds, batch_size, lr: training budget.
    threads: torch threads (:mod:`dualdiv.generators.baselines.common`).
    """

    def __init__(self, diffusion_steps: int = 100, beta_start: float = 1e-4, beta_end: float = 0.02,
                 hidden: int = 32, max_iterations: int = 2000, max_seconds: float | None = None,
                 batch_size: int = 32, lr: float = 1e-3, threads: int = 1):
        super().__init__(max_iterations, max_seconds, batch_size, lr, hidden, threads)
        if diffusion_steps < 2 or not 0 < beta_start < beta_end:
            raise ConfigError("ddpm: diffusion_steps must be ≥ 2 and 0 < beta_start < beta_end")
        self.diffusion_steps = int(diffusion_steps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)

    def _schedule(self) -> torch.Tensor:
        """(T,) β_t, scaled by 1000/T from the T = 1000 schedule and capped below 1."""
        scale = 1000 / self.diffusion_steps
        return torch.linspace(self.beta_start * scale, self.beta_end * scale, self.diffusion_steps,
                              dtype=torch.float64).clamp(max=0.999)

    def fit(self, images, seed=0):
        x = torch.from_numpy(check_images(images, self.key))
        self.shape_ = tuple(x.shape[1:])
        betas = self._schedule()
        self.alpha_bar_ = torch.cumprod(1 - betas, dim=0).float()  # (T,)
        self.clip_ = (float(x.min()), float(x.max()))
        with seeded(seed) as generator, torch_threads(self.threads):
            self.net_ = NoiseNet(self.shape_[0], self.shape_[1], self.hidden)
            optimizer = torch.optim.Adam(self.net_.parameters(), lr=self.lr)

            def step():
                x0 = self._batch(x, generator)
                t = torch.randint(self.diffusion_steps, (len(x0),), generator=generator)
                noise = torch.randn(x0.shape, generator=generator)
                a = self.alpha_bar_[t][:, None, None]
                return descend(optimizer, ((self.net_(a.sqrt() * x0 + (1 - a).sqrt() * noise, t) - noise) ** 2).mean())

            self._train(step, self.net_)
        return self

    def _sample(self, n, rng):
        generator = torch_generator(rng)
        betas = self._schedule().float()
        alpha_bar = self.alpha_bar_
        alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])
        with torch.no_grad():
            x = torch.randn((n, *self.shape_), generator=generator)  # x_T
            for t in range(self.diffusion_steps - 1, -1, -1):
                eps = self.net_(x, torch.full((n,), t, dtype=torch.long))
                x0 = ((x - (1 - alpha_bar[t]).sqrt() * eps) / alpha_bar[t].sqrt()).clamp(*self.clip_)
                x = (alpha_bar_prev[t].sqrt() * betas[t] * x0 + (1 - betas[t]).sqrt() * (1 - alpha_bar_prev[t]) * x) \
                    / (1 - alpha_bar[t])
                if t > 0:
                    variance = betas[t] * (1 - alpha_bar_prev[t]) / (1 - alpha_bar[t])
                    x = x + variance.sqrt() * torch.randn(x.shape, generator=generator)
        return x.numpy(), [{"steps": self.diffusion_steps} for _ in range(n)]
