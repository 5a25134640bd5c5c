"""Physical constraints of the training data, kept by every generator's samples.

Degenerate channels are data, not errors. From the training images in physical units
:func:`detect_constraints` finds, per channel,

- **constant** pixels (every training image has the same value there: irradiance at
  night) and constant channels (a pressure sensor that never changed);
- **integer** channels (every value a whole number with at least two distinct values:
  spike counts);
- a **lower bound** 0 for channels that are non-negative and reach down to it (the
  minimum ≥ 0 and within 5 % of the range from 0: irradiance, wind speed — not a
  temperature that happened to stay above 0 °C), and for non-negative integer channels
  (counts); bounds 0 and 100 for channels in %;
- **circular** channels (units that say ``circular``, or a name with ``direction`` in
  degrees within [0, 360]): values wrap into [0, period).

:func:`apply_constraints` enforces them on generated images in normalised units (the
units of ``tiles.h5``): wrap, clip, round, then set the constant pixels, and counts what
it changed — the provenance says how much each generator needed it. The sample stage
fits generators on the non-constant channels only (a constant channel makes a VAR or a
covariance singular) and puts the constants back here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from dualdiv.core.errors import InputError

__all__ = ["ChannelConstraints", "Constrained", "apply_constraints", "channel_units", "detect_constraints"]

_NEAR_ZERO = 0.05  # a non-negative channel whose minimum is within this share of its range from 0 is bounded by 0


@dataclass
class ChannelConstraints:
    """What the training data obey, per channel ``(C,)`` in physical units; ``constant_pixels`` ``(C, T)``.

    lower, upper: bounds (NaN: none); integer: whole numbers; period: wrap into [0, period) (NaN: linear);
    constant_pixels: where every training image has one value, ``constant_values`` ``(C, T)`` (normalised).
    """

    channel_names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    period: np.ndarray
    constant_pixels: np.ndarray
    constant_values: np.ndarray

    @property
    def constant_channels(self) -> np.ndarray:
        """Indices of channels constant at every time position (and across images)."""
        flat = self.constant_pixels.all(axis=1) & (np.ptp(self.constant_values, axis=1) == 0)
        return np.flatnonzero(flat)

    def any(self) -> bool:
        """True when some constraint would change a sample."""
        return bool(np.isfinite(self.lower).any() or np.isfinite(self.upper).any() or self.integer.any()
                    or np.isfinite(self.period).any() or self.constant_pixels.any())

    def record(self) -> dict:
        """The constraints by channel name, for provenance."""
        names = self.channel_names
        return {
            "lower_bound": {names[c]: float(self.lower[c]) for c in np.flatnonzero(np.isfinite(self.lower))},
            "upper_bound": {names[c]: float(self.upper[c]) for c in np.flatnonzero(np.isfinite(self.upper))},
            "integer": [names[c] for c in np.flatnonzero(self.integer)],
            "circular_period": {names[c]: float(self.period[c]) for c in np.flatnonzero(np.isfinite(self.period))},
            "constant_channels": [names[c] for c in self.constant_channels],
            "constant_pixels": int(self.constant_pixels.sum()),
        }


def channel_units(units: str | None, channel_names: list[str]) -> list[str]:
    """Each channel's unit from a tiles file's ``units`` string: ``"name [unit]; …"`` per channel
    (as the TMY3 reader writes it) or one unit for every channel."""
    units = units or ""
    parts = dict(re.findall(r"\s*([^;\[\]]+?)\s*\[([^\]]*)\]", units))
    if parts and all(name in parts for name in channel_names):
        return [parts[name] for name in channel_names]
    return [units] * len(channel_names)


def detect_constraints(train_physical: np.ndarray, train_normalised: np.ndarray, channel_names: list[str],
                       units: str | None = None) -> ChannelConstraints:
    """The constraints the training images obey: physical ``(n, C, T)`` and the same in normalised units."""
    x = np.asarray(train_physical, dtype=np.float64)
    n_channels = x.shape[1]
    unit_of = channel_units(units, channel_names)
    lower, upper = np.full(n_channels, np.nan), np.full(n_channels, np.nan)
    period, integer = np.full(n_channels, np.nan), np.zeros(n_channels, dtype=bool)
    for c in range(n_channels):
        values = x[:, c]
        low, high = values.min(), values.max()
        spread = high - low
        if spread == 0:
            continue  # constant: kept by the constant pixels below
        unit, name = unit_of[c].lower(), channel_names[c].lower()
        degrees = "deg" in unit or "°" in unit
        if "circular" in unit or ("direction" in name and degrees):
            if low >= 0 and high <= 360 and degrees:
                period[c] = 360.0
            elif low >= -np.pi and high <= 2 * np.pi and "rad" in unit:
                period[c] = 2 * np.pi
            if np.isfinite(period[c]):
                continue
        # tiles keep normalised float32: physical values come back within ~1e-7 of their magnitude
        storage = 1e-5 * np.abs(values).max()
        integer[c] = bool(np.all(np.abs(values - np.round(values)) <= max(1e-3, storage)))
        non_negative = low >= -storage
        if unit.strip() == "%" and non_negative and high <= 100 + storage:
            lower[c], upper[c] = 0.0, 100.0
        elif non_negative and (integer[c] or low <= _NEAR_ZERO * spread):  # counts are ≥ 0 whatever their minimum
            lower[c] = 0.0
    normalised = np.asarray(train_normalised, dtype=np.float64)
    constant_pixels = np.ptp(normalised, axis=0) == 0  # (C, T)
    return ChannelConstraints(list(channel_names), lower, upper, integer, period, constant_pixels,
                              normalised[0] * constant_pixels)


def apply_constraints(images: np.ndarray, constraints: ChannelConstraints, channel_mean: np.ndarray,
                      channel_std: np.ndarray) -> tuple[np.ndarray, dict]:
    """Generated images ``(n, C, T)`` in normalised units with every constraint enforced, and the share of
    values each constraint changed (by channel name, only where it changed some)."""
    out = np.array(images, dtype=np.float64)
    mean, std = np.asarray(channel_mean, float)[:, None], np.asarray(channel_std, float)[:, None]
    changed: dict[str, dict[str, float]] = {"wrapped": {}, "clipped": {}, "rounded": {}, "set_constant": {}}
    names = constraints.channel_names
    for c in range(out.shape[1]):
        physical = out[:, c] * std[c] + mean[c]
        before = physical.copy()
        if np.isfinite(constraints.period[c]):
            physical = np.mod(physical, constraints.period[c])
            _count(changed["wrapped"], names[c], physical, before)
        clipped = np.clip(physical, np.nan_to_num(constraints.lower[c], nan=-np.inf),
                          np.nan_to_num(constraints.upper[c], nan=np.inf))
        _count(changed["clipped"], names[c], clipped, physical)
        physical = clipped
        if constraints.integer[c]:
            rounded = np.round(physical)
            _count(changed["rounded"], names[c], rounded, physical, tolerance=1e-6)
            physical = rounded
        out[:, c] = (physical - mean[c]) / std[c]
    fixed = np.broadcast_to(constraints.constant_pixels, out.shape)
    values = np.broadcast_to(constraints.constant_values, out.shape)
    for c in np.flatnonzero(constraints.constant_pixels.any(axis=1)):
        share = float(np.mean(out[:, c][fixed[:, c]] != values[:, c][fixed[:, c]])) * fixed[0, c].mean()
        if share:
            changed["set_constant"][names[c]] = round(share, 4)
    out = np.where(fixed, values, out)
    return out.astype(np.float32), {k: v for k, v in changed.items() if v}


def _count(into: dict, name: str, after: np.ndarray, before: np.ndarray, tolerance: float = 0.0) -> None:
    share = float(np.mean(np.abs(after - before) > tolerance))
    if share:
        into[name] = round(share, 4)


class Constrained:
    """Any generator, fitted around the constant channels and sampling within the data's constraints.

    generator: a generator (or :class:`~dualdiv.generators.conditional.ClassConditional`) with
    ``fit(images, seed, **kw)`` and ``sample(n, seed)``. channel_mean, channel_std ``(C,)``: the
    physical units of the normalised images (``tiles.h5``'s); channel_names, units: as in the tiles.
    fit_constant_channels: give the generator every channel (the walks move whole images in a dual space
    fitted on all channels); else constant channels are left out of its fit and put back.

    Fitted: ``constraints_`` (:class:`ChannelConstraints`), ``fitted_channels_``; after each
    :meth:`sample`, ``changed_`` (share of values each constraint changed, by channel).
    """

    def __init__(self, generator, channel_mean, channel_std, channel_names: list[str], units: str | None = None,
                 fit_constant_channels: bool = False):
        self.generator = generator
        self.channel_mean, self.channel_std = np.asarray(channel_mean, float), np.asarray(channel_std, float)
        self.channel_names, self.units = list(channel_names), units
        self.fit_constant_channels = fit_constant_channels

    def fit(self, images: np.ndarray, seed: int = 0, **kwargs) -> Constrained:
        """images ``(n, C, T)`` normalised; ``kwargs`` go to the generator's fit."""
        physical = images * self.channel_std[:, None] + self.channel_mean[:, None]
        self.constraints_ = detect_constraints(physical, images, self.channel_names, self.units)
        self.fitted_channels_ = np.arange(images.shape[1])
        if not self.fit_constant_channels and len(self.constraints_.constant_channels):
            self.fitted_channels_ = np.setdiff1d(self.fitted_channels_, self.constraints_.constant_channels)
            if not len(self.fitted_channels_):
                raise InputError("every channel is constant in the training images: nothing to generate")
        self.shape_ = images.shape[1:]
        self.generator.fit(images[:, self.fitted_channels_], seed, **kwargs)
        return self

    def sample(self, n: int | None, seed: int) -> tuple[np.ndarray, list[dict]]:
        """The generator's ``sample(n, seed)`` with every channel and the constraints enforced (float32)."""
        images, records = self.generator.sample(n, seed)
        full = np.zeros((len(images), *self.shape_), dtype=np.float32)
        full[:, self.fitted_channels_] = images
        out, self.changed_ = apply_constraints(full, self.constraints_, self.channel_mean, self.channel_std)
        return out, records

    def settings(self) -> dict:
        return self.generator.settings()

    def record(self) -> dict:
        """Provenance: the constraints found and what the last sample changed (empty when none apply)."""
        if not self.constraints_.any():
            return {}
        return {"constraints": self.constraints_.record(), "constraints_changed": getattr(self, "changed_", {})}

    def __getattr__(self, name):  # fitted attributes of the wrapped generator (classes_, generators_, …)
        if name == "generator":
            raise AttributeError(name)
        return getattr(self.generator, name)
