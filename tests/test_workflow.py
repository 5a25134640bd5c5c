"""The Snakemake workflow end to end on a tiny config, in a scratch working directory."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from conftest import ROOT

from dualdiv.data.tiles import load_tiles
from dualdiv.evaluation.figures import FIGURES
from dualdiv.stages.workflow import dataset_settings, selected_datasets

SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True, timeout=600)


TEST_DIR = ROOT / ".test"


def tiny_config(test_fraction=0.25, estimate_extra=None):
    """The tiny config of .test/config/tiny.yaml with a test fraction and extra estimate settings."""
    config = yaml.safe_load((TEST_DIR / "config" / "tiny.yaml").read_text())
    config["datasets"]["tiny"]["tile"]["test_fraction"] = test_fraction
    config["estimate"].update(estimate_extra or {})
    return yaml.safe_dump(config)


@pytest.fixture
def tiny(tmp_path):
    """A working directory holding the tiny data set of .test/ and its config as tiny.yaml."""
    shutil.copytree(TEST_DIR / "data", tmp_path / "data")
    (tmp_path / "tiny.yaml").write_text(tiny_config())
    return tmp_path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The tiny config run once to the end, by a copy of the workflow and the package (the tests below
    read it, dry-run changes against it, or edit the copy's package and restore it)."""
    repo = tmp_path_factory.mktemp("repo")
    for part in ("Snakefile", "workflow", "dualdiv", "config", "environment.yml"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, repo / part)
    work = tmp_path_factory.mktemp("tiny")
    shutil.copytree(TEST_DIR / "data", work / "data")
    (work / "tiny.yaml").write_text(tiny_config())
    # the Snakefile imports dualdiv from its own folder, the job scripts from PYTHONPATH: both the copy
    env = {**os.environ, "PYTHONPATH": str(repo)}
    command = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--cores", "2"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*command, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)

    first = run("--configfile", "tiny.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    return work, repo, run


def dry_run_jobs(result: subprocess.CompletedProcess) -> list[str]:
    return [line.split()[1].rstrip(":") for line in (result.stdout + result.stderr).splitlines()
            if line.startswith(("rule ", "localrule "))]


@pytest.mark.slow
def test_tiny_config_runs_only_its_dataset_then_nothing_to_do(finished):
    tiny, _, run = finished
    tiles = load_tiles(tiny / "results/tiny/tiles.h5")
    assert tiles.images.shape == (24, 3, 16) and (tiles.split == "test").sum() == 6
    assert tiles.provenance["settings"]["seed"] == 3
    assert not (tiny / "results/eeg_eyes").exists()  # the embedded set runs only when none is named
    assert (tiny / "logs/tiny/tile.log").exists()
    evaluation = json.loads((tiny / "results/tiny/eval/dualdiv.json").read_text())
    real_tc = json.loads((tiny / "results/tiny/eval/tc/real.json").read_text())
    assert evaluation["tc_real"] == real_tc["tc"] and evaluation["tc_gap"] is not None  # the path estimator's TC
    again = run("--configfile", "tiny.yaml")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_html_report_holds_the_summary_table_and_every_figure(finished):
    tiny, _, run = finished
    result = run("--configfile", "tiny.yaml", "--report", "report.zip")
    assert result.returncode == 0, result.stderr[-3000:]
    with zipfile.ZipFile(tiny / "report.zip") as archive:
        files = [Path(name).name for name in archive.namelist()]
        html = archive.read("report/report.html").decode()
    assert {"summary.csv", "summary.md"} <= set(files) and set(FIGURES) <= set(files)
    assert '{"tiny": {"Other": ["results/tiny/figures/' in html  # the data set's figures in its own category
    assert "Figures of data set" in html and "Every metric of every method" in html  # the captions


@pytest.mark.slow
def test_changed_tile_setting_reruns_only_tile(finished):
    tiny, _, run = finished
    (tiny / "tiny2.yaml").write_text(tiny_config(test_fraction=0.5))
    jobs = dry_run_jobs(run("--configfile", "tiny2.yaml", "-n"))
    assert "tile" in jobs and "ingest" not in jobs


@pytest.mark.slow
def test_changed_step_setting_reruns_only_that_step_and_dual(finished):
    tiny, _, run = finished
    divergence = json.loads((tiny / "results/tiny/divergence.json").read_text())
    assert len(divergence["steps"]) == 2
    assert divergence["tc"] == pytest.approx(sum(step["D"] for step in divergence["steps"]))
    with h5py.File(tiny / "results/tiny/dual.h5") as handle:
        assert handle["F"].shape == (24,) and handle["f_steps"].shape == (24, 2)
        np.testing.assert_allclose(handle["F"][()], handle["f_steps"][()].sum(axis=1))
        assert handle["F_reference"].shape == (50,)
    (tiny / "tiny3.yaml").write_text(tiny_config(estimate_extra={"steps": {"2": {"max_iterations": 30}}}))
    dry = run("--configfile", "tiny3.yaml", "-n")
    # step 2, then what depends on F: dual, localize, figures (not the samples of the default variant), and the
    # summary, whose summary.md shows the TC of dual's divergence.json
    assert sorted(dry_run_jobs(dry)) == ["all", "dual", "figures", "localize", "path_step", "summary"], \
        dry_run_jobs(dry)
    assert "step=2" in dry.stdout + dry.stderr and "step=1" not in dry.stdout + dry.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("module", "rules"), [
    ("evaluation/metrics.py", {"evaluate", "total_correlation", "summary"}),
    ("data/tiles.py", None),  # every rule from tile on (all read tiles.h5 through it)
    ("generators/bases.py", {"sample", "baseline", "evaluate", "total_correlation", "summary", "figures"}),
])
def test_touching_a_module_reruns_exactly_the_rules_whose_code_imports_it(finished, module, rules):
    """Editing a module of the (copied) package makes the dry run list the rules whose scripts import it,
    and those that read what they write — nothing else."""
    from dualdiv.core.io import import_closure

    tiny, repo, run = finished
    source = repo / "dualdiv" / module
    text = source.read_text()
    importing = {script.stem for script in sorted((ROOT / "workflow/scripts").glob("*.py"))
                 if ROOT / "dualdiv" / module in import_closure(script)}
    try:
        source.write_text(text + "\n# touched\n")
        jobs = set(dry_run_jobs(run("--configfile", "tiny.yaml", "-n"))) - {"all"}
    finally:
        source.write_text(text)
    if rules is None:  # tiles.py: imported by every script from tile on, not by ingest
        assert "ingest" not in importing and "tile" in importing and "ingest" not in jobs and "tile" in jobs
        return
    assert jobs == rules, (module, importing, jobs)
    # the rules that rerun: those importing it and those downstream of them (the summary reads evaluations)
    assert importing <= {"evaluate", "total_correlation", "summary", "sample", "figures"}


def test_bad_config_names_the_key(tmp_path):
    (tmp_path / "bad.yaml").write_text("datasets:\n  tiny:\n    path: x.npy\n    tile: {windw: 8}\n")
    result = snakemake(tmp_path, "--configfile", "bad.yaml", "-n")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "config: datasets.tiny.tile: Additional properties are not allowed ('windw' was unexpected)" in output


@pytest.mark.slow
def test_bad_input_fails_with_message_and_leaves_no_output(tmp_path):
    x = np.zeros((20, 2, 8))
    x[4, 1, 2] = np.nan
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "c.yaml").write_text("datasets:\n  broken:\n    path: x.npy\n")
    result = snakemake(tmp_path, "--configfile", "c.yaml")
    assert result.returncode != 0
    assert "x.npy: NaN/missing value at sample 4, channel 1, time 2" in result.stderr
    assert "Traceback" not in (tmp_path / "logs/broken/ingest.log").read_text()
    assert not list((tmp_path / "results").rglob("*.nc"))


def test_default_datasets_only_when_none_named():
    config = {"seed": 1, "datasets": {}, "default_datasets": {"eeg": {"path": ["a.ts", "b.ts"]}},
              "tile": {"test_fraction": 0.2}}
    assert list(selected_datasets(config)) == ["eeg"]
    assert selected_datasets(config)["eeg"]["files"] == ["a.ts", "b.ts"]
    config["datasets"] = {"mine": {"path": "x.npy", "tile": {"window": 8}}}
    assert list(selected_datasets(config)) == ["mine"]
    assert dataset_settings(config, "mine", "tile") == {"test_fraction": 0.2, "window": 8, "stride": None, "seed": 1,
                                                        "split": "chronological", "memory_mb": 512}


def test_step_settings_only_touch_their_step():
    config = {"seed": 0, "datasets": {"d": {"path": "x.npy"}},
              "estimate": {"n_blocks": 3, "training": {"max_iterations": 100, "critic": {"channels": 8}},
                           "steps": {"2": {"max_iterations": 500, "critic": {"channels": 4}}}}}
    from dualdiv.stages.workflow import step_settings

    first, second = step_settings(config, "d", 1), step_settings(config, "d", 2)
    assert (first["max_iterations"], first["critic"]["channels"]) == (100, 8)
    assert (second["max_iterations"], second["critic"]["channels"]) == (500, 4)
    assert {k: v for k, v in first.items() if k not in ("max_iterations", "critic")} == \
        {k: v for k, v in second.items() if k not in ("max_iterations", "critic")}  # the rest: the defaults


def test_code_hash_follows_the_import_closure_of_a_script(tmp_path, monkeypatch):
    """A rule's code param changes when a module its script imports (directly, inside a function, or
    through another module) changes, and not when an unrelated module does."""
    import dualdiv.core.io

    package = tmp_path / "dualdiv"
    (package / "sub").mkdir(parents=True)
    for name, text in {"__init__.py": "", "a.py": "def f():\n    from dualdiv.sub import b\n",
                       "sub/__init__.py": "", "sub/b.py": "from dualdiv.c import value\n", "c.py": "value = 1\n",
                       "unrelated.py": "x = 1\n", "sub/registered.py": "y = 1\n"}.items():
        (package / name).write_text(text)
    script = tmp_path / "script.py"
    script.write_text("from dualdiv.a import f\n")
    monkeypatch.setattr(dualdiv.core.io, "_PACKAGE_DIR", package)
    closure = [str(p.relative_to(package)) for p in dualdiv.core.io.import_closure(script)]
    assert closure == ["__init__.py", "a.py", "c.py", "sub/__init__.py", "sub/b.py"]
    before = dualdiv.core.io.code_hash(script)
    (package / "unrelated.py").write_text("x = 2\n")
    assert dualdiv.core.io.code_hash(script) == before
    (package / "c.py").write_text("value = 2\n")
    assert dualdiv.core.io.code_hash(script) != before
    with_registry = dualdiv.core.io.code_hash(script, "dualdiv.sub.*")
    (package / "sub/registered.py").write_text("y = 2\n")
    assert dualdiv.core.io.code_hash(script, "dualdiv.sub.*") != with_registry


@pytest.mark.slow
def test_minimal_config_finishes_when_a_baseline_cannot_fit(tmp_path):
    """A user's weather-like array with a constant channel (var once stopped the whole pipeline with
    "Singular matrix" on it), and a var that cannot fit at all: every other method finishes, var's
    failure is in its samples file, the log and summary.md, and the constant channel stays constant."""
    from test_constraints import weather

    np.save(tmp_path / "x.npy", weather(n=40).astype(np.float32))
    (tmp_path / "my.yaml").write_text("datasets: {mine: {path: x.npy}}\n")
    budget = yaml.safe_load((TEST_DIR / "config" / "tiny.yaml").read_text())
    del budget["datasets"]
    budget["sample"]["methods"] = ["dualdiv", "spectral", "var", "gaussian_lw", "copy", "interpolate", "marginals"]
    budget["sample"]["settings"]["var"] = {"order": 1000}  # longer than the series: var cannot fit
    (tmp_path / "budget.yaml").write_text(yaml.safe_dump(budget))
    result = snakemake(tmp_path, "--configfile", "my.yaml", "budget.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "results" / "mine"
    var = h5py.File(folder / "samples" / "var.h5", "r")
    assert "var.order: 1000" in var.attrs["failed"] and var["images"].shape[0] == 0
    assert "var failed on" in (tmp_path / "logs" / "mine" / "baseline_var.log").read_text()
    assert "**var failed** on these data" in (tmp_path / "results" / "summary.md").read_text()
    for method in ("dualdiv", "spectral", "gaussian_lw"):
        with h5py.File(folder / "samples" / f"{method}.h5", "r") as handle:
            physical = handle["images_physical"][()]
        assert np.ptp(physical[:, 1]) < 1e-3 and physical[:, 0].min() >= -1e-3, method  # pressure, irradiance
