"""Reader of NetCDF/HDF5 files (format ``netcdf``, extensions ``.nc``, ``.nc4``, ``.h5``, ``.hdf5``).

A file written by xarray: a variable with dims ``(sample, channel, time)``
(``signal``, or the only 3-D variable), optional ``label`` variable,
``sampling_rate``/``units`` attributes; so a ``raw.nc`` can be ingested again. A
plain HDF5 file with a single 3-D (or 2-D) dataset is read too. Declared sizes are
checked against the free memory before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries, _check_fits_in_memory, _numeric_array, _sampling_rate


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
