"""Peer generators (dualdiv.generators.peers): the subprocess protocol, its checks, and a missing peer recorded
as a failed baseline. The real peers (TSGM, SDV) run only where their environments exist:
DUALDIV_PEER_TSGM_PYTHON / DUALDIV_PEER_SDV_PYTHON name their interpreters (benchmarks/peers/install.sh)."""

import importlib.util
import os
import sys

import numpy as np
import pytest

from dualdiv.core.errors import ConfigError
from dualdiv.data.samples import load_samples
from dualdiv.generators import PEERS, REGISTRY, make_generator
from dualdiv.generators import peers as peers_module
from dualdiv.generators.peers import Peer
from dualdiv.stages.ingest import ingest
from dualdiv.stages.sample import write_samples
from dualdiv.stages.tile import tile


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3, 16)).cumsum(axis=2)
    return ((x - x.mean()) / x.std()).astype(np.float32)


@pytest.fixture(scope="module")
def small_tiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    np.save(folder / "x.npy", np.random.default_rng(0).normal(size=(24, 2, 16)))
    ingest([folder / "x.npy"], folder / "raw.nc")
    tile(folder / "raw.nc", folder / "tiles.h5")
    return folder / "tiles.h5"


def test_every_peer_is_registered_with_its_model():
    for key in PEERS:
        assert key in REGISTRY
        generator = make_generator(key, python=sys.executable, budget_s=5)
        assert generator.key == key and generator.model == key and generator.settings()["budget_s"] == 5


def test_protocol_round_trip_is_deterministic_and_recorded(images):
    first = Peer(budget_s=1).fit(images, seed=2)
    drawn, records = first.sample(9, seed=4)
    assert drawn.shape == (9, 3, 16) and drawn.dtype == np.float32 and np.isfinite(drawn).all()
    # numpy_gaussian: independent pixels with the training images' per-pixel mean and sd
    assert abs(drawn.mean() - images.mean()) < 0.5 and drawn.std() > 0.3
    assert len(records) == 9 and records[0]["peer"] == "numpy_gaussian" and "sample_s" in records[0]
    assert records[0]["budget_reached"] is False
    again, _ = Peer(budget_s=1).fit(images, seed=2).sample(9, seed=4)
    np.testing.assert_array_equal(drawn, again)
    other, _ = first.sample(9, seed=5)
    assert not np.array_equal(drawn, other)
    assert first.report_["versions"]["python"] == sys.version.split()[0]


def test_bad_settings_are_one_line_errors(images, tmp_path):
    with pytest.raises(ConfigError, match="not an executable interpreter"):
        Peer(python=str(tmp_path / "no" / "python")).fit(images)
    with pytest.raises(ConfigError, match="budget_s must be > 0"):
        Peer(budget_s=0).fit(images)
    with pytest.raises(RuntimeError, match="unknown model 'nope'"):
        Peer(model="nope").fit(images).sample(3, seed=0)


@pytest.mark.skipif(importlib.util.find_spec("tsgm") is not None, reason="tsgm is installed beside dualdiv here")
def test_a_peer_missing_from_its_environment_says_which_package_and_where(images):
    with pytest.raises(RuntimeError, match=r"tsgm_vae: the peer exited 3: .*needs the package 'tsgm' in"):
        make_generator("tsgm_vae", python=sys.executable).fit(images).sample(3, seed=0)


def test_what_the_peer_returns_is_checked(images, tmp_path, monkeypatch):
    """A runner that answers with NaN or the wrong shape: the sample stage gets a clear error, not the images."""
    for answer, message in (("np.full((n, 3, 16), np.nan)", "non-finite values"),
                            ("np.zeros((n, 16, 3))", r"shape \(3, 16, 3\), expected \(3, 3, 16\)")):
        fake = tmp_path / "runner.py"
        fake.write_text("import json, sys, numpy as np\n"
                        "r = json.load(open(sys.argv[1])); n = r['n_samples']\n"
                        f"np.savez(r['out'], images={answer})\n"
                        "json.dump({'fit_s': 0.0, 'sample_s': 0.0}, open(r['report'], 'w'))\n")
        monkeypatch.setattr(peers_module, "RUNNER", fake)
        with pytest.raises(RuntimeError, match=message):
            Peer().fit(images).sample(3, seed=0)


def test_a_peer_that_cannot_run_is_a_failed_baseline_not_a_stopped_pipeline(small_tiles, tmp_path):
    out = tmp_path / "sdv_par.h5"
    sample = {"settings": {"sdv_par": {"python": str(tmp_path / "absent" / "python")}}}
    write_samples(small_tiles, "sdv_par", out, 5, 0, sample, record_failure=True)
    written = load_samples(out)
    assert len(written.images) == 0 and "not an executable interpreter" in written.failed


PEER_PYTHONS = {"tsgm_vae": os.environ.get("DUALDIV_PEER_TSGM_PYTHON"),
                "sdv_par": os.environ.get("DUALDIV_PEER_SDV_PYTHON")}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(PEER_PYTHONS))
def test_real_peer_fits_and_draws_deterministically(key, images):
    if not PEER_PYTHONS[key]:
        pytest.skip(f"no environment for {key} (set DUALDIV_PEER_{key.split('_')[0].upper()}_PYTHON)")
    options = {"epochs": 5}
    first = make_generator(key, python=PEER_PYTHONS[key], budget_s=120, options=options).fit(images, seed=1)
    drawn, records = first.sample(6, seed=2)
    assert drawn.shape == (6, 3, 16) and np.isfinite(drawn).all() and records[0]["epochs"] == 5
    again, _ = make_generator(key, python=PEER_PYTHONS[key], budget_s=120, options=options).fit(
        images, seed=1).sample(6, seed=2)
    np.testing.assert_array_equal(drawn, again)
