"""Does class-conditional synthetic data help a downstream classifier? TRTR, TSTR and augmentation per method.

For each ``--dataset`` of ``--configfile`` (labelled sets only) the images are ingested and tiled
with the config's settings (``dualdiv.stages``: the workflow's ingest and tile functions, no
dual space needed), then for each method and each of ``--seeds`` generator seeds one generator
is fitted per class (``dualdiv.generators.conditional.ClassConditional``, the sample stage's
class-conditional wrapper: each method's settings as the config's ``sample`` section gives
them) and draws max(k) × the training split's class counts. A classifier
(``dualdiv.evaluation.utility``, ``--classifier``; ``auto`` = pyRiemann's tangent space on
these EEG sets) is trained on

- the real training split (TRTR), the yardstick;
- generated images only, as many per class as the real split has (TSTR);
- the real split + k × its class counts of generated images (augmentation, k = 1, 2, 5);

and scored on the held-out real test split. Per method, the per-test-image correctness is
averaged over the generator seeds (each with its own subsample and classifier seed) and
summarised by a stratified percentile bootstrap over the test images (``--bootstrap``
resamples): the mean and 95 % interval of accuracy, the paired gain vs TRTR, and the paired
difference vs ``copy`` (plain oversampling: the same real images drawn again) at the same arm.
The interval covers test-set sampling, not a new real training split.

    pip install -e ".[benchmark,utility]"   # pyRiemann, sktime's MiniRocket; pvlib for solar_wind
    nice -n 10 python benchmarks/utility.py --dataset eeg_eyes finger_movements spikes solar_wind \\
        --classifier auto minirocket --out /tmp/utility.md     # ~18 min on 2 shared cores

(benchmarks/UTILITY.md is that output with the reading written by hand.)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["copy", "jitter", "scaling", "time_warp", "interpolate", "spectral", "var", "gaussian_lw", "dualdiv"]
KS = (1, 2, 5)


def prepare(config: dict, dataset: str, results: Path):
    """tiles.h5 of ``dataset`` (ingest + tile with the config's settings) in ``results/dataset``; the Tiles."""
    from dualdiv.data.tiles import load_tiles
    from dualdiv.stages.ingest import ingest
    from dualdiv.stages.settings import from_config
    from dualdiv.stages.tile import tile
    from dualdiv.stages.workflow import dataset_settings, selected_datasets

    folder = results / dataset
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "tiles.h5").exists():
        files = selected_datasets(config)[dataset]["files"]
        ingest(files, folder / "raw.nc", from_config("ingest", dataset_settings(config, dataset, "ingest")))
        tile(folder / "raw.nc", folder / "tiles.h5", from_config("tile", dataset_settings(config, dataset, "tile")))
    return load_tiles(folder / "tiles.h5")


def run_dataset(config: dict, dataset: str, tiles, methods: list[str], seeds: int, classifiers: list[str],
                bootstrap: int, kernels: int) -> dict:
    """{classifier: {"reason": why, "methods": {method: {"summary": vs TRTR, "vs_copy": vs copy,
    "seconds": fit+sample CPU s per seed, "per_seed": [...]}}}}; every classifier scores the same generated images."""
    from dualdiv.evaluation.metrics import EvalSettings
    from dualdiv.evaluation.utility import correct_by_arm, resolve_classifier, summarise
    from dualdiv.generators import resolve_method
    from dualdiv.generators.conditional import ClassConditional
    from dualdiv.stages.workflow import dataset_settings

    train, test = tiles.subset("train").astype(np.float64), tiles.subset("test").astype(np.float64)
    train_labels = tiles.labels[tiles.split == "train"].astype(str)
    test_labels = tiles.labels[tiles.split == "test"].astype(str)
    chosen = {}  # resolved name → why (auto and a named classifier may be the same one)
    for choice in classifiers:
        name, reason = resolve_classifier(choice, train.shape[1], train.shape[2], tiles.channel_types,
                                          tiles.channel_names)
        chosen.setdefault(name, reason)
    settings = replace(EvalSettings(), utility_seeds=1, utility_k=KS, utility_kernels=kernels)
    sample_config = dataset_settings(config, dataset, "sample")
    out = {name: {"reason": reason, "methods": {}} for name, reason in chosen.items()}
    for method in methods:
        key, generator_settings = resolve_method(method, sample_config)
        correct = {name: {} for name in chosen}
        seconds = 0.0
        for seed in range(seeds):
            start = time.process_time()
            generator = ClassConditional(key, generator_settings).fit(train.astype(np.float32), seed,
                                                                      labels=train_labels)
            images, records = generator.sample(max(KS) * len(train), 1000 + seed)
            seconds += time.process_time() - start
            labels = np.array([r["label"] for r in records]).astype(str)
            for name in chosen:
                arms, _, notes = correct_by_arm(images.astype(np.float64), labels, train, train_labels, test,
                                                test_labels, name, seed, settings)
                for arm, values in arms.items():
                    correct[name].setdefault(arm, []).append(values)
                if notes:
                    print(f"{dataset} {method} seed {seed}: " + "; ".join(notes), file=sys.stderr)
        for name in chosen:
            mean = {arm: np.mean(rows, axis=0) for arm, rows in correct[name].items()}
            summary = summarise(mean, test_labels, bootstrap, 0)
            # the same arms against copy's (plain oversampling): paired differences on the same resampled images
            copy = out[name]["methods"].get("copy", {}).get("mean")
            vs_copy = ({arm: summarise({"trtr": copy[arm], arm: mean[arm]}, test_labels, bootstrap, 0)
                        for arm in mean if arm != "trtr"} if copy is not None and method != "copy" else {})
            per_seed = [{arm: float(rows[i].mean()) for arm, rows in correct[name].items()} for i in range(seeds)]
            out[name]["methods"][method] = {"summary": summary, "vs_copy": vs_copy, "seconds": seconds / seeds,
                                            "per_seed": per_seed, "mean": mean}
            cells = ", ".join(f"{arm} {summary[f'{arm}_accuracy']:.3f}" for arm in mean)
            print(f"{dataset} {method:12s} {name}: {seconds / seeds:6.1f} s/seed: {cells}", file=sys.stderr,
                  flush=True)
    return out


def _interval(row: dict, key: str, signed: bool = False) -> str:
    value, lo, hi = row[key], row[f"{key}_lo"], row[f"{key}_hi"]
    form = "{:+.3f}" if signed else "{:.3f}"
    text = f"{form.format(value)} [{form.format(lo)}, {form.format(hi)}]"
    excludes_zero = lo > 1e-9 or hi < -1e-9  # (sums of shares leave rounding dust where the bound is 0)
    return f"**{text}**" if signed and excludes_zero else text


def tables(result: dict, metric: str) -> list[str]:
    """Markdown rows: per method TSTR, its gain vs TRTR, the augmentation gains, and the differences vs copy."""
    arms = ["tstr", *(f"augmentation_k{k}" for k in KS)]
    header = (["method", "TSTR", "TSTR − TRTR"] + [f"aug k={k} − TRTR" for k in KS]
              + [f"aug k={k} − copy k={k}" for k in KS] + ["fit+sample s"])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    for method, row in result["methods"].items():
        summary, vs_copy = row["summary"], row["vs_copy"]
        cells = [f"*{method}*" if method == "copy" else method, _interval(summary, f"tstr_{metric}"),
                 _interval(summary, f"tstr_{metric}_gain", True)]
        cells += [_interval(summary, f"{arm}_{metric}_gain", True) for arm in arms[1:]]
        cells += [_interval(vs_copy[arm], f"{arm}_{metric}_gain", True) if vs_copy else "—" for arm in arms[1:]]
        cells.append(f"{row['seconds']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "benchmark.yaml")
    parser.add_argument("--dataset", nargs="+", default=["eeg_eyes", "finger_movements"])
    parser.add_argument("--methods", nargs="+", default=METHODS, help="copy first: the others are compared to it")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classifier", nargs="+", default=["auto"],
                        help="one or more of auto, tangent_space, minirocket, logistic_features (same samples)")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--kernels", type=int, default=9996, help="MiniRocket kernels (its own default, 10 000)")
    parser.add_argument("--results", type=Path, default=Path("/tmp/utility_benchmark"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--title", default="Utility", help="heading of the markdown section")
    args = parser.parse_args(argv)

    import torch

    from dualdiv.stages.settings import load_config

    torch.set_num_threads(1)  # small models on shared cores: one thread each
    os.chdir(ROOT)  # the config's data paths are relative to the repository
    config = load_config(args.configfile)
    sections = []
    wall = time.time()
    with threadpool_limits(limits=1):
        for dataset in args.dataset:
            start = time.time()
            tiles = prepare(config, dataset, args.results)
            if tiles.labels is None:
                print(f"{dataset}: no labels, skipped", file=sys.stderr)
                continue
            result = run_dataset(config, dataset, tiles, args.methods, args.seeds, args.classifier, args.bootstrap,
                                 args.kernels)
            n_train, n_test = int((tiles.split == "train").sum()), int((tiles.split == "test").sum())
            classes = ", ".join(f"{c}: {int(np.sum(tiles.labels[tiles.split == 'train'] == c))}"
                                for c in np.unique(tiles.labels))
            description = " ".join(str(config["datasets"][dataset].get("description", "")).split())
            section = [f"### {dataset} ({n_train} train / {n_test} test images, "
                       f"{tiles.images.shape[1]}×{tiles.images.shape[2]}; training classes {classes})", "",
                       description, "", f"{time.time() - start:.0f} s wall."]
            for name, by_classifier in result.items():
                trtr = next(iter(by_classifier["methods"].values()))["summary"]
                section += ["", f"#### Classifier {name} ({by_classifier['reason']})", "",
                            f"TRTR accuracy {_interval(trtr, 'trtr_accuracy')}, balanced accuracy "
                            f"{_interval(trtr, 'trtr_balanced_accuracy')}.", "",
                            "Accuracy (mean over seeds [95 % interval]; differences paired, **bold** where the "
                            "interval excludes 0):", ""]
                section += tables(by_classifier, "accuracy")
                section += ["", "Balanced accuracy:", ""]
                section += tables(by_classifier, "balanced_accuracy")
            sections.append("\n".join(section))
    command = (f"python benchmarks/utility.py --dataset {' '.join(args.dataset)} --seeds {args.seeds} --classifier "
               f"{' '.join(args.classifier)} --bootstrap {args.bootstrap} --kernels {args.kernels}")
    text = "\n\n".join([f"## {args.title}",
                        f"`{command}`; {platform.machine()}, "
                        f"{os.cpu_count()} CPU cores (shared), one thread; {time.time() - wall:.0f} s wall in all. "
                        f"Generators fitted per class ({', '.join(args.methods)}); {args.seeds} generator seeds "
                        "per method; fit+sample: CPU seconds per seed (all classes, "
                        f"{max(KS)} × the training split drawn).", *sections])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
