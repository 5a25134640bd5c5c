"""Stage 1, ingest, on files: raw files → ``raw.nc`` (xarray Dataset, dims sample × channel × time).

Each file is read by the reader of its format (:func:`dualdiv.data.readers.read_file`; EEG/MEG
files through MNE with the epoching, picks, filter and resampling settings),
the results are checked and concatenated by :func:`dualdiv.data.ingest.assemble`, and
the Dataset is written atomically with the checksums of its inputs and its provenance.
``.npy``, NetCDF/HDF5 and wide CSV inputs that would take more than ``ingest.memory_mb`` in memory are
streamed instead (read, checked and written by blocks of samples; the same ``raw.nc`` content).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import atomic_output, available_memory, provenance, sha256_file
from dualdiv.data.ingest import IN_MEMORY_FACTOR, IngestSettings, assemble, assemble_streamed
from dualdiv.data.packages import resolve_path
from dualdiv.data.readers import RawSeries, open_lazy, read_file
from dualdiv.data.readers.common import sample_blocks


def ingest(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
           settings: IngestSettings = IngestSettings()) -> xr.Dataset:
    """Entry function of the stage: read ``paths``, check them, write ``out`` (raw.nc) atomically.

    Returns the Dataset written. Used by the ``ingest`` rule and ``dualdiv ingest``.
    """
    if not paths:
        raise ConfigError("ingest: no input files given")
    paths = [resolve_path(p) for p in paths]  # package:<package>/<file> → the installed file
    budget = settings.memory_mb * 2**20
    lazy = [open_lazy(path, settings.format, budget) for path in paths]
    # what reading them whole would take: 1.5 × the float64 data, or what the reader says (CSV: 2 × the text)
    if all(raw is not None for raw in lazy) and \
            sum(raw.meta.get("in_memory_bytes", IN_MEMORY_FACTOR * raw.series.nbytes) for raw in lazy) > budget:
        return _ingest_streamed(lazy, paths, out, settings)
    raws = [read_file(path, settings.format, settings.reader_options()) for path in paths]
    dataset = assemble(raws, settings)
    _add_sources(dataset, paths, settings)
    with atomic_output(out) as tmp:
        dataset.to_netcdf(tmp, engine="h5netcdf")
    return dataset


def _add_sources(dataset: xr.Dataset, paths: Sequence, settings: IngestSettings) -> None:
    checksums = {str(p): sha256_file(p) for p in paths}
    dataset.attrs["source"] = json.dumps([str(p) for p in paths])
    dataset.attrs["sha256"] = json.dumps(checksums)
    dataset.attrs["provenance"] = json.dumps(provenance("ingest", _jsonable(settings), checksums))


def _ingest_streamed(raws: Sequence[RawSeries], paths: Sequence, out: str | os.PathLike,
                     settings: IngestSettings) -> xr.Dataset:
    """Files larger than ``settings.memory_mb`` in memory: checked and copied into ``raw.nc`` by blocks.

    Everything but the signal is written by xarray as in memory; the signal variable is then added
    with h5netcdf as xarray writes it (float64, ``_FillValue`` NaN, ``units``), block by block, so
    the file reads back identical (``xarray.Dataset.identical``). Returns the written file, opened lazily.
    """
    import h5netcdf

    _check_fits_on_disk(raws, out)
    dataset, signal = assemble_streamed(raws, settings)
    _add_sources(dataset, paths, settings)
    budget = settings.memory_mb * 2**20 // 2
    with atomic_output(out) as tmp:
        dataset.to_netcdf(tmp, engine="h5netcdf")
        with h5netcdf.File(tmp, "a") as handle:
            variable = handle.create_variable("signal", ("sample", "channel", "time"), dtype="f8",
                                              fillvalue=np.nan)
            variable.attrs["units"] = dataset.attrs["units"]
            for start, stop, t0, t1 in sample_blocks(signal.shape, budget):
                variable[start:stop, :, t0:t1] = signal.read(start, stop, t0, t1)
    return xr.open_dataset(out, engine="h5netcdf")


def _check_fits_on_disk(raws: Sequence[RawSeries], out: str | os.PathLike) -> None:
    """Refuse files declaring more data than memory and the free disk beside ``out`` hold, before reading them
    (a corrupt header, or a chunked HDF5 dataset declared huge and never written)."""
    declared = sum(raw.series.nbytes for raw in raws)
    folder = Path(out).resolve().parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if declared > free:
        raise InputError(f"{', '.join(str(raw.path) for raw in raws)}: declares {declared / 2**30:.1f} GiB of data, "
                         f"more than the {available_memory() / 2**30:.1f} GiB of memory available to read it whole "
                         f"and the {free / 2**30:.1f} GiB free in {folder} to stream it into {Path(out).name} "
                         "(corrupt header or wrong file?)")


def _jsonable(settings: IngestSettings) -> dict:
    """The settings for the provenance, without ``memory_mb`` (how the file was written, not what it holds)."""
    values = asdict(settings)
    values.pop("memory_mb")
    for name in ("channel_names", "picks"):
        if isinstance(values[name], tuple):
            values[name] = list(values[name])
    return values
