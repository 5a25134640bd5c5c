"""Stage 6 on files: evaluate a samples file against the held-out split; gather a summary table.

- :func:`write_evaluation`: ``samples/{method}.h5`` + ``tiles.h5`` → ``eval/{method}.json``
  (every metric of :func:`dualdiv.evaluation.metrics.evaluate`, generated vs the test split).
- :func:`write_tc`: the total correlation of the real training images (``method = real``) or of
  a generated set, by the project's path estimator → ``eval/tc/{method}.json`` (optional,
  config ``evaluate.tc``; merged into the evaluation as ``tc_real``/``tc_generated``/``tc_gap``).
- :func:`write_summary`: every ``eval/*.json`` → ``summary.csv`` (dataset, method, metric,
  value, reliable) with the reference-based reliability of each metric on each data set
  (:func:`dualdiv.evaluation.metrics.reliability`; a metric that misranks ``copy``, ``interpolate``
  and ``marginals`` is marked unreliable there); the rows of the results folder's other data
  sets are kept; and ``summary.md``, a headline table per data set (:func:`write_headline`).
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.core.io import atomic_output, provenance, sha256_file, write_json
from dualdiv.data.samples import load_samples
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.dualspace import estimate_tc
from dualdiv.estimators.settings import StepSettings
from dualdiv.evaluation.metrics import EvalSettings, evaluate, reliability, tc_fields
from dualdiv.evaluation.utility import utility_metrics

REFERENCES = ("copy", "interpolate", "marginals")


def _read_json(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc}); rerun the stage that writes it") from None


def write_evaluation(samples_path: str | os.PathLike, tiles_path: str | os.PathLike, out: str | os.PathLike,
                     seed: int = 0, settings: EvalSettings = EvalSettings(),
                     tc_paths: tuple[str, str] | None = None) -> dict:
    """Entry of rule ``evaluate``: metrics of one method's samples vs the held-out real images.

    tc_paths: (generated, real) files of :func:`write_tc`, merged in; None leaves TC out.
    The downstream-utility metrics (:func:`dualdiv.evaluation.utility.utility_metrics`: ``trtr_*``, ``tstr_*``,
    ``augmentation_k*``) are merged in where ``settings.utility`` asks for them: "auto" where the tiles have
    labels (None values and ``utility_note`` where the samples carry none), True always, False never.
    """
    tiles = load_tiles(tiles_path)
    samples = load_samples(samples_path)
    if samples.failed is not None:  # the method could not generate: its evaluation says so, no metrics
        result = {"method": samples.method, "generator": samples.generator, "failed": samples.failed,
                  "provenance": provenance("evaluate", {"seed": seed, **asdict(settings)},
                                           {str(samples_path): sha256_file(samples_path)})}
        write_json(out, result)
        return result
    result = evaluate(samples.images, tiles.subset("test"), tiles.subset("train"), seed, settings)
    if settings.utility is True or (settings.utility == "auto" and tiles.labels is not None):
        labels = {split: None if tiles.labels is None else tiles.labels[tiles.split == split]
                  for split in ("train", "test")}
        utility = utility_metrics(samples.images, samples.labels, tiles.subset("train"),
                                  labels["train"], tiles.subset("test"), labels["test"], seed, settings,
                                  channel_types=tiles.channel_types, channel_names=tiles.channel_names)
        result |= utility
    inputs = [samples_path, tiles_path]
    if tc_paths is not None:
        generated, real = (_read_json(path) for path in tc_paths)
        result |= tc_fields(real, [generated], f"path estimator on {real['n_images']} images per set, real = "
                                               f"{real['reference']} split")
        inputs += list(tc_paths)
    result["method"], result["generator"] = samples.method, samples.generator
    result["provenance"] = provenance("evaluate", {"seed": seed, **asdict(settings)},
                                      {str(p): sha256_file(p) for p in inputs})
    write_json(out, result)
    return result


def write_tc(tiles_path: str | os.PathLike, samples_path: str | os.PathLike | None, out: str | os.PathLike,
             n_blocks: int = 1, order: str = "time", reference: str = "train", training: dict | None = None,
             seed: int = 0, device: str = "auto") -> dict:
    """Entry of rule ``total_correlation``: TC (nats) of the ``reference`` split's images
    (``samples_path`` None) or of as many images drawn (seeded) from a samples file.

    Generated and real sets get the same size and the same estimator budget, so their
    estimates compare (both are lower bounds that shrink alike with few images).
    """
    tiles = load_tiles(tiles_path)
    real = tiles.subset(reference)
    images = real
    if samples_path is not None:
        samples = load_samples(samples_path)
        if samples.failed is not None:
            result = {"tc": None, "failed": samples.failed, "n_images": 0, "reference": reference,
                      "provenance": provenance("total_correlation", {"seed": seed, "reference": reference},
                                               {str(samples_path): sha256_file(samples_path)})}
            write_json(out, result)
            return result
        generated = samples.images
        pick = np.random.default_rng(seed).choice(len(generated), min(len(real), len(generated)), replace=False)
        images = generated[np.sort(pick)]
    estimate = estimate_tc(images, n_blocks, order, seed, StepSettings(**(training or {})), device=device)
    result = {"tc": estimate["tc"], "stderr": estimate["stderr"], "min_ess": estimate["min_ess"],
              "n_images": len(images), "reference": reference, "n_blocks": n_blocks, "order": order,
              "steps": [{k: r[k] for k in ("step", "D", "stderr", "iterations", "fallback")}
                        for r in estimate["steps"]],
              "provenance": provenance("total_correlation", {"n_blocks": n_blocks, "order": order, "seed": seed,
                                                             "reference": reference, "training": training or {}},
                                       {str(p): sha256_file(p) for p in (tiles_path, samples_path) if p})}
    write_json(out, result)
    return result


def write_summary(eval_paths: Mapping[str, Mapping[str, str]], out: str | os.PathLike,
                  headline: str | os.PathLike | None = None) -> list[dict]:
    """Entry of rule ``summary``: {dataset: {method: eval path}} → one CSV row per dataset × method × metric.

    The CSV (``dataset, method, metric, value, reliable``) holds every data set ever summarised
    into this results folder: rows of the data sets in ``eval_paths`` are replaced, those of
    other data sets (an earlier config's) are read back from the existing ``out`` and kept.
    Rows are sorted by dataset, then method (the order given, or of the existing file for kept
    data sets), then metric. ``headline``: where to write the markdown headline tables of every
    data set of the merged CSV (:func:`write_headline`); None writes none.
    Returns the merged rows (value int or float; reliable True, False or "").
    """
    rows = []
    for dataset, by_method in eval_paths.items():
        table = {method: _read_json(path) for method, path in by_method.items()}
        verdicts = reliability(table) if all(r in table for r in REFERENCES) else {}
        for method, metrics in table.items():
            if metrics.get("failed"):  # one row that says so; the reason is in summary.md and eval/{method}.json
                rows.append({"dataset": dataset, "method": method, "metric": "failed", "value": 1, "reliable": ""})
                continue
            for metric, value in metrics.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                verdict = verdicts.get(metric, {}).get("reliable")
                rows.append({"dataset": dataset, "method": method, "metric": metric, "value": value,
                             "reliable": "" if verdict is None else verdict})
    if os.path.exists(out):  # keep the other data sets' rows: a second config must not erase the first's
        rows += [row for row in read_summary(out) if row["dataset"] not in eval_paths]
    method_rank = {}  # (dataset, method) → first position: the order given, then the existing file's
    for row in rows:
        method_rank.setdefault((row["dataset"], row["method"]), len(method_rank))
    rows.sort(key=lambda row: (row["dataset"], method_rank[row["dataset"], row["method"]], row["metric"]))
    with atomic_output(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    if headline is not None:
        write_headline(rows, headline, Path(out).parent)
    return rows


SUMMARY_FIELDS = ("dataset", "method", "metric", "value", "reliable")
_RELIABLE = {"True": True, "False": False, "": ""}


def read_summary(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``summary.csv`` written by :func:`write_summary` (value int or float; reliable True/False/"").

    Raises InputError (one line, naming the file) on a missing header, another header, a row
    of another length, a value that is not a number or a reliable flag that is not True/False/empty.
    """
    try:
        with open(path, newline="") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the existing summary ({exc}); move it away to start a new one") \
            from None
    if not lines or tuple(lines[0]) != SUMMARY_FIELDS:
        found = ",".join(lines[0]) if lines else "an empty file"
        raise InputError(f"{path}: header is {found!r}, expected {','.join(SUMMARY_FIELDS)!r}; not a dualdiv "
                         "summary — move it away to start a new one")
    rows = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(SUMMARY_FIELDS):
            raise InputError(f"{path}: line {number} has {len(fields)} fields, expected {len(SUMMARY_FIELDS)}")
        row = dict(zip(SUMMARY_FIELDS, fields, strict=True))
        try:
            row["value"] = int(row["value"]) if row["value"].lstrip("-").isdigit() else float(row["value"])
        except ValueError:
            raise InputError(f"{path}: line {number}: value {row['value']!r} is not a number") from None
        if row["reliable"] not in _RELIABLE:
            raise InputError(f"{path}: line {number}: reliable {row['reliable']!r} is not True, False or empty")
        row["reliable"] = _RELIABLE[row["reliable"]]
        rows.append(row)
    return rows


# Headline columns of summary.md: (metric in the eval JSON, column name, what it means and which way is better).
HEADLINE_COLUMNS = (
    ("c2st_auc_features", "C2ST", "realism: AUC of a classifier telling generated from held-out real images by "
     "their per-channel spectra and channel correlations (`c2st_auc_features`); 0.5 = indistinguishable (best), "
     "1 = fully separable"),
    ("dcr_ratio", "DCR", "novelty: median distance to the closest training image, generated over held-out real "
     "(`dcr_ratio`); ≈ 1 = as novel as new real data (best), below 0.8 flagged as copying (`copy` is ≪ 1)"),
    ("near_copy_fraction", "near copies", "novelty: share of generated images closer to the training set than 95 % "
     "of the held-out real images are (`near_copy_fraction`); lower is better, ≈ 0.05 for new real data"),
    ("kl_dv_gen_real_features", "KL", "paper metric: KL(generated ‖ real) by a held-out neural DV critic in the "
     "feature space (`kl_dv_gen_real_features`, nats); lower is better"),
    ("entropy_gap_features", "entropy gap", "paper metric: |H(generated) − H(real)|, Kozachenko–Leonenko in the "
     "feature space (`entropy_gap_features`, nats); lower is better"),
    ("cluster_divergence_gap_features", "cluster gap", "paper metric: gap of the maximal divergence between "
     "k-means clusters, generated vs real, feature space (`cluster_divergence_gap_features`, nats); lower is "
     "better"),
    ("tc_gap", "TC gap", "paper metric: |TC(generated) − TC(real)| by the path estimator (`tc_gap`, nats; — "
     "where evaluate.tc is off); lower is better"),
    ("tstr_balanced_accuracy_gain", "TSTR gain", "utility (labelled data): balanced accuracy on the held-out "
     "real images of a classifier trained on the generated images minus one trained on the real training split "
     "(`tstr_balanced_accuracy_gain`, with its interval in `eval/{method}.json`); higher is better, 0 = as good "
     "as real data; — for unlabelled data"),
    ("augmentation_k1_balanced_accuracy_gain", "aug gain", "utility (labelled data): the same for the real "
     "training split plus as many generated images, minus real alone (`augmentation_k1_balanced_accuracy_gain`); "
     "above 0 = the samples help a classifier; compare `copy` (plain oversampling)"),
)
METHOD_JOBS = ("sample", "baseline", "evaluate", "total_correlation")  # benchmark files of one method's jobs


def write_headline(rows: list[dict], out: str | os.PathLike, results_dir: str | os.PathLike) -> str:
    """``summary.md``: one markdown table per data set of ``rows`` (methods × HEADLINE_COLUMNS + wall time).

    rows: as :func:`write_summary` returns them (sorted). results_dir: the folder holding
    ``{dataset}/divergence.json`` (the TC of the real training images, shown where present)
    and ``{dataset}/benchmarks/*.tsv`` (Snakemake benchmark files: wall seconds, column
    ``s``, summed). Returns the markdown text.
    """
    values: dict[str, dict[str, dict]] = {}
    reliable: dict[str, dict] = {}
    for row in rows:
        values.setdefault(row["dataset"], {}).setdefault(row["method"], {})[row["metric"]] = row["value"]
        if row["reliable"] != "":
            reliable.setdefault(row["dataset"], {})[row["metric"]] = row["reliable"]
    lines = ["# Headline results per data set", "",
             "Every method's samples against the data set's held-out real images (every metric: `summary.csv`). "
             "Columns:", ""]
    legend = [f"**{name}** — {meaning}" for _, name, meaning in HEADLINE_COLUMNS]
    legend += ["**wall s** — summed wall time of the method's own jobs (its sampling or baseline, evaluation and "
               "TC jobs) from `benchmarks/*.tsv`; — where none were recorded",
               "† after a column name: the metric misranks the references (`copy`, `interpolate`, `marginals`) on "
               "that data set, so it is unreliable there; methods in *italics* are those references, not generators"]
    # wrapped list items (continuation lines indented): readable as plain text too, e.g. in the report caption
    lines += [textwrap.fill(item, 110, initial_indent="- ", subsequent_indent="  ") for item in legend] + [""]
    for dataset, by_method in values.items():
        folder = Path(results_dir) / dataset
        lines += [f"## {dataset}", "", _dataset_line(folder), ""]
        header = ["method"] + [name + (" †" if reliable.get(dataset, {}).get(metric) is False else "")
                               for metric, name, _ in HEADLINE_COLUMNS] + ["wall s"]
        body, failures = [], []
        for method, metrics in by_method.items():
            seconds = _job_seconds(folder / "benchmarks" / f"{job}_{method}.tsv" for job in METHOD_JOBS)
            failed = "failed" in metrics
            if failed:
                failures.append(f"- **{method} failed** on these data: {_failure_reason(folder, method)}")
            body.append([f"*{method}*" if method in REFERENCES else method]
                        + [("failed" if failed else _format_number(metrics.get(metric)))
                           for metric, _, _ in HEADLINE_COLUMNS]
                        + [_format_number(seconds, "{:.0f}")])
        lines += _markdown_table(header, body) + [""] + (failures + [""] if failures else [])
    text = "\n".join(lines)
    with atomic_output(out) as tmp:
        Path(tmp).write_text(text)
    return text


def _failure_reason(folder: Path, method: str) -> str:
    """Why a method failed, from its ``eval/{method}.json`` (the sample stage's message)."""
    path = folder / "eval" / f"{method}.json"
    try:
        return str(json.loads(path.read_text()).get("failed") or "no reason recorded")
    except (OSError, ValueError):
        return f"see logs ({path} unreadable)"


def _dataset_line(folder: Path) -> str:
    """One line per data set: the TC of its real training images and the wall time of all its jobs."""
    divergence = folder / "divergence.json"
    if divergence.exists():
        d = _read_json(divergence)
        tc = (f"TC of the real training images (path estimator, `divergence.json`): {d['tc']:.4g} ± "
              f"{d['stderr']:.3g} {d.get('units', 'nats')} over {d.get('n_steps', '?')} steps.")
    else:
        tc = "TC of the real training images: no `divergence.json` (the dual stage has not run)."
    benchmarks = sorted((folder / "benchmarks").glob("*.tsv"))
    total = _job_seconds(benchmarks)
    time = (f" Wall time of its benchmarked jobs: {total:.0f} s over {len(benchmarks)} jobs." if total is not None
            else " No job wall times recorded (`benchmarks/*.tsv`).")
    return tc + time


def _job_seconds(paths) -> float | None:
    """Summed ``s`` column (wall seconds) of the Snakemake benchmark files among ``paths`` that exist; None if none."""
    total, found = 0.0, False
    for path in paths:
        if not path.exists():
            continue
        try:
            with open(path, newline="") as handle:
                total += sum(float(row["s"]) for row in csv.DictReader(handle, delimiter="\t"))
        except (OSError, KeyError, TypeError, ValueError, csv.Error) as exc:
            raise InputError(f"{path}: not a Snakemake benchmark file (no number in column 's': {exc})") from None
        found = True
    return total if found else None


def _format_number(value, form: str = "{:.3g}") -> str:
    return "—" if value is None or not np.isfinite(value) else form.format(value)


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    """Lines of a markdown table, cells padded to their column's width (also readable as plain text)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]  # numbers right-aligned
    cells = [[header[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(header[1:], widths[1:], strict=True)],
             rule] + [[row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
                      for row in body]
    return ["| " + " | ".join(row) + " |" for row in cells]
