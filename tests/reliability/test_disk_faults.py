"""Disk full and read-only results by fault injection (CI runs as root, so chmod cannot make a folder
read-only): every stage's writer fails with a one-line OutputError naming its output, and neither the
temporary nor a partial final file is left; a previous complete version stays as it was."""

import errno
import os
from pathlib import Path

import h5py
import pytest
from reliability_support import leftovers, tiny_tiles

import dualdiv.core.io
from dualdiv.cli import main
from dualdiv.core.errors import OutputError
from dualdiv.data.ingest import IngestSettings
from dualdiv.stages.ingest import ingest
from dualdiv.stages.path import write_plan
from dualdiv.stages.sample import write_samples
from dualdiv.stages.tile import tile


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """x.npy, raw.nc and tiles.h5 of a tiny data set."""
    folder = tmp_path_factory.mktemp("inputs")
    tiny_tiles(folder)
    return folder


STAGES = {
    "ingest": lambda inputs, out: ingest([inputs / "x.npy"], out, IngestSettings(min_samples=1)),
    "tile": lambda inputs, out: tile(inputs / "raw.nc", out),
    "path_plan": lambda inputs, out: write_plan(inputs / "tiles.h5", out, 2),
    "sample": lambda inputs, out: write_samples(inputs / "tiles.h5", "copy", out, 4),
}
OUTPUTS = {"ingest": "raw.nc", "tile": "tiles.h5", "path_plan": "plan.json", "sample": "copy.h5"}


def _h5py_style_error(code: int) -> OSError:
    """What h5py raises when a write fails: the errno, and HDF5's detail over several lines."""
    return OSError(code, "Can't synchronously write data (file write failed: time = Mon Nov 23 22:33:22 2026\n"
                         f", errno = {code}, error message = '{os.strerror(code)}', buf = 0x7f9d638b1810)")


def fail_midway(monkeypatch, code: int) -> None:
    """The first HDF5 dataset or text file is written (partly), then the write fails with ``code``."""
    create_dataset, write_text = h5py.Group.create_dataset, Path.write_text

    def create_then_fail(self, *args, **kwargs):
        create_dataset(self, *args, **kwargs)
        self.file.flush()
        raise _h5py_style_error(code)

    def write_half_then_fail(self, data, *args, **kwargs):
        write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(h5py.Group, "create_dataset", create_then_fail)
    monkeypatch.setattr(Path, "write_text", write_half_then_fail)


def fail_rename(monkeypatch, code: int) -> None:
    """The complete temporary cannot be renamed to the final name."""

    def refuse(source, target):
        raise OSError(code, os.strerror(code), str(target))

    monkeypatch.setattr(dualdiv.core.io.os, "replace", refuse)


FAULTS = {"disk full while writing": (fail_midway, errno.ENOSPC),
          "read-only while writing": (fail_midway, errno.EROFS),
          "read-only at the rename": (fail_rename, errno.EROFS),
          "quota exceeded while writing": (fail_midway, errno.EDQUOT)}


@pytest.mark.parametrize("previous", [None, b"a previous complete version"], ids=["new", "replacing"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("stage", STAGES)
def test_failed_write_is_one_line_and_leaves_no_partial_file(inputs, tmp_path, monkeypatch, stage, fault, previous):
    out = tmp_path / "results" / OUTPUTS[stage]
    if previous is not None:
        out.parent.mkdir()
        out.write_bytes(previous)
    inject, code = FAULTS[fault]
    inject(monkeypatch, code)
    with pytest.raises(OutputError) as error:
        STAGES[stage](inputs, out)
    assert str(error.value) == f"{out}: cannot write output: {os.strerror(code)}"
    assert leftovers(out) == ([] if previous is None else [out.name])
    if previous is not None:
        assert out.read_bytes() == previous


def test_cli_on_a_full_disk_exits_2_with_one_line(inputs, tmp_path, monkeypatch, capsys):
    fail_midway(monkeypatch, errno.ENOSPC)
    out = tmp_path / "raw.nc"
    assert main(["ingest", str(inputs / "x.npy"), "-o", str(out), "--min-samples", "1"]) == 2
    assert capsys.readouterr().err == f"dualdiv ingest: error: {out}: cannot write output: No space left on device\n"
    assert leftovers(out) == []


def test_temporaries_of_killed_writers_are_removed_but_not_those_of_live_ones(inputs, tmp_path):
    out = tmp_path / "raw.nc"
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    dead = tmp_path / f".raw.nc.tmp-{pid_max + 1}"  # no process can have this id
    live = tmp_path / f".raw.nc.tmp-{os.getppid()}"
    dead.write_bytes(b"half")
    live.write_bytes(b"being written")
    STAGES["ingest"](inputs, out)
    assert leftovers(out) == sorted([live.name, out.name])
