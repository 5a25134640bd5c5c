"""The workflow under interference: a second snakemake on the same directory, SIGKILL of a running
snakemake and its jobs, a plan.json edited by hand. Real runs of a tiny config (slow)."""

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from reliability_support import SNAKEMAKE, assert_same_tiles, kill_group, start, wait_for

from dualdiv.data.tiles import load_tiles

CONFIG = """
seed: 3
datasets:
  tiny:
    path: x.npy
    tile: {test_fraction: 0.25}
estimate:
  n_blocks: 2
  n_reference: 50
  training: {max_iterations: 1000, eval_every: 20, checkpoint_every: 20, patience: 100, eval_substeps: 4,
             rows_per_substep: 8, final_resamplings: 2, critic: {channels: 4}}
sample:
  n_samples: 10
  methods: [dualdiv]
  settings: {dualdiv_corrected: {critic_iterations: 40}}
"""
TARGETS = ["results/tiny/dual.h5", "results/tiny/samples/dualdiv.h5"]
STEPS = (1, 2)


def _project(folder: Path) -> Path:
    np.save(folder / "x.npy", np.random.default_rng(0).normal(size=(24, 3, 16)))
    (folder / "tiny.yaml").write_text(CONFIG)
    return folder


def _command(*args: str) -> list[str]:
    return [*SNAKEMAKE, *args, "--configfile", "tiny.yaml"]  # --configfile last: it takes several values


def _snakemake(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), cwd=folder, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def first_and_second(tmp_path_factory):
    """A complete run, during which two more snakemakes were started on the same directory: a plain one,
    then one with --rerun-incomplete (what the plain one's message suggests)."""
    folder = _project(tmp_path_factory.mktemp("concurrent"))
    first = start(_command(*TARGETS), folder)
    wait_for(lambda: any((folder / ".snakemake" / "locks").glob("*")) or first.poll() is not None, 120,
             "the first run's lock", poll=0.1)
    others = [_snakemake(folder, *TARGETS), _snakemake(folder, *TARGETS, "--rerun-incomplete")]
    first_was_running = first.poll() is None
    _, first_stderr = first.communicate(timeout=600)
    return folder, first.returncode, first_stderr, others, first_was_running


@pytest.mark.slow
def test_second_snakemake_on_the_same_directory_is_refused_and_the_first_finishes(first_and_second):
    folder, first_returncode, first_stderr, (plain, rerun_incomplete), first_was_running = first_and_second
    assert first_was_running, "the first run ended before the others were refused: nothing was tested"
    for other in (plain, rerun_incomplete):
        output = other.stdout + other.stderr
        assert other.returncode != 0 and "rule " not in output  # refused before starting any job
    # the first run's running jobs look incomplete to the plain one, or it meets the lock
    assert any(text in plain.stdout + plain.stderr for text in ("Directory cannot be locked", "seem to be incomplete"))
    assert "Directory cannot be locked" in rerun_incomplete.stdout + rerun_incomplete.stderr
    assert first_returncode == 0, first_stderr[-3000:]
    assert all((folder / target).exists() for target in TARGETS)
    assert _snakemake(folder, *TARGETS, "-n").stdout.count("rule ") == 0  # nothing left to do


def _assert_same_artifacts(folder: Path, reference: Path) -> None:
    """Every artifact of the two runs equal: arrays bit for bit, step records but for timing."""
    results, expected = folder / "results/tiny", reference / "results/tiny"
    assert_same_tiles(load_tiles(results / "tiles.h5"), load_tiles(expected / "tiles.h5"))
    for step in STEPS:
        critic, expected_critic = (torch.load(r / f"path/step_{step}.pt", weights_only=True)
                                   for r in (results, expected))
        assert all(torch.equal(critic["model"][k], expected_critic["model"][k]) for k in expected_critic["model"])
        record, expected_record = (json.loads((r / f"path/step_{step}.json").read_text()) for r in (results, expected))
        for name in ("D", "stderr", "influence", "curve", "key"):
            assert record[name] == expected_record[name], (step, name)
    for name, datasets in (("dual.h5", ("F", "F_reference", "f_steps")), ("samples/dualdiv.h5", ("images",))):
        with h5py.File(results / name) as handle, h5py.File(expected / name) as expected_handle:
            for dataset in datasets:
                np.testing.assert_array_equal(handle[dataset][()], expected_handle[dataset][()], strict=True)


@pytest.mark.slow
def test_killed_snakemake_resumes_after_unlock_to_the_same_artifacts(first_and_second, tmp_path):
    reference = first_and_second[0]
    folder = _project(tmp_path)
    run = start(_command(*TARGETS), folder)
    checkpoints = folder / "results/tiny/path"
    wait_for(lambda: any(checkpoints.glob("step_*.ckpt")) or run.poll() is not None, 300, "a step checkpoint")
    assert run.poll() is None, "the run ended before any path step checkpointed"
    kill_group(run)  # snakemake and its jobs, as a lost node or the OOM killer would
    assert not any(checkpoints.glob("step_*.pt"))
    locked = _snakemake(folder, *TARGETS)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr  # the kill left the lock
    assert _snakemake(folder, "--unlock").returncode == 0
    rerun = _snakemake(folder, *TARGETS, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed = [json.loads((checkpoints / f"step_{k}.json").read_text())["resumed_from"] for k in STEPS]
    assert max(resumed) >= 20 and not any(checkpoints.glob("step_*.ckpt"))
    _assert_same_artifacts(folder, reference)


@pytest.mark.slow
def test_plan_edited_by_hand_reruns_the_steps_and_dual(first_and_second, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(first_and_second[0], folder)  # modification times kept: the copy is up to date
    assert _snakemake(folder, *TARGETS, "-n").stdout.count("rule ") == 0
    plan_path = folder / "results/tiny/path/plan.json"
    plan = json.loads(plan_path.read_text())
    plan["pixel_order"].reverse()  # still a valid plan, not the one the steps were trained on
    plan_path.write_text(json.dumps(plan))
    dry = _snakemake(folder, *TARGETS, "-n")
    output = dry.stdout + dry.stderr
    jobs = sorted(line.split()[1].rstrip(":") for line in output.splitlines()
                  if line.startswith(("rule ", "localrule ")))
    assert jobs == ["dual", "path_step", "path_step"], output[-3000:]
    assert "Updated input files: results/tiny/path/plan.json" in output
