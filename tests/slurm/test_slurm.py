"""The workflow through a real SLURM (workflow/profiles/slurm + snakemake-executor-plugin-slurm).

Runs only where DUALDIV_SLURM_TEST=1 and `sinfo` answers: CI brings up a single-node cluster with
tests/slurm/start_cluster.sh (whose gres.conf declares two placeholder GPUs) and stops it afterwards.
One tiny workflow run goes through sbatch with `gpus: 1` (the training rules ask for a GPU); one runs
locally with the same config and seed; the tests compare them and inspect what SLURM recorded.
"""

import difflib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ROOT

SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")
SBATCH = re.compile(r"sbatch call: (sbatch .*)")
SLURM_TIMEOUT_S = 900  # wall limit of the SLURM run; snakemake ignores SIGTERM while it polls, hence `timeout -k`
TINY = """\
seed: 3
datasets:
  tiny:
    path: x.npy
    tile: {test_fraction: 0.25}
estimate:
  n_blocks: 2
  n_reference: 50
  training: {max_iterations: 20, eval_every: 10, checkpoint_every: 10}
sample:
  n_samples: 10
  methods: [dualdiv, spectral, copy]
  settings: {dualdiv_corrected: {critic_iterations: 40}}
"""


def why_not_slurm() -> str | None:
    if os.environ.get("DUALDIV_SLURM_TEST") != "1":
        return ("DUALDIV_SLURM_TEST=1 not set: the SLURM test needs a live cluster "
                "(CI starts one with tests/slurm/start_cluster.sh)")
    try:
        sinfo = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"DUALDIV_SLURM_TEST=1 but sinfo does not work: {error}"
    if sinfo.returncode != 0:
        return f"DUALDIV_SLURM_TEST=1 but sinfo failed: {sinfo.stderr.strip()}"
    return None


WHY_NOT = why_not_slurm()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


def snakemake(workdir: Path, *args: str, timeout_s: int) -> subprocess.CompletedProcess:
    command = ["timeout", "-k", "30", str(timeout_s), sys.executable, "-m", "snakemake",
               "-s", str(ROOT / "Snakefile"), "--configfile", "tiny.yaml", *args]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout_s + 60)


def cluster_state() -> str:
    return "\n".join(subprocess.run(c, capture_output=True, text=True, timeout=20).stdout
                     for c in (["sinfo"], ["squeue"]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny config run locally and through SLURM (training rules asking for one GPU each)."""
    x = np.random.default_rng(0).normal(size=(24, 3, 16))
    dirs = {}
    for name in ("local", "slurm"):
        dirs[name] = tmp_path_factory.mktemp(name)
        np.save(dirs[name] / "x.npy", x)
        (dirs[name] / "tiny.yaml").write_text(TINY)
    start = time.monotonic()
    local = snakemake(dirs["local"], "--cores", "2", timeout_s=600)
    assert local.returncode == 0, local.stderr[-3000:]
    local_s, start = time.monotonic() - start, time.monotonic()
    slurm = snakemake(dirs["slurm"], "--workflow-profile", str(ROOT / "workflow/profiles/slurm"),
                      "--config", "gpus=1", "--max-threads", str(len(os.sched_getaffinity(0))),
                      "--slurm-keep-successful-logs", "--verbose", timeout_s=SLURM_TIMEOUT_S)
    print(f"\ntiny workflow: {local_s:.1f} s locally, {time.monotonic() - start:.1f} s through SLURM "
          f"(exit {slurm.returncode})")
    output = slurm.stdout + slurm.stderr
    assert slurm.returncode == 0, f"exit {slurm.returncode}:\n{output[-5000:]}\n{cluster_state()}"
    submitted = {int(job): (int(slurm_id), log) for job, slurm_id, log in SUBMITTED.findall(output)}
    return dirs, output, submitted


def scontrol_job(slurm_id: int) -> str:
    return subprocess.run(["scontrol", "show", "job", str(slurm_id)], capture_output=True, text=True,
                          timeout=20).stdout


def test_every_job_went_through_sbatch_and_completed(runs):
    dirs, output, submitted = runs
    assert len(submitted) >= 6, output[-3000:]  # ingest, tile, path_plan, 2 path_step, dual, ...; `all` is local
    for slurm_id, log in submitted.values():
        assert (dirs["slurm"] / log).is_file(), log  # .snakemake/slurm_logs/rule_<rule>/<dataset>/<id>.log
        assert "JobState=COMPLETED" in scontrol_job(slurm_id)
    logs = list((dirs["slurm"] / ".snakemake/slurm_logs").rglob("*.log"))
    assert {int(p.stem) for p in logs} >= {slurm_id for slurm_id, _ in submitted.values()}


def same_hdf5(a: Path, b: Path) -> bool:
    """Same datasets with the same values (HDF5/NetCDF files may embed paths or times in attributes)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        if names_a != names_b:
            return False
        return all(np.array_equal(fa[n][()], fb[n][()]) for n in names_a if isinstance(fa[n], h5py.Dataset))


def without_timings(value):
    """A JSON value with its wall-clock measurements (keys ending in `time_s`) left out."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("time_s")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def without_wall_times(markdown: str) -> str:
    """summary.md without its measurements: the last table column (wall s) and the per-data-set wall time."""
    # the count too: jobs that run on the submitting host (localrules) write no benchmark file under SLURM
    text = re.sub(r"Wall time of its benchmarked jobs: [0-9.]+ s over [0-9]+ jobs", "Wall time …", markdown)
    return "\n".join(re.sub(r"\|[^|]*\|\s*$", "|", line) if line.startswith("|") else line
                     for line in text.splitlines())


def same_artifact(a: Path, b: Path) -> bool:
    if a.read_bytes() == b.read_bytes():
        return True
    if h5py.is_hdf5(a):
        return same_hdf5(a, b)
    if a.suffix == ".json":
        return without_timings(json.loads(a.read_text())) == without_timings(json.loads(b.read_text()))
    if a.name == "summary.md":
        return without_wall_times(a.read_text()) == without_wall_times(b.read_text())
    return False


def text_difference(a: Path, b: Path) -> str:
    """The lines that differ (a text artifact), so that a failure says what changed; '' for binary files."""
    try:
        lines = [path.read_text().splitlines() for path in (a, b)]
    except UnicodeDecodeError:
        return ""
    return "\n".join(list(difflib.unified_diff(*lines, "local", "slurm", lineterm="", n=0))[:40])


def test_artifacts_identical_to_a_local_run(runs):
    dirs = runs[0]
    # every artifact but Snakemake's benchmark files (wall times, memory: measurements, not results)
    files = {name: sorted(p.relative_to(d) for p in (d / "results").rglob("*")
                          if p.is_file() and "benchmarks" not in p.relative_to(d).parts)
             for name, d in dirs.items()}
    assert files["slurm"] == files["local"] and Path("results/tiny/tiles.h5") in files["slurm"]
    for rel in files["local"]:
        assert same_artifact(dirs["local"] / rel, dirs["slurm"] / rel), \
            f"{rel} differs from the local run:\n{text_difference(dirs['local'] / rel, dirs['slurm'] / rel)}"


def test_gpu_resource_becomes_sbatch_gpus(runs):
    _, output, submitted = runs
    calls = SBATCH.findall(output)
    training = [c for c in calls if "--comment rule_path_step" in c]
    others = [c for c in calls if "--comment rule_path_step" not in c]
    assert len(training) == 2 and others, output[-3000:]
    assert all("--gpus=1" in c.split() for c in training)  # config gpus: 1 -> resources gpu=1 -> --gpus=1
    assert not any("--gpus" in c for c in others)  # rules without a gpu resource ask for none
    training_ids = [slurm_id for slurm_id, log in submitted.values() if "rule_path_step" in log]
    assert len(training_ids) == 2
    for slurm_id in training_ids:  # SLURM granted them on the placeholder GRES
        assert "TresPerJob=gres:gpu:1" in scontrol_job(slurm_id)
