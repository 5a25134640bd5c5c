"""Peak memory of the ingest and tile stages as the raw file grows (issue #8, benchmarks/MEMORY.md).

For each size, writes a float64 ``.npy`` of shape (n, 16, 1024) — 128 KiB per series — in chunks (so
the generator itself stays small), then runs ``ingest`` and ``tile`` each in a fresh subprocess and
reads that process's peak resident set size (``ru_maxrss``). The numbers include Python, NumPy,
xarray and h5py: the first row (8 series) is nearly all interpreter and libraries. Prints a Markdown table.

    python benchmarks/memory_ingest.py --sizes-mb 64 256 1024 2048 --folder /tmp/dualdiv_memory
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SERIES_SHAPE = (16, 1024)  # channels × time points, float64: 128 KiB a series
SERIES_BYTES = 8 * SERIES_SHAPE[0] * SERIES_SHAPE[1]

_STAGE = """
import json, resource, sys, time
from dualdiv.data.ingest import IngestSettings
from dualdiv.stages.ingest import ingest
from dualdiv.data.tiles import TileSettings
from dualdiv.stages.tile import tile
started = time.perf_counter()
stage, source, out = sys.argv[1:4]
if stage == "ingest":
    ingest([source], out, IngestSettings(min_samples=1))
else:
    tile(source, out, TileSettings(test_fraction=0.2))
print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "wall_s": time.perf_counter() - started}))
"""


def write_raw(path: Path, n_series: int, chunk: int = 512) -> None:
    """A seeded Gaussian ``.npy`` (n_series, 16, 1024) written chunk by chunk through a memory map."""
    rng = np.random.default_rng(0)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n_series, *SERIES_SHAPE))
    for start in range(0, n_series, chunk):
        stop = min(start + chunk, n_series)
        array[start:stop] = rng.normal(size=(stop - start, *SERIES_SHAPE))
    array.flush()
    del array


def run_stage(stage: str, source: Path, out: Path) -> dict:
    """Run one stage in a fresh interpreter; its peak RSS (MiB) and wall time (s)."""
    result = subprocess.run([sys.executable, "-c", _STAGE, stage, str(source), str(out)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(folder: Path, n_series: int) -> dict:
    raw = folder / f"raw_{n_series}.npy"
    write_raw(raw, n_series)
    row = {"n_series": n_series, "file_mib": raw.stat().st_size / 2**20}
    try:
        row["ingest"] = run_stage("ingest", raw, folder / "raw.nc")
        row["tile"] = run_stage("tile", folder / "raw.nc", folder / "tiles.h5")
    finally:
        for path in (raw, folder / "raw.nc", folder / "tiles.h5"):
            path.unlink(missing_ok=True)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| raw file (MiB) | series | ingest peak RSS (MiB) | ingest wall (s) | tile peak RSS (MiB) "
             "| tile wall (s) |", "|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['file_mib']:.1f} | {row['n_series']} | {row['ingest']['peak_mib']:.0f} | "
                     f"{row['ingest']['wall_s']:.1f} | {row['tile']['peak_mib']:.0f} | {row['tile']['wall_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[64, 256, 1024, 2048],
                        help="raw file sizes in MiB (default: 64 256 1024 2048)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/dualdiv_memory"), help="scratch folder")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    needed = 3 * max(args.sizes_mb) * 2**20  # the raw file, raw.nc and tiles.h5 at the largest size
    if shutil.disk_usage(args.folder).free < needed:
        sys.exit(f"{args.folder}: needs {needed / 2**30:.1f} GiB free for the largest size")
    rows = []
    for n_series in [8] + [max(1, round(size * 2**20 / SERIES_BYTES)) for size in args.sizes_mb]:
        started = time.perf_counter()
        rows.append(measure(args.folder, n_series))
        print(f"{rows[-1]['file_mib']:.0f} MiB done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(table(rows))


if __name__ == "__main__":
    main()
