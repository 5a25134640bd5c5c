"""Readers of raw files, one module per format behind one interface (like xarray's ``backends``).

Every reader is a function ``read(path: Path) -> RawSeries`` (:class:`~dualdiv.data.readers.common.RawSeries`)
in its own module, listed in :data:`READERS` and imported only when its format is read,
so reading a ``.ts`` file imports neither xarray nor h5py. Formats (chosen by ``format``
or the file extension, :data:`EXTENSIONS`):

- ``ts`` (:mod:`~dualdiv.data.readers.ts`): UEA/sktime ``.ts`` files.
- ``csv`` (:mod:`~dualdiv.data.readers.csv_table`): a wide CSV table, one row per time point.
- ``npy``, ``npz`` (:mod:`~dualdiv.data.readers.arrays`): NumPy arrays.
- ``netcdf`` (:mod:`~dualdiv.data.readers.netcdf`): NetCDF/HDF5 written by xarray, or plain HDF5.

Benchmark data sets, named explicitly (no extension of their own):

- ``finger_movements`` (:mod:`~dualdiv.data.readers.finger_movements`): the electrodes
  of the UEA FingerMovements ``.ts`` files.
- ``tmy3`` (:mod:`~dualdiv.data.readers.tmy3`): a TMY3 weather CSV → daily images.
- ``prices`` (:mod:`~dualdiv.data.readers.prices`): a daily price table → log-changes.
- ``spikes_sim`` (:mod:`~dualdiv.data.readers.spikes`): JSON simulator settings → spike counts.

Every problem raises :class:`~dualdiv.core.errors.InputError` naming the file and
what was expected.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries

# format → "module:function" in this package; a string, so that the registry imports no reader.
READERS: dict[str, str] = {
    "ts": "ts:read",
    "csv": "csv_table:read",
    "npy": "arrays:read",
    "npz": "arrays:read",
    "netcdf": "netcdf:read",
    "finger_movements": "finger_movements:read",
    "tmy3": "tmy3:read",
    "prices": "prices:read",
    "spikes_sim": "spikes:read",
}
FORMATS = tuple(READERS)
EXTENSIONS = {".ts": "ts", ".csv": "csv", ".npy": "npy", ".npz": "npz",
              ".nc": "netcdf", ".h5": "netcdf", ".hdf5": "netcdf", ".nc4": "netcdf"}

__all__ = ["EXTENSIONS", "FORMATS", "READERS", "RawSeries", "detect_format", "read_file", "reader"]


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The reader to use for ``path``: ``fmt`` if given, else from the extension."""
    if fmt is not None:
        return fmt
    try:
        return EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise InputError(
            f"{path}: unknown file extension {path.suffix!r}; expected one of "
            f"{', '.join(sorted(EXTENSIONS))} (or set the format explicitly)") from None


def reader(fmt: str) -> Callable[[Path], RawSeries]:
    """The reader function of format ``fmt`` (one of :data:`FORMATS`), importing its module now."""
    module, name = READERS[fmt].split(":")
    return getattr(importlib.import_module(f"dualdiv.data.readers.{module}"), name)


def read_file(path: str | os.PathLike, fmt: str | None = None) -> RawSeries:
    """Read one raw file with the reader for its format; missing files are an InputError."""
    path = Path(path)
    read = reader(detect_format(path, fmt))
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return read(path)
