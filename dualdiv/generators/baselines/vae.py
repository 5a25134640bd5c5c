"""Variational autoencoder baseline (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014).

Encoder q(z|x) = N(μ(x), diag σ²(x)) and decoder p(x|z) = N(g(z), diag s²) with one
learned standard deviation s per channel, prior p(z) = N(0, I). Training minimises
the negative ELBO per image (nats),

    −ELBO(x) = −E_q[log p(x|z)] + KL(q(z|x) ‖ N(0, I)),

with one reparameterised draw z = μ + σ·ε per image. Networks: 1-D convolutions over
time with the channels as input channels (see :mod:`dualdiv.generators.baselines.common`). Sampling
draws z ~ N(0, I) and returns the decoder mean g(z) (``decoder_noise=False``, the
usual choice: the per-pixel noise s·ε is white and would flatten the spectra) or
g(z) + s·ε.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError
from dualdiv.core.training import descend, seeded, torch_generator, torch_threads
from dualdiv.generators.base import register
from dualdiv.generators.baselines.common import Decoder1d, Encoder1d, TorchBaseline


class VAENet(nn.Module):
    """Encoder (B, H, W) → (μ, log σ²) each (B, latent); decoder (B, latent) → (B, H, W)."""

    def __init__(self, channels: int, width: int, latent: int, hidden: int):
        super().__init__()
        self.encoder = Encoder1d(channels, width, hidden, 2 * latent)
        self.decoder = Decoder1d(latent, channels, width, hidden)
        self.log_scale = nn.Parameter(torch.zeros(channels))  # log s per channel

    def neg_elbo(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mean −ELBO (nats per image) of x (B, H, W) with one reparameterised draw."""
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # (B, latent) each
        z = mu + torch.exp(0.5 * log_var) * torch.randn(mu.shape, generator=generator)
        mean = self.decoder(z)  # (B, H, W)
        scale = self.log_scale[:, None]  # (H, 1)
        nll = (0.5 * ((x - mean) / scale.exp()) ** 2 + scale + 0.5 * math.log(2 * math.pi)).sum(dim=(1, 2))
        kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(dim=1)
        return (nll + kl).mean()


@register("vae")
class VAE(TorchBaseline):
    """Convolutional VAE over time.

    latent: dimension of z. hidden: conv width (the bottom layer has 2·hidden).
    max_iterations, max_seconds: training budget (Adam steps / wall seconds, first reached).
    batch_size, lr: Adam minibatches. threads: torch threads (:mod:`dualdiv.generators.baselines.common`).
    decoder_noise: add the decoder's per-channel Gaussian noise to samples (default: return the decoder mean).
    """

    def __init__(self, latent: int = 16, hidden: int = 32, max_iterations: int = 1500,
                 max_seconds: float | None = None, batch_size: int = 32, lr: float = 1e-3, threads: int = 1,
                 decoder_noise: bool = False):
        super().__init__(max_iterations, max_seconds, batch_size, lr, hidden, threads)
        if latent < 1:
            raise ConfigError(f"vae.latent: must be ≥ 1, got {latent}")
        self.latent = int(latent)
        self.decoder_noise = bool(decoder_noise)

    def fit(self, images, seed=0):
        x = torch.from_numpy(check_images(images, self.key))
        self.shape_ = tuple(x.shape[1:])
        with seeded(seed) as generator, torch_threads(self.threads):
            self.net_ = VAENet(self.shape_[0], self.shape_[1], self.latent, self.hidden)
            optimizer = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
            self._train(lambda: descend(optimizer, self.net_.neg_elbo(self._batch(x, generator), generator)),
                        self.net_)
        return self

    def _sample(self, n, rng):
        generator = torch_generator(rng)
        with torch.no_grad():
            z = torch.randn((n, self.latent), generator=generator)
            images = self.net_.decoder(z)  # (n, H, W)
            if self.decoder_noise:
                images = images + self.net_.log_scale.exp()[:, None] * torch.randn(images.shape, generator=generator)
        return images.numpy(), [{"latent_norm": float(v)} for v in z.norm(dim=1)]
