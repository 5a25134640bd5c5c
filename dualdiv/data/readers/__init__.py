"""Readers of raw files, one module per format behind one interface (like xarray's ``backends``).

Every reader is a function ``read(path: Path) -> RawSeries`` (:class:`~dualdiv.data.readers.common.RawSeries`)
in its own module, listed in :data:`READERS` and imported only when its format is read,
so reading a ``.ts`` file imports neither xarray nor h5py. Formats (chosen by ``format``
or the file extension, :data:`EXTENSIONS`):

- ``ts`` (:mod:`~dualdiv.data.readers.ts`): UEA/sktime ``.ts`` files.
- ``csv`` (:mod:`~dualdiv.data.readers.csv_table`): a wide CSV table, one row per time point.
- ``npy``, ``npz`` (:mod:`~dualdiv.data.readers.arrays`): NumPy arrays.
- ``netcdf`` (:mod:`~dualdiv.data.readers.netcdf`): NetCDF/HDF5 written by xarray, or plain HDF5.
- EEG/MEG files through MNE-Python (:mod:`~dualdiv.data.readers.mne_files`, the optional extra
  ``dualdiv[eeg]``): ``edf`` (``.edf``), ``bdf`` (``.bdf``), ``fif`` (``.fif``, continuous),
  ``fif_epochs`` (``-epo.fif``/``_epo.fif``), ``brainvision`` (``.vhdr``), ``eeglab`` (``.set``).
  Only these readers take options (:data:`MNE_OPTIONS`: epoching, channel picks, filter,
  resampling, units), passed by :func:`read_file`.

Benchmark data sets, named explicitly (no extension of their own):

- ``finger_movements`` (:mod:`~dualdiv.data.readers.finger_movements`): the electrodes
  of the UEA FingerMovements ``.ts`` files.
- ``tmy3`` (:mod:`~dualdiv.data.readers.tmy3`): a TMY3 weather CSV → daily images.
- ``prices`` (:mod:`~dualdiv.data.readers.prices`): a daily price table → log-changes.
- ``spikes_sim`` (:mod:`~dualdiv.data.readers.spikes`): JSON simulator settings → spike counts.

:func:`open_lazy` opens the formats of :data:`LAZY_READERS` (``.npy``, NetCDF/HDF5, wide CSV) without reading
their data: the samples stay on disk as a :class:`~dualdiv.data.readers.common.LazyArray` read by
blocks (the streaming ingest of files larger than its memory budget).

Every problem raises :class:`~dualdiv.core.errors.InputError` naming the file and
what was expected.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dualdiv.core.errors import ConfigError, InputError
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
    "edf": "mne_files:read_edf",
    "bdf": "mne_files:read_bdf",
    "fif": "mne_files:read_fif",
    "fif_epochs": "mne_files:read_fif_epochs",
    "brainvision": "mne_files:read_brainvision",
    "eeglab": "mne_files:read_eeglab",
}
FORMATS = tuple(READERS)
# formats whose data can stay on disk and be read by blocks of samples (streaming ingest): "module:function"
LAZY_READERS: dict[str, str] = {"npy": "arrays:open_lazy", "netcdf": "netcdf:open_lazy",
                                "csv": "csv_table:open_lazy"}
MNE_FORMATS = ("edf", "bdf", "fif", "fif_epochs", "brainvision", "eeglab")
# settings only the MNE readers take (besides ``units``, which every reader's output may be given)
MNE_OPTIONS = ("epochs", "picks", "resample", "l_freq", "h_freq")
EXTENSIONS = {".ts": "ts", ".csv": "csv", ".npy": "npy", ".npz": "npz",
              ".nc": "netcdf", ".h5": "netcdf", ".hdf5": "netcdf", ".nc4": "netcdf",
              ".edf": "edf", ".bdf": "bdf", ".fif": "fif", ".vhdr": "brainvision", ".set": "eeglab"}
# endings longer than one suffix, checked first (MNE's names: epochs files end in -epo.fif)
COMPOUND_EXTENSIONS = {"-epo.fif": "fif_epochs", "_epo.fif": "fif_epochs", "-epo.fif.gz": "fif_epochs",
                       "_epo.fif.gz": "fif_epochs", ".fif.gz": "fif"}

__all__ = ["EXTENSIONS", "FORMATS", "LAZY_READERS", "MNE_FORMATS", "MNE_OPTIONS", "READERS", "RawSeries",
           "detect_format", "open_lazy", "read_file", "reader"]


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The reader to use for ``path``: ``fmt`` if given, else from the extension."""
    if fmt is not None:
        return fmt
    name = path.name.lower()
    for ending, found in COMPOUND_EXTENSIONS.items():
        if name.endswith(ending):
            return found
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


def read_file(path: str | os.PathLike, fmt: str | None = None, options: Mapping[str, Any] | None = None
              ) -> RawSeries:
    """Read one raw file with the reader for its format; missing files are an InputError.

    options: settings of the MNE readers (:data:`MNE_OPTIONS` and ``units``, the fields of
        :class:`~dualdiv.data.ingest.IngestSettings` of those names); for any other format
        one of :data:`MNE_OPTIONS` set (not None) is a ConfigError.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    read = reader(fmt)
    options = dict(options or {})
    if fmt not in MNE_FORMATS:
        given = [key for key in MNE_OPTIONS if options.get(key) is not None]
        if given:
            raise ConfigError(f"ingest.{given[0]}: applies to EEG/MEG files read through MNE "
                              f"({', '.join(MNE_FORMATS)}), but {path} is read as {fmt}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    if fmt in MNE_FORMATS:
        return read(path, **{key: options.get(key) for key in (*MNE_OPTIONS, "units")})
    return read(path)


def open_lazy(path: str | os.PathLike, fmt: str | None = None, budget_bytes: int | None = None) -> RawSeries | None:
    """``path`` as a :class:`RawSeries` whose ``series`` is a :class:`~dualdiv.data.readers.common.LazyArray`
    left on disk (formats of :data:`LAZY_READERS`), or None where the format (or this file's layout) is read
    whole by :func:`read_file` only. Missing and empty files are an InputError, as there. budget_bytes: the
    ingest's memory budget; a format whose whole read costs more than its size (CSV text) opens lazily only
    above it (None: always)."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if fmt not in LAZY_READERS:
        return None
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    module, name = LAZY_READERS[fmt].split(":")
    return getattr(importlib.import_module(f"dualdiv.data.readers.{module}"), name)(path, budget_bytes)
