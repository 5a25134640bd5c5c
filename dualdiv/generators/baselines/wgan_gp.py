"""Wasserstein GAN with gradient penalty (Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017).

Critic D and generator G (z ~ N(0, I) → image) play

    min_G max_D  E_real[D(x)] − E_z[D(G(z))] − λ E_x̂[(‖∇D(x̂)‖₂ − 1)²],

x̂ uniform on segments between real and generated images (their Algorithm 1:
``n_critic`` critic steps per generator step, λ = 10, Adam with β = (0.5, 0.9)).
Networks: 1-D convolutions over time with the channels as input channels (see
:mod:`dualdiv.generators.baselines.common`); no batch normalisation (the penalty is per sample).
"""

from __future__ import annotations

import torch
from torch import nn

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError
from dualdiv.core.training import descend, seeded, torch_generator, torch_threads
from dualdiv.generators.base import register
from dualdiv.generators.baselines.common import Decoder1d, Encoder1d, TorchBaseline


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """E[(‖∇D(x̂)‖₂ − 1)²] at x̂ = u·real + (1 − u)·fake, u ~ U(0, 1) per image; real, fake (B, H, W)."""
    u = torch.rand((len(real), 1, 1), generator=generator)
    mixed = (u * real + (1 - u) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@register("wgan_gp")
class WGANGP(TorchBaseline):
    """Convolutional WGAN-GP over time.

    latent: dimension of z. hidden: conv width. max_iterations: generator steps (each
    after ``n_critic`` critic steps); max_seconds: wall-time limit. penalty: λ.
    batch_size, lr: Adam minibatches (β = (0.5, 0.9)). threads: torch threads
    (:mod:`dualdiv.generators.baselines.common`).
    """

    def __init__(self, latent: int = 32, hidden: int = 32, max_iterations: int = 600,
                 max_seconds: float | None = None, batch_size: int = 32, lr: float = 2e-4, threads: int = 1,
                 n_critic: int = 5, penalty: float = 10.0):
        super().__init__(max_iterations, max_seconds, batch_size, lr, hidden, threads)
        if latent < 1 or n_critic < 1 or penalty < 0:
            raise ConfigError("wgan_gp: latent and n_critic must be ≥ 1, penalty ≥ 0")
        self.latent = int(latent)
        self.n_critic = int(n_critic)
        self.penalty = float(penalty)

    def fit(self, images, seed=0):
        x = torch.from_numpy(check_images(images, self.key))
        self.shape_ = tuple(x.shape[1:])
        channels, width = self.shape_
        with seeded(seed) as generator, torch_threads(self.threads):
            self.generator_ = Decoder1d(self.latent, channels, width, self.hidden)
            self.critic_ = nn.Sequential(Encoder1d(channels, width, self.hidden, 1), nn.Flatten(0))  # (B,)
            opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=(0.5, 0.9))
            opt_d = torch.optim.Adam(self.critic_.parameters(), lr=self.lr, betas=(0.5, 0.9))

            def step():
                for _ in range(self.n_critic):
                    real = self._batch(x, generator)
                    with torch.no_grad():
                        fake = self.generator_(torch.randn((len(real), self.latent), generator=generator))
                    loss_d = descend(opt_d, self.critic_(fake).mean() - self.critic_(real).mean()
                                     + self.penalty * gradient_penalty(self.critic_, real, fake, generator))
                fake = self.generator_(torch.randn((min(self.batch_size, len(x)), self.latent), generator=generator))
                descend(opt_g, -self.critic_(fake).mean())
                return loss_d  # critic loss ≈ −(Wasserstein estimate) + penalty

            self._train(step, self.generator_)  # the critic needs no mode: it has no dropout or normalisation
        return self

    def _sample(self, n, rng):
        with torch.no_grad():
            z = torch.randn((n, self.latent), generator=torch_generator(rng))
            images = self.generator_(z)  # (n, H, W)
        return images.numpy(), [{"latent_norm": float(v)} for v in z.norm(dim=1)]
