"""Baseline generators: VAE, WGAN-GP, DDPM and the Schrödinger-bridge Langevin sampler.

Importing this package registers ``vae``, ``wgan_gp``, ``ddpm`` and ``sb_langevin``
in :data:`dualdiv.generators.REGISTRY`. Each is a :class:`dualdiv.generators.Generator`:
settings in the constructor, ``fit(images, seed)`` → self, ``sample(n, seed)``.

The three neural baselines share one shape of network and one training budget:

- **1-D convolutions over time, channels as input channels.** The channel axis of
  these images (EEG electrodes, or irradiance / temperature / wind …) has no
  translation structure — its order is a file's column order — so a 2-D kernel
  sliding across channels would impose a false locality and weight sharing between
  unrelated neighbours, and would need many layers to mix distant channels. Time
  is (nearly) stationary, so weight sharing along it is the right prior; a 1-D
  convolution mixes every channel in every layer and works for any width W.
- **Matched budget**: ``max_iterations`` optimiser steps (for WGAN-GP: generator
  steps) and optionally ``max_seconds`` of training wall time, whichever ends first
  (the loop is :func:`dualdiv.core.training.train`). The fitted ``iterations_``,
  ``train_seconds_`` and ``loss_curve_`` (the loss of iterations 1, 51, 101, …) are
  recorded. With ``max_seconds=None`` training is deterministic on CPU for a seed
  (same torch build and thread count); a binding wall-time limit makes it
  machine-dependent. Every random draw goes through seeded generators inside a
  forked torch RNG (:func:`dualdiv.core.training.seeded`), so the caller's global
  RNG state is untouched.
- **Threads**: ``threads`` torch intra-op threads while fitting and sampling
  (default 1, restored afterwards; :func:`dualdiv.core.training.torch_threads`).
  On the 2-core machine these budgets were set on, with other jobs running, 2
  threads made training 20–40× *slower* in wall time (DDPM 200 iterations: 7 s on
  1 thread, 168 s on 2) — the threads spin waiting for a busy core; Snakemake
  running jobs side by side is that case.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dualdiv.core.errors import ConfigError
from dualdiv.core.training import LoopSettings, torch_threads, train
from dualdiv.generators import Generator

RECORD_EVERY = 50  # iterations between the recorded losses of ``loss_curve_``


def conv_lengths(width: int, n_down: int = 2) -> int:
    """Time length at the bottom of ``n_down`` stride-2 layers (ceil division each time)."""
    length = width
    for _ in range(n_down):
        length = math.ceil(length / 2)
    return length


class Encoder1d(nn.Module):
    """(B, H, W) → (B, out): two stride-2 Conv1d layers over time, then a linear head."""

    def __init__(self, channels: int, width: int, hidden: int, out: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, hidden, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, 2 * hidden, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * hidden * conv_lengths(width), out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder1d(nn.Module):
    """(B, latent) → (B, H, W): linear to (2·hidden, ⌈W/4⌉), two ×2 upsample + Conv1d stages, cropped to W."""

    def __init__(self, latent: int, channels: int, width: int, hidden: int):
        super().__init__()
        self.width, self.hidden, self.length = width, hidden, conv_lengths(width)
        self.project = nn.Linear(latent, 2 * hidden * self.length)
        self.net = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv1d(2 * hidden, hidden, 5, padding=2), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2), nn.Conv1d(hidden, hidden, 5, padding=2), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, channels, 5, padding=2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(len(z), 2 * self.hidden, self.length)  # (B, 2·hidden, ⌈W/4⌉)
        return self.net(h)[..., : self.width]  # (B, H, 4⌈W/4⌉) → (B, H, W)


class TorchBaseline(Generator):
    """Shared settings and bookkeeping of the neural baselines (subclasses build and train)."""

    def __init__(self, max_iterations: int, max_seconds: float | None, batch_size: int, lr: float, hidden: int,
                 threads: int):
        if min(max_iterations, batch_size, hidden, threads) < 1:
            raise ConfigError(f"{self.key}: max_iterations, batch_size, hidden and threads must be ≥ 1")
        if max_seconds is not None and max_seconds <= 0:
            raise ConfigError(f"{self.key}: max_seconds must be > 0 or None, got {max_seconds}")
        if lr <= 0:
            raise ConfigError(f"{self.key}: lr must be > 0, got {lr}")
        self.max_iterations = int(max_iterations)
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.hidden = int(hidden)
        self.threads = int(threads)

    def sample(self, n, seed):
        with torch_threads(self.threads):
            return super().sample(n, seed)

    def _batch(self, data: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random minibatch (with replacement across batches, without within one)."""
        size = min(self.batch_size, len(data))
        return data[torch.randperm(len(data), generator=generator)[:size]]

    def _train(self, step: Callable[[], float | torch.Tensor], model: nn.Module) -> None:
        """Run ``step`` (one optimiser step → loss) for the budget; record iterations, seconds and losses.

        model: the network sampled from, in eval mode afterwards.
        """
        budget = LoopSettings(self.max_iterations, self.max_seconds, record_every=RECORD_EVERY,
                              description=type(self).__name__)
        result = train(step, budget, model=model)
        self.iterations_, self.train_seconds_, self.loss_curve_ = result.iterations, result.seconds, result.losses


__all__ = ["Decoder1d", "Encoder1d", "TorchBaseline", "conv_lengths"]
