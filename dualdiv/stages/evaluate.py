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
from dualdiv.evaluation.intervals import mean_interval, paired_difference, verdict
from dualdiv.evaluation.metrics import EvalSettings, evaluate, metric_direction, reliability, tc_fields
from dualdiv.evaluation.utility import utility_metrics
from dualdiv.stages.workflow import parse_unit

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
                  headline: str | os.PathLike | None = None, paired: str | os.PathLike | None = None) -> list[dict]:
    """Entry of rule ``summary``: {pipeline: {method: eval path}} → one CSV row per dataset × method × metric.

    A pipeline is a data set's name (its single split: the row's ``value`` is the metric, ``n`` 1, no
    interval) or one of its fold units (``{dataset}/folds/seed{s}_fold{f}``, see
    :func:`dualdiv.stages.workflow.unit_name`): the units of one data set are pooled into one row per
    method × metric, ``value`` the mean over the fits (folds × seeds) where the method produced the metric,
    ``ci_low``/``ci_high`` its 95 % interval corrected for the folds' overlapping training sets
    (:func:`dualdiv.evaluation.intervals.mean_interval`), ``n`` the number of fits; a method that failed on
    some fits gets a ``failed`` row counting them. Reliability (``reliable``) is judged on the references'
    values (their means when cross-fitted).

    The CSV (``SUMMARY_FIELDS``) holds every data set ever summarised into this results folder: rows of the
    data sets given are replaced, those of other data sets (an earlier config's) are read back from the
    existing ``out`` and kept. Rows are sorted by dataset, then method (the order given, or of the existing
    file for kept data sets), then metric. ``headline``: where to write the markdown headline tables of
    every data set of the merged CSV (:func:`write_headline`); ``paired``: where to write ``paired.csv``,
    dualdiv's paired differences from every other method on the cross-fitted data sets
    (:func:`paired_rows`; other data sets' rows kept the same way). None writes neither.
    Returns the merged rows (value int or float; ci_low/ci_high float or ""; n int; reliable True, False or "").
    """
    groups: dict[str, dict[str, dict]] = {}  # dataset → {pipeline: {method: evaluation}}
    for name, by_method in eval_paths.items():
        unit = parse_unit(name)
        groups.setdefault(name if unit is None else unit[0], {})[name] = {
            method: _read_json(path) for method, path in by_method.items()}
    rows, comparisons = [], []
    for dataset, pipelines in groups.items():
        if list(pipelines) == [dataset]:
            rows += _single_split_rows(dataset, pipelines[dataset])
        else:
            folds = len({parse_unit(name)[2] for name in pipelines})
            fits = list(pipelines.values())
            rows += _cross_fitted_rows(dataset, fits, folds)
            comparisons += paired_rows(dataset, fits, folds)
    rows = _merge_kept(rows, out, read_summary, set(groups))
    with atomic_output(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows({**row, **{k: _csv_number(row[k]) for k in ("ci_low", "ci_high")}} for row in rows)
    if paired is not None:
        comparisons = _merge_kept(comparisons, paired, read_paired, set(groups))
        with atomic_output(paired) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=PAIRED_FIELDS)
            writer.writeheader()
            writer.writerows({k: _csv_number(v) if isinstance(v, float) else v for k, v in row.items()}
                             for row in comparisons)
    if headline is not None:
        write_headline(rows, headline, Path(out).parent, comparisons)
    return rows


def _single_split_rows(dataset: str, table: Mapping[str, dict]) -> list[dict]:
    """Rows of one data set evaluated on its single held-out split (n = 1, no interval)."""
    verdicts = reliability(table) if all(r in table for r in REFERENCES) else {}
    rows = []
    for method, metrics in table.items():
        if metrics.get("failed"):  # one row that says so; the reason is in summary.md and eval/{method}.json
            rows.append(_row(dataset, method, "failed", 1, n=1))
            continue
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            rows.append(_row(dataset, method, metric, value, n=1,
                             reliable=verdicts.get(metric, {}).get("reliable")))
    return rows


def _cross_fitted_rows(dataset: str, fits: list[Mapping[str, dict]], folds: int) -> list[dict]:
    """Rows of one data set from its fits (one {method: evaluation} per fold × seed): mean and interval."""
    per_method = _values_by_fit(fits)
    means = {method: {metric: mean_interval(values, folds)["value"] for metric, values in metrics.items()}
             for method, metrics in per_method.items()}
    verdicts = reliability(means) if all(r in means for r in REFERENCES) else {}
    rows = []
    for method, metrics in per_method.items():
        failed = sum(bool((fit.get(method) or {}).get("failed")) for fit in fits)
        if failed:
            rows.append(_row(dataset, method, "failed", failed, n=len(fits)))
        for metric, values in metrics.items():
            interval = mean_interval(values, folds)
            if interval["n"] == 0:
                continue
            rows.append(_row(dataset, method, metric, interval["value"], interval["ci_low"], interval["ci_high"],
                             interval["n"], verdicts.get(metric, {}).get("reliable")))
    return rows


def _values_by_fit(fits: list[Mapping[str, dict]]) -> dict[str, dict[str, list[float]]]:
    """{method: {metric: [value of each fit, NaN where missing or failed]}} in first-seen order."""
    per_method: dict[str, dict[str, list[float]]] = {}
    for fit in fits:
        for method, metrics in fit.items():
            numeric = per_method.setdefault(method, {})
            for metric, value in metrics.items():
                if not isinstance(value, bool) and isinstance(value, int | float):
                    numeric.setdefault(metric, [])
    for method, metrics in per_method.items():
        for metric, values in metrics.items():
            for fit in fits:
                evaluation = fit.get(method) or {}
                value = None if evaluation.get("failed") else evaluation.get(metric)
                values.append(float(value) if isinstance(value, int | float) and not isinstance(value, bool)
                              else float("nan"))
    return per_method


def paired_rows(dataset: str, fits: list[Mapping[str, dict]], folds: int, method: str = "dualdiv") -> list[dict]:
    """``method`` against every other method of a cross-fitted data set, metric by metric.

    fits: one {method: evaluation} per fold × seed. Each row (``PAIRED_FIELDS``): the mean of the per-fit
    differences ``method`` − other with its corrected 95 % interval, the number of fits where both have the
    metric, the corrected-t and sign-flip p-values (:func:`dualdiv.evaluation.intervals.paired_difference`)
    and ``verdict``: "better", "worse" or "tied" for ``method`` where the metric has a direction
    (:func:`dualdiv.evaluation.metrics.metric_direction`), else "". None when ``method`` was not run.
    """
    per_method = _values_by_fit(fits)
    if method not in per_method:
        return []
    rows = []
    for other, metrics in per_method.items():
        if other == method:
            continue
        for metric, values in metrics.items():
            if metric not in per_method[method]:
                continue
            comparison = paired_difference(per_method[method][metric], values, folds)
            if comparison["n"] == 0:
                continue
            rows.append({"dataset": dataset, "method": method, "versus": other, "metric": metric, **comparison,
                         "verdict": verdict(comparison, metric_direction(metric))})
    return rows


def _row(dataset, method, metric, value, ci_low="", ci_high="", n=1, reliable=None) -> dict:
    return {"dataset": dataset, "method": method, "metric": metric, "value": value, "ci_low": ci_low,
            "ci_high": ci_high, "n": n, "reliable": "" if reliable is None else reliable}


def _csv_number(value):
    """A cell: "" for a missing interval (NaN or ""), else the value."""
    return "" if value == "" or (isinstance(value, float) and not np.isfinite(value)) else value


def _merge_kept(rows: list[dict], path, reader, replaced: set[str]) -> list[dict]:
    """``rows`` plus the rows of the existing file ``path`` whose data set is not in ``replaced``, sorted by
    dataset, then method in first-seen order (the new rows', then the file's), keeping each data set's order."""
    if os.path.exists(path):  # keep the other data sets' rows: a second config must not erase the first's
        rows = rows + [row for row in reader(path) if row["dataset"] not in replaced]
    method_rank = {}  # (dataset, method) → first position: the order given, then the existing file's
    for row in rows:
        method_rank.setdefault((row["dataset"], row["method"], row.get("versus")), len(method_rank))
    return sorted(rows, key=lambda row: (row["dataset"], method_rank[row["dataset"], row["method"],
                                                                      row.get("versus")], row["metric"]))


SUMMARY_FIELDS = ("dataset", "method", "metric", "value", "ci_low", "ci_high", "n", "reliable")
_OLD_SUMMARY_FIELDS = ("dataset", "method", "metric", "value", "reliable")  # before intervals: read as n = 1
PAIRED_FIELDS = ("dataset", "method", "versus", "metric", "difference", "ci_low", "ci_high", "n", "p_value",
                 "p_sign_flip", "verdict")
_RELIABLE = {"True": True, "False": False, "": ""}


def read_summary(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``summary.csv`` written by :func:`write_summary` (value int or float; ci_low/ci_high float or
    ""; n int; reliable True/False/""). A summary written before the intervals (no ci_low, ci_high, n) is read
    with n = 1 and no interval.

    Raises InputError (one line, naming the file) on a missing header, another header, a row
    of another length, a value that is not a number or a reliable flag that is not True/False/empty.
    """
    header, records = _read_csv(path, (SUMMARY_FIELDS, _OLD_SUMMARY_FIELDS), "summary")
    rows = []
    for number, row in records:
        row = {**{"ci_low": "", "ci_high": "", "n": "1"}, **row}
        row["value"] = _number(path, number, "value", row["value"])
        for key in ("ci_low", "ci_high"):
            row[key] = "" if row[key] == "" else _number(path, number, key, row[key])
        row["n"] = _number(path, number, "n", row["n"], integer=True)
        if row["reliable"] not in _RELIABLE:
            raise InputError(f"{path}: line {number}: reliable {row['reliable']!r} is not True, False or empty")
        row["reliable"] = _RELIABLE[row["reliable"]]
        rows.append({key: row[key] for key in SUMMARY_FIELDS})
    return rows


def read_paired(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``paired.csv`` written by :func:`write_summary` (numbers as floats, n int, "" where missing)."""
    _, records = _read_csv(path, (PAIRED_FIELDS,), "paired comparison")
    rows = []
    for number, row in records:
        for key in ("difference", "ci_low", "ci_high", "p_value", "p_sign_flip"):
            row[key] = float("nan") if row[key] == "" else _number(path, number, key, row[key])
        row["n"] = _number(path, number, "n", row["n"], integer=True)
        rows.append(row)
    return rows


def _read_csv(path, headers: tuple[tuple[str, ...], ...], what: str) -> tuple[tuple[str, ...], list]:
    """(header, [(line number, {field: text})]) of a CSV whose header is one of ``headers``; one-line errors."""
    try:
        with open(path, newline="") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the existing {what} ({exc}); move it away to start a new one") \
            from None
    if not lines or tuple(lines[0]) not in headers:
        found = ",".join(lines[0]) if lines else "an empty file"
        raise InputError(f"{path}: header is {found!r}, expected {','.join(headers[0])!r}; not a dualdiv "
                         f"{what} — move it away to start a new one")
    header = tuple(lines[0])
    records = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(header):
            raise InputError(f"{path}: line {number} has {len(fields)} fields, expected {len(header)}")
        records.append((number, dict(zip(header, fields, strict=True))))
    return header, records


def _number(path, number: int, key: str, text: str, integer: bool = False):
    try:
        return int(text) if integer or text.lstrip("-").isdigit() else float(text)
    except ValueError:
        raise InputError(f"{path}: line {number}: {key} {text!r} is not a{'n integer' if integer else ' number'}") \
            from None


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


def write_headline(rows: list[dict], out: str | os.PathLike, results_dir: str | os.PathLike,
                   comparisons: list[dict] | None = None) -> str:
    """``summary.md``: one markdown table per data set of ``rows`` (methods × HEADLINE_COLUMNS + wall time).

    rows: as :func:`write_summary` returns them (sorted); a cross-fitted data set's cells read
    "mean ± half-width of the 95 % interval". results_dir: the folder holding each pipeline's
    ``divergence.json`` (the TC of the real training images, shown where present) and
    ``benchmarks/*.tsv`` (Snakemake benchmark files: wall seconds, column ``s``) — the data set's own
    folder, or its fold units' (``{dataset}/folds/*``) when cross-fitted. comparisons: :func:`paired_rows`
    rows; a cross-fitted data set gets a second table of dualdiv's paired differences. Returns the text.
    """
    values: dict[str, dict[str, dict]] = {}
    reliable: dict[str, dict] = {}
    cross_fitted = {row["dataset"] for row in rows if row["n"] > 1}
    for row in rows:
        values.setdefault(row["dataset"], {}).setdefault(row["method"], {})[row["metric"]] = row
        if row["reliable"] != "":
            reliable.setdefault(row["dataset"], {})[row["metric"]] = row["reliable"]
    lines = ["# Headline results per data set", "",
             "Every method's samples against the data set's held-out real images (every metric: `summary.csv`). "
             "Columns:", ""]
    legend = [f"**{name}** — {meaning}" for _, name, meaning in HEADLINE_COLUMNS]
    legend += ["**wall s** — wall time of the method's own jobs (its sampling or baseline, evaluation and TC jobs) "
               "from `benchmarks/*.tsv`, per fit where cross-fitted; — where none were recorded",
               "† after a column name: the metric misranks the references (`copy`, `interpolate`, `marginals`) on "
               "that data set, so it is unreliable there; methods in *italics* are those references, not generators",
               "**cross-fitted data sets** (`evaluate.folds`): mean ± half-width of the 95 % interval over folds × "
               "seeds (corrected for the folds' shared training images; `n` fits in `summary.csv`), and a table "
               "of dualdiv − each method, paired by fit (`paired.csv`, with p-values): **b** = dualdiv better, "
               "**w** = worse (the interval excludes 0), else tied"]
    # wrapped list items (continuation lines indented): readable as plain text too, e.g. in the report caption
    lines += [textwrap.fill(item, 110, initial_indent="- ", subsequent_indent="  ") for item in legend] + [""]
    for dataset, by_method in values.items():
        folder = Path(results_dir) / dataset
        pipelines = sorted(p for p in (folder / "folds").glob("seed*_fold*") if p.is_dir()) \
            if dataset in cross_fitted else [folder]
        fits = max(len(pipelines), 1)
        lines += [f"## {dataset}", "", _dataset_line(pipelines, dataset in cross_fitted), ""]
        header = ["method"] + [name + (" †" if reliable.get(dataset, {}).get(metric) is False else "")
                               for metric, name, _ in HEADLINE_COLUMNS] + ["wall s"]
        body, failures = [], []
        for method, metrics in by_method.items():
            seconds = _job_seconds(p / "benchmarks" / f"{job}_{method}.tsv" for p in pipelines for job in METHOD_JOBS)
            failed = "failed" in metrics
            if failed:
                failures.append(f"- **{method} failed** on {_fits_text(metrics['failed'])}: "
                                f"{_failure_reason(pipelines, method)}")
            body.append([f"*{method}*" if method in REFERENCES else method]
                        + [("failed" if failed and metric not in metrics else _cell(metrics.get(metric)))
                           for metric, _, _ in HEADLINE_COLUMNS]
                        + [_format_number(None if seconds is None else seconds / fits, "{:.0f}")])
        lines += _markdown_table(header, body) + [""] + (failures + [""] if failures else [])
        paired = [row for row in comparisons or [] if row["dataset"] == dataset]
        if paired:
            lines += _paired_table(paired) + [""]
    text = "\n".join(lines)
    with atomic_output(out) as tmp:
        Path(tmp).write_text(text)
    return text


def _cell(row: dict | None) -> str:
    """A headline cell: the value, with ± the half-width of its interval where it has one."""
    if row is None:
        return "—"
    text = _format_number(row["value"])
    if row["n"] > 1 and row["ci_high"] != "" and np.isfinite(row["ci_high"]):
        text += f" ± {_format_number(row['ci_high'] - row['value'], '{:.2g}')}"
    return text


def _paired_table(paired: list[dict]) -> list[str]:
    """dualdiv − method on the headline metrics: difference ± half-width and the verdict's letter."""
    by_versus: dict[str, dict[str, dict]] = {}
    for row in paired:
        by_versus.setdefault(row["versus"], {})[row["metric"]] = row
    mark = {"better": " b", "worse": " w"}
    body = []
    for versus, metrics in by_versus.items():
        cells = []
        for metric, _, _ in HEADLINE_COLUMNS:
            row = metrics.get(metric)
            if row is None or not np.isfinite(row["difference"]):
                cells.append("—")
                continue
            half = row["ci_high"] - row["difference"] if np.isfinite(row["ci_high"]) else float("nan")
            cells.append(f"{row['difference']:+.3g}" + (f" ± {half:.2g}" if np.isfinite(half) else "")
                         + mark.get(row["verdict"], ""))
        body.append([versus] + cells)
    header = ["dualdiv − method"] + [name for _, name, _ in HEADLINE_COLUMNS]
    return [f"Paired differences, dualdiv − method over {max(r['n'] for r in paired)} fits:", ""] + \
        _markdown_table(header, body)


def _fits_text(failed: dict) -> str:
    """Where a method failed, from its ``failed`` row: these data (single split), or k of n fits."""
    return "these data" if failed["n"] <= 1 else f"{failed['value']} of {failed['n']} fits"


def _failure_reason(pipelines: list[Path], method: str) -> str:
    """Why a method failed, from the first of its ``eval/{method}.json`` files that says so (the sample stage's
    message)."""
    for folder in pipelines:
        path = folder / "eval" / f"{method}.json"
        try:
            reason = json.loads(path.read_text()).get("failed")
        except (OSError, ValueError):
            continue
        if reason:
            return str(reason)
    return "no reason recorded (see the logs)"


def _dataset_line(pipelines: list[Path], cross_fitted: bool = False) -> str:
    """One line per data set: the TC of its real training images and the wall time of all its jobs."""
    found = [_read_json(folder / "divergence.json") for folder in pipelines if (folder / "divergence.json").exists()]
    if not found:
        tc = "TC of the real training images: no `divergence.json` (the dual stage has not run)."
    elif not cross_fitted:
        d = found[0]
        tc = (f"TC of the real training images (path estimator, `divergence.json`): {d['tc']:.4g} ± "
              f"{d['stderr']:.3g} {d.get('units', 'nats')} over {d.get('n_steps', '?')} steps.")
    else:
        values = [d["tc"] for d in found]
        tc = (f"TC of the real training images (path estimator, `divergence.json` of each fit): mean "
              f"{np.mean(values):.4g}, range {min(values):.4g} to {max(values):.4g} "
              f"{found[0].get('units', 'nats')} over {len(found)} fits.")
    benchmarks = sorted(path for folder in pipelines for path in (folder / "benchmarks").glob("*.tsv"))
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
