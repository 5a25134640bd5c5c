"""Stage tile on files: ``raw.nc`` → ``tiles.h5`` (windows, split by recording, train-only z-scores).

The array-level steps (:func:`~dualdiv.data.tiles.cut_windows`, the splits,
:func:`~dualdiv.data.tiles.channel_stats`, :func:`~dualdiv.data.tiles.normalise`) and
the file layout live in :mod:`dualdiv.data.tiles`. A ``raw.nc`` whose images would take more than
``tile.memory_mb`` in memory is streamed (:func:`_tile_streamed`): the same ``tiles.h5`` layout and
checksum, written by blocks of windows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import DualdivError, InputError
from dualdiv.core.io import provenance, sha256_file
from dualdiv.data.tiles import (
    StoredImages,
    Tiles,
    TileSettings,
    channel_stats,
    cut_windows,
    fold_recordings,
    normalise,
    split_recordings,
    split_single_recording,
    window_index,
    write_tiles,
)

log = logging.getLogger(__name__)


def tile(raw_path: str | os.PathLike, out: str | os.PathLike,
         settings: TileSettings = TileSettings()) -> Tiles:
    """Entry function of the stage: read ``raw.nc``, cut, split, normalise, write ``out``.

    Used by the ``tile`` rule and ``dualdiv tile``. Returns what was written.
    """
    raw_path = Path(raw_path)
    if not raw_path.is_file():
        raise InputError(f"{raw_path}: no such file; run the ingest stage first")
    try:
        with xr.open_dataset(raw_path, engine="h5netcdf", cache=False) as ds:
            if "signal" in ds and ds["signal"].dims == ("sample", "channel", "time") and \
                    _in_memory_bytes(ds["signal"].shape, settings) > settings.memory_mb * 2**20:
                return _tile_streamed(raw_path, ds, out, settings)
            ds.load()
    except DualdivError:  # the stage's own errors (streamed), not a corrupt file
        raise
    except Exception as exc:  # corrupt files raise OSError, ValueError, KeyError... from h5py
        raise InputError(f"{raw_path}: cannot read raw.nc (corrupt or truncated? rerun ingest): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if "signal" not in ds or ds["signal"].dims != ("sample", "channel", "time"):
        raise InputError(f"{raw_path}: expected a variable 'signal' with dims (sample, channel, time)")
    signal = ds["signal"].values
    if not np.isfinite(signal).all():
        raise InputError(f"{raw_path}: 'signal' contains NaN or infinite values")
    recording_labels = ds["label"].values.astype(str) if "label" in ds else None
    images, recording, starts = cut_windows(signal, settings.window, settings.stride)
    split = _split(len(signal), recording, starts, recording_labels, settings)
    keep = split != ""
    if not keep.all():  # indexing copies the images: only when windows were dropped
        images, recording, starts, split = images[keep], recording[keep], starts[keep], split[keep]
    _check_split(raw_path, split, settings)
    mean, std, constant = channel_stats(images, split == "train")
    names = [str(c) for c in ds["channel"].values]
    if len(constant):
        log.warning("%s: constant channel(s) %s in the training split; their std is set to 1",
                    raw_path, ", ".join(names[c] for c in constant))
    normalised = normalise(images, mean, std)
    if not np.isfinite(normalised).all():  # values near the float32 limit can overflow once centred
        bad = sorted({names[c] for c in np.argwhere(~np.isfinite(normalised))[:, 1]})
        raise InputError(f"{raw_path}: channel(s) {', '.join(bad)} overflow float32 once z-scored; rescale the data")
    tiles = _tiles(ds, raw_path, normalised, split, recording, starts, mean, std, constant, recording_labels,
                   settings)
    write_tiles(out, tiles)
    return tiles


def _split(n_recordings: int, recording: np.ndarray, starts: np.ndarray, recording_labels, settings: TileSettings
           ) -> np.ndarray:
    """(m,) "train"/"test"/"" of every window (by recording; one recording: by window)."""
    if n_recordings == 1 and settings.window is not None:
        return split_single_recording(starts, settings.window, settings.test_fraction, settings.split,
                                      settings.seed, settings.folds, settings.fold)
    if settings.folds is not None:
        is_test = fold_recordings(n_recordings, settings.folds, settings.fold, settings.seed, recording_labels)
    else:
        is_test = split_recordings(n_recordings, settings.test_fraction, settings.seed, recording_labels)
    return np.where(is_test[recording], "test", "train")


def _check_split(raw_path: Path, split: np.ndarray, settings: TileSettings) -> None:
    """One-line errors for a split a later stage cannot use: < 2 training images, or an empty test fold."""
    how = (f"tile.test_fraction={settings.test_fraction}" if settings.folds is None
           else f"fold {settings.fold} of evaluate.folds={settings.folds}")
    if (split == "train").sum() < 2:
        raise InputError(f"{raw_path}: fewer than 2 training images after the split ({how})")
    if settings.folds is not None and not (split == "test").any():
        raise InputError(f"{raw_path}: {how} holds no image ({len(split)} images, fewer than the folds); "
                         "lower evaluate.folds")


def _tiles(ds, raw_path: Path, images, split, recording, starts, mean, std, constant, recording_labels,
           settings: TileSettings) -> Tiles:
    names = [str(c) for c in ds["channel"].values]
    checksums = {str(raw_path): sha256_file(raw_path)}
    return Tiles(
        images=images,
        split=split,
        sample_id=recording.astype(np.int64),
        window_start=starts,
        channel_mean=mean,
        channel_std=std,
        channel_names=names,
        labels=recording_labels[recording] if recording_labels is not None else None,
        sampling_rate=float(ds.attrs["sampling_rate"]) if "sampling_rate" in ds.attrs else None,
        units=str(ds.attrs.get("units", "unknown")),
        provenance=provenance("tile", _provenance_settings(settings), checksums)
        | {"constant_channels": [names[c] for c in constant]},
        channel_types=[str(t) for t in ds["channel_type"].values] if "channel_type" in ds.coords else None,
    )


def _provenance_settings(settings: TileSettings) -> dict:
    """The settings for the provenance, without ``memory_mb`` (how the file was written, not what it holds);
    ``folds``/``fold`` only for a cross-fitting fold (a single split's provenance is as before)."""
    values = asdict(settings)
    values.pop("memory_mb")
    if settings.folds is None:
        del values["folds"], values["fold"]
    return values


def _in_memory_bytes(shape, settings: TileSettings) -> int:
    """Peak data memory of the in-memory stage: the float64 signal, its float64 windows (a copy when
    windowed) and the float32 images."""
    n, n_channels, n_time = (int(v) for v in shape)
    if settings.window is None:
        return 12 * n * n_channels * n_time
    n_windows = n * len(range(0, max(0, n_time - settings.window + 1), settings.stride or settings.window))
    return 8 * n * n_channels * n_time + 12 * n_windows * n_channels * settings.window


def _tile_streamed(raw_path: Path, ds: xr.Dataset, out: str | os.PathLike, settings: TileSettings) -> Tiles:
    """The stage by blocks of windows (a ``raw.nc`` larger than ``settings.memory_mb`` in memory).

    Windows are cut from slices of ``raw.nc`` as they are needed; pass 1 sums each channel over the
    training windows (mean), pass 2 the squared deviations from it (std, as :func:`channel_stats`),
    pass 3 z-scores every window and writes it to ``tiles.h5`` (:func:`write_tiles` with blocks).
    Returns the Tiles written, their images left on disk (:class:`~dualdiv.data.tiles.StoredImages`).
    """
    n, n_channels, n_time = ds["signal"].shape
    width = settings.window or n_time
    recording_labels = ds["label"].values.astype(str) if "label" in ds else None
    recording, starts = window_index(n, n_time, settings.window, settings.stride)
    split = _split(n, recording, starts, recording_labels, settings)
    keep = split != ""
    recording, starts, split = recording[keep], starts[keep], split[keep]
    train = split == "train"
    _check_split(raw_path, split, settings)
    # per window in a block: its float64 slice of raw.nc (at most), its float64 copy, float32 image
    size = max(1, (settings.memory_mb * 2**20 // 2) // (20 * n_channels * width))
    blocks = [(a, min(len(split), a + size)) for a in range(0, len(split), size)]
    signal = ds["signal"].variable

    def windows(a: int, b: int) -> np.ndarray:
        """Windows a..b−1 (kept, in order) as float64 (b − a, C, W), read from raw.nc."""
        out_block, rows = np.empty((b - a, n_channels, width)), np.arange(a, b)
        first, last = int(recording[a]), int(recording[b - 1])
        t0, t1 = int(starts[a:b].min()), int(starts[a:b].max()) + width
        if (last - first + 1) * (t1 - t0) <= 2 * (b - a) * width:  # one read of the recordings' span
            groups = [(first, last + 1, rows)]
        else:  # (a long recording's tail and the next one's head) one read per recording
            groups = [(int(r), int(r) + 1, rows[recording[a:b] == r]) for r in np.unique(recording[a:b])]
        for r0, r1, mine in groups:
            t0, t1 = int(starts[mine].min()), int(starts[mine].max()) + width
            part = np.asarray(signal[r0:r1, :, t0:t1].values, dtype=np.float64)
            if not np.isfinite(part).all():
                raise InputError(f"{raw_path}: 'signal' contains NaN or infinite values")
            for i in mine:
                out_block[i - a] = part[recording[i] - r0, :, starts[i] - t0:starts[i] - t0 + width]
        return out_block

    total, count = np.zeros(n_channels), int(train.sum()) * width
    for a, b in blocks:
        block, rows = windows(a, b), train[a:b]
        if rows.any():
            total += [block[rows, c].sum() for c in range(n_channels)]
    mean = total / count
    squares = np.zeros(n_channels)
    for a, b in blocks:
        block, rows = windows(a, b), train[a:b]
        if rows.any():
            squares += [((block[rows, c] - mean[c]) ** 2).sum() for c in range(n_channels)]
    std = np.sqrt(squares / count)
    constant = np.flatnonzero(std <= 1e-12 * np.abs(mean))
    std[constant] = 1.0
    names = [str(c) for c in ds["channel"].values]
    if len(constant):
        log.warning("%s: constant channel(s) %s in the training split; their std is set to 1",
                    raw_path, ", ".join(names[c] for c in constant))

    def image_blocks():
        for a, b in blocks:
            normalised = normalise(windows(a, b), mean, std)
            if not np.isfinite(normalised).all():
                bad = sorted({names[c] for c in np.argwhere(~np.isfinite(normalised))[:, 1]})
                raise InputError(f"{raw_path}: channel(s) {', '.join(bad)} overflow float32 once z-scored; "
                                 "rescale the data")
            yield normalised

    log.info("%s: streaming %d windows in %d blocks (tile.memory_mb = %d)", raw_path, len(split), len(blocks),
             settings.memory_mb)
    tiles = _tiles(ds, raw_path, StoredImages(out, (len(split), n_channels, width)), split, recording, starts, mean,
                   std, constant, recording_labels, settings)
    write_tiles(out, tiles, image_blocks())
    return tiles
