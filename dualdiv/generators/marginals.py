"""A Gaussian copula around a generator: fit in normal scores, map samples back through the data's marginals.

A stationary Gaussian base puts mass where the data have none when the marginals
are not Gaussian (irradiance is exactly 0 at night and never negative, spike counts
are integers ≥ 0, returns are heavy-tailed) or when they change along the image's
time axis (a day's diurnal shape: the hour-12 pixel is not the hour-2 pixel). The
copula transform separates the two: every pixel value x of channel c at time t is
mapped to a normal score

    z = Φ⁻¹(F̂_{c,t}(x)),

F̂_{c,t} the empirical CDF of the training values *pooled* over a window of time
positions around t, the generator is fitted on the scores, and its samples are mapped
back by the empirical quantile functions x = F̂⁻¹_{c,t}(Φ(z)). Pooling:

- ``channel``: one marginal per channel (all time positions pooled) — the data are
  stationary along time, and every training value of the channel informs it;
- ``pixel``: a marginal per (channel, time) from the positions within ± ``half_window``
  (at least ``min_pool`` values pooled) — the marginal changes along time;
- ``auto``: per channel, no transform where the images' own means make up ``max_mean_share``
  or more of the channel's variance (:func:`mean_share`; EEG trials with DC offsets: a
  monotone map of the pooled values would tie each trial's amplitude to its offset, and
  measured it made EEG separable, feature C2ST 0.74 → 1.00) or where a continuous channel
  has an atom of more than ``max_atom_share`` of its values (irradiance at night: left to
  the constraints); discrete channels (at most ``max_levels`` or 2 % as many distinct values as
  values: counts) and
  continuous ones without atoms (returns) are transformed: ``pixel`` when its
  marginal changes along time beyond what sampling noise explains (:func:`time_variation`:
  the one-way ANOVA F of the pixel means or of the pixels' absolute deviations
  (Brown–Forsythe) over time positions above ``max_f``), else ``channel``. A channel whose
  values are all equal passes through as it is.

Ties (atoms: zeros at night, integer counts) get *randomised* ranks within their tie
(the randomised probability integral transform, between the tie's first and last order
statistic), so the scores of a discrete or
zero-inflated marginal are still standard normal, and the quantile function maps the
whole score interval of an atom back onto the atom. Between the pooled order statistics
the quantile function interpolates linearly; beyond them the tails continue linearly in
the normal score with the slope of the outer 10 % of the order statistics — smooth, not
clipped to the training range, and flat where the data's tail is an atom (a bound).
Physical bounds and integrality are enforced afterwards by
:mod:`dualdiv.generators.constraints`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from dualdiv.core.errors import ConfigError

__all__ = ["MARGINAL_MODES", "MarginalTransform", "mean_share", "time_variation"]

MARGINAL_MODES = ("none", "channel", "pixel", "auto")


def _levels(values: np.ndarray) -> int:
    return len(np.unique(values))


def _largest_atom(values: np.ndarray) -> float:
    """The share of ``values`` equal to their most frequent value."""
    return float(np.unique(values, return_counts=True)[1].max() / values.size)


def mean_share(images: np.ndarray) -> np.ndarray:
    """Per channel ``(C,)``: the share of its variance over images ``(n, C, T)`` that is between the
    images' own means (≈ 0.7–0.9 for EEG trials with DC offsets, < 0.1 for spike counts and returns)."""
    means = images.mean(axis=2)  # (n, C)
    total = images.transpose(1, 0, 2).reshape(images.shape[1], -1).var(axis=1)
    return np.divide(means.var(axis=0), total, out=np.ones_like(total), where=total > 0)


def time_variation(values: np.ndarray) -> tuple[float, float]:
    """One-way ANOVA F over time positions of one channel's values ``(n, T)``: of the values
    (do the means change along time?) and of their absolute deviations from each position's
    median (Brown–Forsythe: does the spread change?). F ≈ 1 for a stationary channel."""
    def anova_f(groups: np.ndarray) -> float:  # groups: (n, T), one group per time position
        n, n_time = groups.shape
        within = groups.var(axis=0, ddof=1).mean()
        between = n * groups.mean(axis=0).var(ddof=1)
        return float(between / within) if within > 0 else (np.inf if between > 0 else 1.0)

    deviations = np.abs(values - np.median(values, axis=0))
    return anova_f(values), anova_f(deviations)


class MarginalTransform:
    """Per-pixel normal scores of images ``(n, C, T)`` and back (see the module docstring).

    mode: ``channel``, ``pixel`` or ``auto``; half_window: time positions pooled on each side
    for ``pixel`` marginals (None: the smallest giving ≥ ``min_pool`` values); max_f: the
    ``auto`` threshold of :func:`time_variation`'s F statistics.

    Fitted: ``pooled_`` (per channel: sorted pooled values ``(T or 1, m)``), ``pixelwise_`` (C,) bool,
    ``identity_`` (C,) bool (channels passed through), ``mean_share_`` (C,), ``discrete_`` (C,) bool,
    ``atom_share_`` (C,), ``variation_`` (per channel: the two F statistics).
    """

    def __init__(self, mode: str = "auto", half_window: int | None = None, min_pool: int = 200,
                 max_f: float = 3.0, max_mean_share: float = 0.25, max_levels: int = 32,
                 max_atom_share: float = 0.05, tail_fraction: float = 0.1):
        if mode not in MARGINAL_MODES[1:]:
            raise ConfigError(f"marginals: must be one of {', '.join(MARGINAL_MODES)}, got {mode!r}")
        if half_window is not None and half_window < 0:
            raise ConfigError(f"marginals.half_window: must be ≥ 0, got {half_window}")
        self.mode, self.half_window, self.min_pool = mode, half_window, int(min_pool)
        self.max_f, self.max_mean_share, self.tail_fraction = float(max_f), float(max_mean_share), float(tail_fraction)
        self.max_levels, self.max_atom_share = int(max_levels), float(max_atom_share)

    def fit(self, images: np.ndarray) -> MarginalTransform:
        images = np.asarray(images, dtype=np.float64)
        n, n_channels, n_time = images.shape
        half = self.half_window
        if half is None:  # positions on each side so that (2h + 1)·n ≥ min_pool
            half = int(np.ceil(max(self.min_pool / n - 1, 0) / 2))
        self.half_window_ = min(half, n_time)
        self.variation_ = [time_variation(images[:, c]) for c in range(n_channels)]
        self.mean_share_ = mean_share(images)
        # identity on constant channels and (auto) on channels whose marginal is mostly the images' own
        # offsets: a monotone map of the pooled values would tie each image's amplitude to its offset
        self.identity_ = np.array([np.ptp(images[:, c]) == 0 for c in range(n_channels)])
        changing = np.array([max(f) > self.max_f for f in self.variation_])
        # discrete: few distinct values for the number of values (counts; not irradiance in whole W/m²)
        most = max(self.max_levels, int(0.02 * n * n_time))
        self.discrete_ = np.array([_levels(images[:, c]) <= most for c in range(n_channels)])
        self.atom_share_ = np.array([_largest_atom(images[:, c]) for c in range(n_channels)])
        if self.mode == "auto":
            # a continuous channel with a large atom (irradiance, 0 half the day) is left to the constraints:
            # randomised ranks inside the atom scramble the scores the base is fitted on (measured on the
            # TMY3 set: feature C2ST 0.82 → 0.88 with its irradiance channels transformed)
            lumpy = ~self.discrete_ & (self.atom_share_ > self.max_atom_share)
            self.identity_ |= (self.mean_share_ >= self.max_mean_share) | lumpy
            self.pixelwise_ = changing & ~self.identity_
        else:
            self.pixelwise_ = np.full(n_channels, self.mode == "pixel") & ~self.identity_
        self.pooled_ = []
        for c in range(n_channels):
            channel = images[:, c]  # (n, T)
            if self.pixelwise_[c]:
                # 2h + 1 positions, shifted inwards at the edges: every pixel pools as many values
                size = n * min(2 * self.half_window_ + 1, n_time)
                windows = [self._nearest(channel, t, size) for t in range(n_time)]
                self.pooled_.append(np.sort(np.stack(windows), axis=1))  # (T, m)
            else:
                self.pooled_.append(np.sort(channel.ravel())[None])  # (1, n·T)
        self.shape_ = (n_channels, n_time)
        return self

    def _nearest(self, channel: np.ndarray, t: int, size: int) -> np.ndarray:
        """``size`` values of the time positions nearest to t (t itself first), all images."""
        n, n_time = channel.shape
        order = np.argsort(np.abs(np.arange(n_time) - t), kind="stable")[:size // n]
        return channel[:, order].ravel()

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float64)
        if images.ndim != 3 or images.shape[1:] != self.shape_:
            raise ConfigError(f"marginals: images of shape (n, {self.shape_[0]}, {self.shape_[1]}) expected, "
                              f"got {images.shape}")
        return images

    def _marginals(self):
        """(channel, index into an image batch, sorted pooled values) of every fitted marginal: one per
        channel (index ``[:, c]``) or one per time position (``[:, c, t]``); identity channels skipped."""
        for c, pooled in enumerate(self.pooled_):
            if self.identity_[c]:
                continue
            for row, sorted_values in enumerate(pooled):
                yield c, ((slice(None), c) if len(pooled) == 1 else (slice(None), c, row)), sorted_values

    def to_normal(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Normal scores ``(n, C, T)`` float64 of ``images``; ties ranked at random with ``rng``.
        Identity channels pass through as they are."""
        images = self._check(images)
        scores = images.copy()  # identity channels stay as they are
        for _, where, sorted_values in self._marginals():
            m, x = len(sorted_values), images[where]
            below = np.searchsorted(sorted_values, x, side="left")
            ties = np.searchsorted(sorted_values, x, side="right") - below
            # a value's own order statistic sits at (i + ½)/m; a tie's between its first and
            # last, so that the quantile function maps the score back onto the atom
            jitter = np.where(ties > 1, rng.random(x.shape), 0.0)
            u = (below + 0.5 + jitter * np.maximum(ties - 1, 0)) / m
            scores[where] = ndtri(np.clip(u, 0.5 / m, 1 - 0.5 / m))
        return scores

    def from_normal(self, scores: np.ndarray) -> np.ndarray:
        """Images ``(n, C, T)`` float64 from normal scores, by the pooled quantile functions
        (linear between order statistics, linear tails in the score beyond them)."""
        scores = self._check(scores)
        images = scores.copy()  # identity channels stay as they are
        for _, where, sorted_values in self._marginals():
            images[where] = self._quantile(sorted_values, scores[where])
        return images

    def _quantile(self, sorted_values: np.ndarray, z: np.ndarray) -> np.ndarray:
        m = len(sorted_values)
        grid = ndtri((np.arange(m) + 0.5) / m)  # normal scores of the order statistics
        x = np.interp(z, grid, sorted_values)
        k = max(1, int(np.ceil(self.tail_fraction * m)) - 1)  # order statistics of the outer tail
        low_slope = (sorted_values[k] - sorted_values[0]) / (grid[k] - grid[0])
        high_slope = (sorted_values[-1] - sorted_values[-1 - k]) / (grid[-1] - grid[-1 - k])
        x = np.where(z < grid[0], sorted_values[0] + low_slope * (z - grid[0]), x)
        return np.where(z > grid[-1], sorted_values[-1] + high_slope * (z - grid[-1]), x)

    def record(self) -> dict:
        """What was fitted, for provenance: per-channel pooling and the time-variation statistics."""
        return {"mode": self.mode, "half_window": self.half_window_,
                "pixelwise_channels": [int(c) for c in np.flatnonzero(self.pixelwise_)],
                "identity_channels": [int(c) for c in np.flatnonzero(self.identity_)],
                "mean_share": [round(float(v), 3) for v in self.mean_share_],
                "time_variation_f": [[round(float(a), 2), round(float(b), 2)] for a, b in self.variation_]}
