"""Wall time and peak memory of each stage as the number of tiles N and the pixels P grow (issue #19).

Three measurements, each stage in a fresh interpreter (peak RSS = that process's ``ru_maxrss``,
interpreter and libraries included; one torch/BLAS thread):

- ``n``: simulated tiles of 14 × 128 (a few latent sources mixed into the channels, AR(1) in time),
  N = 10², 10³, 10⁴ (…): ingest (``.npy``), tile, path_plan, the K = 4 path steps (each with the
  values of F on every tile) with a fixed budget of ``--iterations`` iterations (path_step: the median
  of the K jobs), dual, localize; ``--no-path`` skips the steps and dual (localize on a stand-in F).
- ``p``: N = ``--n-images`` images of 14 × 128, 72², 96², 168²: one path step (step 1 of K = 4: P/4
  single-pixel sub-steps), timed by part: a training iteration (median), the validations, the final
  held-out score, F of every image; and localize (on F of that step).
- ``recording``: one simulated 2-hour, 64-channel, 256 Hz recording (float32 ``.npy``, 472 MB)
  ingested and tiled into 64 × 256 windows with the default memory budgets.

Prints Markdown tables and log–log slopes; ``--json`` also writes the numbers.

    python benchmarks/scaling.py n --sizes 100 1000 10000 --folder /tmp/dualdiv_scaling
    python benchmarks/scaling.py p --shapes 14x128 72x72 96x96 168x168 --folder /tmp/dualdiv_scaling
    python benchmarks/scaling.py recording --folder /tmp/dualdiv_scaling [--memory-mb 100000: in memory]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

_PRELUDE = """
import json, os, resource, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
torch.set_num_threads(1)
args = json.loads(sys.argv[1])
started = time.perf_counter()
extra = {}
"""
_REPORT = """
print("RESULT " + json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "wall_s": time.perf_counter() - started, **extra}))
"""
_STAGES = {
    "ingest": """
from dualdiv.data.ingest import IngestSettings
from dualdiv.stages.ingest import ingest
ingest([args["source"]], args["out"], IngestSettings(min_samples=1, **args.get("settings", {})))
""",
    "tile": """
from dualdiv.data.tiles import TileSettings
from dualdiv.stages.tile import tile
tile(args["source"], args["out"], TileSettings(**args.get("settings", {})))
""",
    "path_plan": """
from dualdiv.stages.path import write_plan
write_plan(args["tiles"], args["out"], 4)
""",
    "path_step": """
from dualdiv.estimators.settings import StepSettings
from dualdiv.stages.path import write_step
base = args["out"]
write_step(args["tiles"], args["plan"], args["step"], base + ".pt", base + ".json", StepSettings(**args["training"]),
           device="cpu", out_values=base + ".values.h5")
""",
    "dual": """
from dualdiv.stages.path import write_dual
K = 4
steps = [f"{args['path']}/step_{k}" for k in range(1, K + 1)]
write_dual(args["tiles"], args["plan"], [s + ".pt" for s in steps], [s + ".json" for s in steps], args["out"],
           args["out"] + ".divergence.json", device="cpu", value_paths=[s + ".values.h5" for s in steps])
""",
    "synthetic_dual": """
import h5py
import numpy as np
from dualdiv.data.tiles import load_tiles
tiles = load_tiles(args["tiles"])
F = tiles.images[:, :, :16].mean(axis=(1, 2), dtype=np.float64) * 10  # a stand-in for F: localize reads only /F
with h5py.File(args["out"], "w") as handle:
    handle["F"] = F
""",
    "localize": """
from dualdiv.stages.localize import write_clusters
write_clusters(args["dual"], args["tiles"], args["out"])
""",
    "step_parts": """
import numpy as np
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.path import load_critic, make_plan, step_values, train_step
from dualdiv.estimators.settings import StepSettings
tiles = load_tiles(args["tiles"])
train = tiles.subset("train")
plan = make_plan(train.shape[1:], 4)
stamps = []
state, record = train_step(train, plan, 1, StepSettings(**args["training"]), device="cpu",
                           callback=lambda i: stamps.append(time.perf_counter()))
trained = time.perf_counter()
gaps = np.diff(stamps)
evaluation = np.asarray(record["curve"]["iteration"])
plain = [g for i, g in enumerate(gaps, start=2) if i not in set(evaluation)]
F_started = time.perf_counter()
F = step_values(load_critic(state, "cpu"), plan, 1, tiles.images, "cpu")
F_s = time.perf_counter() - F_started
loc_started = time.perf_counter()
from dualdiv.estimators.clusters import find_clusters
find_clusters(F[tiles.split == "train"], train)
extra = {"iteration_ms": 1000 * float(np.median(plain)), "validations_s": float(sum(gaps) - sum(plain)),
         "final_score_s": record["wall_time_s"] - (stamps[-1] - started) if stamps else None,
         "train_s": trained - started, "F_s": F_s, "F_ms_per_image": 1000 * F_s / len(tiles.images),
         "localize_s": time.perf_counter() - loc_started, "n_substeps": record["n_substeps"],
         "iterations": record["iterations"], "D": record["D"]}
""",
}


def run(stage: str, **args) -> dict:
    """One stage in a fresh interpreter (nice 10); its peak RSS (MiB), wall time (s) and extras."""
    code = _PRELUDE + _STAGES[stage] + _REPORT
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    result = subprocess.run(["nice", "-n", "10", sys.executable, "-c", code, json.dumps(args)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{stage} failed:\n{result.stderr[-3000:]}")
    line = next(line for line in result.stdout.splitlines()[::-1] if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def simulate(path: Path, n: int, shape: tuple[int, int], seed: int = 0, chunk: int = 2048) -> None:
    """Seeded float32 ``.npy`` (n, H, W): 3 latent AR(1) sources mixed into H channels plus noise,
    written chunk by chunk through a memory map."""
    rng = np.random.default_rng(seed)
    height, width = shape
    mixing = rng.normal(size=(height, 3))
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, height, width))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        sources = np.zeros((m, 3, width))
        noise = rng.normal(size=(m, 3, width))
        for t in range(width):
            sources[:, :, t] = (0.9 * sources[:, :, t - 1] if t else 0) + noise[:, :, t]
        array[start:start + m] = np.einsum("hs,nsw->nhw", mixing, sources) + rng.normal(size=(m, height, width))
    array.flush()
    del array


def slopes(xs, ys) -> tuple[list[float], float]:
    """Log–log slopes between consecutive points and of the least-squares line through all."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-9))
    return list(np.diff(ly) / np.diff(lx)), float(np.polyfit(lx, ly, 1)[0])


def n_scaling(sizes: list[int], folder: Path, iterations: int, path: bool = True, jobs: int = 1) -> dict:
    training = {"max_iterations": iterations, "eval_every": max(1, iterations // 2), "patience": 100}
    rows = {}
    for n in sizes:
        base = folder / f"n{n}"
        shutil.rmtree(base, ignore_errors=True)
        (base / "path").mkdir(parents=True)
        simulate(base / "x.npy", n, (14, 128))
        row = {"ingest": run("ingest", source=str(base / "x.npy"), out=str(base / "raw.nc")),
               "tile": run("tile", source=str(base / "raw.nc"), out=str(base / "tiles.h5"))}
        tiles, plan = str(base / "tiles.h5"), str(base / "path/plan.json")
        row["path_plan"] = run("path_plan", tiles=tiles, out=plan)
        if path:
            with ThreadPoolExecutor(jobs) as pool:  # the steps are independent jobs, as in the workflow
                futures = [pool.submit(run, "path_step", tiles=tiles, plan=plan, step=k,
                                       out=str(base / f"path/step_{k}"), training=training) for k in range(1, 5)]
                steps = [future.result() for future in futures]
            row["path_step"] = {"wall_s": float(np.median([s["wall_s"] for s in steps])),
                                "peak_mib": max(s["peak_mib"] for s in steps),
                                "all_steps_s": sum(s["wall_s"] for s in steps)}
            row["dual"] = run("dual", tiles=tiles, plan=plan, path=str(base / "path"), out=str(base / "dual.h5"))
        else:  # localize on a stand-in F (the path steps' cost is measured up to smaller N)
            run("synthetic_dual", tiles=tiles, out=str(base / "dual.h5"))
        row["localize"] = run("localize", dual=str(base / "dual.h5"), tiles=tiles, out=str(base / "clusters.json"))
        rows[n] = row
        print(f"N = {n}: " + ", ".join(f"{k} {v['wall_s']:.1f} s / {v['peak_mib']:.0f} MiB" for k, v in row.items()),
              flush=True)
        for name in ("x.npy", "raw.nc"):
            (base / name).unlink()
    stages = list(next(iter(rows.values())))
    header = " | ".join(f"N = {n}: wall s / peak MiB" for n in sizes)
    print(f"\n| stage | {header} | slope time | slope RSS−base |")
    print("|---|" + "---:|" * (len(sizes) + 2))
    for stage in stages:
        walls = [rows[n][stage]["wall_s"] for n in sizes]
        peaks = [rows[n][stage]["peak_mib"] for n in sizes]
        cells = " | ".join(f"{w:.1f} / {p:.0f}" for w, p in zip(walls, peaks, strict=True))
        growth = [p - peaks[0] + 1 for p in peaks]  # memory above the smallest run
        print(f"| {stage} | {cells} | {slopes(sizes, walls)[1]:.2f} (last {slopes(sizes, walls)[0][-1]:.2f}) "
              f"| {slopes(sizes[1:], growth[1:])[1]:.2f} |" if len(sizes) > 2 else f"| {stage} | {cells} | | |")
    return {str(n): row for n, row in rows.items()}


def p_scaling(shapes: list[str], folder: Path, n_images: int, iterations: int) -> dict:
    training = {"max_iterations": iterations, "eval_every": max(1, iterations // 2), "patience": 100}
    rows = {}
    for text in shapes:
        shape = tuple(int(v) for v in text.split("x"))
        base = folder / f"p{text}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        simulate(base / "x.npy", n_images, shape)
        run("ingest", source=str(base / "x.npy"), out=str(base / "raw.nc"))
        tile_run = run("tile", source=str(base / "raw.nc"), out=str(base / "tiles.h5"))
        plan_run = run("path_plan", tiles=str(base / "tiles.h5"), out=str(base / "plan.json"))
        parts = run("step_parts", tiles=str(base / "tiles.h5"), training=training)
        rows[text] = {"P": shape[0] * shape[1], "tile": tile_run, "path_plan": plan_run, "step": parts}
        print(f"{text}: " + json.dumps(rows[text]), flush=True)
    keys = list(rows)
    ps = [rows[k]["P"] for k in keys]
    print("\n| image | P | sub-steps (step 1) | iteration ms | validations s | final score s | F ms/image | "
          "localize s | step peak MiB | plan s | tile s |")
    print("|---|" + "---:|" * 10)
    for k in keys:
        r, s = rows[k], rows[k]["step"]
        print(f"| {k} | {r['P']} | {s['n_substeps']} | {s['iteration_ms']:.1f} | {s['validations_s']:.1f} | "
              f"{s['final_score_s']:.1f} | {s['F_ms_per_image']:.1f} | {s['localize_s']:.2f} | {s['peak_mib']:.0f} | "
              f"{r['path_plan']['wall_s']:.2f} | {r['tile']['wall_s']:.2f} |")
    for name in ("iteration_ms", "validations_s", "final_score_s", "F_ms_per_image", "localize_s"):
        print(f"log–log slope in P of {name}: {slopes(ps, [rows[k]['step'][name] for k in keys])[1]:.2f}")
    return rows


def write_csv(path: Path, array: np.ndarray, chunk: int = 2**15) -> None:
    """One recording (1, C, T) as a wide CSV (``sample,ch0,…``: one row a time point), written by chunks."""
    channels, n_time = array.shape[1:]
    with open(path, "w") as handle:
        handle.write(",".join(["sample", *(f"ch{c}" for c in range(channels))]) + "\n")
        for start in range(0, n_time, chunk):
            block = np.asarray(array[0, :, start:start + chunk]).T  # (rows, C)
            handle.write("".join("r0," + ",".join(f"{v:.6g}" for v in row) + "\n" for row in block))


def recording(folder: Path, hours: float = 2.0, channels: int = 64, rate: int = 256,
              memory_mb: int | None = None, csv: bool = False) -> dict:
    base = folder / "recording"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    n_time = int(hours * 3600 * rate)
    rng = np.random.default_rng(0)
    array = np.lib.format.open_memmap(base / "rec.npy", mode="w+", dtype=np.float32, shape=(1, channels, n_time))
    for start in range(0, n_time, 2**18):
        stop = min(n_time, start + 2**18)
        array[0, :, start:stop] = rng.normal(size=(channels, stop - start))
    array.flush()
    del array
    source = base / "rec.npy"
    if csv:  # the same values as a wide CSV table (text: ~11 bytes a value)
        write_csv(base / "rec.csv", np.load(source, mmap_mode="r"))
        source.unlink()
        source = base / "rec.csv"
    size_mb = source.stat().st_size / 1e6
    budget = {} if memory_mb is None else {"memory_mb": memory_mb}
    result = {"file_mb": size_mb, "memory_mb": memory_mb, "format": source.suffix,
              "ingest": run("ingest", source=str(source), out=str(base / "raw.nc"), settings=budget),
              "tile": run("tile", source=str(base / "raw.nc"), out=str(base / "tiles.h5"),
                          settings={"window": 256, **budget})}
    print(f"recording {channels} ch × {n_time} points ({size_mb:.0f} MB {source.suffix}): ingest "
          f"{result['ingest']['wall_s']:.1f} s, peak {result['ingest']['peak_mib']:.0f} MiB; tile "
          f"{result['tile']['wall_s']:.1f} s, peak {result['tile']['peak_mib']:.0f} MiB")
    shutil.rmtree(base)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["n", "p", "recording"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--shapes", nargs="+", default=["14x128", "72x72", "96x96", "168x168"])
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/dualdiv_scaling"))
    parser.add_argument("--memory-mb", type=int, help="recording: ingest/tile memory_mb (default: the settings')")
    parser.add_argument("--no-path", action="store_true",
                        help="n: skip the path steps and dual; localize on a stand-in F")
    parser.add_argument("--hours", type=float, default=2.0, help="recording: its length")
    parser.add_argument("--csv", action="store_true", help="recording: as a wide CSV table instead of .npy")
    parser.add_argument("--jobs", type=int, default=1, help="n: path steps run at once (one core each)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    if args.what == "n":
        result = n_scaling(args.sizes, args.folder, args.iterations, path=not args.no_path, jobs=args.jobs)
    elif args.what == "p":
        result = p_scaling(args.shapes, args.folder, args.n_images, args.iterations)
    else:
        result = recording(args.folder, hours=args.hours, memory_mb=args.memory_mb, csv=args.csv)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
