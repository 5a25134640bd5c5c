"""Stage 1, ingest: raw files → ``raw.nc`` (xarray Dataset, dims sample × channel × time).

Readers (chosen by ``format`` or the file extension):

- UEA/sktime ``.ts``: header lines start with ``@``, data after ``@data``; one
  sample per line, channels separated by ``:``, values by ``,``, the class label
  last when ``@classLabel true``. ``?`` marks a missing value (rejected as NaN).
- CSV (``.csv``), *wide*: one row per time point, a ``sample`` column naming the
  series the row belongs to, one numeric column per channel; optional ``time``
  (rows of a sample are sorted by it) and ``label`` (constant within a sample).
- NumPy ``.npy``: an array ``(n, channels, time)``, or ``(n, time)`` for one
  channel. ``.npz``: the array under ``data`` (or ``x``/``X``, or the only
  array), optional ``labels``/``y``, ``channel_names``, ``sampling_rate``.
- NetCDF/HDF5 (``.nc``, ``.h5``, ``.hdf5``) written by xarray: a variable with
  dims ``(sample, channel, time)`` (``signal``, or the only 3-D variable),
  optional ``label`` variable, ``sampling_rate``/``units`` attributes; a plain
  HDF5 file with a single 3-D dataset is read too.

Several files are concatenated along samples (the file each sample came from is
kept in the ``source_file`` coordinate). Every problem raises
:class:`~dualdiv.core.errors.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import atomic_output, available_memory, provenance, sha256_file
from dualdiv.data import datasets

FORMATS = ("ts", "csv", "npy", "npz", "netcdf", *datasets.READERS)
_EXTENSIONS = {".ts": "ts", ".csv": "csv", ".npy": "npy", ".npz": "npz",
               ".nc": "netcdf", ".h5": "netcdf", ".hdf5": "netcdf", ".nc4": "netcdf"}
LENGTH_POLICIES = ("error", "crop", "pad")
FLOAT32_MAX = float(np.finfo(np.float32).max)  # tiles and samples store float32


@dataclass(frozen=True)
class IngestSettings:
    """How raw files become one ``(sample, channel, time)`` array.

    format: one of :data:`FORMATS`, or None to infer from each file's extension.
    min_samples: fewer samples than this is an error (the estimators need data).
    length_policy: series of unequal length → ``error``; ``crop`` to the
        shortest; ``pad`` to the longest by repeating each series' last value.
    sampling_rate: Hz, overrides what the file says (None: from the file, if any).
    units: physical units of the values (None: from the file, if any).
    channel_names: overrides the file's channel names (must match the count).
    """

    format: str | None = None
    min_samples: int = 16
    length_policy: str = "error"
    sampling_rate: float | None = None
    units: str | None = None
    channel_names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"ingest.format: {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.length_policy not in LENGTH_POLICIES:
            raise ConfigError(f"ingest.length_policy: {self.length_policy!r} is not one of "
                              f"{', '.join(LENGTH_POLICIES)}")
        if int(self.min_samples) < 1:
            raise ConfigError(f"ingest.min_samples: must be ≥ 1, got {self.min_samples}")
        if self.sampling_rate is not None and not self.sampling_rate > 0:
            raise ConfigError(f"ingest.sampling_rate: must be > 0 Hz, got {self.sampling_rate}")


@dataclass
class RawSeries:
    """What one reader returns: possibly ragged series of one file.

    series: one ``(channels, time)`` float64 array per sample (lengths may differ
        until the length policy is applied; channels are lists when ragged), or one
        ``(n, channels, time)`` array when the reader has the data whole (ingest then
        copies nothing).
    """

    path: Path
    series: list[list[np.ndarray]] | np.ndarray
    labels: list[str] | None = None
    channel_names: list[str] | None = None
    sampling_rate: float | None = None
    units: str | None = None
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- readers

def detect_format(path: Path, fmt: str | None = None) -> str:
    """The reader to use for ``path``: ``fmt`` if given, else from the extension."""
    if fmt is not None:
        return fmt
    try:
        return _EXTENSIONS[path.suffix.lower()]
    except KeyError:
        raise InputError(
            f"{path}: unknown file extension {path.suffix!r}; expected one of "
            f"{', '.join(sorted(_EXTENSIONS))} (or set the format explicitly)") from None


def _read_text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}): is this the right file?") from None


def _parse_values(text: str, path: Path, lineno: int, channel: int) -> np.ndarray:
    try:
        return np.array([float("nan") if v.strip() == "?" else float(v) for v in text.split(",")])
    except ValueError:
        bad = next(v for v in text.split(",") if not _is_float(v))
        raise InputError(f"{path}:{lineno}: channel {channel + 1}: {bad.strip()[:40]!r} is not a number") from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip() == "?"
    return True


_TS_FLAGS = ("timestamps", "univariate", "equallength", "classlabel", "targetlabel", "missing")


def read_ts(path: Path) -> RawSeries:
    """Parse a UEA/sktime ``.ts`` file (equal or unequal length, no timestamps)."""
    header: dict[str, list[str]] = {}
    series, labels = [], []
    in_data = False
    n_channels = None
    for lineno, raw in enumerate(_read_text_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise InputError(f"{path}:{lineno}: expected a header line starting with '@' "
                                 f"before @data, got {line[:40]!r}")
            if not line[1:].strip():
                raise InputError(f"{path}:{lineno}: a header line '@' without a name")
            name, *values = line[1:].split()
            key = name.lower()
            if key == "data":
                in_data = True
                _check_ts_header(header, path, lineno)
                continue
            if key in _TS_FLAGS and (not values or values[0].lower() not in ("true", "false")):
                raise InputError(f"{path}:{lineno}: @{name} must be followed by true or false")
            if key in ("serieslength", "dimension") and (len(values) != 1 or not values[0].isdigit()):
                raise InputError(f"{path}:{lineno}: @{name} must be a positive integer")
            header[key] = values
            continue
        has_label = _ts_flag(header, "classlabel") or _ts_flag(header, "targetlabel")
        fields = line.split(":")
        if has_label:
            if len(fields) < 2:
                raise InputError(f"{path}:{lineno}: expected channels and a label separated by ':'")
            label = fields.pop().strip()
            allowed = header["classlabel"][1:] if _ts_flag(header, "classlabel") else []
            if allowed and label not in allowed:
                raise InputError(f"{path}:{lineno}: label {label!r} is not one of the declared "
                                 f"@classLabel values {' '.join(allowed)}")
            labels.append(label)
        if n_channels is None:
            n_channels = len(fields)
            declared = header.get("dimension")
            if declared and int(declared[0]) != n_channels:
                raise InputError(f"{path}:{lineno}: {n_channels} channels but @dimension says {declared[0]}")
        elif len(fields) != n_channels:
            raise InputError(f"{path}:{lineno}: {len(fields)} channels, but earlier lines have {n_channels}")
        series.append([_parse_values(text, path, lineno, c) for c, text in enumerate(fields)])
    if not in_data:
        raise InputError(f"{path}: no @data line: not a .ts file, or truncated")
    if not series:
        raise InputError(f"{path}: no data lines after @data")
    return RawSeries(path, series, labels or None,
                     meta={"problem_name": " ".join(header.get("problemname", []))})


def _ts_flag(header: dict, key: str) -> bool:
    return bool(header.get(key)) and header[key][0].lower() == "true"


def _check_ts_header(header: dict, path: Path, lineno: int) -> None:
    if _ts_flag(header, "timestamps"):
        raise InputError(f"{path}:{lineno}: @timestamps true is not supported; "
                         "export the series without timestamps")


def read_csv(path: Path) -> RawSeries:
    """Read a wide CSV: a ``sample`` column, one column per channel, one row per time point."""
    import pandas as pd

    try:
        table = pd.read_csv(path, encoding="utf-8", skipinitialspace=True)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text: is this the right file?") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    columns = [str(c) for c in table.columns]
    if "sample" not in columns:
        raise InputError(f"{path}: no 'sample' column; expected a wide table with columns "
                         f"sample,<channel>,<channel>,... (got {', '.join(map(repr, columns[:8]))})")
    channels = [c for c in columns if c not in ("sample", "time", "label")]
    if not channels:
        raise InputError(f"{path}: no channel columns besides sample/time/label")
    for name in channels:
        numeric = pd.to_numeric(table[name], errors="coerce")
        bad = numeric.isna() & table[name].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}:{row + 2}: column {name!r}: {str(table[name].iloc[row])[:40]!r} "
                             "is not a number")
        table[name] = numeric.astype(float)
    if table[channels].isna().to_numpy().any():
        row, col = np.argwhere(table[channels].isna().to_numpy())[0]
        raise InputError(f"{path}:{row + 2}: column {channels[col]!r}: empty or NaN value")
    series, labels = [], []
    for key, rows in table.groupby("sample", sort=False):  # samples in order of first appearance
        if "time" in columns:
            rows = rows.sort_values("time", kind="stable")
        values = rows[channels].to_numpy(dtype=np.float64).T  # (channels, time)
        series.append(list(values))
        if "label" in columns:
            distinct = rows["label"].astype(str).unique()
            if len(distinct) != 1:
                raise InputError(f"{path}: sample {key!r} has several labels ({', '.join(map(repr, distinct[:4]))}); "
                                 "a label must be constant within a sample")
            labels.append(distinct[0])
    return RawSeries(path, series, labels or None, channel_names=channels)


def _numeric_array(array: np.ndarray, path: Path, what: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: {what} has dtype {array.dtype}; expected real numbers")
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3:
        raise InputError(f"{path}: {what} has shape {array.shape}; expected (n, channels, time) "
                         "or (n, time)")
    return array.astype(np.float64, copy=False)


def load_arrays(path: Path) -> tuple[np.ndarray, dict]:
    """The data array of a ``.npy``/``.npz`` file (any shape, numeric) and the NPZ's other arrays.

    NPZ: the array under ``data`` (or ``x``/``X``, or the only array); the rest is
    returned by name. Pickled/object arrays are refused.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{path}: cannot load ({_first_line(exc)}); object arrays are not accepted") from None
    except MemoryError as exc:  # a header declaring more than memory holds (truncated or foreign file)
        raise InputError(f"{path}: the array header declares more data than fits in memory ({exc})") from None
    except Exception as exc:  # a corrupt header raises OSError, EOFError, SyntaxError, BadZipFile...
        raise InputError(f"{path}: not a readable NumPy file ({_first_line(exc)})") from None
    if isinstance(loaded, np.ndarray):
        contents, key = {"data": loaded}, "data"
    else:
        with loaded:
            _check_fits_in_memory(path, sum(info.file_size for info in loaded.zip.infolist()))
            try:
                contents = {k: loaded[k] for k in loaded.files}
            except Exception as exc:  # as above, and zlib.error for corrupt compressed members
                raise InputError(f"{path}: corrupt or object-typed array in archive ({_first_line(exc)})") from None
        key = next((k for k in ("data", "x", "X") if k in contents), None)
        if key is None:
            if len(contents) != 1:
                raise InputError(f"{path}: expected an array named 'data' (or 'x'), found "
                                 f"{', '.join(contents) or 'none'}")
            key = next(iter(contents))
    array = contents.pop(key)
    if array.dtype.kind not in "biuf":
        raise InputError(f"{path}: the array has dtype {array.dtype}; expected real numbers")
    return array, contents


def read_numpy(path: Path) -> RawSeries:
    """Read ``.npy`` ``(n, channels, time)`` or ``.npz`` (see module docstring)."""
    array, extra = load_arrays(path)
    label_key = next((k for k in ("labels", "y") if k in extra), None)
    labels = [str(v) for v in extra[label_key].ravel()] if label_key else None
    names = [str(v) for v in extra["channel_names"].ravel()] if "channel_names" in extra else None
    rate = _sampling_rate(extra["sampling_rate"], path) if "sampling_rate" in extra else None
    array = _numeric_array(array, path, "the array")
    if labels is not None and len(labels) != len(array):
        raise InputError(f"{path}: {len(labels)} labels for {len(array)} samples")
    return RawSeries(path, array, labels, names, rate)


def read_netcdf(path: Path) -> RawSeries:
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


READERS = {"ts": read_ts, "csv": read_csv, "npy": read_numpy, "npz": read_numpy, "netcdf": read_netcdf,
           **datasets.READERS}  # the benchmark data sets


def read_file(path: str | os.PathLike, fmt: str | None = None) -> RawSeries:
    """Read one raw file with the reader for its format; missing files are an InputError."""
    path = Path(path)
    reader = READERS[detect_format(path, fmt)]
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    return reader(path)


# ------------------------------------------------------------------------- assembly

def equalise_lengths(raw: RawSeries, policy: str, target: int | None = None) -> np.ndarray:
    """Stack ``raw.series`` into ``(n, channels, time)`` under the length policy.

    ``target`` is the common length chosen across all files (crop: the shortest,
    pad: the longest); ``pad`` repeats each series' last value.
    """
    lengths = [len(channel) for sample in raw.series for channel in sample]
    if min(lengths) == 0:
        raise InputError(f"{raw.path}: a series has zero time points")
    target = target if target is not None else lengths[0]
    if policy == "error" and (min(lengths) != target or max(lengths) != target):
        where = next(i for i, s in enumerate(raw.series) if any(len(c) != target for c in s))
        got = sorted({len(c) for c in raw.series[where]})
        raise InputError(f"{raw.path}: ragged series: sample {where} has length {got} but the first "
                         f"has {target}; set ingest.length_policy to 'crop' or 'pad' to equalise")
    if isinstance(raw.series, np.ndarray) and raw.series.shape[2] == target:
        return raw.series
    out = np.empty((len(raw.series), len(raw.series[0]), target))
    for i, sample in enumerate(raw.series):
        for c, channel in enumerate(sample):
            kept = channel[:target]
            out[i, c, :len(kept)] = kept
            out[i, c, len(kept):] = kept[-1]
    return out


def assemble(raws: Sequence[RawSeries], settings: IngestSettings) -> xr.Dataset:
    """Check and concatenate what the readers returned into the ``raw.nc`` Dataset."""
    first = raws[0]
    for raw in raws:
        if len(raw.series) == 0:
            raise InputError(f"{raw.path}: no samples")
        if len(raw.series[0]) == 0:
            raise InputError(f"{raw.path}: zero channels")
        counts = {len(sample) for sample in raw.series}
        if len(counts) > 1:
            raise InputError(f"{raw.path}: samples have different channel counts {sorted(counts)}")
        if len(raw.series[0]) != len(first.series[0]):
            raise InputError(f"{raw.path}: {len(raw.series[0])} channels, but {first.path} has "
                             f"{len(first.series[0])}: files must share their channels")
        if raw.channel_names and len(raw.channel_names) != len(raw.series[0]):
            raise InputError(f"{raw.path}: {len(raw.channel_names)} channel names for {len(raw.series[0])} channels")
        if raw.channel_names and first.channel_names and raw.channel_names != first.channel_names:
            raise InputError(f"{raw.path}: channel names {raw.channel_names[:4]}... differ from "
                             f"{first.path}'s {first.channel_names[:4]}...")
        if (raw.labels is None) != (first.labels is None):
            raise InputError(f"{raw.path}: {'has' if raw.labels else 'has no'} labels, unlike {first.path}")
        if raw.sampling_rate and first.sampling_rate and not math.isclose(raw.sampling_rate,
                                                                          first.sampling_rate):
            raise InputError(f"{raw.path}: sampling rate {raw.sampling_rate} Hz differs from "
                             f"{first.path}'s {first.sampling_rate} Hz")
    lengths = [len(c) for raw in raws for s in raw.series for c in s]
    target = {"error": lengths[0], "crop": min(lengths), "pad": max(lengths)}[settings.length_policy]
    if settings.length_policy == "error" and len(set(lengths)) > 1:
        for raw in raws:  # name the first offending file
            equalise_lengths(raw, "error", target)
    arrays = [equalise_lengths(raw, settings.length_policy, target) for raw in raws]
    signal = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if not (np.isfinite(signal).all() and -FLOAT32_MAX <= signal.min() and signal.max() <= FLOAT32_MAX):
        for raw, array in zip(raws, arrays, strict=True):
            _check_values(raw.path, array)
    n, n_channels, n_time = signal.shape
    if n < settings.min_samples:
        raise InputError(f"{', '.join(str(r.path) for r in raws)}: {n} samples, need at least "
                         f"{settings.min_samples} (ingest.min_samples)")
    names = list(settings.channel_names) if settings.channel_names else first.channel_names
    if names is None:
        names = [f"ch{c}" for c in range(n_channels)]
    if len(names) != n_channels:
        raise ConfigError(f"ingest.channel_names: {len(names)} names for {n_channels} channels")
    rate = settings.sampling_rate or first.sampling_rate
    units = settings.units or first.units or "unknown"
    time = np.arange(n_time) / rate if rate else np.arange(n_time, dtype=float)
    coords = {
        "sample": np.arange(n),
        "channel": np.array(names, dtype=str),
        "time": ("time", time, {"units": "s" if rate else "time step"}),
        "source_file": ("sample", np.concatenate([[raw.path.name] * len(raw.series) for raw in raws])),
    }
    data_vars = {"signal": (("sample", "channel", "time"), signal, {"units": units})}
    if first.labels is not None:
        data_vars["label"] = ("sample", np.array([lab for raw in raws for lab in raw.labels], dtype=str))
    attrs = {"units": units, "length_policy": settings.length_policy}
    if rate:
        attrs["sampling_rate"] = float(rate)
    return xr.Dataset(data_vars, coords, attrs)


def _check_values(path: Path, array: np.ndarray) -> None:
    """InputError naming the first value of ``array`` (n, C, T) that is NaN, infinite or beyond float32."""
    bad = np.argwhere(~(np.abs(array) <= FLOAT32_MAX))  # NaN compares False
    if len(bad):
        i, c, t = bad[0]
        value = array[i, c, t]
        if np.isfinite(value):
            raise InputError(f"{path}: value {value:.3g} at sample {i}, channel {c}, time {t} is beyond the "
                             f"float32 range (±{FLOAT32_MAX:.3g}) images are stored in; rescale the data")
        kind = "NaN/missing" if np.isnan(value) else "infinite"
        raise InputError(f"{path}: {kind} value at sample {i}, channel {c}, time {t} "
                         f"({int((~np.isfinite(array)).sum())} non-finite values in all); remove or impute them first")


def ingest(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
           settings: IngestSettings = IngestSettings()) -> xr.Dataset:
    """Entry function of the stage: read ``paths``, check them, write ``out`` (raw.nc) atomically.

    Returns the Dataset written. Used by the ``ingest`` rule and ``dualdiv ingest``.
    """
    if not paths:
        raise ConfigError("ingest: no input files given")
    paths = [datasets.resolve_path(p) for p in paths]  # package:<package>/<file> → the installed file
    raws = [read_file(path, settings.format) for path in paths]
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
    if values["channel_names"] is not None:
        values["channel_names"] = list(values["channel_names"])
    return values
