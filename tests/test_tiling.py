"""Tiling: round trip to physical units, deterministic stratified split, windows, corrupt files."""

import hashlib

import h5py
import numpy as np
import pytest
import xarray as xr
from conftest import EEG_FILES

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.ingest import IngestSettings
from dualdiv.data.tiles import (
    TileSettings,
    channel_stats,
    cut_windows,
    load_tiles,
    split_recordings,
    split_single_recording,
    to_physical,
)
from dualdiv.stages.ingest import ingest
from dualdiv.stages.tile import tile


@pytest.fixture
def eeg_raw(tmp_path):
    path = tmp_path / "raw.nc"
    ingest(EEG_FILES, path, IngestSettings(sampling_rate=128))
    return path


def test_eeg_tiles_round_trip(tmp_path, eeg_raw):
    tiles = tile(eeg_raw, tmp_path / "tiles.h5")
    back = load_tiles(tmp_path / "tiles.h5")
    assert back.images.shape == (98, 14, 128) and back.images.dtype == np.float32
    assert (back.split == "test").sum() == 20
    signal = xr.open_dataset(eeg_raw, engine="h5netcdf")["signal"].values
    physical = to_physical(back.images, back.channel_mean, back.channel_std)
    # float32 storage: error relative to each channel's spread ~1e-7
    np.testing.assert_allclose(physical, signal[back.sample_id], atol=1e-5 * back.channel_std.max())
    train = back.subset("train")
    np.testing.assert_allclose(train.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2)), 1, atol=1e-4)
    assert back.channel_names == tiles.channel_names
    with h5py.File(tmp_path / "tiles.h5") as handle:
        assert handle["images"].chunks == (1, 14, 128)
        assert handle["images"].compression == "gzip"
        assert handle["split"].dtype.kind == "S"


def test_same_seed_same_bytes_other_seed_other_split(tmp_path, eeg_raw):
    digests = []
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        tile(eeg_raw, tmp_path / f"{name}.h5", TileSettings(seed=seed))
        digests.append(hashlib.sha256((tmp_path / f"{name}.h5").read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_split_is_stratified():
    labels = np.array(["a"] * 54 + ["b"] * 44)
    is_test = split_recordings(98, 0.2, seed=3, labels=labels)
    assert (is_test & (labels == "a")).sum() == 11 and (is_test & (labels == "b")).sum() == 9
    np.testing.assert_array_equal(is_test, split_recordings(98, 0.2, seed=3, labels=labels))
    rare = np.array(["a"] * 30 + ["b"] * 2)
    is_test = split_recordings(32, 0.2, seed=0, labels=rare)
    assert (is_test & (rare == "b")).sum() == 1  # a rare class still reaches both splits
    assert not split_recordings(10, 0.0, seed=0).any()


def test_windows_of_a_recording_share_a_split(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "long.npy", rng.normal(size=(20, 2, 100)))
    ingest([tmp_path / "long.npy"], tmp_path / "raw.nc")
    tiles = tile(tmp_path / "raw.nc", tmp_path / "tiles.h5", TileSettings(window=30, stride=20))
    assert tiles.images.shape == (20 * 4, 2, 30)
    for recording in range(20):
        assert len(set(tiles.split[tiles.sample_id == recording])) == 1
    windows, recording, starts = cut_windows(np.arange(20.0).reshape(1, 1, 20), 8, 4)
    np.testing.assert_array_equal(starts, [0, 4, 8, 12])
    np.testing.assert_array_equal(windows[2, 0], np.arange(8, 16))


def test_single_recording_split_has_no_shared_time_points():
    starts = np.arange(0, 100, 10)
    split = split_single_recording(starts, window=20, test_fraction=0.2)
    test_start = starts[split == "test"].min()
    assert (starts[split == "train"] + 20 <= test_start).all()
    assert (split == "").sum() == 1  # the window straddling the boundary is dropped


@pytest.mark.parametrize("how", ["chronological", "interleaved", "random"])
def test_single_recording_splits_share_no_time_point(how):
    starts = np.arange(0, 1000, 10)  # windows of 20 with stride 10: neighbours overlap
    split = split_single_recording(starts, window=20, test_fraction=0.2, how=how, seed=3)
    assert (split == "test").sum() == 20
    test_starts, train_starts = starts[split == "test"], starts[split == "train"]
    assert (np.abs(train_starts[:, None] - test_starts[None]) >= 20).all()  # no shared time point
    kept = split != ""
    assert kept.sum() >= 40  # only the neighbours of test windows are dropped
    if how == "chronological":
        assert test_starts.min() == 800
    if how == "interleaved":  # spread over the whole recording, not one block
        assert test_starts.min() < 100 and test_starts.max() > 900
        assert np.diff(test_starts).min() >= 40
    if how == "random":
        again = split_single_recording(starts, window=20, test_fraction=0.2, how=how, seed=3)
        other = split_single_recording(starts, window=20, test_fraction=0.2, how=how, seed=4)
        assert (again == split).all() and (other != split).any()


def test_unknown_split_is_one_config_error():
    with pytest.raises(ConfigError, match="tile.split"):
        TileSettings(split="blocked")


def test_constant_channel_gets_unit_std():
    x = np.ones((5, 2, 4))
    x[:, 1] = np.random.default_rng(0).normal(size=(5, 4))
    mean, std, constant = channel_stats(x)
    assert list(constant) == [0] and std[0] == 1.0 and mean[0] == 1.0


def test_bad_tile_settings_and_inputs(tmp_path, eeg_raw):
    with pytest.raises(ConfigError, match="tile.test_fraction"):
        TileSettings(test_fraction=1.0)
    with pytest.raises(ConfigError, match="tile.window: 500 time points, but the series have only 128"):
        tile(eeg_raw, tmp_path / "t.h5", TileSettings(window=500))
    assert not (tmp_path / "t.h5").exists()
    truncated = tmp_path / "raw_truncated.nc"
    truncated.write_bytes(eeg_raw.read_bytes()[:5000])
    with pytest.raises(InputError, match="raw_truncated.nc: cannot read raw.nc"):
        tile(truncated, tmp_path / "t.h5")


def test_truncated_or_foreign_tiles_file(tmp_path, eeg_raw):
    tile(eeg_raw, tmp_path / "tiles.h5")
    (tmp_path / "cut.h5").write_bytes((tmp_path / "tiles.h5").read_bytes()[:20000])
    with pytest.raises(InputError, match=r"cut\.h5: cannot read tiles file"):
        load_tiles(tmp_path / "cut.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    with pytest.raises(InputError, match=r"other\.h5: not a dualdiv tiles file: missing images"):
        load_tiles(tmp_path / "other.h5")
