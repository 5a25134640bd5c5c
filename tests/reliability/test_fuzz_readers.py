"""Every reader under fuzzed input: a clear InputError naming the file, or a correct read; never a
traceback, a hang or an output file (contract in ``reliability_support.ingest_outcome``)."""

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import FORMATS, ingest_outcome, write_valid

import dualdiv.data.readers.common

# The same examples every run (reproducible CI); a deeper search raises max_examples (1500 a test passed).
FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
BINARY = ("npy", "npz", "nc")


@st.composite
def valid_file(draw, formats=FORMATS):
    """(format, file bytes) of a small valid file: 1-4 samples × 1-3 channels × 1-6 time points."""
    fmt = draw(st.sampled_from(formats))
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 6)))
    x = np.random.default_rng(draw(st.integers(0, 2**16))).normal(size=shape).round(3)
    with tempfile.TemporaryDirectory() as folder:
        return fmt, write_valid(Path(folder) / f"x.{fmt}", fmt, x).read_bytes()


def _outcome(fmt: str, content: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in.{fmt}"
        path.write_bytes(content)
        return ingest_outcome(path, Path(folder) / "out" / "raw.nc")


@FUZZ
@given(valid_file(), st.data())
def test_truncated_file_is_rejected_or_read_whole(file, data):
    fmt, content = file
    cut = data.draw(st.integers(0, len(content) - 1), label="bytes kept")
    error = _outcome(fmt, content[:cut])
    if fmt in BINARY:  # a binary file cut anywhere is missing its header, data or index
        assert error is not None
    if cut == 0:
        assert "empty file" in str(error)


@FUZZ
@given(valid_file(), st.data())
def test_garbage_bytes_are_rejected_or_read(file, data):
    fmt, content = file
    start = data.draw(st.integers(0, len(content) - 1), label="start")
    garbage = data.draw(st.binary(min_size=1, max_size=64), label="garbage")
    _outcome(fmt, content[:start] + garbage + content[start + len(garbage):])


TOKENS = [*"0123456789.,:-+eE@?\n \tabxnaifINF#\"'", "@data\n", "@classLabel true a b\n", "sample,", "time,", "label"]
TEXT = st.lists(st.sampled_from(TOKENS), max_size=120).map("".join)


@FUZZ
@given(st.sampled_from(["ts", "csv"]), TEXT)
def test_random_text_is_rejected_or_read(fmt, text):
    _outcome(fmt, text.encode())


@FUZZ
@given(valid_file(formats=("ts", "csv")), st.data())
def test_text_that_is_not_utf8_is_rejected(file, data):
    fmt, content = file
    where = data.draw(st.integers(0, len(content)), label="position")
    byte = data.draw(st.integers(0x80, 0xFF).map(lambda b: bytes([b])), label="byte")  # never valid alone in UTF-8
    error = _outcome(fmt, content[:where] + byte + content[where:])
    assert "not UTF-8" in str(error)


NON_NUMERIC = {
    "strings": np.array([[["a", "b"]]] * 3),
    "bytes": np.array([[[b"a", b"b"]]] * 3),
    "object": np.array([[["a", "b"]]] * 3, dtype=object),
    "complex": np.ones((3, 1, 2), dtype=complex),
    "structured": np.zeros((3, 1, 2), dtype=[("a", "f8")]),
    "datetime": np.full((3, 1, 2), np.datetime64("2020-01-01")),
}


def _write_array(path: Path, fmt: str, array: np.ndarray) -> None:
    if fmt == "npy":
        np.save(path, array, allow_pickle=True)
    elif fmt == "npz":
        np.savez(path, data=array, allow_pickle=True)
    else:
        xr.Dataset({"signal": (("sample", "channel", "time"), array)}).to_netcdf(path, engine="h5netcdf")


@pytest.mark.parametrize("fmt, kind", [(fmt, kind) for fmt in BINARY for kind in NON_NUMERIC
                                       if not (fmt == "nc" and kind in ("structured", "complex"))])  # not in NetCDF
def test_non_numeric_arrays_are_rejected(tmp_path, fmt, kind):
    path = tmp_path / f"x.{fmt}"
    _write_array(path, fmt, NON_NUMERIC[kind])
    error = ingest_outcome(path, tmp_path / "raw.nc")
    assert error is not None and ("dtype" in str(error) or "object" in str(error).lower()), error


NUMERIC_DTYPES = ["int8", "uint8", "int16", "int32", "int64", "uint64", "float16", "float32", "float64", "bool"]


@st.composite
def numeric_array(draw):
    """A (2, 2, 3) array of a numeric dtype, values anywhere in its range (extremes, inf, NaN included)."""
    dtype = np.dtype(draw(st.sampled_from(NUMERIC_DTYPES)))
    if dtype.kind == "b":
        values = st.booleans()
    elif dtype.kind in "iu":
        values = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    else:
        values = st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True)
    return np.array(draw(st.lists(values, min_size=12, max_size=12)), dtype=dtype).reshape(2, 2, 3)


@FUZZ
@given(st.sampled_from(BINARY), numeric_array())
def test_numeric_dtypes_read_as_float64_or_rejected_with_the_reason(fmt, array):
    with tempfile.TemporaryDirectory() as folder:
        path, out = Path(folder) / f"x.{fmt}", Path(folder) / "raw.nc"
        _write_array(path, fmt, array)
        as_float = array.astype(np.float64)
        expected_error = {"NaN": np.isnan(as_float).any(), "infinite": np.isinf(as_float).any(),
                          "float32 range": (np.abs(as_float[np.isfinite(as_float)]) > np.finfo(np.float32).max).any()}
        if not any(expected_error.values()):
            assert ingest_outcome(path, out) is None  # integers, bools and small floats convert exactly
            return
        error = ingest_outcome(path, out)
        assert error is not None and any(word in str(error) for word, hit in expected_error.items() if hit), error


@pytest.mark.parametrize("fmt", BINARY)
@pytest.mark.parametrize("shape, problem", [((0, 2, 3), "no samples"), ((2, 0, 3), "zero channels"),
                                            ((2, 2, 0), "zero time points")])
def test_empty_dimensions_are_rejected(tmp_path, fmt, shape, problem):
    path = tmp_path / f"x.{fmt}"
    _write_array(path, fmt, np.zeros(shape))
    assert problem in str(ingest_outcome(path, tmp_path / "raw.nc"))


@pytest.mark.parametrize("fmt, text, problem", [
    ("ts", "@problemName x\n@data\n", "no data lines"),
    ("csv", "sample,a\n", "no samples"),
    ("csv", "sample\n1\n", "no channel columns"),
    ("ts", "\n\n", "no @data line"),
])
def test_text_files_without_values_are_rejected(tmp_path, fmt, text, problem):
    path = tmp_path / f"x.{fmt}"
    path.write_text(text)
    assert problem in str(ingest_outcome(path, tmp_path / "raw.nc"))


def _npy_bytes_declaring(shape) -> bytes:
    """An .npy header declaring ``shape`` float64, followed by 48 bytes of data only."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + np.zeros(6).tobytes()


HUGE = (2**40, 3, 16)  # 384 TiB: neither allocatable nor a file size this machine has


def test_huge_npy_header_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(_npy_bytes_declaring(HUGE))
    assert "declares more data than fits in memory" in str(ingest_outcome(path, tmp_path / "raw.nc"))


def test_npy_header_larger_than_its_data_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(_npy_bytes_declaring((1000, 3, 16)))
    assert "cannot load" in str(ingest_outcome(path, tmp_path / "raw.nc"))


def test_huge_npz_member_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.npy", _npy_bytes_declaring(HUGE))
    assert "corrupt or object-typed array" in str(ingest_outcome(path, tmp_path / "raw.nc"))


def test_npz_larger_than_free_memory_is_refused_before_reading(tmp_path, monkeypatch):
    path = write_valid(tmp_path / "x.npz", "npz", np.zeros((2, 2, 3)))
    monkeypatch.setattr(dualdiv.data.readers.common, "available_memory", lambda: 100)  # a zip bomb's view of memory
    assert "more than the 0.0 GiB of memory available" in str(ingest_outcome(path, tmp_path / "raw.nc"))


@pytest.mark.parametrize("plain_hdf5", [False, True])
def test_huge_declared_hdf5_dataset_is_refused_before_reading(tmp_path, plain_hdf5):
    path = tmp_path / "x.nc"
    with h5py.File(path, "w") as handle:  # chunked and never written: a few KB on disk, 384 TiB declared
        handle.create_dataset("signal" if not plain_hdf5 else "data", shape=HUGE, chunks=(1, 3, 16), dtype="f8")
        if plain_hdf5:
            handle.create_dataset("other", data=np.zeros((2, 2)))  # not an xarray file: plain-HDF5 reader
    error = ingest_outcome(path, tmp_path / "raw.nc")
    assert "memory available" in str(error) or "candidate datasets" in str(error), error


def test_ts_declaring_huge_dimension_is_refused(tmp_path):
    path = tmp_path / "x.ts"
    path.write_text(f"@dimension {2**60}\n@data\n1,2\n")
    assert "@dimension says" in str(ingest_outcome(path, tmp_path / "raw.nc"))


@pytest.mark.parametrize("extra, problem", [
    ({"sampling_rate": np.array([1.0, 2.0])}, "sampling_rate must be one number"),
    ({"sampling_rate": np.array("fast")}, "sampling_rate must be one number"),
    ({"sampling_rate": np.array(-5.0)}, "sampling_rate must be a positive number"),
    ({"channel_names": np.array(["only_one"])}, "1 channel names for 2 channels"),
    ({"labels": np.array(["a"])}, "1 labels for 3 samples"),
])
def test_bad_npz_metadata_is_an_input_error(tmp_path, extra, problem):
    path = tmp_path / "x.npz"
    np.savez(path, data=np.zeros((3, 2, 4)), **extra)
    assert problem in str(ingest_outcome(path, tmp_path / "raw.nc"))


def test_cli_garbage_file_exits_2_with_one_line(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip archive")
    result = subprocess.run([sys.executable, "-m", "dualdiv.cli", "ingest", str(path), "-o", str(tmp_path / "raw.nc")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"dualdiv ingest: error: {path}: not a readable NumPy file")
    assert not (tmp_path / "raw.nc").exists()
