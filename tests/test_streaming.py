"""Streaming ingest and tile (issue #19): a memory budget so small that a ~1 MB file is read and
written in several blocks gives the same raw.nc and tiles.h5 as the in-memory stages."""

import h5py
import numpy as np
import pytest
import xarray as xr

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.ingest import IngestSettings
from dualdiv.data.readers import open_lazy
from dualdiv.data.readers.common import LazyArray
from dualdiv.data.tiles import StoredImages, TileSettings, load_tiles
from dualdiv.stages.ingest import ingest
from dualdiv.stages.tile import tile

TINY = 1  # MiB: blocks of 0.5 MiB, so the files below (1–2 MB as float64) take several


def _same_raw(a, b) -> bool:
    with xr.open_dataset(a, engine="h5netcdf") as first, xr.open_dataset(b, engine="h5netcdf") as second:
        return first.identical(second)


def _tiles_fields(path):
    tiles = load_tiles(path)
    with h5py.File(path) as handle:
        checksum = handle.attrs["content_sha256"]
    return tiles, checksum


@pytest.fixture
def series(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4096, 2, 16)).astype(np.float32)  # 1 MiB as float64: 4 blocks of ingest
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


def test_npy_is_memory_mapped_by_blocks(series):
    path, x = series
    raw = open_lazy(path)
    assert isinstance(raw.series, LazyArray) and raw.series.shape == x.shape
    np.testing.assert_array_equal(raw.series.read(10, 20), x[10:20].astype(np.float64))
    padded = raw.series.with_layout(channels=[1, 0], length=20).read(0, 3)
    assert padded.shape == (3, 2, 20)
    np.testing.assert_array_equal(padded[:, 0, :16], x[:3, 1])
    np.testing.assert_array_equal(padded[:, :, 16:], np.repeat(x[:3, ::-1, -1:], 4, axis=2))
    assert open_lazy(path.with_suffix(".ts")) is None  # parsed formats are read whole


@pytest.mark.parametrize("container", ["npy", "nc", "h5"])
def test_streamed_ingest_writes_the_same_raw_nc(tmp_path, series, container):
    path, x = series
    if container == "nc":  # a raw.nc ingested again: NetCDF read by slices
        path = tmp_path / "in.nc"
        ingest([series[0]], path, IngestSettings(min_samples=2, sampling_rate=100.0, units="uV"))
    elif container == "h5":  # a plain HDF5 file with one dataset: h5py slices
        path = tmp_path / "in.h5"
        with h5py.File(path, "w") as handle:
            handle["x"] = x
    whole = ingest([path], tmp_path / "whole.nc", IngestSettings(min_samples=2))
    streamed = ingest([path], tmp_path / "streamed.nc", IngestSettings(min_samples=2, memory_mb=TINY))
    assert streamed["signal"].shape == whole["signal"].shape
    assert _same_raw(tmp_path / "whole.nc", tmp_path / "streamed.nc")


def test_streamed_ingest_of_several_files_crops_pads_and_reorders(tmp_path, series):
    path, x = series
    other = tmp_path / "other.nc"
    longer = np.random.default_rng(4).normal(size=(300, 2, 20))
    xr.Dataset({"signal": (("sample", "channel", "time"), longer)},
               {"channel": ["ch1", "ch0"]}).to_netcdf(other, engine="h5netcdf")
    for policy in ("crop", "pad"):
        settings = {"min_samples": 2, "length_policy": policy}
        ingest([path, other], tmp_path / "whole.nc", IngestSettings(**settings))
        ingest([path, other], tmp_path / "streamed.nc", IngestSettings(**settings, memory_mb=TINY))
        assert _same_raw(tmp_path / "whole.nc", tmp_path / "streamed.nc"), policy


def test_streamed_ingest_names_a_bad_value_in_a_later_block(tmp_path, series):
    path, x = series
    x = x.astype(np.float64)
    x[3000, 1, 5] = np.nan
    np.save(path, x)
    with pytest.raises(InputError, match="x.npy: NaN/missing value at sample 3000, channel 1, time 5"):
        ingest([path], tmp_path / "raw.nc", IngestSettings(min_samples=2, memory_mb=TINY))
    assert not (tmp_path / "raw.nc").exists()


@pytest.mark.parametrize("layout", [{}, {"window": 8, "stride": 4}, {"window": 8}])
def test_streamed_tiles_equal_the_in_memory_tiles(tmp_path, series, layout):
    path, _ = series
    ingest([path], tmp_path / "raw.nc", IngestSettings(min_samples=2))
    whole = tile(tmp_path / "raw.nc", tmp_path / "whole.h5", TileSettings(**layout))
    streamed = tile(tmp_path / "raw.nc", tmp_path / "streamed.h5", TileSettings(**layout, memory_mb=TINY))
    assert isinstance(streamed.images, StoredImages) and streamed.images.shape == whole.images.shape
    a, _ = _tiles_fields(tmp_path / "whole.h5")
    b, _ = _tiles_fields(tmp_path / "streamed.h5")  # load_tiles checks the streamed checksum
    for name in ("split", "sample_id", "window_start"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # the statistics are sums over blocks: the same within rounding
    np.testing.assert_allclose(b.channel_mean, a.channel_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.channel_std, a.channel_std, rtol=1e-12)
    np.testing.assert_allclose(b.images, a.images, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(streamed.images[2:5], b.images[2:5])
    assert a.provenance["settings"] == b.provenance["settings"]  # the budget is not part of it


def test_streamed_tiles_are_bit_identical_when_the_sums_are_exact(tmp_path):
    """Integer values and 2^16 training values per channel: every partial sum is exact, so the blocks
    give the very bytes (and checksum) of the in-memory stage."""
    x = np.random.default_rng(5).integers(-8, 8, size=(4096, 2, 16)).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    ingest([tmp_path / "x.npy"], tmp_path / "raw.nc", IngestSettings(min_samples=2, memory_mb=TINY))
    settings = {"test_fraction": 0.0}
    tile(tmp_path / "raw.nc", tmp_path / "whole.h5", TileSettings(**settings))
    tile(tmp_path / "raw.nc", tmp_path / "streamed.h5", TileSettings(**settings, memory_mb=TINY))
    (a, sum_a), (b, sum_b) = _tiles_fields(tmp_path / "whole.h5"), _tiles_fields(tmp_path / "streamed.h5")
    assert sum_a == sum_b
    np.testing.assert_array_equal(a.images, b.images)


def test_one_long_recording_is_streamed_by_windows(tmp_path):
    x = np.random.default_rng(6).normal(size=(1, 4, 40_000))  # one recording of 1.3 MB
    np.save(tmp_path / "rec.npy", x)
    ingest([tmp_path / "rec.npy"], tmp_path / "raw.nc", IngestSettings(min_samples=1))
    for split in ("chronological", "interleaved", "random"):
        layout = {"window": 64, "stride": 32, "split": split}
        tile(tmp_path / "raw.nc", tmp_path / "whole.h5", TileSettings(**layout))
        tile(tmp_path / "raw.nc", tmp_path / "streamed.h5", TileSettings(**layout, memory_mb=TINY))
        a, b = load_tiles(tmp_path / "whole.h5"), load_tiles(tmp_path / "streamed.h5")
        np.testing.assert_array_equal(a.split, b.split)
        np.testing.assert_allclose(b.images, a.images, rtol=1e-6, atol=1e-6)


def test_memory_budget_must_be_a_positive_integer():
    with pytest.raises(ConfigError, match="ingest.memory_mb"):
        IngestSettings(memory_mb=0)
    with pytest.raises(ConfigError, match="tile.memory_mb"):
        TileSettings(memory_mb=0.5)


def test_one_recording_larger_than_the_budget_is_ingested_by_time_ranges(tmp_path):
    x = np.random.default_rng(7).normal(size=(1, 3, 70_000))  # 1.7 MB: time ranges of 0.5 MiB
    np.save(tmp_path / "rec.npy", x.astype(np.float32))
    ingest([tmp_path / "rec.npy"], tmp_path / "whole.nc", IngestSettings(min_samples=1))
    ingest([tmp_path / "rec.npy"], tmp_path / "streamed.nc", IngestSettings(min_samples=1, memory_mb=TINY))
    assert _same_raw(tmp_path / "whole.nc", tmp_path / "streamed.nc")
    x[0, 2, 65_000] = np.inf
    np.save(tmp_path / "rec.npy", x)
    with pytest.raises(InputError, match="infinite value at sample 0, channel 2, time 65000"):
        ingest([tmp_path / "rec.npy"], tmp_path / "bad.nc", IngestSettings(min_samples=1, memory_mb=TINY))


def _wide_csv(path, n=40, length=300, shuffle=False, ragged=False):
    rng = np.random.default_rng(4)
    rows = ["sample,time,Fz,Cz,label"]
    for i in range(n):
        times = list(range(length - (i % 2 if ragged else 0)))
        if shuffle and i == 3:
            times = times[::-1]
        rows += [f"s{i},{t},{rng.normal():.6f},{rng.normal() * 3:.6f},{'ab'[i % 2]}" for t in times]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_streamed_by_rows_gives_the_same_raw(tmp_path, monkeypatch):
    import dualdiv.data.readers.csv_table as csv_table

    monkeypatch.setattr(csv_table, "CHUNK_ROWS", 1000)  # the checking pass in 12 chunks
    path = _wide_csv(tmp_path / "x.csv")  # 12 000 rows, ~0.4 MB of text: streamed under a 0.5 MiB budget
    lazy = open_lazy(path, budget_bytes=2**19)
    assert isinstance(lazy.series, LazyArray) and lazy.series.shape == (40, 2, 300)
    assert lazy.labels[:2] == ["a", "b"] and lazy.channel_names == ["Fz", "Cz"]
    assert open_lazy(path, budget_bytes=2**30) is None  # small enough to parse whole
    ingest([path], tmp_path / "whole.nc", IngestSettings())
    ingest([path], tmp_path / "streamed.nc", IngestSettings(memory_mb=TINY))
    assert _same_raw(tmp_path / "whole.nc", tmp_path / "streamed.nc")
    whole = lazy.series.read(0, 40)
    np.testing.assert_array_equal(lazy.series.read(7, 8, 100, 250), whole[7:8, :, 100:250])
    padded = lazy.series.with_layout(length=310).read(3, 30)  # the last row of each sample, repeated
    np.testing.assert_array_equal(padded[:, :, 300:], np.repeat(whole[3:30, :, -1:], 10, axis=2))


def test_csv_streaming_falls_back_or_names_the_bad_cell(tmp_path):
    assert open_lazy(_wide_csv(tmp_path / "unsorted.csv", shuffle=True)) is None  # read() sorts in memory
    assert open_lazy(_wide_csv(tmp_path / "ragged.csv", ragged=True)) is None  # the length policy needs lists
    bad = _wide_csv(tmp_path / "bad.csv")
    good = bad.read_text().splitlines()
    lines = list(good)
    lines[5001] = lines[5001][:-1] + ("b" if lines[5001].endswith("a") else "a")  # sample s16 (rows 4801–5100)
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"bad\.csv: sample 's16' has several labels"):
        open_lazy(bad)
    lines = list(good)
    lines[9000] = "s29,299,x1,2.0,b"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"bad\.csv:9001: column 'Fz': 'x1' is not a number$"):
        open_lazy(bad)
    with pytest.raises(InputError, match=r"bad\.csv:9001: column 'Fz': 'x1' is not a number$"):
        ingest([bad], tmp_path / "raw.nc", IngestSettings())  # the same line from the in-memory reader
