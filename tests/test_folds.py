"""Cross-fitted evaluation (evaluate.folds): fold tilings, fold units of the workflow, intervals over
folds × seeds, paired comparisons, and the summary built from them; one tiny workflow run."""

import csv
import itertools
import json
import re
import shutil

import numpy as np
import pytest
from scipy import stats
from test_workflow import TEST_DIR, dry_run_jobs, snakemake

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.tiles import TileSettings, fold_recordings, load_tiles, split_single_recording
from dualdiv.evaluation.intervals import mean_interval, paired_difference, sign_flip_p, verdict
from dualdiv.evaluation.metrics import metric_direction
from dualdiv.stages.evaluate import PAIRED_FIELDS, SUMMARY_FIELDS, read_paired, read_summary, write_summary
from dualdiv.stages.workflow import (
    cross_fitting,
    dataset_settings,
    parse_unit,
    unit_name,
    workflow_seed,
    workflow_units,
)

# ------------------------------------------------------------------------------------------ fold tilings


@pytest.mark.parametrize("seed", [0, 1])
def test_fold_recordings_partition_and_stratify(seed):
    labels = np.array(["a"] * 7 + ["b"] * 12 + ["c"] * 4)
    masks = np.array([fold_recordings(len(labels), 5, fold, seed, labels) for fold in range(5)])
    assert (masks.sum(axis=0) == 1).all()  # every recording held out exactly once
    assert np.ptp(masks.sum(axis=1)) <= 1  # fold sizes differ by at most one
    for label in "abc":  # each class spread as evenly as its size allows
        counts = masks[:, labels == label].sum(axis=1)
        assert np.ptp(counts) <= 1, (label, counts)
    other = np.array([fold_recordings(len(labels), 5, fold, seed + 7, labels) for fold in range(5)])
    assert not (other == masks).all()  # another seed, another partition


@pytest.mark.parametrize("how", ["chronological", "interleaved", "random"])
def test_fold_windows_of_one_recording_are_held_out_once_and_never_overlap_training(how):
    window, stride = 16, 8
    starts = np.arange(0, 400, stride)
    splits = [split_single_recording(starts, window, 0.2, how, 3, folds=4, fold=fold) for fold in range(4)]
    tested = np.array([split == "test" for split in splits])
    assert (tested.sum(axis=0) == 1).all()
    for split in splits:
        test_starts, train_starts = starts[split == "test"], starts[split == "train"]
        assert len(train_starts) >= len(starts) // (2 if how == "chronological" else 5)  # dropped: overlaps
        assert np.abs(train_starts[:, None] - test_starts[None, :]).min() >= window  # no shared time point
    if how == "chronological":  # blocks in time: each fold's test windows are contiguous
        for split in splits:
            index = np.flatnonzero(split == "test")
            assert (np.diff(index) == 1).all()


def test_tile_settings_check_folds():
    assert TileSettings(folds=3, fold=2).fold == 2
    with pytest.raises(ConfigError, match="tile.folds: an integer ≥ 2"):
        TileSettings(folds=1)
    with pytest.raises(ConfigError, match=re.escape("tile.fold: an integer in [0, 2]")):
        TileSettings(folds=3, fold=3)


def test_tile_stage_holds_out_the_fold_and_names_an_empty_one(tmp_path):
    from dualdiv.data.ingest import IngestSettings
    from dualdiv.stages.ingest import ingest
    from dualdiv.stages.tile import tile

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(9, 2, 8)).astype(np.float32))
    ingest([tmp_path / "x.npy"], tmp_path / "raw.nc", IngestSettings(min_samples=2))
    held_out = []
    for fold in range(3):
        tile(tmp_path / "raw.nc", tmp_path / f"t{fold}.h5", TileSettings(folds=3, fold=fold, seed=5))
        tiles = load_tiles(tmp_path / f"t{fold}.h5")
        held_out += list(tiles.sample_id[tiles.split == "test"])
        assert tiles.provenance["settings"]["fold"] == fold
    assert sorted(held_out) == list(range(9))
    np.save(tmp_path / "y.npy", np.random.default_rng(0).normal(size=(3, 2, 8)).astype(np.float32))
    ingest([tmp_path / "y.npy"], tmp_path / "rawy.nc", IngestSettings(min_samples=2))
    with pytest.raises(InputError, match="fold 3 of evaluate.folds=4 holds no image .*lower evaluate.folds"):
        tile(tmp_path / "rawy.nc", tmp_path / "ty.h5", TileSettings(folds=4, fold=3))


# -------------------------------------------------------------------------------------- workflow units


def test_fold_units_name_settings_and_seeds():
    config = {"seed": 9, "datasets": {"a": {"path": "a.npy"}, "b": {"path": "b.npy", "evaluate": {"folds": 3}}},
              "evaluate": {"seeds": None}}
    units = workflow_units(config)
    assert units == {"a": "a", **{unit_name("b", 9, fold): "b" for fold in range(3)}}
    name = unit_name("b", 9, 2)
    assert parse_unit(name) == ("b", 9, 2) and parse_unit("a") is None and parse_unit("x/folds/y") is None
    tile = dataset_settings(config, name, "tile")
    assert (tile["folds"], tile["fold"], tile["seed"]) == (3, 2, 9)
    assert "folds" not in dataset_settings(config, "a", "tile")  # the single split's settings are as before
    config["datasets"]["b"]["evaluate"]["seeds"] = [0, 4]
    assert list(workflow_units(config))[1:] == [unit_name("b", s, f) for s in (0, 4) for f in range(3)]
    assert dataset_settings(config, unit_name("b", 4, 0), "sample")["seed"] == 4
    assert workflow_seed(config, unit_name("b", 4, 0)) == 4 and workflow_seed(config, "a") == 9
    assert cross_fitting(config, "a") is None and cross_fitting(config, "b") == (3, [0, 4])
    config["datasets"]["a"]["evaluate"] = {"seeds": [1, 2]}
    with pytest.raises(ConfigError, match="evaluate.seeds .*needs evaluate.folds"):
        workflow_units(config)


def test_dry_run_shows_every_fold_unit_as_its_own_jobs(tmp_path):
    shutil.copytree(TEST_DIR / "data", tmp_path / "data")
    (tmp_path / "c.yaml").write_text(
        "datasets: {tiny: {path: data/tiny.npy}}\n"
        "sample: {methods: [dualdiv_walk, copy]}\n"
        "evaluate: {folds: 3, seeds: [0, 1]}\n")
    result = snakemake(tmp_path, "--configfile", "c.yaml", "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = dry_run_jobs(result)
    assert jobs.count("tile") == 6 and jobs.count("ingest") == 1
    assert jobs.count("dual") == 6 and jobs.count("evaluate") == 12  # the walk needs each unit's own path
    assert jobs.count("path_step") == 6 * 4  # n_blocks = 4 steps per unit, each a job of its own
    for unit in (unit_name("tiny", s, f) for s in (0, 1) for f in range(3)):
        assert f"results/{unit}/tiles.h5" in result.stdout


# ---------------------------------------------------------------------------------------------- intervals


def test_mean_interval_is_the_t_interval_widened_by_the_fold_correction():
    values = [0.3, 0.5, 0.4, 0.7, 0.6, 0.2]
    plain = mean_interval(values)
    x = np.array(values)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert plain["n"] == 6 and plain["value"] == pytest.approx(x.mean())
    assert (plain["ci_low"], plain["ci_high"]) == pytest.approx((low, high))
    corrected = mean_interval(values, folds=3)  # (1/n + 1/(k − 1)) instead of 1/n: √(4) = 2 × wider at n = 6
    assert corrected["ci_high"] - corrected["value"] == pytest.approx(2 * (high - x.mean()))
    assert mean_interval([1.0, float("nan"), None])["n"] == 1  # NaN/None left out; no interval from one value
    assert np.isnan(mean_interval([1.0])["ci_low"]) and mean_interval([])["n"] == 0


def test_plain_interval_covers_independent_draws_at_its_level():
    rng = np.random.default_rng(0)
    covered = [(r["ci_low"] <= 1.0 <= r["ci_high"]) for r in (mean_interval(rng.normal(1.0, 2.0, 8))
                                                             for _ in range(2000))]
    assert 0.935 <= np.mean(covered) <= 0.965


def test_corrected_interval_covers_the_mean_of_cross_fitted_scores():
    """Scores of k-fold cross-fitting on a Gaussian sample (the held-out mean squared error of the training
    mean) are correlated through the shared training images: the plain t-interval over folds × seeds covers
    the expected score too rarely, the corrected one at least at about its level."""
    rng = np.random.default_rng(1)
    n, k, seeds = 60, 5, 3
    truth = 1 + 1 / (n * (k - 1) / k)  # E (x_test − mean_train)² for unit-variance x
    plain, corrected = [], []
    for _ in range(400):
        x = rng.normal(size=n)
        scores = []
        for _ in range(seeds):
            fold = rng.permutation(n) % k
            scores += [np.mean((x[fold == f] - x[fold != f].mean()) ** 2) for f in range(k)]
        plain.append(mean_interval(scores))
        corrected.append(mean_interval(scores, folds=k))
    cover = [np.mean([r["ci_low"] <= truth <= r["ci_high"] for r in rows]) for rows in (plain, corrected)]
    assert cover[0] < 0.85 and cover[1] >= 0.9, cover


def test_paired_difference_and_sign_flip_p():
    d = [0.2, 0.3, 0.1, 0.4, 0.25]
    result = paired_difference(np.array(d) + 1, np.ones(5))
    assert result["difference"] == pytest.approx(np.mean(d)) and result["n"] == 5
    assert result["p_sign_flip"] == pytest.approx(2 / 32)  # all five positive: 2 of the 2⁵ patterns as extreme
    assert result["p_value"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    exact = [abs(np.dot(signs, [1, -2, 3])) >= abs(1 - 2 + 3) for signs in itertools.product((1, -1), repeat=3)]
    assert sign_flip_p([1, -2, 3]) == pytest.approx(np.mean(exact))
    big = sign_flip_p(np.random.default_rng(0).normal(0.0, 1.0, 40), seed=1)
    assert 0 < big <= 1 and sign_flip_p(np.ones(40), seed=1) == pytest.approx(1 / 20_001)
    same = paired_difference([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["difference"] == 0 and same["p_value"] == 1.0
    missing = paired_difference([1.0, float("nan"), 3.0, 4.0], [0.0, 1.0, None, 2.0])
    assert missing["n"] == 2  # only fits where both have the value


def test_verdict_follows_the_metric_direction():
    lower = {"ci_low": -0.3, "ci_high": -0.1}
    assert verdict(lower, "lower") == "better" and verdict(lower, "higher") == "worse"
    assert verdict({"ci_low": -0.1, "ci_high": 0.2}, "lower") == "tied"
    assert verdict(lower, None) == "" and verdict({"ci_low": float("nan"), "ci_high": 1}, "lower") == ""
    assert metric_direction("c2st_auc_features") == "lower" and metric_direction("near_copy_fraction") == "lower"
    assert metric_direction("tstr_balanced_accuracy_gain") == "higher" and metric_direction("dcr_ratio") is None


# ------------------------------------------------------------------------------------------------ summary


def _fits(tmp_path, folds=3, seeds=(0, 1)):
    """Eval JSONs of a cross-fitted data set "d": dualdiv better than spectral by 0.1 on every fit (C2ST),
    references ranked right; spectral failed on one fit."""
    rng = np.random.default_rng(0)
    paths = {}
    for seed, fold in itertools.product(seeds, range(folds)):
        name = unit_name("d", seed, fold)
        folder = tmp_path / name / "eval"
        folder.mkdir(parents=True)
        base = rng.normal(0.7, 0.05)
        values = {"dualdiv": base, "spectral": base + 0.1, "copy": 0.5, "interpolate": 0.9, "marginals": 0.8}
        paths[name] = {}
        for method, auc in values.items():
            evaluation = {"c2st_auc_features": auc, "kl_dv_gen_real_features": auc * 2, "label": "x"}
            if method == "spectral" and (seed, fold) == (1, 2):
                evaluation = {"method": method, "failed": "ValueError: cannot fit"}
            (folder / f"{method}.json").write_text(json.dumps(evaluation))
            paths[name][method] = str(folder / f"{method}.json")
    return paths


def test_cross_fitted_summary_has_means_intervals_and_paired_differences(tmp_path):
    paths = _fits(tmp_path)
    out, paired, headline = tmp_path / "summary.csv", tmp_path / "paired.csv", tmp_path / "summary.md"
    single = tmp_path / "s" / "eval"
    single.mkdir(parents=True)
    (single / "copy.json").write_text(json.dumps({"c2st_auc_features": 0.5}))
    rows = write_summary({**paths, "s": {"copy": str(single / "copy.json")}}, out, headline, paired)
    with open(out, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == SUMMARY_FIELDS
    assert read_summary(out) == rows
    by_key = {(r["dataset"], r["method"], r["metric"]): r for r in rows}
    auc = by_key["d", "dualdiv", "c2st_auc_features"]
    values = [json.loads(open(paths[u]["dualdiv"]).read())["c2st_auc_features"] for u in paths]
    assert auc["n"] == 6 and auc["value"] == pytest.approx(np.mean(values))
    assert auc == {**auc, **{k: pytest.approx(v) for k, v in mean_interval(values, folds=3).items()}}
    assert auc["reliable"] is True  # judged on the references' means: copy 0.5 < marginals 0.8, interpolate 0.9
    assert by_key["d", "spectral", "c2st_auc_features"]["n"] == 5
    assert by_key["d", "spectral", "failed"]["value"] == 1 and by_key["d", "spectral", "failed"]["n"] == 6
    assert by_key["s", "copy", "c2st_auc_features"] == {"dataset": "s", "method": "copy",
                                                       "metric": "c2st_auc_features", "value": 0.5, "ci_low": "",
                                                       "ci_high": "", "n": 1, "reliable": ""}
    assert not any(r["metric"] == "label" for r in rows)
    comparisons = read_paired(paired)
    with open(paired, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == PAIRED_FIELDS
    spectral = next(r for r in comparisons if r["versus"] == "spectral" and r["metric"] == "c2st_auc_features")
    assert spectral["difference"] == pytest.approx(-0.1) and spectral["n"] == 5  # paired: the failed fit left out
    assert spectral["verdict"] == "better" and spectral["p_sign_flip"] == pytest.approx(2 / 32)
    assert {r["dataset"] for r in comparisons} == {"d"}  # single-split data sets have no paired rows
    text = headline.read_text()
    assert re.search(r"\| dualdiv +\| +0\.\d+ ± 0\.\d+", text)
    assert "Paired differences, dualdiv − method over 6 fits" in text and "-0.1 ± " in text and " b |" in text
    assert "**spectral failed** on 1 of 6 fits: ValueError: cannot fit" in text
    # a second config's data set: both files keep d's rows
    write_summary({"s": {"copy": str(single / "copy.json")}}, out, headline, paired)
    assert {r["dataset"] for r in read_summary(out)} == {"d", "s"} and len(read_paired(paired)) == len(comparisons)


def test_a_summary_written_before_the_intervals_is_read_and_kept(tmp_path):
    out = tmp_path / "summary.csv"
    out.write_text("dataset,method,metric,value,reliable\nold,copy,dcr_ratio,0.1,True\n")
    (tmp_path / "e.json").write_text(json.dumps({"dcr_ratio": 0.9}))
    rows = write_summary({"new": {"copy": str(tmp_path / "e.json")}}, out)
    assert {"dataset": "old", "method": "copy", "metric": "dcr_ratio", "value": 0.1, "ci_low": "", "ci_high": "",
            "n": 1, "reliable": True} in rows


# ----------------------------------------------------------------------------------------------- workflow


@pytest.mark.slow
def test_tiny_cross_fitted_workflow_holds_out_every_image_once(tmp_path):
    shutil.copytree(TEST_DIR / "data", tmp_path / "data")
    (tmp_path / "c.yaml").write_text(
        "seed: 3\n"
        "datasets: {tiny: {path: data/tiny.npy}}\n"
        "estimate: {n_blocks: 2, n_reference: 50, training: {max_iterations: 20, eval_every: 10, eval_substeps: 4,"
        " rows_per_substep: 8, final_resamplings: 2, checkpoint_every: 10, critic: {channels: 4}}}\n"
        "sample: {n_samples: 10, methods: [dualdiv, copy], settings: {dualdiv_corrected: {critic_iterations: 40}}}\n"
        "evaluate: {folds: 2}\n")
    result = snakemake(tmp_path, "--configfile", "c.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    held_out = []
    for fold in range(2):
        tiles = load_tiles(tmp_path / "results" / unit_name("tiny", 3, fold) / "tiles.h5")
        held_out += list(tiles.sample_id[tiles.split == "test"])
    assert sorted(held_out) == list(range(24))
    rows = read_summary(tmp_path / "results" / "summary.csv")
    auc = next(r for r in rows if (r["method"], r["metric"]) == ("dualdiv", "c2st_auc_features"))
    assert auc["n"] == 2 and auc["ci_low"] < auc["value"] < auc["ci_high"]
    paired = read_paired(tmp_path / "results" / "paired.csv")
    assert any(r["versus"] == "copy" and r["n"] == 2 for r in paired)
    assert (tmp_path / "results" / unit_name("tiny", 3, 0) / "figures" / "grid.png").exists()
    again = snakemake(tmp_path, "--configfile", "c.yaml", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
