"""Stage 1, ingest, on files: raw files → ``raw.nc`` (xarray Dataset, dims sample × channel × time).

Each file is read by the reader of its format (:func:`dualdiv.data.readers.read_file`; EEG/MEG
files through MNE with the epoching, picks, filter and resampling settings),
the results are checked and concatenated by :func:`dualdiv.data.ingest.assemble`, and
the Dataset is written atomically with the checksums of its inputs and its provenance.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict

import xarray as xr

from dualdiv.core.errors import ConfigError
from dualdiv.core.io import atomic_output, provenance, sha256_file
from dualdiv.data.ingest import IngestSettings, assemble
from dualdiv.data.packages import resolve_path
from dualdiv.data.readers import read_file


def ingest(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
           settings: IngestSettings = IngestSettings()) -> xr.Dataset:
    """Entry function of the stage: read ``paths``, check them, write ``out`` (raw.nc) atomically.

    Returns the Dataset written. Used by the ``ingest`` rule and ``dualdiv ingest``.
    """
    if not paths:
        raise ConfigError("ingest: no input files given")
    paths = [resolve_path(p) for p in paths]  # package:<package>/<file> → the installed file
    raws = [read_file(path, settings.format, settings.reader_options()) for path in paths]
    dataset = assemble(raws, settings)
    checksums = {str(p): sha256_file(p) for p in paths}
    dataset.attrs["source"] = json.dumps([str(p) for p in paths])
    dataset.attrs["sha256"] = json.dumps(checksums)
    dataset.attrs["provenance"] = json.dumps(provenance("ingest", _jsonable(settings), checksums))
    with atomic_output(out) as tmp:
        dataset.to_netcdf(tmp, engine="h5netcdf")
    return dataset


def _jsonable(settings: IngestSettings) -> dict:
    values = asdict(settings)
    for name in ("channel_names", "picks"):
        if isinstance(values[name], tuple):
            values[name] = list(values[name])
    return values
