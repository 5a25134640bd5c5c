"""Per-image features of multichannel series: log spectra, channel correlations, autocorrelations.

Images are ``(n, H, W)`` (H = channels, W = time). :class:`FeatureSpace` standardises
the blocks on a reference (training) set; the evaluation's realism classifiers and
feature-space distances use it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import welch


def log_spectra(images, nperseg: int | None = 64) -> np.ndarray:
    """(n, H, F) natural-log Welch power spectra per channel (Hann window, frequency in cycles per step)."""
    x = np.asarray(images, dtype=np.float64)
    nperseg = min(nperseg or x.shape[-1], x.shape[-1])
    _, power = welch(x, nperseg=nperseg, axis=-1)
    return np.log(power + 1e-10)


def channel_correlations(images) -> np.ndarray:
    """(n, H, H) correlation matrix of the channels over time, per image (constant channels → 0)."""
    x = np.asarray(images, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.sqrt((x * x).sum(axis=-1))
    x = x / np.where(norm > 0, norm, np.inf)[..., None]
    corr = x @ x.transpose(0, 2, 1)
    idx = np.arange(x.shape[1])
    corr[:, idx, idx] = 1.0
    return corr


def autocorrelations(images, max_lag: int) -> np.ndarray:
    """(n, H, max_lag) autocorrelation of each channel at lags 1..max_lag (demeaned, / lag-0)."""
    x = np.asarray(images, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    var = (x * x).sum(axis=-1)
    acf = np.stack([(x[..., lag:] * x[..., :-lag]).sum(axis=-1) for lag in range(1, max_lag + 1)], axis=-1)
    return acf / np.where(var > 0, var, np.inf)[..., None]


def feature_blocks(images, nperseg: int | None = 64) -> dict[str, np.ndarray]:
    """Per-image feature blocks: {"spectra": (n, H·F), "correlation": (n, H(H−1)/2), "raw": (n, H·W)}."""
    x = np.asarray(images, dtype=np.float64)
    upper = np.triu_indices(x.shape[1], k=1)
    return {"spectra": log_spectra(x, nperseg).reshape(len(x), -1),
            "correlation": channel_correlations(x)[:, upper[0], upper[1]],
            "raw": x.reshape(len(x), -1)}


class FeatureSpace:
    """Feature blocks standardised by their mean and std on the real training images.

    ``transform(images, blocks)`` concatenates the named blocks, each scaled by
    1/√(its size) so that every block weighs alike in Euclidean distances.
    """

    def __init__(self, train, nperseg: int | None = 64):
        self.nperseg = nperseg
        blocks = feature_blocks(train, nperseg)
        self.mean_ = {k: v.mean(axis=0) for k, v in blocks.items()}
        self.std_ = {k: np.where(v.std(axis=0) > 1e-12, v.std(axis=0), 1.0) for k, v in blocks.items()}

    def transform(self, images, blocks=("spectra", "correlation")) -> np.ndarray:
        raw = feature_blocks(images, self.nperseg)
        return np.concatenate([(raw[k] - self.mean_[k]) / self.std_[k] / math.sqrt(raw[k].shape[1])
                               for k in blocks], axis=1)
