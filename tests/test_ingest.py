"""Readers on tiny fixtures and the real EEG file; every bad input gives an InputError naming the file."""

import numpy as np
import pytest
import xarray as xr
from conftest import EEG_FILES, ts_text

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.ingest import IngestSettings
from dualdiv.data.readers import read_file
from dualdiv.stages.ingest import ingest

SMALL = IngestSettings(min_samples=2)


def test_real_eeg_both_files():
    raw = [read_file(p) for p in EEG_FILES]
    assert [len(r.series) for r in raw] == [56, 42]
    assert {len(s) for r in raw for s in r.series} == {14}
    assert {len(c) for r in raw for s in r.series for c in s} == {128}
    assert set(raw[0].labels) == {"0", "1"}


def test_eeg_ingest_writes_dataset(tmp_path):
    out = tmp_path / "raw.nc"
    ds = ingest(EEG_FILES, out, IngestSettings(sampling_rate=128, units="uV"))
    assert ds["signal"].shape == (98, 14, 128)
    with xr.open_dataset(out, engine="h5netcdf") as back:
        assert back["signal"].dims == ("sample", "channel", "time")
        np.testing.assert_array_equal(back["signal"].values, ds["signal"].values)
        assert back.attrs["sampling_rate"] == 128.0
        assert back["time"].values[1] == pytest.approx(1 / 128)
        assert sorted(set(back["source_file"].values)) == ["EyesOpenShut_TEST.ts", "EyesOpenShut_TRAIN.ts"]
        assert (back["label"].values == "1").sum() == 44
        assert "c40b21a74e70b28f569d5c5e03371fa311d88d20adfadca016080c6f1ecfe773" in back.attrs["sha256"]
    # first value of the first TRAIN line, read back exactly
    assert ds["signal"].values[0, 0, 0] == 4329.23


def test_ts_reader_values_and_labels(tmp_path):
    path = tmp_path / "x.ts"
    path.write_text(ts_text([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [1, 1, 1]]], labels=[0, 1]))
    raw = read_file(path)
    np.testing.assert_array_equal(np.array(raw.series[0]), [[1, 2, 3], [4, 5, 6]])
    assert raw.labels == ["0", "1"]


def test_csv_reader_sorts_by_time_and_keeps_labels(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("sample,time,Fz,Cz,label\nB,1,4,40,y\nA,0,1,10,x\nA,1,2,20,x\nB,0,3,30,y\n")
    raw = read_file(path)
    assert raw.channel_names == ["Fz", "Cz"]
    np.testing.assert_array_equal(np.array(raw.series[0]), [[3, 4], [30, 40]])  # sample B first seen
    np.testing.assert_array_equal(np.array(raw.series[1]), [[1, 2], [10, 20]])
    assert raw.labels == ["y", "x"]


@pytest.mark.parametrize("suffix", ["npy", "npz", "nc"])
def test_array_readers_round_trip(tmp_path, gaussian_series, suffix):
    x, labels = gaussian_series
    path = tmp_path / f"x.{suffix}"
    if suffix == "npy":
        np.save(path, x)
    elif suffix == "npz":
        np.savez(path, data=x, labels=labels, channel_names=np.array(["a", "b", "c"]), sampling_rate=100.0)
    else:
        xr.Dataset({"signal": (("sample", "channel", "time"), x), "label": ("sample", labels)},
                   attrs={"sampling_rate": 100.0}).to_netcdf(path, engine="h5netcdf")
    ds = ingest([path], tmp_path / "raw.nc", SMALL)
    np.testing.assert_array_equal(ds["signal"].values, x)
    if suffix != "npy":
        assert list(ds["label"].values) == list(labels)
        assert ds.attrs["sampling_rate"] == 100.0


def test_raw_nc_can_be_reingested(tmp_path):
    first = ingest(EEG_FILES, tmp_path / "raw.nc")
    again = ingest([tmp_path / "raw.nc"], tmp_path / "raw2.nc")
    np.testing.assert_array_equal(first["signal"].values, again["signal"].values)
    assert list(again["channel"].values) == list(first["channel"].values)


def test_plain_hdf5_single_dataset(tmp_path, gaussian_series):
    import h5py

    x, _ = gaussian_series
    with h5py.File(tmp_path / "x.h5", "w") as handle:
        handle["recordings"] = x
    assert np.array(read_file(tmp_path / "x.h5").series).shape == x.shape


def test_two_dimensional_npy_is_one_channel(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(40.0).reshape(4, 10))
    assert np.array(read_file(tmp_path / "x.npy").series).shape == (4, 1, 10)


# ----------------------------------------------------------------------------- bad input

def _fails(tmp_path, files, match, settings=SMALL):
    out = tmp_path / "out" / "raw.nc"
    with pytest.raises(InputError, match=match):
        ingest(files, out, settings)
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True


def test_nan_and_inf_name_file_and_position(tmp_path, gaussian_series):
    x, _ = gaussian_series
    x = x.copy()
    x[3, 1, 5] = np.nan
    np.save(tmp_path / "nan.npy", x)
    _fails(tmp_path, [tmp_path / "nan.npy"], r"nan\.npy: NaN/missing value at sample 3, channel 1, time 5")
    x[3, 1, 5] = np.inf
    np.save(tmp_path / "inf.npy", x)
    _fails(tmp_path, [tmp_path / "inf.npy"], r"inf\.npy: infinite value")


def test_ts_missing_value_marker_is_rejected(tmp_path):
    path = tmp_path / "m.ts"
    path.write_text(ts_text([[[1, 2, 3]], [[4, 5, 6]]]).replace("4,5,6", "4,?,6"))
    _fails(tmp_path, [path], r"m\.ts: NaN/missing value at sample 1, channel 0, time 1")


def test_ragged_rejected_then_cropped_or_padded(tmp_path):
    path = tmp_path / "r.ts"
    path.write_text(ts_text([[[1, 2, 3, 4]], [[5, 6, 7]], [[8, 9, 10, 11]]]))
    _fails(tmp_path, [path], r"r\.ts: ragged series: sample 1 has length \[3\] but the first has 4")
    cropped = ingest([path], tmp_path / "c.nc", IngestSettings(min_samples=2, length_policy="crop"))
    assert cropped["signal"].shape == (3, 1, 3)
    padded = ingest([path], tmp_path / "p.nc", IngestSettings(min_samples=2, length_policy="pad"))
    np.testing.assert_array_equal(padded["signal"].values[1, 0], [5, 6, 7, 7])


def test_too_few_samples(tmp_path, gaussian_series):
    np.save(tmp_path / "x.npy", gaussian_series[0][:5])
    _fails(tmp_path, [tmp_path / "x.npy"], r"x\.npy: 5 samples, need at least 16", IngestSettings())


def test_channel_count_differs_between_files(tmp_path, gaussian_series):
    x, _ = gaussian_series
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[:, :2])
    _fails(tmp_path, [tmp_path / "a.npy", tmp_path / "b.npy"], r"b\.npy: 2 channels, but .*a\.npy has 3")


@pytest.mark.parametrize("text, match", [
    ("@problemName x\n@classLabel maybe\n@data\n1,2:0\n", r"bad\.ts:2: @classLabel must be followed by true"),
    ("@problemName x\n@seriesLength abc\n@data\n", r"bad\.ts:2: @seriesLength must be a positive integer"),
    ("@problemName x\n1,2,3\n", r"bad\.ts:2: expected a header line"),
    ("@problemName x\n@classLabel false\n", r"bad\.ts: no @data line"),
    ("@problemName x\n@classLabel false\n@data\n", r"bad\.ts: no data lines"),
    ("@classLabel false\n@data\n1,2,3:4,5,6\n1,2,x:4,5,6\n", r"bad\.ts:4: channel 1: 'x' is not a number"),
    ("@classLabel false\n@data\n1,2,3:4,5,6\n1,2,3\n", r"bad\.ts:4: 1 channels, but earlier lines have 2"),
    ("@classLabel true a b\n@data\n1,2,3:a\n1,2,3:c\n", r"bad\.ts:4: label 'c' is not one of"),
    ("@timestamps true\n@data\n(0,1)\n", r"bad\.ts:2: @timestamps true is not supported"),
])
def test_malformed_ts_names_line(tmp_path, text, match):
    path = tmp_path / "bad.ts"
    path.write_text(text)
    _fails(tmp_path, [path], match)


def test_unknown_extension_empty_missing_and_binary(tmp_path):
    (tmp_path / "x.xlsx").write_text("?")
    _fails(tmp_path, [tmp_path / "x.xlsx"], r"x\.xlsx: unknown file extension '\.xlsx'")
    (tmp_path / "e.csv").write_text("")
    _fails(tmp_path, [tmp_path / "e.csv"], r"e\.csv: empty file")
    _fails(tmp_path, [tmp_path / "gone.npy"], r"gone\.npy: no such file")
    (tmp_path / "b.ts").write_bytes(b"@data\n\xff\xfe\x00garbage")
    _fails(tmp_path, [tmp_path / "b.ts"], r"b\.ts: not UTF-8 text")
    (tmp_path / "t.npy").write_bytes(b"\x93NUMPY garbage")
    _fails(tmp_path, [tmp_path / "t.npy"], r"t\.npy: ")
    (tmp_path / "t.nc").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    _fails(tmp_path, [tmp_path / "t.nc"], r"t\.nc: not a readable NetCDF/HDF5 file")


def test_non_numeric_and_object_arrays(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"]] * 20))
    _fails(tmp_path, [tmp_path / "s.npy"], r"s\.npy: the array has dtype <U1; expected real numbers")
    np.save(tmp_path / "o.npy", np.array([[1, None]] * 20, dtype=object), allow_pickle=True)
    _fails(tmp_path, [tmp_path / "o.npy"], r"o\.npy: cannot load .*object arrays are not accepted")
    (tmp_path / "c.csv").write_text("sample,Fz\n1,0.5\n1,abc\n")
    _fails(tmp_path, [tmp_path / "c.csv"], r"c\.csv:3: column 'Fz': 'abc' is not a number")


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="ingest.length_policy"):
        IngestSettings(length_policy="stretch")
    with pytest.raises(ConfigError, match="ingest.format"):
        IngestSettings(format="xlsx")
