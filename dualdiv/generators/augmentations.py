"""The simple augmentations a user tries first: a random real training image, perturbed.

Each sample draws one training image uniformly with replacement (its index is the
sample's ``train_index`` record, as for ``copy``) and perturbs it:

- ``jitter``: additive Gaussian noise, per channel σ = ``sigma`` × that channel's
  standard deviation over the fitted images (over images and time). Default
  ``sigma = 0.05``: the middle of the 0.03–0.1 range used for sensor data (Um et al.
  2017 used 0.03 on wearable sensor signals; tsaug's ``AddNoise`` 0.01–0.1); on the
  z-scored tiles that is noise power 26 dB below the channel's power.
- ``scaling``: every channel multiplied by its own gain ~ N(1, ``sigma``²), default
  ``sigma = 0.1`` (Um et al. 2017).
- ``time_warp``: one smooth, strictly increasing time map τ per image (the same for all
  channels, so the channels stay aligned), applied by linear interpolation
  ``x'_c(t) = x_c(τ(t))`` (``np.interp``). τ is the normalised running integral of a
  positive speed curve: a cubic spline (SciPy ``CubicSpline``) through ``knots`` + 2
  evenly spaced points (the ends included) with speeds ~ N(1, ``strength``²), clipped at
  0.1 so τ never stalls or reverses; τ(0) = 0 and τ(W − 1) = W − 1, so no time point
  leaves the window. Default ``strength = 0.2``, ``knots = 4`` (Um et al. 2017's
  time warping: a speed curve through 4 knots with σ = 0.2). ``strength = 0`` is the
  identity map.

Images are ``(n, H, W)`` float32 (H = channels, W = time points) in the normalised
units of ``tiles.h5``. Fitted per class (class-conditional generation), each keeps its
class's label: every sample is a perturbed image of that class.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError
from dualdiv.generators.base import Generator, register

__all__ = ["Jitter", "Scaling", "TimeWarp", "warp_map"]

MIN_SPEED = 0.1  # the speed curve's floor: keeps the time map strictly increasing


class _Augmentation(Generator):
    """Keeps its training images (``train_``, (n, H, W) float32) and perturbs random draws of them."""

    def fit(self, images, seed=0):
        self.train_ = check_images(images, self.key, min_images=1, dtype=np.float32)
        return self

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` training images drawn with replacement, (n, H, W) float64, and their indices (n,)."""
        index = rng.integers(len(self.train_), size=n)
        return self.train_[index].astype(np.float64), index


@register("jitter")
class Jitter(_Augmentation):
    """Training images plus Gaussian noise of ``sigma`` × each channel's standard deviation.

    sigma: noise level relative to the channel's standard deviation over the fitted images (≥ 0).
    """

    def __init__(self, sigma: float = 0.05):
        if not sigma >= 0:
            raise ConfigError(f"jitter.sigma: must be ≥ 0, got {sigma}")
        self.sigma = float(sigma)

    def fit(self, images, seed=0):
        super().fit(images, seed)
        self.channel_std_ = self.train_.astype(np.float64).std(axis=(0, 2))  # (H,) normalised units
        return self

    def _sample(self, n, rng):
        images, index = self._draw(n, rng)
        images += rng.normal(size=images.shape) * (self.sigma * self.channel_std_)[None, :, None]
        return images, [{"train_index": int(i)} for i in index]


@register("scaling")
class Scaling(_Augmentation):
    """Training images with every channel multiplied by its own random gain ~ N(1, ``sigma``²).

    sigma: standard deviation of the gains (≥ 0).
    """

    def __init__(self, sigma: float = 0.1):
        if not sigma >= 0:
            raise ConfigError(f"scaling.sigma: must be ≥ 0, got {sigma}")
        self.sigma = float(sigma)

    def _sample(self, n, rng):
        images, index = self._draw(n, rng)
        gains = 1.0 + self.sigma * rng.normal(size=images.shape[:2])  # (n, H)
        images *= gains[:, :, None]
        return images, [{"train_index": int(i), "gain_min": float(g.min()), "gain_max": float(g.max())}
                        for i, g in zip(index, gains, strict=True)]


def warp_map(width: int, strength: float, knots: int, rng: np.random.Generator) -> np.ndarray:
    """A random smooth, strictly increasing time map τ (width,) over 0..width−1 with τ(0) = 0, τ(width−1) = width−1.

    τ is the normalised running integral (trapezoids) of a speed curve: a cubic spline through
    ``knots`` + 2 evenly spaced points with speeds ~ N(1, strength²), clipped at :data:`MIN_SPEED`.
    strength 0 gives the identity.
    """
    grid = np.arange(width, dtype=np.float64)
    if width < 2:
        return grid
    positions = np.linspace(0.0, width - 1.0, knots + 2)
    speed = CubicSpline(positions, 1.0 + strength * rng.normal(size=knots + 2))(grid)
    speed = np.maximum(speed, MIN_SPEED)
    elapsed = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2)])  # ∫ speed, (width,)
    return elapsed * ((width - 1.0) / elapsed[-1])


@register("time_warp")
class TimeWarp(_Augmentation):
    """Training images read along a random smooth monotone time map (one per image, shared by its channels).

    strength: standard deviation of the speed at the spline's knots (≥ 0; 0 = no warp).
    knots: interior knots of the speed spline (≥ 0; more = faster speed changes).
    """

    def __init__(self, strength: float = 0.2, knots: int = 4):
        if not strength >= 0:
            raise ConfigError(f"time_warp.strength: must be ≥ 0, got {strength}")
        if knots < 0:
            raise ConfigError(f"time_warp.knots: must be ≥ 0, got {knots}")
        self.strength, self.knots = float(strength), int(knots)

    def _sample(self, n, rng):
        images, index = self._draw(n, rng)
        width = images.shape[-1]
        grid = np.arange(width, dtype=np.float64)
        records = []
        for image, i in zip(images, index, strict=True):
            tau = warp_map(width, self.strength, self.knots, rng)
            for channel in image:  # in place: x'_c(t) = x_c(τ(t))
                channel[:] = np.interp(tau, grid, channel)
            records.append({"train_index": int(i), "max_shift": float(np.max(np.abs(tau - grid)))})
        return images, records
