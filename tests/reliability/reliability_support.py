"""Helpers of the reliability tests: valid files of every reader's format, the failure contract, time limits.

A module of its own (not a conftest.py) so that ``from conftest import ...`` in the other
test folders keeps meaning ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr
from conftest import ROOT, ts_text

from dualdiv.core.errors import InputError
from dualdiv.data.ingest import IngestSettings
from dualdiv.data.tiles import Tiles, TileSettings
from dualdiv.estimators.path import StepSettings
from dualdiv.stages.ingest import ingest
from dualdiv.stages.tile import tile

READABLE = IngestSettings(min_samples=1)
FORMATS = ("ts", "csv", "npy", "npz", "nc")
# a path step of a fraction of a second: checkpoints every 10 of 40 iterations
TINY_STEP = StepSettings(max_iterations=40, eval_every=10, checkpoint_every=10, patience=100, rows_per_substep=8,
                         eval_substeps=4, eval_resamplings=2, final_resamplings=2,
                         critic={"kind": "conv", "channels": 4})


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail with TimeoutError if the body runs longer than ``seconds`` (a hang is a failure, not a stall)."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write_valid(path: Path, fmt: str, x: np.ndarray) -> Path:
    """Write ``x`` (n, C, T) as a valid file of ``fmt`` with labels (and channel names where the format has them)."""
    labels = np.array(["a", "b"] * len(x))[: len(x)]
    names = [f"c{c}" for c in range(x.shape[1])]
    if fmt == "ts":
        path.write_text(ts_text(x.tolist(), labels=[i % 2 for i in range(len(x))]))
    elif fmt == "csv":
        rows = ["sample,time," + ",".join(names) + ",label"]
        rows += [f"s{i},{t}," + ",".join(repr(float(v)) for v in x[i, :, t]) + f",{labels[i]}"
                 for i in range(len(x)) for t in range(x.shape[2])]
        path.write_text("\n".join(rows) + "\n")
    elif fmt == "npy":
        np.save(path, x)
    elif fmt == "npz":
        np.savez(path, data=x, labels=labels, channel_names=np.array(names), sampling_rate=100.0)
    else:
        xr.Dataset({"signal": (("sample", "channel", "time"), x), "label": ("sample", labels)},
                   coords={"channel": names}, attrs={"sampling_rate": 100.0}).to_netcdf(path, engine="h5netcdf")
    return path


def tiny_tiles(folder: Path, x: np.ndarray | None = None) -> Path:
    """``folder/tiles.h5`` of ``x`` (default: 16 Gaussian images 2 × 6) through ingest and tile."""
    x = np.random.default_rng(0).normal(size=(16, 2, 6)) if x is None else x
    np.save(folder / "x.npy", x)
    ingest([folder / "x.npy"], folder / "raw.nc", READABLE)
    tile(folder / "raw.nc", folder / "tiles.h5", TileSettings(test_fraction=0.25))
    return folder / "tiles.h5"


def assert_same_tiles(a: Tiles, b: Tiles) -> None:
    """Every field of two Tiles equal, arrays bit for bit."""
    for name in ("images", "split", "sample_id", "window_start", "channel_mean", "channel_std", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name, strict=True)
    for name in ("channel_names", "sampling_rate", "units", "provenance"):
        assert getattr(a, name) == getattr(b, name), name


def leftovers(out: Path) -> list[str]:
    """Files in ``out``'s folder named like ``out`` or its temporaries (nothing may remain after a failure)."""
    return sorted(p.name for p in out.parent.glob(f"*{out.name}*")) if out.parent.exists() else []


def ingest_outcome(path: Path, out: Path, settings: IngestSettings = READABLE) -> InputError | None:
    """Ingest one file under the failure contract; the InputError it raised, or None when it was read.

    Contract: within 20 s, either a raw.nc of finite values is written, or an InputError whose one-line
    message starts with the file's path and says what is wrong, and no output (nor temporary) is left.
    Any other exception propagates and fails the test.
    """
    with time_limit(20):
        try:
            dataset = ingest([path], out, settings)
        except InputError as exc:
            message = str(exc)
            assert message.startswith(f"{path}") and len(message) > len(f"{path}: ") + 5, message
            assert "\n" not in message, message
            assert leftovers(out) == [], leftovers(out)
            return exc
    assert out.exists() and np.isfinite(dataset["signal"].values).all()
    out.unlink()
    return None


def start(command: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``command`` in its own process group, so that a kill reaches its children too."""
    return subprocess.Popen(command, cwd=cwd, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and everything it started; wait for it."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def wait_for(condition, timeout: float, what: str, poll: float = 0.005) -> None:
    """Poll ``condition()`` until true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(poll)


SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2"]
