"""Walks on a known smooth F, acceptance, and the samples file of every generator."""

import numpy as np
import pytest
import torch

from dualdiv.core.errors import ConfigError
from dualdiv.data.samples import load_samples
from dualdiv.data.tiles import TileSettings
from dualdiv.evaluation.metrics import closest_distances
from dualdiv.generators import generator_class, resolve_method
from dualdiv.generators.walks import distance_threshold, gap_intervals, walk
from dualdiv.stages.ingest import ingest
from dualdiv.stages.sample import write_samples
from dualdiv.stages.tile import tile


class Quadratic(torch.nn.Module):
    """A known smooth dual function: F(x) = Σ w·x + ½ Σ x²."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.linspace(-1, 1, int(np.prod(shape))).reshape(shape)

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1) + 0.5 * x.pow(2).flatten(1).sum(1)


def test_walk_reaches_target_and_respects_bounds():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(6, 2, 5)).astype(np.float32)
    F = Quadratic((2, 5))
    start = F(torch.as_tensor(x0)).numpy()
    targets = start + np.array([3.0, -2.0, 1.0, 0.5, -1.0, 2.0])
    bounds = (np.full((2, 1), -2.5), np.full((2, 1), 2.5))
    x, value, steps, trajectory = walk(F, x0, targets, step_size=0.5, tolerance=0.05, max_steps=100,
                                       bounds=bounds, noise=0.0)
    assert np.all(np.abs(value - targets) < 0.05)
    assert x.min() >= -2.5 and x.max() <= 2.5
    assert all(len(t) == s + 1 for t, s in zip(trajectory, steps, strict=True))


def test_walk_clipping_is_never_violated_with_noise():
    x0 = np.zeros((4, 2, 5), dtype=np.float32)
    x, *_ = walk(Quadratic((2, 5)), x0, np.full(4, 50.0), step_size=1.0, noise=0.5, max_steps=20,
                 bounds=(np.full((2, 1), -1.0), np.full((2, 1), 1.0)))
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_gap_intervals_around_cuts_and_holes():
    train_F = np.array([0.0, 0.1, 0.2, 5.0, 5.1, 5.3])
    assert gap_intervals(train_F, [2.5], lo=-1, hi=6) == [(0.2, 5.0)]
    assert gap_intervals(train_F, [], lo=-1, hi=6, n_holes=1) == [(0.2, 5.0)]


class KnownSpace:
    """A fitted dual space in all but the path: F is a known function (what a walk's fit reads)."""

    plan_ = {"known": True}

    def __init__(self, F, train):
        self.F = F
        self.fit_F_ = F(torch.as_tensor(train)).numpy().astype(np.float64)
        self.lo_, self.hi_ = float(self.fit_F_.min()) - 1, float(self.fit_F_.max())

    def dual_function(self):
        return self.F

    def transform(self, images):
        return self.F(torch.as_tensor(np.asarray(images, dtype=np.float32))).numpy().astype(np.float64)

    def localize(self, images, F=None):
        return {"boundaries": []}


def test_gap_walk_rejects_copies_and_is_deterministic():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(20, 2, 5)).astype(np.float32)
    space = KnownSpace(Quadratic((2, 5)), train)
    generator = generator_class("dualdiv_walk")(start="image", max_steps=5, max_rounds=1).fit(
        train, space=space, boundaries=[], novelty_threshold=1e9)  # every sample is "too close"
    images, records = generator.sample(8, seed=3)
    assert images.shape == (8, 2, 5)
    assert not any(r["accepted"] for r in records)
    assert {r["rejected_because"] for r in records} <= {"near_copy", "outside_window"}
    again, _ = generator.sample(8, seed=3)
    np.testing.assert_array_equal(images, again)


def test_walk_fit_needs_a_space_and_defaults_to_its_clusters_and_a_training_threshold():
    train = np.random.default_rng(2).normal(size=(20, 2, 5)).astype(np.float32)
    with pytest.raises(ConfigError, match="needs space="):
        generator_class("dualdiv_walk")().fit(train)
    walker = generator_class("dualdiv_basewalk")(max_steps=3).fit(train, seed=1, space=KnownSpace(Quadratic((2, 5)),
                                                                                                 train))
    assert walker.boundaries_ == [] and walker.novelty_threshold_ == distance_threshold(None, train)
    assert 0 < walker.novelty_threshold_ < np.inf and walker.sample(4, seed=0)[0].shape == (4, 2, 5)


def test_closest_distance_of_a_copy_is_zero():
    train = np.random.default_rng(0).normal(size=(5, 2, 3))
    assert closest_distances(train[:2], train).max() == 0


@pytest.fixture
def tiny_tiles(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(32)
    x = np.sin(2 * np.pi * t / 8)[None, None, :] + 0.3 * rng.normal(size=(40, 3, 32))
    np.save(tmp_path / "x.npy", x)
    ingest([tmp_path / "x.npy"], tmp_path / "raw.nc")
    tile(tmp_path / "raw.nc", tmp_path / "tiles.h5", TileSettings())
    return tmp_path / "tiles.h5"


@pytest.mark.parametrize("method", ["spectral", "var", "gaussian_lw", "copy", "interpolate", "marginals"])
def test_samples_file_round_trip(tmp_path, tiny_tiles, method):
    samples = write_samples(tiny_tiles, method, tmp_path / f"{method}.h5", n=12, seed=4)
    back = load_samples(tmp_path / f"{method}.h5")
    assert back.images.shape == (12, 3, 32) and back.generator == method and back.seed == 4
    np.testing.assert_array_equal(back.images, samples.images)
    assert len(back.records) == 12
    assert back.images_physical.shape == back.images.shape
    again = write_samples(tiny_tiles, method, tmp_path / "again.h5", n=12, seed=4)
    np.testing.assert_array_equal(again.images, samples.images)


def test_dualdiv_resolves_to_the_default_variant():
    assert resolve_method("dualdiv", {"default": "dualdiv_corrected", "settings": {
        "dualdiv_corrected": {"sampler": "mala"}}}) == ("dualdiv_corrected", {"sampler": "mala"})
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        resolve_method("nope", {})
