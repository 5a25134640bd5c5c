"""Stage 2, tile: ``raw.nc`` → normalised images ``(n, H, W)`` in ``tiles.h5``.

H = channels, W = time points. Long recordings may be cut into windows
(``window``/``stride``); every window of one recording goes to the same split,
so test images never share time points with training images. Each channel is
z-scored with the mean and standard deviation of the **training** split only,
and those statistics are stored so :func:`to_physical` maps any image (real or
generated) back to the data's units.

``tiles.h5`` layout: ``/images`` float32 ``(n, H, W)`` chunked
``(1, H, W)`` gzip; ``/split`` fixed-length strings ``train``/``test``;
``/sample_id`` int64 (row in raw.nc); ``/window_start`` int64 (time index of the
window in its recording); ``/labels`` where the data have labels; attributes
``channel_mean``, ``channel_std``, ``channel_names``, ``sampling_rate``,
``units``, ``provenance``, and ``channel_types`` (JSON, MNE's channel types) where the
data came from an EEG/MEG file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import atomic_output

log = logging.getLogger(__name__)


SINGLE_RECORDING_SPLITS = ("chronological", "interleaved", "random")


@dataclass(frozen=True)
class TileSettings:
    """How recordings become images.

    test_fraction: share of recordings held out as the test split (0 ≤ f < 1),
        stratified by label when labels exist.
    window: time points per image; None keeps each whole series as one image.
    stride: time points between window starts (default: ``window``, no overlap).
    seed: seeds the train/test split.
    split: how the windows of ONE recording are split (data of several recordings are always
        split by recording, at random, stratified by label): ``chronological`` (the last
        ``test_fraction`` of windows: forecasting across time), ``interleaved`` (single test
        windows spread evenly through the recording) or ``random`` (test windows drawn with
        ``seed``); the last two measure realism within one regime rather than across regimes.
        Training windows that overlap a test window are dropped in every case.
    folds, fold: cross-fitting (the workflow's ``evaluate.folds``): None holds out ``test_fraction``;
        k ≥ 2 cuts the recordings into k folds (stratified by label; one recording's windows into k
        blocks in time for ``chronological``, every k-th window for ``interleaved``, at random for
        ``random``) and holds out fold ``fold`` (0 ≤ fold < k) instead; the folds of one ``seed``
        partition the images, so over its k tilings every image is held out once.
    memory_mb: MiB the stage's data may take beyond the interpreter and libraries (~0.4 GiB). When
        ``raw.nc`` and its images would need more in memory (the float64 signal, its float64
        windows and the float32 images), the stage streams: windows are read from ``raw.nc`` and
        written to ``tiles.h5`` by blocks of at most half this budget, the statistics in two passes
        over the training windows; the same images within rounding of the statistics (exactly the
        same when one block holds every window). Not part of the provenance.
    """

    test_fraction: float = 0.2
    window: int | None = None
    stride: int | None = None
    seed: int = 0
    split: str = "chronological"
    folds: int | None = None
    fold: int = 0
    memory_mb: int = 512

    def __post_init__(self):
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"tile.test_fraction: must be in [0, 1), got {self.test_fraction}")
        if self.window is not None and self.window < 2:
            raise ConfigError(f"tile.window: must be ≥ 2 time points, got {self.window}")
        if self.stride is not None and (self.window is None or self.stride < 1):
            raise ConfigError("tile.stride: needs tile.window and must be ≥ 1")
        if self.split not in SINGLE_RECORDING_SPLITS:
            raise ConfigError(f"tile.split: expected one of {', '.join(SINGLE_RECORDING_SPLITS)}, got {self.split!r}")
        if self.folds is not None and (isinstance(self.folds, bool) or not isinstance(self.folds, int)
                                       or self.folds < 2):
            raise ConfigError(f"tile.folds: an integer ≥ 2 or null, got {self.folds!r}")
        if not isinstance(self.fold, int) or not 0 <= self.fold < (self.folds or 1):
            raise ConfigError(f"tile.fold: an integer in [0, {(self.folds or 1) - 1}], got {self.fold!r}")
        if isinstance(self.memory_mb, bool) or not isinstance(self.memory_mb, int) or self.memory_mb < 1:
            raise ConfigError(f"tile.memory_mb: an integer number of MiB ≥ 1, got {self.memory_mb!r}")


@dataclass
class Tiles:
    """Contents of ``tiles.h5``. ``images``: (n, H, W) float32 in normalised units."""

    images: np.ndarray
    split: np.ndarray  # (n,) str, "train" or "test"
    sample_id: np.ndarray  # (n,) int64, row in raw.nc
    window_start: np.ndarray  # (n,) int64
    channel_mean: np.ndarray  # (H,) physical units
    channel_std: np.ndarray  # (H,) physical units
    channel_names: list[str]
    labels: np.ndarray | None = None  # (n,) str
    sampling_rate: float | None = None
    units: str = "unknown"
    provenance: dict | None = None
    channel_types: list[str] | None = None  # (H,) MNE's channel types (eeg, mag, ...), where known

    def subset(self, split: str) -> np.ndarray:
        """Images of one split, ``(n_split, H, W)``."""
        return self.images[self.split == split]


# ---------------------------------------------------------------- pure functions

def cut_windows(signal: np.ndarray, window: int | None, stride: int | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ``signal (n, C, T)`` into windows ``(m, C, window)``.

    Returns the windows, the recording each came from ``(m,)`` and its start
    index ``(m,)``. ``window=None`` keeps whole series (m = n).
    """
    n, _, n_time = signal.shape
    recording, window_starts = window_index(n, n_time, window, stride)
    if window is None:
        return signal, recording, window_starts
    starts = window_starts[:len(window_starts) // n]
    windows = np.stack([signal[:, :, s:s + window] for s in starts], axis=1)  # (n, k, C, window)
    return windows.reshape(n * len(starts), *windows.shape[2:]), recording, window_starts


def window_index(n: int, n_time: int, window: int | None, stride: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The windows :func:`cut_windows` cuts from ``n`` series of ``n_time`` points, without the data:
    (recording (m,), start (m,) int64), recording-major, starts ascending within a recording."""
    if window is None:
        return np.arange(n), np.zeros(n, dtype=np.int64)
    if window > n_time:
        raise ConfigError(f"tile.window: {window} time points, but the series have only {n_time}")
    starts = np.arange(0, n_time - window + 1, stride or window)
    return np.repeat(np.arange(n), len(starts)), np.tile(starts, n).astype(np.int64)


def split_recordings(n_recordings: int, test_fraction: float, seed: int,
                     labels: np.ndarray | None = None) -> np.ndarray:
    """Seeded train/test assignment of recordings, stratified by ``labels``.

    Returns a boolean ``(n_recordings,)`` mask, True for test. Each class
    contributes round(test_fraction · n_class) test recordings, at least one
    when test_fraction > 0 and the class has two or more, and never all of them.
    """
    rng = np.random.default_rng(seed)
    strata = np.zeros(n_recordings, dtype=int) if labels is None else np.unique(labels, return_inverse=True)[1]
    is_test = np.zeros(n_recordings, dtype=bool)
    for stratum in range(strata.max() + 1):
        members = np.flatnonzero(strata == stratum)
        n_test = int(round(test_fraction * len(members)))
        if test_fraction > 0 and len(members) >= 2:
            n_test = max(n_test, 1)
        n_test = min(n_test, len(members) - 1)
        is_test[rng.permutation(members)[:n_test]] = True
    return is_test


def fold_recordings(n_recordings: int, folds: int, fold: int, seed: int,
                    labels: np.ndarray | None = None) -> np.ndarray:
    """Seeded stratified k-fold assignment of recordings: ``(n_recordings,)`` bool, True in fold ``fold``.

    Each class's recordings are shuffled (with ``seed``) and dealt to the folds in turn, the
    dealing carried on from one class to the next, so fold sizes differ by at most one and
    every class is spread over the folds as evenly as its size allows. The ``folds`` masks of one
    seed partition the recordings.
    """
    rng = np.random.default_rng(seed)
    strata = np.zeros(n_recordings, dtype=int) if labels is None else np.unique(labels, return_inverse=True)[1]
    fold_of = np.empty(n_recordings, dtype=int)
    dealt = 0
    for stratum in range(strata.max() + 1 if n_recordings else 0):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        fold_of[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold_of == fold


def split_single_recording(starts: np.ndarray, window: int, test_fraction: float,
                           how: str = "chronological", seed: int = 0, folds: int | None = None,
                           fold: int = 0) -> np.ndarray:
    """Split the windows of ONE recording: ``(m,)`` of "train"/"test"/"".

    ``how``: ``chronological`` — the last ``test_fraction`` of windows are test;
    ``interleaved`` — test windows evenly spaced through the recording (the i-th of
    n_test at position ⌊(i + ½)·m / n_test⌋ in time order); ``random`` — test windows
    drawn with ``seed``. With ``folds`` = k the windows in time order are dealt to k folds
    instead — in k contiguous blocks (chronological), every k-th (interleaved) or at random
    (random) — and fold ``fold`` is the test split. Training windows overlapping a test window
    are dropped ("") so no time point is in both splits.
    """
    m = len(starts)
    order = np.argsort(starts, kind="stable")
    split = np.full(m, "train", dtype="<U5")
    if how not in SINGLE_RECORDING_SPLITS:
        raise ConfigError(f"tile.split: expected one of {', '.join(SINGLE_RECORDING_SPLITS)}, got {how!r}")
    if folds is not None:  # fold of each window by its rank in time
        rank = np.arange(m)
        fold_of = (rank * folds // max(m, 1) if how == "chronological" else rank % folds if how == "interleaved"
                   else np.random.default_rng(seed).permutation(m) % folds)
        test_rank = np.flatnonzero(fold_of == fold)
    else:
        n_test = max(1, int(round(test_fraction * m))) if test_fraction > 0 else 0
        if how == "chronological":
            test_rank = np.arange(m - n_test, m)
        elif how == "interleaved":
            test_rank = ((np.arange(n_test) + 0.5) * m / max(n_test, 1)).astype(int)
        else:
            test_rank = np.sort(np.random.default_rng(seed).permutation(m)[:n_test])
    n_test = len(test_rank)
    split[order[test_rank]] = "test"
    if n_test:
        test_starts = np.sort(starts[split == "test"])
        # a training window [s, s + window) overlaps the test window starting at t when |s − t| < window
        nearest = np.searchsorted(test_starts, starts)
        after = np.abs(test_starts[np.minimum(nearest, n_test - 1)] - starts)
        before = np.abs(starts - test_starts[np.maximum(nearest - 1, 0)])
        split[(split == "train") & (np.minimum(after, before) < window)] = ""
    return split


def channel_stats(images: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over images ``(n, H, W)`` (those of ``rows`` only, a mask
    or indices, e.g. the training split). One channel at a time, so the temporaries are 1/H of the images.

    A constant channel has std 0 (or rounding noise relative to its value); it gets
    std 1 (its normalised values are 0) and is reported in the third return value
    (indices of constant channels). The test is relative, so data in small units
    (tesla, volts) keep their variation.
    """
    selected = slice(None) if rows is None else rows
    mean = np.array([images[selected, c].mean() for c in range(images.shape[1])])
    std = np.array([images[selected, c].std() for c in range(images.shape[1])])
    constant = np.flatnonzero(std <= 1e-12 * np.abs(mean))
    std[constant] = 1.0
    return mean, std, constant


def normalise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Physical ``(n, H, W)`` → z-scored float32 with per-channel ``mean``, ``std`` ``(H,)`` (a channel at a time)."""
    out = np.empty(images.shape, dtype=np.float32)
    for c in range(images.shape[1]):
        out[:, c] = (images[:, c] - mean[c]) / std[c]
    return out


def to_physical(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalise`: z-scored ``(n, H, W)`` → data units (float64)."""
    return np.asarray(images, dtype=np.float64) * std[:, None] + mean[:, None]


# ------------------------------------------------------------------------- files

class StoredImages:
    """The ``/images`` of a ``tiles.h5`` left on disk (the images of a streamed tile stage):
    ``shape``, ``len``, and slices read on access (``images[a:b]``, ``np.asarray(images)`` reads all)."""

    ndim, dtype = 3, np.dtype(np.float32)

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int]):
        self.path, self.shape = Path(path), tuple(int(v) for v in shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        with h5py.File(self.path, "r") as handle:
            return handle["images"][key]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[()], dtype=dtype)


def write_tiles(out: str | os.PathLike, tiles: Tiles, image_blocks=None) -> None:
    """Write ``tiles`` to ``out`` atomically (chunked, gzip, no timestamps: bit-reproducible).

    image_blocks: the images as consecutive float32 blocks ``(m_i, H, W)``, written (and hashed) one
    after another, so they need not be in memory together; ``tiles.images`` then only gives the
    shape (n, H, W) (e.g. a :class:`StoredImages`). The file is the same as from the whole array.
    """
    n, height, width = tiles.images.shape
    with atomic_output(out) as tmp, h5py.File(tmp, "w", track_order=True) as handle:
        opts = {"track_times": False}
        image_options = {"chunks": (1, height, width), "compression": "gzip", "compression_opts": 4,
                         "shuffle": True, **opts}
        images_digest = None
        if image_blocks is None:
            handle.create_dataset("images", data=np.asarray(tiles.images, dtype=np.float32), **image_options)
        else:
            images, images_digest, start = handle.create_dataset("images", (n, height, width), np.float32,
                                                                 **image_options), hashlib.sha256(), 0
            for block in image_blocks:
                block = np.ascontiguousarray(block, dtype=np.float32)
                images[start:start + len(block)] = block
                images_digest.update(block.data)
                start += len(block)
            if start != n:
                raise ValueError(f"write_tiles: image blocks hold {start} images, expected {n}")
        handle.create_dataset("split", data=np.array(tiles.split, dtype="S5"), **opts)
        handle.create_dataset("sample_id", data=tiles.sample_id.astype(np.int64), **opts)
        handle.create_dataset("window_start", data=tiles.window_start.astype(np.int64), **opts)
        if tiles.labels is not None:
            handle.create_dataset("labels", data=np.char.encode(tiles.labels.astype(str), "utf-8"), **opts)
        handle.attrs["channel_mean"] = tiles.channel_mean
        handle.attrs["channel_std"] = tiles.channel_std
        handle.attrs["channel_names"] = json.dumps(list(tiles.channel_names))
        handle.attrs["units"] = tiles.units
        if tiles.sampling_rate:
            handle.attrs["sampling_rate"] = tiles.sampling_rate
        handle.attrs["provenance"] = json.dumps(tiles.provenance or {})
        if tiles.channel_types is not None:
            handle.attrs["channel_types"] = json.dumps(list(tiles.channel_types))
        handle.attrs["content_sha256"] = _content_sha256(tiles, images_digest)


_REQUIRED = ("images", "split", "sample_id", "window_start")


def _content_sha256(tiles: Tiles, images_digest=None) -> str:
    """Checksum of everything in ``tiles`` as it reads back; load_tiles refuses a file changed after writing.

    images_digest: a sha256 already fed with the images' float32 bytes (streamed writing)."""
    digest = images_digest.copy() if images_digest is not None else hashlib.sha256()
    arrays = [(tiles.sample_id, np.int64), (tiles.window_start, np.int64), (tiles.channel_mean, np.float64),
              (tiles.channel_std, np.float64)]
    if images_digest is None:
        arrays.insert(0, (tiles.images, np.float32))
    for array, dtype in arrays:
        digest.update(np.ascontiguousarray(array, dtype=dtype).data)
    text = [list(map(str, tiles.split)), None if tiles.labels is None else list(map(str, tiles.labels)),
            list(tiles.channel_names), tiles.sampling_rate or None, tiles.units, tiles.provenance or {}]
    if tiles.channel_types is not None:  # only then: files written before channel types keep their checksum
        text.append(list(tiles.channel_types))
    digest.update(json.dumps(text, sort_keys=True).encode())
    return digest.hexdigest()


def load_tiles(path: str | os.PathLike) -> Tiles:
    """Read and check ``tiles.h5``; a missing, truncated or foreign file is an InputError."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            missing = [name for name in _REQUIRED if name not in handle]
            missing += [a for a in ("channel_mean", "channel_std", "channel_names") if a not in handle.attrs]
            if missing:
                raise InputError(f"{path}: not a dualdiv tiles file: missing {', '.join(missing)}")
            images = handle["images"][()]
            tiles = Tiles(
                images=images,
                split=handle["split"][()].astype(str),
                sample_id=handle["sample_id"][()],
                window_start=handle["window_start"][()],
                channel_mean=np.asarray(handle.attrs["channel_mean"], dtype=np.float64),
                channel_std=np.asarray(handle.attrs["channel_std"], dtype=np.float64),
                channel_names=json.loads(handle.attrs["channel_names"]),
                labels=np.char.decode(handle["labels"][()], "utf-8") if "labels" in handle else None,
                sampling_rate=float(handle.attrs["sampling_rate"]) if "sampling_rate" in handle.attrs else None,
                units=str(handle.attrs.get("units", "unknown")),
                provenance=json.loads(handle.attrs.get("provenance", "{}")),
                channel_types=json.loads(handle.attrs["channel_types"]) if "channel_types" in handle.attrs else None,
            )
            stored_sha256 = handle.attrs.get("content_sha256")
    except InputError:
        raise
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError, ValueError... for corrupt files
        raise InputError(f"{path}: cannot read tiles file (corrupt or truncated? rerun the tile stage, "
                         f"snakemake --forcerun tile): {str(exc).splitlines()[0]}") from None
    n = len(tiles.images)
    if tiles.images.ndim != 3 or tiles.images.dtype != np.float32:
        raise InputError(f"{path}: /images has shape {tiles.images.shape} {tiles.images.dtype}, "
                         "expected (n, H, W) float32")
    if any(len(a) != n for a in (tiles.split, tiles.sample_id, tiles.window_start)):
        raise InputError(f"{path}: /split, /sample_id, /window_start do not all have {n} rows")
    if tiles.channel_mean.shape != (tiles.images.shape[1],):
        raise InputError(f"{path}: channel_mean has shape {tiles.channel_mean.shape}, "
                         f"expected ({tiles.images.shape[1]},)")
    if not np.isfinite(tiles.images).all():
        raise InputError(f"{path}: /images contains NaN or infinite values")
    if stored_sha256 is not None and stored_sha256 != _content_sha256(tiles):
        raise InputError(f"{path}: contents do not match the checksum stored when the file was written "
                         "(corrupt or edited): rerun the tile stage (snakemake --forcerun tile)")
    return tiles
