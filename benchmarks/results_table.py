"""RESULTS.md from a finished benchmark run: the paper's metrics per data set × method, with intervals,
dualdiv's paired standing against every other generator, and wall times.

Reads ``<results>/summary.csv`` (every metric of every method with the reference-based reliability of
each metric on each data set; on a cross-fitted data set, ``evaluate.folds``, the mean over folds ×
seeds with its corrected 95 % interval), ``<results>/paired.csv`` (dualdiv − each method, paired by fit)
and the Snakemake benchmark files of every pipeline (``<results>/<dataset>/benchmarks/*.tsv``, or the
fold units' ``<results>/<dataset>/folds/*/benchmarks/*.tsv``). The paper's four metrics, lower is
better: KL divergence generated ‖ real (held-out neural DV critic), entropy gap (Kozachenko–Leonenko),
gap of the maximal divergence between k-means clusters — these three in the standardised feature
space (per-channel log spectra + channel correlations, whitened PCA) — and the gap of the total
correlation (path estimator on the pixels; the multivariate mutual information).
A metric that misranks the references on a data set (``copy`` must beat ``interpolate`` and
``marginals``) is marked unreliable there (†).

dualdiv's standing on a metric, among the non-reference methods that pass the memorisation gate
(DCR ratio ≥ 0.8): **best** (its paired interval beats every one of them), **tied** (no interval says
it is worse, not all say better), **behind** (at least one is better by its interval). Single-split
results (no intervals) rank by the values alone and say so.

    python benchmarks/results_table.py --results results/benchmark --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dualdiv.stages.evaluate import METHOD_JOBS, REFERENCES, read_paired, read_summary  # noqa: E402

PAPER_METRICS = [("kl_dv_gen_real_features", "KL gen‖real"), ("entropy_gap_features", "entropy gap"),
                 ("cluster_divergence_gap_features", "cluster div. gap"), ("tc_gap", "TC gap")]
OTHER_METRICS = [("c2st_auc_features", "feature C2ST"), ("c2st_auc_minirocket", "MiniRocket C2ST"),
                 ("gru_discriminative_score", "GRU disc."), ("marginal_w1", "marginal W1"),
                 ("dcr_ratio", "DCR"), ("near_copy_fraction", "near copies")]
DCR_GATE = 0.8


def pipelines(results: Path, dataset: str, cross_fitted: bool) -> list[Path]:
    """The folders of a data set's pipelines: its fold units when cross-fitted, else its own."""
    folder = results / dataset
    return sorted(p for p in (folder / "folds").glob("seed*_fold*") if p.is_dir()) if cross_fitted else [folder]


def job_seconds(paths) -> float:
    """Summed wall seconds (column s, the first) of the Snakemake benchmark files among ``paths`` that exist."""
    return sum(float(p.read_text().splitlines()[1].split("\t")[0]) for p in paths if p.exists())


def wall_seconds(folders: list[Path], method: str) -> float:
    """Mean over pipelines of the seconds of the jobs that made and scored one method's samples."""
    total = job_seconds(f / "benchmarks" / f"{job}_{method}.tsv" for f in folders for job in METHOD_JOBS)
    return total / max(len(folders), 1)


def total_seconds(folders: list[Path]) -> float:
    return job_seconds(p for f in folders for p in (f / "benchmarks").glob("*.tsv"))


def cell(row: dict | None) -> str:
    if row is None or not math.isfinite(row["value"]):
        return "—"
    text = f"{row['value']:.3g}"
    if row["n"] > 1 and row["ci_high"] != "" and math.isfinite(row["ci_high"]):
        text += f" ± {row['ci_high'] - row['value']:.2g}"
    return text


def standing(dataset: str, metric: str, table: dict, paired: list[dict]) -> str:
    """dualdiv's standing on ``metric`` among the gated non-reference methods (see the module docstring)."""
    if "dualdiv" not in table or metric not in table["dualdiv"]:
        return "—"
    rivals = [m for m in table if m != "dualdiv" and m not in REFERENCES and metric in table[m]
              and table[m].get("dcr_ratio", {"value": 0})["value"] >= DCR_GATE]
    if not rivals:
        return "no rival"
    verdicts = {row["versus"]: row["verdict"] for row in paired
                if row["dataset"] == dataset and row["metric"] == metric and row["versus"] in rivals}
    if len(verdicts) == len(rivals) and all(v in ("better", "worse", "tied") for v in verdicts.values()):
        if any(v == "worse" for v in verdicts.values()):
            behind = [m for m, v in verdicts.items() if v == "worse"]
            return f"behind ({', '.join(behind)})"
        return "best" if all(v == "better" for v in verdicts.values()) else "tied"
    ours = table["dualdiv"][metric]["value"]  # single split: the values alone
    lowest = min(table[m][metric]["value"] for m in rivals)
    return ("lowest" if ours < lowest else "not lowest") + " (one split, no interval)"


def dataset_section(dataset: str, table: dict, reliable: dict, folders: list[Path]) -> str:
    columns = PAPER_METRICS + OTHER_METRICS
    present = [(key, label) for key, label in columns if any(key in metrics for metrics in table.values())]
    header = [label + (" †" if reliable.get(key) is False else "") for key, label in present]
    lines = ["| method | " + " | ".join(header) + " | wall s |", "|---|" + "---|" * (len(present) + 1)]
    for method in sorted(table, key=lambda m: (m in REFERENCES, list(table).index(m))):
        failed = table[method].get("failed")
        name = f"*{method}*" if method in REFERENCES else method
        name += f" (failed on {failed['value']} of {failed['n']})" if failed else ""
        cells = [cell(table[method].get(key)) for key, _ in present]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {wall_seconds(folders, method):.0f} |")
    return "\n".join(lines)


UTILITY_SECTION = """## Utility

Downstream utility of the labelled data sets (TRTR, TSTR and real + k × synthetic, per method, 3 seeds,
95 % intervals, beside the simple augmentations and `copy` oversampling) is in `UTILITY.md`
(`python benchmarks/utility.py`); the benchmark run's `eval/{method}.json` hold the same keys
(`trtr_*`, `tstr_*`, `augmentation_*`) and `summary.md` their TSTR and augmentation gains.
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results/benchmark"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS.md"))
    parser.add_argument("--command", default="snakemake --cores 2 --configfile config/benchmark.yaml",
                        help="the command that made the results (written into the page)")
    parser.add_argument("--note", default="", help="a paragraph written under the command (what was run)")
    args = parser.parse_args(argv)
    rows = read_summary(args.results / "summary.csv")
    paired = read_paired(args.results / "paired.csv") if (args.results / "paired.csv").exists() else []
    values: dict = defaultdict(lambda: defaultdict(dict))
    reliable: dict = defaultdict(dict)
    fits: dict = defaultdict(int)
    for row in rows:
        values[row["dataset"]][row["method"]][row["metric"]] = row
        if row["reliable"] != "":
            reliable[row["dataset"]].setdefault(row["metric"], row["reliable"])
        fits[row["dataset"]] = max(fits[row["dataset"]], row["n"])
    sections, overview = [], []
    for dataset, table in values.items():
        folders = pipelines(args.results, dataset, fits[dataset] > 1)
        standings = [standing(dataset, key, table, paired) + (" †" if reliable[dataset].get(key) is False else "")
                     for key, _ in PAPER_METRICS]
        dualdiv = table.get("dualdiv", {})
        overview.append(f"| {dataset} | {fits[dataset]} | " + " | ".join(standings)
                        + f" | {cell(dualdiv.get('c2st_auc_features'))} | {cell(dualdiv.get('dcr_ratio'))} |")
        how = (f"{fits[dataset]} fits (folds × seeds), mean ± half-width of the 95 % interval (corrected for the "
               "folds' shared training images)" if fits[dataset] > 1 else "one split, no interval")
        sections += [f"## {dataset}", "",
                     f"{how}. All jobs of the data set: {total_seconds(folders):.0f} s of job wall time; "
                     "per method (wall s, mean per fit): its sampling or baseline, evaluation and TC jobs.", "",
                     dataset_section(dataset, table, reliable[dataset], folders), ""]
        shown = dict(PAPER_METRICS + OTHER_METRICS[:1])  # the paper's metrics and the feature C2ST
        rows_here = [r for r in paired if r["dataset"] == dataset and r["metric"] in shown]
        if rows_here:
            sections += ["dualdiv − method, paired by fit (mean, 95 % interval, corrected-t p, sign-flip p; the "
                         "sign-flip p is exact over the 2ⁿ sign patterns of n fits, so never below 2/2ⁿ, and treats "
                         "the fits as independent, which the folds of one seed are not: the verdict is the corrected "
                         "interval's):", "",
                         "| versus | metric | difference | interval | p | p sign-flip | dualdiv |",
                         "|---|---|---|---|---|---|---|"]
            sections += [f"| {r['versus']} | {shown[r['metric']]} | {r['difference']:.3g} | [{r['ci_low']:.3g}, "
                         f"{r['ci_high']:.3g}] | {r['p_value']:.2g} | {r['p_sign_flip']:.2g} | "
                         f"{r['verdict'] or '—'} |" for r in rows_here]
            sections.append("")
    head = ["| data set | fits | " + " | ".join(f"dualdiv on {label}" for _, label in PAPER_METRICS)
            + " | dualdiv feature C2ST | dualdiv DCR |", "|---|---|" + "---|" * (len(PAPER_METRICS) + 2)]
    page = "\n".join([
        "# Benchmark: dualdiv against the baselines", "",
        f"Command: `{args.command}`, then `python benchmarks/results_table.py --results {args.results}`. "
        f"Machine: {platform.machine()}, 2 CPU cores, no GPU. Every metric against held-out real images. Lower is "
        "better for every metric but DCR (≈ 1 novel, ≪ 1 copies) and the C2STs (0.5 best). † = the metric misranks "
        "the references on that data set (unreliable there). dualdiv's standing among the non-reference methods "
        f"with DCR ≥ {DCR_GATE}: best (its paired interval beats each), tied (none beats it by its interval), "
        "behind (named: those that beat it).", "", *([args.note, ""] if args.note else []),
        *head, *overview, "", *sections, UTILITY_SECTION])
    args.out.write_text(page + "\n")
    print(page)


if __name__ == "__main__":
    main()
