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


@pytest.mark.parametrize("command", ["ingest", "tile", "estimate", "localize", "sample", "config"])
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
