"""Stage 6 on files: evaluate a samples file against the held-out split; gather a summary table.

- :func:`write_evaluation`: ``samples/{method}.h5`` + ``tiles.h5`` → ``eval/{method}.json``
  (every metric of :func:`dualdiv.evaluation.metrics.evaluate`, generated vs the test split).
- :func:`write_tc`: the total correlation of the real training images (``method = real``) or of
  a generated set, by the project's path estimator → ``eval/tc/{method}.json`` (optional,
  config ``evaluate.tc``; merged into the evaluation as ``tc_real``/``tc_generated``/``tc_gap``).
- :func:`write_summary`: every ``eval/*.json`` → ``summary.csv`` (dataset, method, metric,
  value, reliable) with the reference-based reliability of each metric on each data set
  (:func:`dualdiv.evaluation.metrics.reliability`; a metric that misranks ``copy``, ``interpolate``
  and ``marginals`` is marked unreliable there).
"""

from __future__ import annotations

import csv
import json
import os
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
    """
    tiles = load_tiles(tiles_path)
    samples = load_samples(samples_path)
    result = evaluate(samples.images, tiles.subset("test"), tiles.subset("train"), seed, settings)
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
        generated = load_samples(samples_path).images
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


def write_summary(eval_paths: Mapping[str, Mapping[str, str]], out: str | os.PathLike) -> list[dict]:
    """Entry of rule ``summary``: {dataset: {method: eval path}} → one CSV row per dataset × method × metric."""
    rows = []
    for dataset, by_method in eval_paths.items():
        table = {method: json.loads(Path(path).read_text()) for method, path in by_method.items()}
        verdicts = reliability(table) if all(r in table for r in REFERENCES) else {}
        for method, metrics in table.items():
            for metric, value in metrics.items():
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                verdict = verdicts.get(metric, {}).get("reliable")
                rows.append({"dataset": dataset, "method": method, "metric": metric, "value": value,
                             "reliable": "" if verdict is None else verdict})
    with atomic_output(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["dataset", "method", "metric", "value", "reliable"])
        writer.writeheader()
        writer.writerows(rows)
    return rows
