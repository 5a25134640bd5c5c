"""Ingest assembly: what the readers returned → the ``raw.nc`` Dataset (dims sample × channel × time).

The readers (:mod:`dualdiv.data.readers`, one module per format) turn each file into a
:class:`~dualdiv.data.readers.common.RawSeries`; :func:`assemble` checks them against
each other, equalises their lengths under the length policy, checks the values and
concatenates the files along samples (the file each sample came from is kept in the
``source_file`` coordinate). The stage on files, which also writes ``raw.nc``, is
:func:`dualdiv.stages.ingest.ingest`. Every problem raises
:class:`~dualdiv.core.errors.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.readers import FORMATS, RawSeries

LENGTH_POLICIES = ("error", "crop", "pad")
FLOAT32_MAX = float(np.finfo(np.float32).max)  # tiles and samples store float32


@dataclass(frozen=True)
class IngestSettings:
    """How raw files become one ``(sample, channel, time)`` array.

    format: one of :data:`FORMATS`, or None to infer from each file's extension.
    min_samples: fewer samples than this is an error (the estimators need data).
    length_policy: series of unequal length → ``error``; ``crop`` to the
        shortest; ``pad`` to the longest by repeating each series' last value.
    sampling_rate: Hz, overrides what the file says (None: from the file, if any).
    units: physical units of the values (None: from the file, if any).
    channel_names: overrides the file's channel names (must match the count).
    """

    format: str | None = None
    min_samples: int = 16
    length_policy: str = "error"
    sampling_rate: float | None = None
    units: str | None = None
    channel_names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"ingest.format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.length_policy not in LENGTH_POLICIES:
            raise ConfigError(f"ingest.length_policy: {self.length_policy!r} is not one of "
                              f"{', '.join(LENGTH_POLICIES)}")
        if int(self.min_samples) < 1:
            raise ConfigError(f"ingest.min_samples: must be ≥ 1, got {self.min_samples}")
        if self.sampling_rate is not None and not self.sampling_rate > 0:
            raise ConfigError(f"ingest.sampling_rate: must be > 0 Hz, got {self.sampling_rate}")


# ------------------------------------------------------------------------- assembly

def equalise_lengths(raw: RawSeries, policy: str, target: int | None = None) -> np.ndarray:
    """Stack ``raw.series`` into ``(n, channels, time)`` under the length policy.

    ``target`` is the common length chosen across all files (crop: the shortest,
    pad: the longest); ``pad`` repeats each series' last value.
    """
    lengths = [len(channel) for sample in raw.series for channel in sample]
    if min(lengths) == 0:
        raise InputError(f"{raw.path}: a series has zero time points")
    target = target if target is not None else lengths[0]
    if policy == "error" and (min(lengths) != target or max(lengths) != target):
        where = next(i for i, s in enumerate(raw.series) if any(len(c) != target for c in s))
        got = sorted({len(c) for c in raw.series[where]})
        raise InputError(f"{raw.path}: ragged series: sample {where} has length {got} but the first "
                         f"has {target}; set ingest.length_policy to 'crop' or 'pad' to equalise")
    if isinstance(raw.series, np.ndarray) and raw.series.shape[2] == target:
        return raw.series
    out = np.empty((len(raw.series), len(raw.series[0]), target))
    for i, sample in enumerate(raw.series):
        for c, channel in enumerate(sample):
            kept = channel[:target]
            out[i, c, :len(kept)] = kept
            out[i, c, len(kept):] = kept[-1]
    return out


def assemble(raws: Sequence[RawSeries], settings: IngestSettings) -> xr.Dataset:
    """Check and concatenate what the readers returned into the ``raw.nc`` Dataset."""
    first = raws[0]
    for raw in raws:
        if len(raw.series) == 0:
            raise InputError(f"{raw.path}: no samples")
        if len(raw.series[0]) == 0:
            raise InputError(f"{raw.path}: zero channels")
        counts = {len(sample) for sample in raw.series}
        if len(counts) > 1:
            raise InputError(f"{raw.path}: samples have different channel counts {sorted(counts)}")
        if len(raw.series[0]) != len(first.series[0]):
            raise InputError(f"{raw.path}: {len(raw.series[0])} channels, but {first.path} has "
                             f"{len(first.series[0])}: files must share their channels")
        if raw.channel_names and len(raw.channel_names) != len(raw.series[0]):
            raise InputError(f"{raw.path}: {len(raw.channel_names)} channel names for {len(raw.series[0])} channels")
        if raw.channel_names and first.channel_names and raw.channel_names != first.channel_names:
            raise InputError(f"{raw.path}: channel names {raw.channel_names[:4]}... differ from "
                             f"{first.path}'s {first.channel_names[:4]}...")
        if (raw.labels is None) != (first.labels is None):
            raise InputError(f"{raw.path}: {'has' if raw.labels else 'has no'} labels, unlike {first.path}")
        if raw.sampling_rate and first.sampling_rate and not math.isclose(raw.sampling_rate,
                                                                          first.sampling_rate):
            raise InputError(f"{raw.path}: sampling rate {raw.sampling_rate} Hz differs from "
                             f"{first.path}'s {first.sampling_rate} Hz")
    lengths = [len(c) for raw in raws for s in raw.series for c in s]
    target = {"error": lengths[0], "crop": min(lengths), "pad": max(lengths)}[settings.length_policy]
    if settings.length_policy == "error" and len(set(lengths)) > 1:
        for raw in raws:  # name the first offending file
            equalise_lengths(raw, "error", target)
    arrays = [equalise_lengths(raw, settings.length_policy, target) for raw in raws]
    signal = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if not (np.isfinite(signal).all() and -FLOAT32_MAX <= signal.min() and signal.max() <= FLOAT32_MAX):
        for raw, array in zip(raws, arrays, strict=True):
            _check_values(raw.path, array)
    n, n_channels, n_time = signal.shape
    if n < settings.min_samples:
        raise InputError(f"{', '.join(str(r.path) for r in raws)}: {n} samples, need at least "
                         f"{settings.min_samples} (ingest.min_samples)")
    names = list(settings.channel_names) if settings.channel_names else first.channel_names
    if names is None:
        names = [f"ch{c}" for c in range(n_channels)]
    if len(names) != n_channels:
        raise ConfigError(f"ingest.channel_names: {len(names)} names for {n_channels} channels")
    rate = settings.sampling_rate or first.sampling_rate
    units = settings.units or first.units or "unknown"
    time = np.arange(n_time) / rate if rate else np.arange(n_time, dtype=float)
    coords = {
        "sample": np.arange(n),
        "channel": np.array(names, dtype=str),
        "time": ("time", time, {"units": "s" if rate else "time step"}),
        "source_file": ("sample", np.concatenate([[raw.path.name] * len(raw.series) for raw in raws])),
    }
    data_vars = {"signal": (("sample", "channel", "time"), signal, {"units": units})}
    if first.labels is not None:
        data_vars["label"] = ("sample", np.array([lab for raw in raws for lab in raw.labels], dtype=str))
    attrs = {"units": units, "length_policy": settings.length_policy}
    if rate:
        attrs["sampling_rate"] = float(rate)
    return xr.Dataset(data_vars, coords, attrs)


def _check_values(path: Path, array: np.ndarray) -> None:
    """InputError naming the first value of ``array`` (n, C, T) that is NaN, infinite or beyond float32."""
    bad = np.argwhere(~(np.abs(array) <= FLOAT32_MAX))  # NaN compares False
    if len(bad):
        i, c, t = bad[0]
        value = array[i, c, t]
        if np.isfinite(value):
            raise InputError(f"{path}: value {value:.3g} at sample {i}, channel {c}, time {t} is beyond the "
                             f"float32 range (±{FLOAT32_MAX:.3g}) images are stored in; rescale the data")
        kind = "NaN/missing" if np.isnan(value) else "infinite"
        raise InputError(f"{path}: {kind} value at sample {i}, channel {c}, time {t} "
                         f"({int((~np.isfinite(array)).sum())} non-finite values in all); remove or impute them first")
