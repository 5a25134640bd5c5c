"""What every reader returns (:class:`RawSeries`) and the checks several readers share.

Imports only :mod:`dualdiv.core` and NumPy (pandas inside the table helpers), so a
reader module that uses it stays as light as its own format needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.core.io import available_memory


@dataclass
class RawSeries:
    """What one reader returns: possibly ragged series of one file.

    series: one ``(channels, time)`` float64 array per sample (lengths may differ
        until the length policy is applied; channels are lists when ragged), or one
        ``(n, channels, time)`` array when the reader has the data whole (ingest then
        copies nothing).
        A :class:`LazyArray` from :func:`dualdiv.data.readers.open_lazy` (an ``.npy`` or
        NetCDF/HDF5 file left on disk, read by blocks when it is larger than the memory budget).
    channel_types: one type per channel in MNE's words (``eeg``, ``eog``, ``mag``, ``grad``, ...),
        where the file says (the MNE readers); None otherwise.
    meta: what the reader did beyond parsing (the MNE readers: filter, resampling, epochs
        found and dropped), stored with ``raw.nc``.
    """

    path: Path
    series: list[list[np.ndarray]] | np.ndarray | LazyArray
    labels: list[str] | None = None
    channel_names: list[str] | None = None
    sampling_rate: float | None = None
    units: str | None = None
    meta: dict = field(default_factory=dict)
    channel_types: list[str] | None = None


def _raw_series(path: Path, series: np.ndarray, **metadata) -> RawSeries:
    """Wrap ``series`` ``(n, channels, time)`` as a :class:`RawSeries` of one list of channels per sample."""
    return RawSeries(path, [list(sample) for sample in series], **metadata)


# ------------------------------------------------------------------ arrays (npy/npz, NetCDF/HDF5)

def _numeric_array(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: {what} has dtype {array.dtype}; expected real numbers")
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3:
        raise InputError(f"{path}: {what} has shape {array.shape}; expected (n, channels, time) "
                         "or (n, time)")
    return array.astype(np.float64, copy=False)


def _sampling_rate(value, path: Path) -> float:
    """A sampling rate stored in a file: one positive finite number, else an InputError."""
    try:
        rate = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise InputError(f"{path}: sampling_rate must be one number, got {str(value)[:40]!r}") from None
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"{path}: sampling_rate must be a positive number of Hz, got {rate}")
    return rate


def _check_fits_in_memory(path: Path, n_bytes: int) -> None:
    """Refuse a file whose declared contents exceed the free memory before anything is allocated."""
    available = available_memory()
    if n_bytes > available:
        raise InputError(f"{path}: declares {n_bytes / 2**30:.1f} GiB of data, more than the "
                         f"{available / 2**30:.1f} GiB of memory available (corrupt header or wrong file?)")


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# ------------------------------------------------------------------ tables of the benchmark CSVs

def _read_table(path: Path, required: tuple[str, ...], skip_rows: int = 0):
    """A CSV table with the ``required`` columns as text (pandas DataFrame); header on line ``skip_rows + 1``."""
    import pandas as pd

    try:
        table = pd.read_csv(path, skiprows=skip_rows, dtype=str, keep_default_na=False, encoding="utf-8",
                            skipinitialspace=True)  # text as written: a bad cell is quoted in the error
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text: is this the right file?") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))} on line {skip_rows + 1}; "
                         f"found {', '.join(map(str, table.columns[:8]))}")
    if table.empty:
        raise InputError(f"{path}: no data rows")
    return table


def _numbers(table, columns: tuple[str, ...], path: Path, first_line: int) -> np.ndarray:
    """``columns`` of a text table as float64 ``(rows, len(columns))``; line numbers start at ``first_line``."""
    import pandas as pd

    values = np.empty((len(table), len(columns)))
    for c, name in enumerate(columns):
        numeric = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if len(bad):
            raise InputError(f"{path}:{bad[0] + first_line}: column {name!r}: {table[name].iloc[bad[0]]!r} "
                             "is not a finite number")
        values[:, c] = numeric
    return values


# ------------------------------------------------------------------ arrays read by blocks of samples

class LazyArray:
    """A ``(n, channels, time)`` array left on disk and read by blocks (streaming ingest).

    ``read(start, stop, t0, t1)`` returns samples ``[start, stop)``, time points ``[t0, t1)`` as float64
    ``(stop − start, channels, t1 − t0)``; nothing else is held in memory. ``channels`` reorders/picks
    channels, ``length`` crops or pads (by repeating each series' last value) the time axis, as
    :func:`dualdiv.data.ingest.equalise_lengths` does to an array in memory. ``read_block(start, stop,
    t0, t1)`` is the reader's: the stored samples and time points as ``(m, stored channels, t)``.
    ``nbytes`` is the size of the whole array as float64.
    """

    ndim = 3

    def __init__(self, path: Path, shape: tuple[int, int, int], read_block, channels=None, length: int | None = None):
        self.path, self._read_block, self._stored_shape = Path(path), read_block, tuple(int(v) for v in shape)
        self._channels = None if channels is None else list(channels)
        self._length = length
        n_channels = self._stored_shape[1] if channels is None else len(self._channels)
        self.shape = (self._stored_shape[0], n_channels, self._stored_shape[2] if length is None else int(length))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return 8 * math.prod(self.shape)

    def with_layout(self, channels=None, length: int | None = None) -> LazyArray:
        """The same file with channels in the order ``channels`` (indices) and/or time cropped or padded to
        ``length``."""
        if channels is not None and self._channels is not None:
            channels = [self._channels[c] for c in channels]
        return LazyArray(self.path, self._stored_shape, self._read_block,
                         self._channels if channels is None else channels, self._length if length is None else length)

    def read(self, start: int, stop: int, t0: int = 0, t1: int | None = None) -> np.ndarray:
        t1 = self.shape[2] if t1 is None else t1
        stored = self._stored_shape[2]
        lo, hi = min(t0, stored), min(t1, stored)
        pieces = [np.asarray(self._read_block(int(start), int(stop), lo, hi), dtype=np.float64)] if hi > lo else []
        if t1 > max(t0, stored):  # padded: the last stored value repeated
            last = np.asarray(self._read_block(int(start), int(stop), stored - 1, stored), dtype=np.float64)
            pieces.append(np.repeat(last, t1 - max(t0, stored), axis=2))
        block = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=2)
        if self._channels is not None:
            block = block[:, self._channels]
        return np.ascontiguousarray(block)


def read_samples(array, start: int, stop: int, t0: int = 0, t1: int | None = None) -> np.ndarray:
    """Samples ``[start, stop)``, time points ``[t0, t1)`` of an in-memory array or a :class:`LazyArray`,
    as float64."""
    if isinstance(array, LazyArray):
        return array.read(start, stop, t0, t1)
    return np.asarray(array[start:stop, :, t0:t1], dtype=np.float64)


def sample_blocks(shape: tuple[int, int, int], budget_bytes: int) -> list[tuple[int, int, int, int]]:
    """Blocks ``(start, stop, t0, t1)`` covering a float64 array of ``shape`` (n, channels, time), each of at
    most ``budget_bytes``: whole series when one fits (≥ 1 series a block), else time ranges of one series."""
    n, n_channels, n_time = (int(v) for v in shape)
    per_sample = 8 * n_channels * n_time
    if per_sample <= budget_bytes:
        size = max(1, int(budget_bytes // max(1, per_sample)))
        return [(a, min(n, a + size), 0, n_time) for a in range(0, n, size)]
    span = max(1, int(budget_bytes // (8 * max(1, n_channels))))
    return [(i, i + 1, t, min(n_time, t + span)) for i in range(n) for t in range(0, n_time, span)]
