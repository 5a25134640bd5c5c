"""Held-out realism and novelty of every dualdiv variant, its bases and the references, per data set.

For each ``--dataset`` of ``--configfile`` the workflow is first run up to ``clusters.json``
(ingest → tile → path → dual → localize, seed from the config: one F per data set; only up to
``tiles.h5`` when ``--methods`` picks no walk, the one kind of method that needs the dual space),
then every method (or those ``--methods`` names) is fitted on the training images and draws
``--n`` images for each of ``--seeds`` seeds. Metrics against the held-out test images
(``dualdiv.evaluation.metrics`` and ``dualdiv.evaluation.discriminators``):

- feature C2ST: classifier two-sample AUC (0.5 best), logistic regression on the
  standardised per-channel Welch log spectra + channel correlations, ``--repeats`` ×
  stratified 5-fold on balanced subsets (``metrics.c2st_auc``);
- critics independent of those features, on the raw series: MiniRocket C2ST (MiniRocket
  transform + ridge, the same protocol, ``discriminators.minirocket_c2st``; blank without aeon
  or sktime), and TimeGAN's post-hoc discriminator (a 2-layer GRU trained on 80 % of a
  balanced real/generated mix, scored on the rest, 3 splits): its held-out AUC and
  discriminative score |accuracy − 0.5| (0 best; ≈ 0.4/√n_test even for real data);
- marginal W1 and KS: per-pixel 1-D Wasserstein-1 distance (normalised units) and
  Kolmogorov–Smirnov statistic of generated vs test values, averaged over pixels;
- spectrum error (mean |Δ mean log spectrum|) and correlation error (Frobenius norm of the
  difference of the mean channel-correlation matrices);
- DCR ratio: median distance of generated images to their closest training image over the
  same for the test images, on normalised pixels and in the standardised feature space
  (≈ 1 as novel as new data, ≪ 1 copies); near-copy fraction (below the 5th percentile of
  the test images' distances).

Mean ± std over seeds; a markdown table per data set (and ``--out``)::

    nice -n 10 .venv/bin/python benchmarks/generation.py --configfile config/benchmark.yaml \\
        --dataset eeg_eyes solar_wind --out benchmarks/GENERATION.md
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from threadpoolctl import threadpool_limits

import dualdiv  # noqa: F401  fills the generator registry
from dualdiv.core.errors import ConfigError
from dualdiv.data.tiles import load_tiles
from dualdiv.evaluation.discriminators import gru_discriminative_score, marginal_errors, minirocket_c2st
from dualdiv.evaluation.metrics import FeatureSpace, c2st_auc, correlation_error, memorisation, spectrum_error
from dualdiv.generators import WALKS, make_generator
from dualdiv.generators.constraints import Constrained
from dualdiv.stages.sample import walk_inputs

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = [("c2st", "feature C2ST"), ("minirocket", "MiniRocket C2ST"), ("gru_auc", "GRU AUC"),
           ("gru_score", "GRU disc. score"), ("w1", "marginal W1"), ("ks", "marginal KS"),
           ("spectrum", "spectrum err"), ("corr", "corr. err"), ("dcr", "DCR"),
           ("dcr_feat", "DCR (features)"), ("near_copy", "near copies"), ("critic_auc", "critic AUC"),
           ("ess", "ESS of 32"), ("acceptance", "MALA accept"), ("walk_accepted", "walk accepted"),
           ("fit_s", "fit s"), ("sample_s", "sample s")]


def methods() -> list[tuple[str, str, dict]]:
    """(label, registry key, settings) of every compared method."""
    mix = {"local_mixture": True}
    out = [("copy", "copy", {}), ("interpolate", "interpolate", {}), ("marginals", "marginals", {}),
           ("spectral", "spectral", {}), ("spectral_mix", "spectral", mix), ("var", "var", {}),
           ("gaussian_lw", "gaussian_lw", {})]
    for label, base, settings in [("spectral", "spectral", {}), ("spectral_mix", "spectral", mix), ("var", "var", {}),
                                  ("gaussian_lw", "gaussian_lw", {})]:
        for sampler in ("sir", "mala"):
            out.append((f"{label}+{sampler}", "dualdiv_corrected",
                        {"base": base, "base_settings": settings, "sampler": sampler}))
    out.append(("dualdiv (spectral_mix+auto)", "dualdiv_corrected",  # the default: marginals auto
                {"base": "spectral", "base_settings": mix, "sampler": "auto"}))
    for marginals in ("none", "channel", "pixel"):  # the copula's modes against the default's data rule
        out.append((f"dualdiv, marginals {marginals}", "dualdiv_corrected", {"marginals": marginals}))
    walk = {"max_steps": 20, "max_rounds": 2}
    out += [("walk_image", "dualdiv_walk", {"start": "image", **walk}),
            ("walk_interpolation", "dualdiv_walk", {"start": "interpolation", **walk}),
            ("basewalk_spectral_mix", "dualdiv_basewalk", {"base": "spectral", **walk})]
    return out


def evaluate(train: np.ndarray, test: np.ndarray, generated: np.ndarray, seed: int, repeats: int) -> dict:
    """The table's metrics of one generated set against the held-out test images.

    Besides the COLUMNS keys: ``minirocket_s``, ``gru_s``, ``marginal_s``, the CPU seconds of those critics.
    """
    space = FeatureSpace(train)
    feature = {name: space.transform(images) for name, images in
               (("train", train), ("test", test), ("generated", generated))}
    raw = memorisation(generated, test, train)
    in_features = memorisation(feature["generated"], feature["test"], feature["train"])
    out = {"c2st": c2st_auc(feature["test"], feature["generated"], seed, repeats)["auc"],
           "spectrum": spectrum_error(test, generated), "corr": correlation_error(test, generated),
           "dcr": raw["dcr_ratio"], "dcr_feat": in_features["dcr_ratio"], "near_copy": raw["near_copy_fraction"]}
    start = time.process_time()
    try:
        out["minirocket"] = minirocket_c2st(test, generated, seed, repeats)["auc"]
    except ConfigError as err:  # no aeon/sktime, or series shorter than the kernel: the column stays blank
        print(f"MiniRocket C2ST left out: {err}", file=sys.stderr, flush=True)
    out["minirocket_s"] = time.process_time() - start
    start = time.process_time()
    gru = gru_discriminative_score(test, generated, seed)
    out |= {"gru_auc": gru["auc"], "gru_score": gru["discriminative_score"], "gru_s": time.process_time() - start}
    start = time.process_time()
    marginal = marginal_errors(test, generated)
    out |= {"w1": marginal["w1"], "ks": marginal["ks"], "marginal_s": time.process_time() - start}
    return out


def prepare(configfile: Path, dataset: str, results: Path, cores: int, dual_space: bool = True) -> None:
    """Run the workflow of ``dataset`` up to the fitted dual space and its cut points, or (``dual_space``
    False: no walk compared) only up to the tiles."""
    target = results / dataset / ("clusters.json" if dual_space else "tiles.h5")
    subprocess.run(["snakemake", "--cores", str(cores), "--configfile", str(configfile), "--config",
                    f"results={results}", "--quiet", "--", str(target)], cwd=ROOT, check=True)


def selected(labels: list[str] | None) -> list[tuple[str, str, dict]]:
    """The entries of :func:`methods` with these labels, in the table's order (all for None)."""
    return [entry for entry in methods() if not labels or entry[0] in labels]


def run_dataset(results: Path, dataset: str, seeds: int, n: int, repeats: int, labels: list[str] | None) -> list[dict]:
    folder = results / dataset
    chosen = selected(labels)
    walk = (walk_inputs(folder / "tiles.h5", folder / "dualspace", folder / "clusters.json", device="cpu")
            if any(key in WALKS for _, key, _ in chosen) else {})
    tiles = load_tiles(folder / "tiles.h5")
    train, test = tiles.subset("train"), tiles.subset("test")
    rows = []
    for label, key, settings in chosen:
        for seed in range(seeds):
            start = time.process_time()
            extra = walk if key in WALKS else {}
            # as the pipeline samples: constant channels fitted around, the data's constraints kept
            generator = Constrained(make_generator(key, **settings), tiles.channel_mean, tiles.channel_std,
                                    tiles.channel_names, tiles.units, fit_constant_channels=key in WALKS)
            generator.fit(train, seed=seed, **extra)
            fitted = time.process_time()
            images, records = generator.sample(n, seed=1000 + seed)
            sampled = time.process_time()
            row = {"method": label, "seed": seed, "fit_s": fitted - start, "sample_s": sampled - fitted,
                   **evaluate(train, test, images, seed, repeats)}
            if key == "dualdiv_corrected":
                row["critic_auc"] = generator.critic_report_["auc"]
                if generator.corrected_:
                    stat = "ess" if generator.sampler_ == "sir" else "acceptance"
                    row[stat] = float(np.mean([r[stat] for r in records]))
            if key in WALKS:
                row["walk_accepted"] = float(np.mean([r["accepted"] for r in records]))
            rows.append(row)
            print(f"{dataset} {label:24s} seed {seed}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | " + " | ".join(name for _, name in COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for label in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == label]
        cells = []
        for key, _ in COLUMNS:
            values = [r[key] for r in mine if key in r]
            if not values:
                cells.append("")
            elif key in ("fit_s", "sample_s"):
                cells.append(f"{np.mean(values):.1f}")
            else:
                cells.append(f"{np.mean(values):.2f} ± {np.std(values):.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", type=Path, default=ROOT / "config" / "benchmark.yaml")
    parser.add_argument("--dataset", nargs="+", default=["eeg_eyes"])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "benchmark")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=100, help="generated images per method and seed")
    parser.add_argument("--repeats", type=int, default=10, help="C2ST repeats (random subsets × 5-fold)")
    labels = [label for label, _, _ in methods()]
    parser.add_argument("--methods", "--only", dest="methods", nargs="+", metavar="LABEL",
                        help=f"method labels to run, in the table's order whatever the order given (default: all): "
                             f"{', '.join(labels)}")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods or ()) - set(labels))
    if unknown:
        parser.error(f"--methods: no method labelled {', '.join(unknown)}; the labels: {', '.join(labels)}")
    descriptions = yaml.safe_load(args.configfile.read_text()).get("datasets", {})
    sections = []
    for dataset in args.dataset:
        wall = time.time()
        walks = any(key in WALKS for _, key, _ in selected(args.methods))
        prepare(args.configfile, dataset, args.results.resolve(), args.cores, dual_space=walks)
        prepared = time.time()
        torch.set_num_threads(1)  # one core per method: the comparison, not the machine, is measured
        with threadpool_limits(1):
            rows = run_dataset(args.results.resolve(), dataset, args.seeds, args.n, args.repeats, args.methods)
        tiles = load_tiles(args.results / dataset / "tiles.h5")
        shape = tiles.images.shape
        sections += [f"## {dataset} ({(tiles.split == 'train').sum()} train / {(tiles.split == 'test').sum()} "
                     f"test images, {shape[1]}×{shape[2]})", "",
                     " ".join(str(descriptions.get(dataset, {}).get("description", "")).split()), "",
                     f"Workflow to the {'dual space' if walks else 'tiles'} {prepared - wall:.0f} s, the table "
                     f"{time.time() - prepared:.0f} s wall; mean ± std over {args.seeds} seeds; fit/sample: CPU "
                     f"seconds; MiniRocket / GRU / marginal critics " + " / ".join(
                         f"{np.mean([r[key] for r in rows]):.1f}" for key in ("minirocket_s", "gru_s", "marginal_s"))
                     + " CPU s per generated set.", "", table(rows), ""]
    command = "benchmarks/generation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([f"# Generation: held-out realism and novelty per method\n\n`{command}`; "
                      f"{platform.processor() or platform.machine()}, one torch thread per method.\n", *sections])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
