"""Reader of NetCDF/HDF5 files (format ``netcdf``, extensions ``.nc``, ``.nc4``, ``.h5``, ``.hdf5``).

A file written by xarray: a variable with dims ``(sample, channel, time)``
(``signal``, or the only 3-D variable), optional ``label`` variable,
``sampling_rate``/``units`` attributes; so a ``raw.nc`` can be ingested again. A
plain HDF5 file with a single 3-D (or 2-D) dataset is read too. Declared sizes are
checked against the free memory before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import (
    LazyArray,
    RawSeries,
    _check_fits_in_memory,
    _numeric_array,
    _sampling_rate,
)


def read(path: Path) -> RawSeries:
    """Read a NetCDF/HDF5 file written by xarray (or a plain HDF5 file with one 3-D dataset)."""
    try:
        with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort") as ds:
            _check_fits_in_memory(path, ds.nbytes)
            ds.load()
    except InputError:
        raise
    except Exception as exc:  # h5py/h5netcdf raise many types for corrupt files
        return _read_plain_hdf5(path, exc)
    candidates = [v for v in ds.data_vars if ds[v].ndim == 3]
    name = "signal" if "signal" in ds.data_vars else (candidates[0] if len(candidates) == 1 else None)
    if name is None:
        raise InputError(f"{path}: expected one 3-D variable (sample, channel, time), found "
                         f"{', '.join(f'{v}{ds[v].dims}' for v in ds.data_vars) or 'none'}")
    data = ds[name]
    if set(data.dims) == {"sample", "channel", "time"}:
        data = data.transpose("sample", "channel", "time")
    array = _numeric_array(data.values, path, f"variable {name!r}")
    labels = None
    if "label" in ds.variables:
        labels = [str(v) for v in ds["label"].values.ravel()]
    names = [str(v) for v in ds["channel"].values] if "channel" in ds.coords else None
    rate = ds.attrs.get("sampling_rate", data.attrs.get("sampling_rate"))
    units = ds.attrs.get("units", data.attrs.get("units"))
    return RawSeries(path, array, labels, names,
                     _sampling_rate(rate, path) if rate is not None else None, units or None)


read_netcdf = read  # its name before the readers had a module each


def open_lazy(path: Path, budget_bytes: int | None = None) -> RawSeries | None:
    """The file as :func:`read` returns it, with its data variable left on disk as a
    :class:`~dualdiv.data.readers.common.LazyArray` read by slices of samples (labels, names and
    attributes are read now). None when the file is not one xarray reads (a plain HDF5 file is then
    opened by h5py, by slices as well)."""
    try:
        ds = xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", cache=False)
    except Exception:  # h5py/h5netcdf raise many types for corrupt or plain files
        return _open_plain_hdf5(path)
    with ds:
        candidates = [v for v in ds.data_vars if ds[v].ndim == 3]
        name = "signal" if "signal" in ds.data_vars else (candidates[0] if len(candidates) == 1 else None)
        if name is None:
            return None  # read() names the problem
        data = ds[name]
        if data.dtype.kind not in "biuf" or data.ndim != 3:
            return None  # read() names the problem
        order = ("sample", "channel", "time") if set(data.dims) == {"sample", "channel", "time"} else data.dims
        shape = tuple(data.sizes[d] for d in order)
        labels = [str(v) for v in ds["label"].values.ravel()] if "label" in ds.variables else None
        names = [str(v) for v in ds["channel"].values] if "channel" in ds.coords else None
        rate = ds.attrs.get("sampling_rate", data.attrs.get("sampling_rate"))
        units = ds.attrs.get("units", data.attrs.get("units"))
        sample_dim = order[0]

    def read_block(start: int, stop: int, t0: int, t1: int) -> np.ndarray:
        with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", cache=False) as handle:
            return handle[name].isel({sample_dim: slice(start, stop), order[2]: slice(t0, t1)}).transpose(*order).values

    return RawSeries(path, LazyArray(path, shape, read_block), labels, names,
                     _sampling_rate(rate, path) if rate is not None else None, units or None)


def _open_plain_hdf5(path: Path) -> RawSeries | None:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            arrays = [key for key, obj in handle.items() if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3)]
            if len(arrays) != 1 or handle[arrays[0]].dtype.kind not in "biuf":
                return None  # read() names the problem
            key, shape = arrays[0], handle[arrays[0]].shape
    except Exception:
        return None  # read() names the problem
    shape = shape if len(shape) == 3 else (shape[0], 1, shape[1])

    def read_block(start: int, stop: int, t0: int, t1: int) -> np.ndarray:
        with h5py.File(path, "r") as handle:
            block = handle[key][start:stop, ..., t0:t1]
        return block if block.ndim == 3 else block[:, None, :]

    return RawSeries(path, LazyArray(path, shape, read_block))


def _read_plain_hdf5(path: Path, xarray_error: Exception) -> RawSeries:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            arrays = [obj for obj in handle.values() if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3)]
            if len(arrays) != 1:
                raise InputError(f"{path}: expected one 3-D dataset (sample, channel, time), found "
                                 f"{len(arrays)} candidate datasets")
            _check_fits_in_memory(path, arrays[0].nbytes)
            array = arrays[0][()]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable NetCDF/HDF5 file (corrupt or truncated?): "
                         f"{str(xarray_error).splitlines()[0] if str(xarray_error) else exc}") from None
    return RawSeries(path, _numeric_array(array, path, "the dataset"))
