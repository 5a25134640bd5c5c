"""Wall time of a whole pipeline run and the overhead of each of its jobs.

Runs the workflow of this checkout (Snakefile, workflow/, config/, resources/; the package from
this checkout through PYTHONPATH) in a scratch folder on one of three runs:

- ``eeg``: the default config (the embedded EEG data set, every default setting);
- ``small``: a simulated 30 × 3 × 64 array (random walks) through every default setting — the
  "first small run" of a new user;
- ``tiny``: .test/config/tiny.yaml (the test suite's tiny budgets);
- ``large``: a simulated 561 × 6 × 896 array (the size of UEA's SelfRegulationSCP1: 5 376 pixels an
  image; 3 AR(1) sources mixed into the channels plus noise, ``benchmarks/scaling.py``'s
  simulation) through every default setting (issue #19).

Per job it reads the Snakemake benchmark file (``s``: the job's wall time as Snakemake measured
it) and the line every rule script logs at its end (``work``: the stage's own work; ``start-up``:
interpreter and imports before it). Overhead = wall − work: what a job costs beyond its work
(interpreter start, imports, Snakemake's script wrapper, reading and writing files).

    python benchmarks/pipeline_timing.py eeg --cores 2 [--keep DIR] [--json out.json]

Prints a markdown table (one row per job, then the medians and the run's wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK_LINE = re.compile(r"rule (\S+): work ([0-9.]+) s, start-up ([0-9.nan]+) s")


def prepare(run: str, folder: Path) -> list[str]:
    """Copy the workflow into ``folder``; return the extra snakemake arguments of ``run``."""
    for part in ("Snakefile", "workflow", "config", "resources", "environment.yml"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, folder / part)
    if run == "eeg":
        return []
    if run == "tiny":
        shutil.copytree(ROOT / ".test" / "data", folder / "data")
        shutil.copy(ROOT / ".test" / "config" / "tiny.yaml", folder / "tiny.yaml")
        return ["--configfile", "tiny.yaml"]
    if run == "large":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from scaling import simulate

        simulate(folder / "large.npy", 561, (6, 896), seed=0)
        (folder / "large.yaml").write_text("datasets:\n  large:\n    path: large.npy\n")
        return ["--configfile", "large.yaml"]
    steps = np.random.default_rng(0).standard_normal((30, 3, 64))
    np.save(folder / "small.npy", np.cumsum(steps, axis=2).astype(np.float32))
    (folder / "small.yaml").write_text("datasets:\n  small:\n    path: small.npy\n")
    return ["--configfile", "small.yaml"]


def job_table(folder: Path) -> list[dict]:
    """One row per benchmarked job: name, wall (s), work (s), start-up (s), overhead (s)."""
    rows = []
    for tsv in sorted(folder.glob("results/**/benchmarks/*.tsv")):
        lines = tsv.read_text().splitlines()
        wall = float(lines[1].split("\t")[0])
        dataset = tsv.parent.parent.name if tsv.parent.parent.name != "results" else ""
        log = folder / "logs" / dataset / f"{tsv.stem}.log"
        match = WORK_LINE.search(log.read_text()) if log.is_file() else None
        work, startup = (float(match[2]), float(match[3])) if match else (float("nan"), float("nan"))
        rows.append({"job": f"{dataset}/{tsv.stem}".strip("/"), "wall_s": wall, "work_s": work,
                     "startup_s": startup, "overhead_s": wall - work})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", choices=("eeg", "small", "tiny", "large"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="run in this folder (created) and keep it")
    parser.add_argument("--json", type=Path, help="also write the rows and totals as JSON here")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix=f"dualdiv-timing-{args.run}-"))
    folder.mkdir(parents=True, exist_ok=True)
    extra = prepare(args.run, folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(args.cores), *extra], cwd=folder,
                            env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"snakemake failed (exit {result.returncode}) in {folder}:\n{result.stderr[-3000:]}")
    rows = job_table(folder)
    print("| job | wall s | work s | start-up s | overhead s |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['job']} | {row['wall_s']:.2f} | {row['work_s']:.2f} | {row['startup_s']:.2f} | "
              f"{row['overhead_s']:.2f} |")
    overheads = [r["overhead_s"] for r in rows if np.isfinite(r["overhead_s"])]
    totals = {"run": args.run, "cores": args.cores, "pipeline_wall_s": wall, "jobs": len(rows),
              "median_overhead_s": statistics.median(overheads) if overheads else None,
              "median_startup_s": statistics.median(r["startup_s"] for r in rows) if rows else None,
              "sum_job_wall_s": sum(r["wall_s"] for r in rows), "load_average": os.getloadavg()}
    print(f"\n{args.run}, --cores {args.cores}: pipeline {wall:.0f} s wall, {len(rows)} jobs "
          f"(Σ job wall {totals['sum_job_wall_s']:.0f} s); median job overhead {totals['median_overhead_s']:.2f} s, "
          f"median start-up {totals['median_startup_s']:.2f} s; load average at the end "
          f"{', '.join(f'{v:.1f}' for v in totals['load_average'])}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "totals": totals}, indent=1))
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
