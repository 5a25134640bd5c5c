"""Degenerate channels are data: the copula margins, the physical constraints, and a baseline that fails."""

import json

import numpy as np
import pytest
import scipy.stats

from dualdiv.data.samples import load_samples
from dualdiv.data.tiles import Tiles, channel_stats, normalise, to_physical, write_tiles
from dualdiv.generators import make_generator
from dualdiv.generators.constraints import Constrained, apply_constraints, channel_units, detect_constraints
from dualdiv.generators.marginals import MarginalTransform, mean_share
from dualdiv.stages.evaluate import write_evaluation, write_summary
from dualdiv.stages.sample import write_samples


def weather(n=60, seed=0):
    """Days × (irradiance ≥ 0, exactly 0 at night; constant pressure; counts; humidity in %; wind direction)
    × 24 hours, in physical units."""
    rng = np.random.default_rng(seed)
    hours = np.arange(24)
    sun = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None)  # 0 from 18:00 to 06:00
    x = np.empty((n, 5, 24))
    x[:, 0] = np.clip(rng.gamma(2.0, 300.0, (n, 1)) * sun + rng.normal(0, 40, (n, 24)) * sun, 0, None)
    x[:, 1] = 1013.0
    x[:, 2] = rng.poisson(3.0, (n, 24))
    x[:, 3] = np.clip(60 + rng.normal(0, 25, (n, 24)), 0, 100)
    x[:, 4] = rng.uniform(0, 360, (n, 24))
    return x


NAMES = ["ghi", "pressure", "counts", "relative_humidity", "wind_direction"]
UNITS = "ghi [W/m^2]; pressure [mbar]; counts [1]; relative_humidity [%]; wind_direction [degrees (circular)]"


def normalised(x):
    mean, std, _ = channel_stats(x)
    return normalise(x, mean, std), mean, std


# ------------------------------------------------------------------ the copula margins

def test_margins_round_trip_exactly_and_give_standard_normal_scores():
    rng = np.random.default_rng(1)
    x = np.stack([rng.standard_t(3, (80, 40)),                                   # heavy tails
                  np.maximum(0, rng.normal(0, 1, (80, 40)) + np.linspace(-2, 2, 40)),  # zero-inflated, drifting
                  rng.poisson(2.0, (80, 40)).astype(float)], axis=1)             # counts: ties
    for mode in ("pixel", "channel"):
        transform = MarginalTransform(mode).fit(x)
        scores = transform.to_normal(x, np.random.default_rng(0))
        np.testing.assert_array_equal(transform.from_normal(scores), x)  # ties mapped back onto their atom
        for c in range(3):  # randomised ranks: the scores are N(0, 1) even for atoms
            assert scipy.stats.kstest(scores[:, c].ravel(), "norm").statistic < 0.03
    auto = MarginalTransform("auto").fit(x)
    # heavy tails and counts transformed (one marginal each: stationary); the zero-inflated continuous
    # channel is left to the constraints
    assert auto.identity_.tolist() == [False, True, False] and not auto.pixelwise_.any()
    assert auto.discrete_.tolist() == [False, False, True] and auto.atom_share_[1] > 0.3


def test_margins_keep_atoms_and_extrapolate_smooth_tails():
    rng = np.random.default_rng(2)
    x = np.stack([np.where(rng.random((200, 16)) < 0.4, 0.0, rng.exponential(1.0, (200, 16))),
                  rng.normal(0, 1, (200, 16))], axis=1)
    transform = MarginalTransform("channel").fit(x)
    new = transform.from_normal(np.random.default_rng(3).standard_normal((2000, 2, 16)))
    assert abs((new[:, 0] == 0).mean() - 0.4) < 0.03 and new[:, 0].min() == 0.0  # the atom, never below it
    extreme = transform.from_normal(np.full((1, 2, 16), -6.0))  # beyond every training value: a linear tail
    assert extreme[0, 0].max() == 0.0 and (extreme[0, 1] < x[:, 1].min()).all()


def test_auto_margins_leave_offset_dominated_channels_as_they_are():
    rng = np.random.default_rng(4)
    offsets = rng.normal(0, 3, (50, 1, 1))  # EEG-like: each trial's own DC offset dominates
    x = np.concatenate([offsets + rng.normal(0, 1, (50, 1, 32)), rng.standard_t(3, (50, 1, 32))], axis=1)
    share = mean_share(x)
    assert share[0] > 0.8 and share[1] < 0.1
    transform = MarginalTransform("auto").fit(x)
    assert transform.identity_.tolist() == [True, False]
    scores = transform.to_normal(x, np.random.default_rng(0))
    np.testing.assert_array_equal(scores[:, 0], x[:, 0])


def test_dual_correction_with_margins_stays_in_the_data_support():
    rng = np.random.default_rng(5)
    counts = rng.poisson(np.linspace(0.5, 4, 32), (60, 3, 32)).astype(np.float32)  # rate rises after an onset
    x, mean, std = normalised(counts)
    generator = make_generator("dualdiv", critic_iterations=20, candidates=4, mala_steps=5)
    assert generator.marginals == "auto"
    wrapped = Constrained(generator, mean, std, ["a", "b", "c"], "spikes per bin")
    images, records = wrapped.fit(x, seed=0).sample(40, seed=1)
    physical = to_physical(images, mean, std)
    assert np.allclose(physical, np.round(physical), atol=1e-4) and physical.min() > -1e-4
    assert generator.marginals_.pixelwise_.all() and "marginals" in records[0]


# ------------------------------------------------------------------ constraints

def test_detected_constraints_of_a_weather_day():
    x = weather()
    images, _, _ = normalised(x)
    found = detect_constraints(x, images, NAMES, UNITS)
    record = found.record()
    assert record["constant_channels"] == ["pressure"]
    assert record["integer"] == ["counts"]
    assert record["lower_bound"] == {"ghi": 0.0, "counts": 0.0, "relative_humidity": 0.0}
    assert record["upper_bound"] == {"relative_humidity": 100.0}
    assert record["circular_period"] == {"wind_direction": 360.0}
    assert found.constant_pixels[0, :7].all() and not found.constant_pixels[0, 8:17].any()  # night only
    assert channel_units("uV", ["a", "b"]) == ["uV", "uV"]


def test_applied_constraints_hold_and_are_counted():
    x = weather()
    images, mean, std = normalised(x)
    found = detect_constraints(x, images, NAMES, UNITS)
    noisy = images + np.random.default_rng(0).normal(0, 2.0, images.shape).astype(np.float32)
    fixed, changed = apply_constraints(noisy, found, mean, std)
    physical = to_physical(fixed, mean, std)
    tol = 1e-3
    assert physical[:, 0].min() > -tol and np.abs(physical[:, 0, :6]).max() < tol  # no negative irradiance, night 0
    np.testing.assert_allclose(physical[:, 1], 1013.0, atol=tol)  # the constant channel constant
    assert np.allclose(physical[:, 2], np.round(physical[:, 2]), atol=tol) and physical[:, 2].min() > -tol
    assert physical[:, 3].min() > -tol and physical[:, 3].max() < 100 + tol
    assert physical[:, 4].min() > -tol and physical[:, 4].max() < 360 + tol
    assert set(changed) == {"wrapped", "clipped", "rounded", "set_constant"} and 0 < changed["rounded"]["counts"] <= 1


@pytest.fixture
def weather_tiles(tmp_path):
    x = weather(n=40)
    images, mean, std = normalised(x)
    split = np.array(["train"] * 30 + ["test"] * 10)
    path = tmp_path / "tiles.h5"
    write_tiles(path, Tiles(images=images, split=split, sample_id=np.arange(40), window_start=np.zeros(40, int),
                            channel_mean=mean, channel_std=std, channel_names=NAMES, units=UNITS))
    return path


@pytest.mark.parametrize("method", ["var", "spectral", "gaussian_lw", "marginals", "interpolate", "jitter"])
def test_every_generator_fits_a_constant_channel_and_keeps_the_constraints(tmp_path, weather_tiles, method):
    """The user's weather file: the constant pressure channel made var stop with "Singular matrix"."""
    samples = write_samples(weather_tiles, method, tmp_path / f"{method}.h5", 20, seed=0)
    physical = samples.images_physical
    assert samples.failed is None and physical.shape == (20, 5, 24)
    assert np.ptp(physical[:, 1]) < 1e-3 and abs(physical[0, 1, 0] - 1013) < 1e-3
    assert physical[:, 0].min() >= -1e-3 and np.abs(physical[:, 0, :6]).max() < 1e-3
    assert np.allclose(physical[:, 2], np.round(physical[:, 2]), atol=1e-3)
    provenance = load_samples(tmp_path / f"{method}.h5").provenance
    assert provenance["settings"]["constraints"]["constant_channels"] == ["pressure"]


def test_constraints_off_leaves_the_generator_output(tmp_path, weather_tiles):
    samples = write_samples(weather_tiles, "spectral", tmp_path / "s.h5", 20, seed=0,
                            sample_config={"constraints": False})
    assert samples.images_physical[:, 0].min() < -1  # a Gaussian puts negative irradiance into the night
    assert "constraints" not in load_samples(tmp_path / "s.h5").provenance["settings"]


def test_a_failing_baseline_is_recorded_evaluated_and_summarised(tmp_path, weather_tiles):
    config = {"settings": {"var": {"order": 1000}}}  # longer than the 24-hour series: var cannot fit
    with pytest.raises(Exception, match="var.order: 1000"):
        write_samples(weather_tiles, "var", tmp_path / "raise.h5", 10, sample_config=config)
    assert not (tmp_path / "raise.h5").exists()
    failed = write_samples(weather_tiles, "var", tmp_path / "var.h5", 10, sample_config=config, record_failure=True)
    back = load_samples(tmp_path / "var.h5")
    assert back.failed == failed.failed and "var.order: 1000" in back.failed and back.images.shape == (0, 5, 24)
    evals = tmp_path / "eval"
    evals.mkdir()
    result = write_evaluation(tmp_path / "var.h5", weather_tiles, evals / "var.json")
    assert result["failed"] == back.failed and "c2st_auc_features" not in result
    write_samples(weather_tiles, "copy", tmp_path / "copy.h5", 10)
    write_evaluation(tmp_path / "copy.h5", weather_tiles, evals / "copy.json")
    (tmp_path / "results" / "w" / "eval").mkdir(parents=True)
    for method in ("var", "copy"):
        (tmp_path / "results" / "w" / "eval" / f"{method}.json").write_text((evals / f"{method}.json").read_text())
    rows = write_summary({"w": {m: tmp_path / "results" / "w" / "eval" / f"{m}.json" for m in ("var", "copy")}},
                         tmp_path / "results" / "summary.csv", tmp_path / "results" / "summary.md")
    assert {"dataset": "w", "method": "var", "metric": "failed", "value": 1, "ci_low": "", "ci_high": "", "n": 1,
            "reliable": ""} in rows
    text = (tmp_path / "results" / "summary.md").read_text()
    assert "**var failed** on these data: ConfigError" in text and "var.order: 1000" in text
    assert json.loads((evals / "copy.json").read_text())["c2st_auc_features"] is not None


# ------------------------------------------------------------------ the benchmark readers' units

def _tiles_of(tmp_path, path, fmt, conditional=False):
    from dualdiv.data.ingest import IngestSettings
    from dualdiv.stages.ingest import ingest
    from dualdiv.stages.tile import tile

    ingest([path], tmp_path / "raw.nc", IngestSettings(format=fmt))
    tile(tmp_path / "raw.nc", tmp_path / "tiles.h5")
    return tmp_path / "tiles.h5"


@pytest.mark.parametrize("method", ["spectral", "var", "dualdiv"])
def test_tmy3_samples_are_physical(tmp_path, method):
    """TMY3 weather (pvlib's file): no negative irradiance, none at night, humidity in %, directions in range."""
    pytest.importorskip("pvlib")
    from dualdiv.data.packages import resolve_path

    tiles = _tiles_of(tmp_path, resolve_path("package:pvlib/data/723170TYA.CSV"), "tmy3")
    settings = {"settings": {"dualdiv_corrected": {"critic_iterations": 20, "mala_steps": 5}}}
    physical = write_samples(tiles, method, tmp_path / "s.h5", 30, sample_config=settings).images_physical
    names = list(load_samples(tmp_path / "s.h5").channel_names)
    by = {name: physical[:, names.index(name)] for name in names}
    tol = 1e-2
    for irradiance in ("ghi", "dni", "dhi"):
        assert by[irradiance].min() > -tol and np.abs(by[irradiance][:, :4]).max() < tol  # 01:00–04:00 dark
        assert np.allclose(by[irradiance], np.round(by[irradiance]), atol=tol)  # whole W/m², as recorded
    assert by["relative_humidity"].min() > -tol and by["relative_humidity"].max() < 100 + tol
    assert by["wind_direction"].min() > -tol and by["wind_direction"].max() < 360 + tol
    assert by["wind_speed"].min() > -tol


@pytest.mark.parametrize("method", ["spectral", "gaussian_lw", "dualdiv"])
def test_spike_samples_are_counts(tmp_path, method):
    from conftest import ROOT

    tiles = _tiles_of(tmp_path, ROOT / "resources/spikes_sim/simulation.json", "spikes_sim")
    settings = {"settings": {"dualdiv_corrected": {"critic_iterations": 20, "mala_steps": 5}},
                "conditional": False}
    physical = write_samples(tiles, method, tmp_path / "s.h5", 30, sample_config=settings).images_physical
    assert physical.min() > -1e-4 and np.allclose(physical, np.round(physical), atol=1e-4)
