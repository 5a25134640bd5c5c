"""The dualdiv command: a hand-written CSV end to end, one-line errors with exit code 2."""

import subprocess
import sys

import pytest

from dualdiv.cli import main
from dualdiv.data.tiles import load_tiles


def _hand_written_csv(path, n_samples=20, n_time=12):
    rows = ["sample,time,Fz,Cz,Pz,label"]
    for s in range(n_samples):
        for t in range(n_time):
            rows.append(f"trial{s},{t},{(s * 7 + t * 3) % 11 - 5},{(s + t) % 5},{t * 0.5 - s},"
                        f"{'open' if s % 2 else 'shut'}")
    path.write_text("\n".join(rows) + "\n")


def test_ingest_and_tile_hand_written_csv(tmp_path, capsys):
    _hand_written_csv(tmp_path / "my.csv")
    assert main(["ingest", str(tmp_path / "my.csv"), "-o", str(tmp_path / "raw.nc"),
                 "--sampling-rate", "250", "--units", "uV"]) == 0
    assert "20 samples x 3 channels x 12 time points" in capsys.readouterr().out
    assert main(["tile", str(tmp_path / "raw.nc"), "-o", str(tmp_path / "tiles.h5"), "--seed", "1"]) == 0
    tiles = load_tiles(tmp_path / "tiles.h5")
    assert tiles.images.shape == (20, 3, 12) and tiles.channel_names == ["Fz", "Cz", "Pz"]
    assert sorted(set(tiles.labels[tiles.split == "test"])) == ["open", "shut"]


def test_bad_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    result = subprocess.run([sys.executable, "-m", "dualdiv.cli", "ingest", str(tmp_path / "bad.csv"),
                             "-o", str(tmp_path / "raw.nc")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "bad.csv: no 'sample' column" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "raw.nc").exists()


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="no 'sample' column"):
        main(["--debug", "ingest", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "raw.nc")])


@pytest.mark.parametrize("command", ["ingest", "tile", "estimate", "path", "dual", "localize", "sample", "evaluate",
                                     "figures", "export", "config"])
def test_help_explains_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "example:" in capsys.readouterr().out


def test_estimate_prints_json_for_vectors(tmp_path, capsys):
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 1))
    np.save(tmp_path / "x.npy", np.hstack([z + 0.3 * rng.normal(size=(120, 1)), z]))  # strongly dependent pair
    assert main(["estimate", str(tmp_path / "x.npy"), "--steps", "1", "--max-iterations", "60"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"tc", "stderr", "steps"} and len(result["steps"]) == 1
    assert np.isfinite(result["tc"]) and result["steps"][0]["D"] == result["tc"]


def test_estimate_rejects_wrong_shape(tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "x.npy", np.zeros(10))
    assert main(["estimate", str(tmp_path / "x.npy")]) == 2
    assert "expected (n, d) or (n, C, T)" in capsys.readouterr().err


def test_sample_subcommand_writes_samples(tmp_path, capsys):
    _hand_written_csv(tmp_path / "my.csv", n_samples=24, n_time=16)
    assert main(["ingest", str(tmp_path / "my.csv"), "-o", str(tmp_path / "raw.nc")]) == 0
    assert main(["tile", str(tmp_path / "raw.nc"), "-o", str(tmp_path / "tiles.h5")]) == 0
    assert main(["sample", str(tmp_path / "tiles.h5"), "-o", str(tmp_path / "s.h5"), "--method", "spectral",
                 "-n", "5"]) == 0
    from dualdiv.data.samples import load_samples

    assert load_samples(tmp_path / "s.h5").images.shape == (5, 3, 16)
    assert main(["sample", str(tmp_path / "tiles.h5"), "-o", str(tmp_path / "w.h5"), "--method",
                 "dualdiv_walk"]) == 2
    assert "needs --space (a fitted dual space folder) and --clusters" in capsys.readouterr().err


@pytest.mark.slow
def test_every_stage_chains_from_the_cli(tmp_path, capsys, one_torch_thread):
    """ingest → tile → path → dual → localize → sample (incl. a walk) → evaluate → figures → export, and the
    export reads back through ingest."""
    import json

    import numpy as np

    from dualdiv.data.samples import load_samples
    from dualdiv.estimators.dualspace import DualSpace

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", np.sin(np.arange(16) / 3)[None, None, :] + 0.5 * rng.normal(size=(30, 2, 16)))
    (tmp_path / "c.yaml").write_text(
        "estimate: {n_blocks: 2, n_reference: 40, training: {max_iterations: 20, eval_every: 10, eval_substeps: 4,"
        " rows_per_substep: 8, critic: {channels: 4}}}\n"
        "localize: {n_permutations: 50, scales: [6]}\n"
        "sample: {settings: {dualdiv_walk: {max_steps: 2, max_rounds: 1}}}\n"
        "evaluate: {metrics: {repeats: 2, dv_iterations: 20, mmd_permutations: 20}}\n")
    c = ["--config", str(tmp_path / "c.yaml")]
    t = str(tmp_path)
    steps = [["ingest", f"{t}/x.npy", "-o", f"{t}/raw.nc"], ["tile", f"{t}/raw.nc", "-o", f"{t}/tiles.h5"],
             ["path", f"{t}/tiles.h5", "-o", f"{t}/path", *c], ["dual", f"{t}/tiles.h5", f"{t}/path", "-o", t, *c],
             ["localize", f"{t}/dual.h5", f"{t}/tiles.h5", "-o", f"{t}/clusters.json", *c],
             ["sample", f"{t}/tiles.h5", "-o", f"{t}/spectral.h5", "--method", "spectral", "-n", "8", *c],
             ["sample", f"{t}/tiles.h5", "-o", f"{t}/dualdiv_walk.h5", "--method", "dualdiv_walk", "-n", "4",
              "--space", f"{t}/dualspace", "--clusters", f"{t}/clusters.json", *c],
             ["evaluate", f"{t}/spectral.h5", f"{t}/tiles.h5", "-o", f"{t}/eval.json", *c],
             ["figures", f"{t}/tiles.h5", f"{t}/dual.h5", f"{t}/clusters.json", f"{t}/spectral.h5",
              f"{t}/dualdiv_walk.h5", "-o", f"{t}/figures"],
             ["export", f"{t}/spectral.h5", "-o", f"{t}/spectral.csv"],
             ["ingest", f"{t}/spectral.csv", "-o", f"{t}/back.nc", "--min-samples", "2"]]
    for argv in steps:
        assert main(argv) == 0, (argv, capsys.readouterr().err)
    assert sorted(p.name for p in (tmp_path / "path").glob("step_*.pt")) == ["step_1.pt", "step_2.pt"]
    space = DualSpace.load(tmp_path / "dualspace")
    assert json.loads((tmp_path / "divergence.json").read_text())["tc"] == space.tc_
    assert len(load_samples(tmp_path / "dualdiv_walk.h5").images) == 4
    assert "c2st_auc_features" in json.loads((tmp_path / "eval.json").read_text())
    assert len(list((tmp_path / "figures").glob("*.png"))) == 4
    import xarray as xr

    with xr.open_dataset(tmp_path / "back.nc", engine="h5netcdf") as back:
        np.testing.assert_allclose(back["signal"].values, load_samples(tmp_path / "spectral.h5").images_physical,
                                   rtol=1e-6, atol=1e-6)
    main(["path", f"{t}/tiles.h5", "-o", f"{t}/path", "--step", "2", *c])  # one step alone, as a cluster job
    assert "step_2: D =" in capsys.readouterr().out


def test_estimate_default_budget_is_one_cross_fitted_bilinear_step_and_pipeline_is_the_config(
        tmp_path, capsys, monkeypatch):
    import json

    import numpy as np

    from dualdiv.estimators import path

    seen = []
    original = path.train_step
    monkeypatch.setattr(path, "train_step", lambda *a, **k: seen.append(
        (a[3].critic.kind, a[3].critic.gaussian_term and a[3].critic.gaussian_inputs, a[3].folds, k["jobs"]))
                        or original(*a, **k))
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 2, 1))
    np.save(tmp_path / "x.npy", z + 0.5 * rng.normal(size=(60, 2, 6)))  # channels share a common level
    assert main(["estimate", str(tmp_path / "x.npy"), "--max-iterations", "40"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert np.isfinite(result["tc"]) and result["n_blocks"] == 1 and result["steps"][0]["iterations"] <= 5 * 40
    assert seen == [("bilinear", True, 5, -1)]
    seen.clear()
    assert main(["estimate", str(tmp_path / "x.npy"), "--budget", "pipeline", "--steps", "2", "--max-iterations",
                 "20", "--jobs", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["n_blocks"] == 2
    assert seen == [("conv", False, 1, 1), ("conv", False, 1, 1)]
