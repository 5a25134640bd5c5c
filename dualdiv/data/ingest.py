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

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.readers import FORMATS, MNE_OPTIONS, RawSeries
from dualdiv.data.readers.common import LazyArray, read_samples, sample_blocks

LENGTH_POLICIES = ("error", "crop", "pad")
IN_MEMORY_FACTOR = 1.5  # peak data memory of the in-memory ingest / the float64 signal (benchmarks/MEMORY.md)
FLOAT32_MAX = float(np.finfo(np.float32).max)  # tiles and samples store float32


@dataclass(frozen=True)
class IngestSettings:
    """How raw files become one ``(sample, channel, time)`` array.

    format: one of :data:`FORMATS`, or None to infer from each file's extension.
    min_samples: fewer samples than this is an error (the estimators need data).
    length_policy: series of unequal length → ``error``; ``crop`` to the
        shortest; ``pad`` to the longest by repeating each series' last value.
    sampling_rate: Hz, overrides what the file says (None: from the file, if any).
    units: physical units of the values (None: from the file, if any). For EEG/MEG files
        (read through MNE, which holds volts and tesla) the unit the values are converted to,
        a sub-multiple of the channels' SI unit (``uV``, ``mV``, ``fT``…; None: µV for EEG,
        fT for magnetometers, fT/cm for gradiometers).
    channel_names: overrides the file's channel names (must match the count).
    memory_mb: MiB the stage's data may take beyond the interpreter and libraries (~0.4 GiB). When
        ``.npy``, NetCDF/HDF5 and wide CSV inputs would need more in memory (about 1.5 × their size as
        float64), they are streamed: read, checked and written to ``raw.nc`` by blocks of samples of at
        most half this budget, so the peak stays near 0.4 GiB + ``memory_mb`` whatever the file size;
        the content of ``raw.nc`` is the same. Other formats are read whole (their readers parse into
        memory). Not part of the provenance (it changes how, not what, is written).

    Only for EEG/MEG files (formats of :data:`~dualdiv.data.readers.MNE_FORMATS`, done by MNE,
    see :mod:`dualdiv.data.readers.mne_files`):

    epochs: how a continuous recording becomes samples: ``{events: [description, ...], tmin,
        tmax}`` (seconds around each annotation of those descriptions, labelled by it),
        ``{duration, overlap}`` (fixed-length windows, seconds), or None (the whole recording).
    picks: channels kept: a type (``eeg``), a list of types or names; None: MNE's data channels.
    resample: new sampling rate in Hz (None: the file's).
    l_freq, h_freq: band-pass edges in Hz of MNE's FIR filter (None: no high-/low-pass).
    """

    format: str | None = None
    min_samples: int = 16
    length_policy: str = "error"
    sampling_rate: float | None = None
    units: str | None = None
    channel_names: tuple[str, ...] | None = None
    memory_mb: int = 512
    epochs: dict | None = None
    picks: str | tuple[str, ...] | None = None
    resample: float | None = None
    l_freq: float | None = None
    h_freq: float | None = None

    def __post_init__(self):
        if isinstance(self.picks, list):
            object.__setattr__(self, "picks", tuple(self.picks))
        picks = (self.picks,) if isinstance(self.picks, str) else self.picks
        if picks is not None and not (isinstance(picks, tuple) and picks and all(isinstance(p, str) and p
                                                                                 for p in picks)):
            raise ConfigError(f"ingest.picks: a channel type or a list of channel names/types, got {self.picks!r}")
        _check_epochs(self.epochs)
        for name in ("resample", "l_freq", "h_freq"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise ConfigError(f"ingest.{name}: must be a number of Hz > 0, got {value!r}")
        if self.l_freq is not None and self.h_freq is not None and not self.l_freq < self.h_freq:
            raise ConfigError(f"ingest.l_freq: {self.l_freq} Hz must be below ingest.h_freq ({self.h_freq} Hz)")
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"ingest.format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.length_policy not in LENGTH_POLICIES:
            raise ConfigError(f"ingest.length_policy: {self.length_policy!r} is not one of "
                              f"{', '.join(LENGTH_POLICIES)}")
        if int(self.min_samples) < 1:
            raise ConfigError(f"ingest.min_samples: must be ≥ 1, got {self.min_samples}")
        if self.sampling_rate is not None and not self.sampling_rate > 0:
            raise ConfigError(f"ingest.sampling_rate: must be > 0 Hz, got {self.sampling_rate}")
        if isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int) or self.memory_mb < 1:
            raise ConfigError(f"ingest.memory_mb: an integer number of MiB ≥ 1, got {self.memory_mb!r}")

    def reader_options(self) -> dict:
        """The settings the MNE readers take (:func:`dualdiv.data.readers.read_file`'s ``options``)."""
        return {name: getattr(self, name) for name in (*MNE_OPTIONS, "units")}


_EPOCH_KEYS = {"events": ("events", "tmin", "tmax"), "duration": ("duration", "overlap")}


def _check_epochs(epochs: dict | None) -> None:
    """ConfigError naming the first bad key of an ``ingest.epochs`` mapping."""
    if epochs is None:
        return
    if not isinstance(epochs, dict) or ("events" in epochs) == ("duration" in epochs):
        raise ConfigError("ingest.epochs: either {events: [description, ...], tmin: s, tmax: s} or "
                          f"{{duration: s, overlap: s}}, got {epochs!r}")
    kind = "events" if "events" in epochs else "duration"
    unknown = sorted(set(epochs) - set(_EPOCH_KEYS[kind]))
    if unknown:
        raise ConfigError(f"ingest.epochs: unknown key(s) {', '.join(unknown)} with {kind}; known: "
                          f"{', '.join(_EPOCH_KEYS[kind])}")
    if kind == "events":
        events = epochs["events"]
        if isinstance(events, str | int) or not events or not all(isinstance(e, str | int) for e in events):
            raise ConfigError(f"ingest.epochs.events: a list of annotation descriptions, got {events!r}")
        for key in ("tmin", "tmax"):
            if not isinstance(epochs.get(key), int | float):
                raise ConfigError(f"ingest.epochs.{key}: seconds relative to each event, got {epochs.get(key)!r}")
        if not epochs["tmin"] < epochs["tmax"]:
            raise ConfigError(f"ingest.epochs: tmin {epochs['tmin']} s must be below tmax {epochs['tmax']} s")
    else:
        duration, overlap = epochs["duration"], epochs.get("overlap", 0.0)
        if not (isinstance(duration, int | float) and duration > 0):
            raise ConfigError(f"ingest.epochs.duration: seconds > 0, got {duration!r}")
        if not (isinstance(overlap, int | float) and 0 <= overlap < duration):
            raise ConfigError(f"ingest.epochs.overlap: seconds in [0, duration), got {overlap!r}")


# ------------------------------------------------------------------------- assembly

def equalise_lengths(raw: RawSeries, policy: str, target: int | None = None) -> np.ndarray:
    """Stack ``raw.series`` into ``(n, channels, time)`` under the length policy.

    ``target`` is the common length chosen across all files (crop: the shortest,
    pad: the longest); ``pad`` repeats each series' last value. A :class:`LazyArray` stays on
    disk (cropped or padded as it is read).
    """
    first, shortest, longest = _length_range(raw)
    if shortest == 0:
        raise InputError(f"{raw.path}: a series has zero time points")
    target = target if target is not None else first
    if policy == "error" and (shortest != target or longest != target):
        where = next(i for i, s in enumerate(raw.series) if any(len(c) != target for c in s))
        got = sorted({len(c) for c in raw.series[where]})
        raise InputError(f"{raw.path}: ragged series: sample {where} has length {got} but the first "
                         f"has {target}; set ingest.length_policy to 'crop' or 'pad' to equalise")
    if isinstance(raw.series, LazyArray):
        return raw.series if raw.series.shape[2] == target else raw.series.with_layout(length=target)
    if isinstance(raw.series, np.ndarray) and raw.series.shape[2] == target:
        return raw.series
    out = np.empty((len(raw.series), len(raw.series[0]), target))
    for i, sample in enumerate(raw.series):
        for c, channel in enumerate(sample):
            kept = channel[:target]
            out[i, c, :len(kept)] = kept
            out[i, c, len(kept):] = kept[-1]
    return out


def _whole(series) -> bool:
    """Whether ``series`` is one ``(n, channels, time)`` array (in memory or a LazyArray), not lists."""
    return isinstance(series, np.ndarray | LazyArray) and series.ndim == 3


def _n_channels(series) -> int:
    return series.shape[1] if _whole(series) else len(series[0])


def _length_range(raw: RawSeries) -> tuple[int, int, int]:
    """(first, shortest, longest) series length of one reader's output."""
    if _whole(raw.series):
        return (raw.series.shape[2],) * 3
    lengths = [len(channel) for sample in raw.series for channel in sample]
    return lengths[0], min(lengths), max(lengths)


class StreamedSignal:
    """The ``(n, channels, time)`` signal of several files, some left on disk (:class:`LazyArray`),
    read by blocks: ``read(start, stop, t0, t1)`` → float64. ``parts``: one array per file, in order."""

    ndim = 3

    def __init__(self, parts: Sequence):
        self.parts = list(parts)
        self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in self.parts])]).astype(int)
        self.shape = (int(self.offsets[-1]), *self.parts[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return 8 * math.prod(self.shape)

    def read(self, start: int, stop: int, t0: int = 0, t1: int | None = None) -> np.ndarray:
        pieces = []
        for part, offset in zip(self.parts, self.offsets[:-1], strict=True):
            lo, hi = max(start, offset), min(stop, offset + len(part))
            if lo < hi:
                pieces.append(read_samples(part, lo - offset, hi - offset, t0, t1))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def assemble(raws: Sequence[RawSeries], settings: IngestSettings) -> xr.Dataset:
    """Check and concatenate what the readers returned into the ``raw.nc`` Dataset.

    Files whose channels have the same names in another order are put in the first file's order.
    Series left on disk (:class:`LazyArray`) are read into memory here; :func:`assemble_streamed`
    keeps them there.
    """
    signal, coords, data_vars, attrs = _assembled(raws, settings)
    if isinstance(signal, StreamedSignal):
        signal = signal.read(0, len(signal))
    return xr.Dataset({"signal": (("sample", "channel", "time"), signal, {"units": attrs["units"]}), **data_vars},
                      coords, attrs)


def assemble_streamed(raws: Sequence[RawSeries], settings: IngestSettings) -> tuple[xr.Dataset, StreamedSignal]:
    """As :func:`assemble`, but the signal stays on disk: (the Dataset without ``signal``, the signal to
    read by blocks). Values are checked block by block (blocks of at most ``settings.memory_mb / 2``)."""
    signal, coords, data_vars, attrs = _assembled(raws, settings, streamed=True)
    return xr.Dataset(data_vars, coords, attrs), signal


def _assembled(raws: Sequence[RawSeries], settings: IngestSettings, streamed: bool = False):
    """The checks and parts of :func:`assemble`: (signal, coords, data variables but signal, attributes)."""
    first = raws[0]
    raws = list(raws)
    for index, raw in enumerate(raws):
        if len(raw.series) == 0:
            raise InputError(f"{raw.path}: no samples")
        if _n_channels(raw.series) == 0:
            raise InputError(f"{raw.path}: zero channels")
        counts = {_n_channels(raw.series)} if _whole(raw.series) else {len(sample) for sample in raw.series}
        if len(counts) > 1:
            raise InputError(f"{raw.path}: samples have different channel counts {sorted(counts)}")
        if raw.channel_names and len(raw.channel_names) != _n_channels(raw.series):
            raise InputError(f"{raw.path}: {len(raw.channel_names)} channel names for {_n_channels(raw.series)} "
                             "channels")
        if raw.channel_names and first.channel_names and raw.channel_names != first.channel_names:
            missing = [name for name in first.channel_names if name not in raw.channel_names]
            extra = [name for name in raw.channel_names if name not in first.channel_names]
            if missing:
                raise InputError(f"{raw.path}: channel(s) {', '.join(missing[:8])}{' …' if len(missing) > 8 else ''} "
                                 f"missing (present in {first.path}); files must share their channels")
            if extra:
                raise InputError(f"{raw.path}: channel(s) {', '.join(extra[:8])}{' …' if len(extra) > 8 else ''} "
                                 f"not in {first.path}; files must share their channels (ingest.picks chooses them "
                                 "for EEG/MEG files)")
            raw = raws[index] = _in_channel_order(raw, first.channel_names)
        if _n_channels(raw.series) != _n_channels(first.series):
            raise InputError(f"{raw.path}: {_n_channels(raw.series)} channels, but {first.path} has "
                             f"{_n_channels(first.series)}: files must share their channels")
        if raw.channel_types and first.channel_types and raw.channel_types != first.channel_types:
            where = next(c for c, (a, b) in enumerate(zip(raw.channel_types, first.channel_types, strict=True))
                         if a != b)
            raise InputError(f"{raw.path}: channel {where} is of type {raw.channel_types[where]}, but "
                             f"{first.channel_types[where]} in {first.path}")
        if raw.units and first.units and raw.units != first.units and raw.channel_types:
            raise InputError(f"{raw.path}: units {raw.units!r} differ from {first.path}'s {first.units!r}")
        if (raw.labels is None) != (first.labels is None):
            raise InputError(f"{raw.path}: {'has' if raw.labels else 'has no'} labels, unlike {first.path}")
        if raw.sampling_rate and first.sampling_rate and not math.isclose(raw.sampling_rate,
                                                                          first.sampling_rate):
            raise InputError(f"{raw.path}: sampling rate {raw.sampling_rate} Hz differs from "
                             f"{first.path}'s {first.sampling_rate} Hz")
    ranges = [_length_range(raw) for raw in raws]
    shortest, longest = min(r[1] for r in ranges), max(r[2] for r in ranges)
    target = {"error": ranges[0][0], "crop": shortest, "pad": longest}[settings.length_policy]
    if settings.length_policy == "error" and shortest != longest:
        for raw in raws:  # name the first offending file
            equalise_lengths(raw, "error", target)
    arrays = [equalise_lengths(raw, settings.length_policy, target) for raw in raws]
    if streamed or any(isinstance(a, LazyArray) for a in arrays):
        signal = StreamedSignal(arrays)
        budget = settings.memory_mb * 2**20 // 2
        for raw, array in zip(raws, arrays, strict=True):
            for start, stop, t0, t1 in sample_blocks(array.shape, budget):
                block = read_samples(array, start, stop, t0, t1)
                if not (np.isfinite(block).all() and -FLOAT32_MAX <= block.min() and block.max() <= FLOAT32_MAX):
                    _check_values(raw.path, block, offset=start, time_offset=t0)
    else:
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
    if first.channel_types is not None:
        coords["channel_type"] = ("channel", np.array(first.channel_types, dtype=str))
    data_vars = {}
    if first.labels is not None:
        data_vars["label"] = ("sample", np.array([lab for raw in raws for lab in raw.labels], dtype=str))
    attrs = {"units": units, "length_policy": settings.length_policy}
    if rate:
        attrs["sampling_rate"] = float(rate)
    if any("mne" in raw.meta for raw in raws):  # what MNE did to each file (filter, resampling, epochs)
        attrs["mne"] = json.dumps({raw.path.name: raw.meta.get("mne") for raw in raws})
    return signal, coords, data_vars, attrs


def _in_channel_order(raw: RawSeries, names: Sequence[str]) -> RawSeries:
    """``raw`` with its channels (series, names, types) in the order of ``names`` (the same set)."""
    order = [raw.channel_names.index(name) for name in names]
    if isinstance(raw.series, LazyArray):
        series = raw.series.with_layout(channels=order)
    elif isinstance(raw.series, np.ndarray):
        series = raw.series[:, order]
    else:
        series = [[sample[c] for c in order] for sample in raw.series]
    types = [raw.channel_types[c] for c in order] if raw.channel_types else None
    return dataclasses.replace(raw, series=series, channel_names=list(names), channel_types=types)


def _check_values(path: Path, array: np.ndarray, offset: int = 0, time_offset: int = 0) -> None:
    """InputError naming the first value of ``array`` (n, C, T) that is NaN, infinite or beyond float32.

    offset, time_offset: the file's sample and time index of ``array[0, :, 0]`` (a block of a streamed file)."""
    bad = np.argwhere(~(np.abs(array) <= FLOAT32_MAX))  # NaN compares False
    if len(bad):
        i, c, t = bad[0]
        value = array[i, c, t]
        i, t = i + offset, t + time_offset
        if np.isfinite(value):
            raise InputError(f"{path}: value {value:.3g} at sample {i}, channel {c}, time {t} is beyond the "
                             f"float32 range (±{FLOAT32_MAX:.3g}) images are stored in; rescale the data")
        kind = "NaN/missing" if np.isnan(value) else "infinite"
        raise InputError(f"{path}: {kind} value at sample {i}, channel {c}, time {t} "
                         f"({int((~np.isfinite(array)).sum())} non-finite values in all); remove or impute them first")
