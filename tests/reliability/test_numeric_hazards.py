"""Numeric hazards: constant channels, duplicated samples, extreme outliers, tiny units, fewer images than a
batch, a critic that diverges. Each is handled (with a message where something falls back) and no NaN
is ever written into a result."""

import json
import logging
import warnings
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from reliability_support import TINY_STEP, leftovers, tiny_tiles

from dualdiv.core.errors import InputError
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.clusters import ClusterSettings, find_clusters
from dualdiv.estimators.path import StepSettings, load_critic, step_values
from dualdiv.stages.path import write_plan, write_step
from dualdiv.stages.sample import write_samples


def _hazard(kind: str) -> np.ndarray:
    """Physical data (n, 3, 8) with one numeric hazard."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3, 8))
    if kind == "constant channel":
        x[:, 1] = 5.0
    elif kind == "every sample twice":
        x = np.concatenate([x[:8], x[:8]])
    elif kind == "all samples identical":
        x = np.repeat(x[:1], 16, axis=0)
    elif kind == "extreme outliers":
        x[::3, 0, 2] = 1e30  # in every split, far beyond any other value, still a float32
    elif kind == "tiny units":
        x *= 1e-13  # tesla
    elif kind == "fewer images than a batch":
        x = x[:6]
    return x


HAZARDS = ["constant channel", "every sample twice", "all samples identical", "extreme outliers", "tiny units",
           "fewer images than a batch"]
BATCH = replace(TINY_STEP, rows_per_substep=64)  # more rows per sub-step than there are training images


@pytest.fixture(scope="module", params=HAZARDS)
def hazard(request, tmp_path_factory):
    """(kind, folder holding tiles.h5 and plan.json of data with that hazard)."""
    folder = tmp_path_factory.mktemp("hazard")
    write_plan(tiny_tiles(folder, _hazard(request.param)), folder / "plan.json", n_blocks=2)
    return request.param, folder


def test_tiles_are_finite_and_keep_every_varying_channel(hazard):
    kind, folder = hazard
    tiles = load_tiles(folder / "tiles.h5")
    assert np.isfinite(tiles.images).all()
    train = tiles.subset("train")
    if kind == "constant channel":
        assert tiles.channel_std[1] == 1.0 and np.all(tiles.images[:, 1] == 0)
        assert tiles.provenance["constant_channels"] == ["ch1"]
    else:
        assert tiles.provenance["constant_channels"] == []
        np.testing.assert_allclose(train.std(axis=(0, 2)), 1, rtol=1e-4)  # z-scored, tiny units too


def test_constant_channel_is_reported_in_the_log(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="dualdiv.data.tiles"):
        tiny_tiles(tmp_path, _hazard("constant channel"))
    assert "constant channel(s) ch1 in the training split; their std is set to 1" in caplog.text


def _strict_json(path):
    """Parse JSON refusing NaN and ±Infinity (not JSON, and never a result)."""
    def refuse(token):
        raise AssertionError(f"{path}: {token} written into a result")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_path_step_is_finite(hazard, tmp_path, one_torch_thread):
    kind, folder = hazard
    record = write_step(folder / "tiles.h5", folder / "plan.json", 1, tmp_path / "step_1.pt", tmp_path / "step_1.json",
                        BATCH, seed=0, device="cpu")
    assert np.isfinite(record["D"]) and record["D"] >= 0 and np.isfinite(record["stderr"])
    assert _strict_json(tmp_path / "step_1.json")["D"] == record["D"]
    state = torch.load(tmp_path / "step_1.pt", weights_only=True)
    plan = json.loads((folder / "plan.json").read_text())
    assert np.isfinite(step_values(load_critic(state, "cpu"), plan, 1, load_tiles(folder / "tiles.h5").images)).all()


METHODS = ["dualdiv", "spectral", "gaussian_lw", "var", "copy", "interpolate", "marginals"]
SAMPLE_CONFIG = {"settings": {"dualdiv_corrected": {"critic_iterations": 20, "candidates": 4}}}


@pytest.mark.parametrize("method", METHODS)
def test_generators_write_finite_samples_or_refuse_with_a_message(hazard, tmp_path, method, one_torch_thread):
    kind, folder = hazard
    out = tmp_path / f"{method}.h5"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # overflow, invalid value, division by zero
            write_samples(folder / "tiles.h5", method, out, 6, 0, SAMPLE_CONFIG)
    except InputError as error:
        assert method in str(error) and "\n" not in str(error)
        assert leftovers(out) == []
        return
    with h5py.File(out) as handle:
        assert np.isfinite(handle["images"][()]).all() and np.isfinite(handle["images_physical"][()]).all()


@pytest.mark.parametrize("kind", ["every sample twice", "all samples identical"])
def test_clusters_of_duplicated_samples_are_found_without_warnings(kind):
    x = _hazard(kind).reshape(16, -1)
    F = x.sum(axis=1)  # duplicated samples have duplicated dual values
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = find_clusters(F, x.reshape(16, 3, 8), ClusterSettings(scales=(6,), n_permutations=50, min_size=3))
    assert np.isfinite(result["boundaries"]).all()


DIVERGING = replace(TINY_STEP, learning_rate=1e8)  # the critic's weights blow up to inf/NaN within a few steps


@pytest.fixture(scope="module")
def diverged(tmp_path_factory, one_torch_thread):
    """A path step whose critic diverged: (folder, record)."""
    folder = tmp_path_factory.mktemp("diverged")
    write_plan(tiny_tiles(folder), folder / "plan.json", n_blocks=2)
    record = write_step(folder / "tiles.h5", folder / "plan.json", 1, folder / "step_1.pt", folder / "step_1.json",
                        DIVERGING, seed=0, device="cpu")
    return folder, record


def test_diverged_critic_falls_back_to_a_constant_and_says_why(diverged):
    folder, record = diverged
    assert record["fallback"]["trained_D"] is None or record["fallback"]["trained_D"] <= 0  # None: NaN/inf
    assert "falls back to f_k = 0" in record["fallback"]["reason"]
    assert record["D"] == 0 and record["stderr"] == 0
    state = torch.load(folder / "step_1.pt", weights_only=True)
    plan = json.loads((folder / "plan.json").read_text())
    assert state["constant"] and np.all(step_values(state, plan, 1, load_tiles(folder / "tiles.h5").images) == 0)


def test_diverged_critic_writes_no_nan_into_its_record(diverged):
    folder, _ = diverged
    _strict_json(folder / "step_1.json")


def test_diverged_critic_fallback_is_logged(tmp_path, caplog, one_torch_thread):
    write_plan(tiny_tiles(tmp_path), tmp_path / "plan.json", n_blocks=2)
    with caplog.at_level(logging.WARNING):
        write_step(tmp_path / "tiles.h5", tmp_path / "plan.json", 1, tmp_path / "s.pt", tmp_path / "s.json",
                   DIVERGING, seed=0, device="cpu")
    assert "step 1" in caplog.text and "falls back" in caplog.text


def test_fallback_can_be_turned_into_an_error(tmp_path):
    settings = StepSettings(**{**DIVERGING.__dict__, "on_failed_critic": "error"})
    write_plan(tiny_tiles(tmp_path), tmp_path / "plan.json", n_blocks=2)
    with pytest.raises(InputError, match=r"step 1: .*critic"):
        write_step(tmp_path / "tiles.h5", tmp_path / "plan.json", 1, tmp_path / "s.pt", tmp_path / "s.json",
                   settings, seed=0, device="cpu")
    assert leftovers(tmp_path / "s.pt") == []
