"""Stage tile on files: ``raw.nc`` → ``tiles.h5`` (windows, split by recording, train-only z-scores).

The array-level steps (:func:`~dualdiv.data.tiles.cut_windows`, the splits,
:func:`~dualdiv.data.tiles.channel_stats`, :func:`~dualdiv.data.tiles.normalise`) and
the file layout live in :mod:`dualdiv.data.tiles`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import InputError
from dualdiv.core.io import provenance, sha256_file
from dualdiv.data.tiles import (
    Tiles,
    TileSettings,
    channel_stats,
    cut_windows,
    normalise,
    split_recordings,
    split_single_recording,
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
        with xr.open_dataset(raw_path, engine="h5netcdf") as ds:
            ds.load()
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
    if len(signal) == 1 and settings.window is not None:
        split = split_single_recording(starts, settings.window, settings.test_fraction, settings.split,
                                       settings.seed)
    else:
        is_test = split_recordings(len(signal), settings.test_fraction, settings.seed, recording_labels)
        split = np.where(is_test[recording], "test", "train")
    keep = split != ""
    if not keep.all():  # indexing copies the images: only when windows were dropped
        images, recording, starts, split = images[keep], recording[keep], starts[keep], split[keep]
    if (split == "train").sum() < 2:
        raise InputError(f"{raw_path}: fewer than 2 training images after the split "
                         f"(tile.test_fraction={settings.test_fraction})")
    mean, std, constant = channel_stats(images, split == "train")
    names = [str(c) for c in ds["channel"].values]
    if len(constant):
        log.warning("%s: constant channel(s) %s in the training split; their std is set to 1",
                    raw_path, ", ".join(names[c] for c in constant))
    normalised = normalise(images, mean, std)
    if not np.isfinite(normalised).all():  # values near the float32 limit can overflow once centred
        bad = sorted({names[c] for c in np.argwhere(~np.isfinite(normalised))[:, 1]})
        raise InputError(f"{raw_path}: channel(s) {', '.join(bad)} overflow float32 once z-scored; rescale the data")
    checksums = {str(raw_path): sha256_file(raw_path)}
    tiles = Tiles(
        images=normalised,
        split=split,
        sample_id=recording.astype(np.int64),
        window_start=starts,
        channel_mean=mean,
        channel_std=std,
        channel_names=names,
        labels=recording_labels[recording] if recording_labels is not None else None,
        sampling_rate=float(ds.attrs["sampling_rate"]) if "sampling_rate" in ds.attrs else None,
        units=str(ds.attrs.get("units", "unknown")),
        provenance=provenance("tile", asdict(settings), checksums)
        | {"constant_channels": [names[c] for c in constant]},
        channel_types=[str(t) for t in ds["channel_type"].values] if "channel_type" in ds.coords else None,
    )
    write_tiles(out, tiles)
    return tiles
