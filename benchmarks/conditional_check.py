"""Class-conditional samples are of their class: a classifier of the real classes labels them right.

For each labelled data set of ``--configfile`` (default config/benchmark.yaml; data sets with fewer
than two classes are skipped) the script ingests and tiles it with the config's settings into
``--results``, then samples every ``--methods`` per class with the sample stage
(``sample.conditional: true``, ``--n`` images in the training labels' proportions,
``dualdiv.stages.sample.write_samples``). Checks, on standardised features (per-channel Welch log
spectra and per-channel means of the normalised images; mean and std of the real training images):

- counts: the samples' labels equal the proportional counts of the training labels;
- accuracy: logistic regression (C = 1) trained on the real training images and their labels
  labels the real test images (the reference: how separable the classes are) and the generated
  images (against the class each was drawn for); balanced accuracy, chance = 1 / classes. The
  generators saw the training images, so this is optimistic for them (``copy``: the classifier's
  training accuracy); hence also
- generated → real: the same classifier trained on the generated images and their labels,
  tested on the real test images (a generator that mixed up or blurred its classes scores lower
  than real → real);
- C2ST per class: AUC of a classifier telling a class's generated images from the real test
  images of the same class ("own", 0.5 = alike) and from those of the other classes ("other");
  mean over classes (``dualdiv.evaluation.metrics.c2st_auc``, 5-fold, ``--repeats`` repeats).
  With ~10 test images per class it has little power: on EEG ``copy`` scores own = other.

Usage (a few minutes on 2 cores)::

    python benchmarks/conditional_check.py --datasets eeg_eyes finger_movements spikes \\
        --results /tmp/conditional --out benchmarks/CONDITIONAL.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from dualdiv.data.samples import load_samples
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.features import log_spectra
from dualdiv.evaluation.metrics import c2st_auc
from dualdiv.generators.conditional import proportional_counts
from dualdiv.stages.ingest import ingest
from dualdiv.stages.sample import write_samples
from dualdiv.stages.settings import from_config, load_config
from dualdiv.stages.tile import tile
from dualdiv.stages.workflow import dataset_settings, selected_datasets

ROOT = Path(__file__).resolve().parents[1]


def features(images: np.ndarray) -> np.ndarray:
    """(n, H·F + H): per-channel Welch log spectra (segments of ≤ 64 steps) and per-channel means."""
    spectra = log_spectra(images, nperseg=min(64, images.shape[-1])).reshape(len(images), -1)
    return np.concatenate([spectra, images.mean(axis=-1)], axis=1)


def prepare(config: dict, dataset: str, folder: Path, splits: int) -> list[Path]:
    """ingest → tile of ``dataset`` with its settings in ``config``, the train/test split drawn with
    ``splits`` seeds (the config's seed, +1, ...); returns the tiles.h5 of each."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [f if Path(f).is_absolute() or f.startswith("package:") else str(ROOT / f)
             for f in selected_datasets(config)[dataset]["files"]]
    ingest(files, folder / "raw.nc", from_config("ingest", dataset_settings(config, dataset, "ingest")))
    paths = []
    for k in range(splits):
        settings = dataset_settings(config, dataset, "tile")
        (folder / f"split{k}").mkdir(exist_ok=True)
        paths.append(folder / f"split{k}" / "tiles.h5")
        tile(folder / "raw.nc", paths[-1], from_config("tile", {**settings, "seed": settings["seed"] + k}))
    return paths


def check(tiles_path: Path, method: str, n: int, seed: int, sample_config: dict, repeats: int) -> dict:
    """Counts, accuracies and per-class C2ST of ``method``'s conditional samples on one data set."""
    tiles = load_tiles(tiles_path)
    train, test = tiles.subset("train"), tiles.subset("test")
    train_labels, test_labels = tiles.labels[tiles.split == "train"], tiles.labels[tiles.split == "test"]
    started = time.perf_counter()
    write_samples(tiles_path, method, tiles_path.parent / f"{method}.h5", n, seed,
                  {**sample_config, "conditional": True})
    wall = time.perf_counter() - started
    samples = load_samples(tiles_path.parent / f"{method}.h5")
    expected = proportional_counts(n, {str(c): int((train_labels == c).sum()) for c in np.unique(train_labels)})
    counts = {c: int((samples.labels == c).sum()) for c in expected}
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    with threadpool_limits(1):
        classifier.fit(features(train), train_labels)
        real = balanced_accuracy_score(test_labels, classifier.predict(features(test)))
        generated = balanced_accuracy_score(samples.labels, classifier.predict(features(samples.images)))
        # the other way round: trained on the generated images and their labels, tested on the real test images
        tstr = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)).fit(
            features(samples.images), samples.labels)
        generated_to_real = balanced_accuracy_score(test_labels, tstr.predict(features(test)))
        scaler = StandardScaler().fit(features(train))
        gen_features, test_features = scaler.transform(features(samples.images)), scaler.transform(features(test))
        own, other = [], []
        for c in expected:
            mine = gen_features[samples.labels == c]
            own.append(c2st_auc(mine, test_features[test_labels == c], seed, repeats)["auc"])
            other.append(c2st_auc(mine, test_features[test_labels != c], seed, repeats)["auc"])
    return {"counts": counts, "expected": expected, "real_accuracy": real, "generated_accuracy": generated,
            "generated_to_real_accuracy": generated_to_real,
            "c2st_own": float(np.mean(own)), "c2st_other": float(np.mean(other)), "wall_s": wall,
            "own_generators": sorted(samples.provenance["settings"]["classes_with_own_generator"]),
            "n_train": {c: int((train_labels == c).sum()) for c in expected},
            "n_test": {c: int((test_labels == c).sum()) for c in expected}}


def _cell(values: list[float], digits: int = 2) -> str:
    """mean ± std over splits (the value alone for one split)."""
    return f"{np.mean(values):.{digits}f}" + (f" ± {np.std(values):.{digits}f}" if len(values) > 1 else "")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "benchmark.yaml")
    parser.add_argument("--datasets", nargs="+", help="data sets of the config (default: its labelled ones)")
    parser.add_argument("--methods", nargs="+", default=["dualdiv", "spectral", "copy"])
    parser.add_argument("--n", type=int, default=100, help="generated images per method (training proportions)")
    parser.add_argument("--splits", type=int, default=3, help="train/test splits (tile seeds) averaged over")
    parser.add_argument("--repeats", type=int, default=10, help="C2ST repeats")
    parser.add_argument("--results", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    config = load_config(args.configfile)
    results = args.results or Path(tempfile.mkdtemp(prefix="conditional_check_"))
    seed = int(config["seed"])
    rows, skipped = [], []
    for dataset in args.datasets or list(config["datasets"]):
        tiles_paths = prepare(config, dataset, results / dataset, args.splits)
        labels = load_tiles(tiles_paths[0]).labels
        if labels is None or len(set(labels)) < 2:
            skipped.append(dataset)
            continue
        sample_config = dataset_settings(config, dataset, "sample")
        for method in args.methods:
            splits = []
            for k, tiles_path in enumerate(tiles_paths):
                splits.append(check(tiles_path, method, args.n, seed, sample_config, args.repeats))
                print(f"{dataset} {method} split {k}: " + ", ".join(
                    f"{key} {value:.3f}" for key, value in splits[-1].items() if isinstance(value, float)),
                    file=sys.stderr, flush=True)
            rows.append({"dataset": dataset, "method": method, "splits": splits})
    lines = ["| data set | classes: train / test images | method | counts as asked | real → real test | "
             "real → generated | generated → real test | C2ST own class | C2ST other classes | "
             "classes with own generator | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        first = row["splits"][0]
        sizes = ", ".join(f"{c}: {first['n_train'][c]} / {first['n_test'][c]}" for c in first["n_train"])
        if len(sizes) > 60:
            sizes = (f"{len(first['n_train'])} classes, {sum(first['n_train'].values())} / "
                     f"{sum(first['n_test'].values())}")
        values = {key: [split[key] for split in row["splits"]] for key in first if isinstance(first[key], float)}
        counts_ok = all(split["counts"] == split["expected"] for split in row["splits"])
        own = sorted({len(split["own_generators"]) for split in row["splits"]})
        lines.append(f"| {row['dataset']} | {sizes} | {row['method']} | "
                     f"{'yes' if counts_ok else 'NO'} ({sum(first['counts'].values())}) | "
                     f"{_cell(values['real_accuracy'])} | {_cell(values['generated_accuracy'])} | "
                     f"{_cell(values['generated_to_real_accuracy'])} | {_cell(values['c2st_own'])} | "
                     f"{_cell(values['c2st_other'])} | {'/'.join(map(str, own))} of {len(first['n_train'])} | "
                     f"{np.mean(values['wall_s']):.0f} |")
    command = "python benchmarks/conditional_check.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "# Class-conditional sampling: are the samples of their class?", "",
        f"`{command}`  ",
        f"{datetime.date.today().isoformat()}, {platform.machine()}, {n_cores()} cores; seed {seed}; "
        f"{args.n} images per method in the training proportions; mean ± std over {args.splits} train/test "
        f"splits (tile seeds {seed}..{seed + args.splits - 1}; class sizes shown for the first).", "",
        "Balanced accuracy (chance: 1 / classes) of a logistic regression trained on the real training images "
        "(real →) or on the generated images (generated →), labelling the real test images or the generated "
        "images by the class each was drawn for; C2ST AUC of a class's generated images against the real test "
        "images of that class (own: 0.5 = alike) and of the other classes, mean over classes (little power at "
        "~10 test images per class). Features: per-channel Welch log spectra and means of the normalised images. "
        "Wall: fit and sample per split, one thread.", "", *lines, "",
        *([f"Skipped (fewer than two classes): {', '.join(skipped)}.", ""] if skipped else [])])
    print(text)
    if args.out:
        args.out.write_text(text)


def n_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
