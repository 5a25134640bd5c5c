"""What the Snakefile needs from the library: the config check, data-set selection, merged
per-stage settings and the jobs' memory requests (:func:`job_memory_mb`; the scripts' wrapper is
:mod:`dualdiv.stages.runner`).

Kept free of Snakemake imports so it is testable on plain dicts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dualdiv.core.errors import ConfigError
from dualdiv.data.packages import resolve_path
from dualdiv.stages.settings import deep_merge, default_config

# Stages whose settings also carry the global seed (their outputs are random).
_SEEDED_STAGES = {"tile", "estimate", "localize", "sample", "evaluate"}


def check_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise a one-line :class:`ConfigError` naming the first bad key of ``config``.

    ``snakemake.utils.validate`` (which also fills defaults) reports errors with
    the whole schema attached; this runs first so the user reads the key path
    and the problem, e.g. ``config: datasets.mine.tile: 'windw' was unexpected``.
    """
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "(top level)"
        raise ConfigError(f"config: {where}: {error.message}")


@functools.cache
def _default_sections() -> str:
    return json.dumps(default_config())


def _defaults() -> dict:
    return json.loads(_default_sections())  # a fresh copy: callers may change it


def selected_datasets(config: Mapping[str, Any]) -> dict[str, dict]:
    """Data sets this run processes: ``datasets`` if it names any, else ``default_datasets``.

    Snakemake deep-merges ``--configfile`` into the default config; keeping the
    embedded set under ``default_datasets`` means a user's config that names its
    own data sets runs exactly those. Each entry gains ``files`` (list of paths; a
    ``package:<package>/<file>`` path is resolved to the installed file, see
    :func:`dualdiv.data.packages.resolve_path`).
    """
    chosen = config.get("datasets") or config.get("default_datasets") or {}
    selected = {}
    for name, entry in chosen.items():
        paths = [entry["path"]] if isinstance(entry["path"], str) else entry["path"]
        selected[name] = dict(entry, files=[str(resolve_path(path)) for path in paths])
    return selected


# ------------------------------------------------------------------ cross-fitting units

# A fold unit is one whole pipeline (tile → path → dual → localize → sample → evaluate) of a data set on the
# tiling that holds out fold f of the partition drawn with workflow seed s; its artifacts live under
# results/{dataset}/folds/seed{s}_fold{f}/, and its name is the `dataset` wildcard of every rule.
_UNIT = re.compile(r"^(?P<dataset>.+)/folds/seed(?P<seed>-?[0-9]+)_fold(?P<fold>[0-9]+)$")


def unit_name(dataset: str, seed: int, fold: int) -> str:
    """The workflow name (results sub-folder) of fold ``fold`` of ``dataset`` under workflow seed ``seed``."""
    return f"{dataset}/folds/seed{seed}_fold{fold}"


def parse_unit(name: str) -> tuple[str, int, int] | None:
    """(dataset, seed, fold) of a fold unit's name; None for a data set's own (single-split) name."""
    match = _UNIT.match(name)
    return None if match is None else (match["dataset"], int(match["seed"]), int(match["fold"]))


def cross_fitting(config: Mapping[str, Any], dataset: str) -> tuple[int, list[int]] | None:
    """(folds k, workflow seeds) of a data set evaluated by cross-fitting (``evaluate.folds``), or None for
    the single split. The seeds are ``evaluate.seeds``, or the top-level ``seed`` alone when unset."""
    evaluate = deep_merge(deep_merge(_defaults()["evaluate"], config.get("evaluate")),
                          selected_datasets(config)[dataset].get("evaluate"))
    if evaluate.get("folds") is None:
        if evaluate.get("seeds") is not None:
            raise ConfigError(f"config: evaluate.seeds (data set {dataset}): needs evaluate.folds (the seeds repeat "
                              "the cross-fitted evaluation)")
        return None
    seeds = evaluate.get("seeds")
    return int(evaluate["folds"]), [int(s) for s in (seeds if seeds is not None else [config["seed"]])]


def workflow_units(config: Mapping[str, Any]) -> dict[str, str]:
    """Every pipeline this run builds → its data set: the data set's own name (single split), or its
    folds × seeds fold units (:func:`unit_name`, seeds outer, folds inner) where ``evaluate.folds`` is set."""
    units = {}
    for dataset in selected_datasets(config):
        plan = cross_fitting(config, dataset)
        if plan is None:
            units[dataset] = dataset
            continue
        folds, seeds = plan
        units.update({unit_name(dataset, seed, fold): dataset for seed in seeds for fold in range(folds)})
    return units


def workflow_seed(config: Mapping[str, Any], name: str) -> int:
    """The seed of a pipeline: its fold unit's workflow seed, else the top-level ``seed``."""
    unit = parse_unit(name)
    return config["seed"] if unit is None else unit[1]


def dataset_settings(config: Mapping[str, Any], dataset: str, stage: str) -> dict:
    """Settings of ``stage`` for ``dataset``: the defaults (:func:`dualdiv.stages.settings.default_config`)
    updated by the config's global section, then by the data set's own.

    Seeded stages get ``seed`` from the top level, so the same config gives the
    same artifacts and changing the seed reruns exactly the seeded stages. ``dataset`` may be a
    fold unit's name (:func:`unit_name`): the settings of its data set, with the unit's seed and,
    for ``tile``, its ``folds`` and ``fold``.
    """
    unit = parse_unit(dataset)
    entry = selected_datasets(config)[dataset if unit is None else unit[0]]
    merged = deep_merge(deep_merge(_defaults().get(stage) or {}, config.get(stage)), entry.get(stage))
    if stage in _SEEDED_STAGES:
        merged["seed"] = workflow_seed(config, dataset)
    if unit is not None and stage == "tile":
        merged["folds"], merged["fold"] = cross_fitting(config, unit[0])[0], unit[2]
    return merged


def step_settings(config: Mapping[str, Any], dataset: str, step: int) -> dict:
    """Training settings of path step ``step``: ``estimate.training`` updated by ``estimate.steps[step]``.

    Only this step's entry enters its job's parameters, so changing one step's
    settings reruns that step (and what follows) and nothing else.
    """
    estimate = dataset_settings(config, dataset, "estimate")
    overrides = (estimate.get("steps") or {}).get(str(step)) or {}
    return deep_merge(estimate.get("training") or {}, overrides)


# ------------------------------------------------------------------ cluster resources

# MiB of a job's interpreter and libraries (Python, NumPy, xarray, h5py; torch in the training rules), with margin
_BASE_MB = {"ingest": 600, "tile": 600, "path_plan": 600, "path_step": 900, "dual": 900, "localize": 900,
            "sample": 1200, "baseline": 1200, "evaluate": 1200, "total_correlation": 1200}
# bytes per image pixel (float32 images = 4) the rule holds at its peak (benchmarks/SCALING.md): the images, their
# copies (training split, the step's train/validation tensors) and the held-out score's permutation indices
# (measured at N = 10⁴ tiles of 14 × 128: path_plan 7.5, path_step 20, dual 10, localize 17; sample, baseline,
# evaluate and total_correlation are not measured: a guess)
_BYTES_PER_PIXEL = {"path_plan": 8, "path_step": 24, "dual": 12, "localize": 24, "sample": 16, "baseline": 16,
                    "evaluate": 16, "total_correlation": 32}
# bytes per pixel of the image shape whatever N: the path step's 500 product-of-marginals reference
# images and their permutation indices (measured: 41 B per N·P pixel at N = 200 of 168 × 168, mostly this)
_BYTES_PER_IMAGE_PIXEL = {"path_step": 12_000, "total_correlation": 12_000}
_FALLBACK_MB = 4000  # when the input is not there yet (a dry run), as before


def tiles_shape(path: str | Path) -> tuple[int, int, int] | None:
    """(N images, H, W) of a ``tiles.h5`` from its metadata (nothing read), or None if it cannot be read."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            n, height, width = handle["images"].shape
    except (OSError, KeyError, ValueError):
        return None
    return int(n), int(height), int(width)


def job_memory_mb(rule: str, inputs: list[str | Path], settings: Mapping[str, Any] | None = None,
                  generator: str | None = None, generator_settings: Mapping[str, Any] | None = None) -> int:
    """SLURM ``mem_mb`` of one job of ``rule`` from the size of its inputs (a formula in N and P, not a constant).

    inputs: the job's input files (its ``tiles.h5`` first for the rules that read tiles; the raw files for
    ingest; ``raw.nc`` for tile). settings: the stage's merged settings (ingest/tile: ``memory_mb``).
    ingest and tile: the interpreter + their data budget (``memory_mb``) or, below it, the in-memory
    peak (1.5 × the float64 data of an ingest — ``.ts``/``.csv`` are parsed at several times their file
    size —, 2.5 × ``raw.nc`` for a tile). The rules on tiles: the interpreter + B × N × P bytes (B per
    rule, measured in benchmarks/SCALING.md) with 25 % margin; a ``var`` baseline (``generator``, its
    ``generator_settings``) adds its dense loading (:func:`dualdiv.generators.bases.var_memory_bytes`:
    O(P²)). Rounded up to 100 MiB.
    """
    settings = dict(settings or {})
    files = [Path(p) for p in inputs]
    if rule in ("ingest", "tile"):
        if not all(p.is_file() for p in files):
            return _FALLBACK_MB
        size_mb = sum(p.stat().st_size for p in files) / 2**20
        budget = float(settings.get("memory_mb", 512))
        if rule == "ingest":
            # a CSV streams only in the layout of a recording written row by row: asked for as if parsed whole
            streamable = all(p.suffix.lower() in (".npy", ".nc", ".nc4", ".h5", ".hdf5") for p in files)
            data = min(1.5 * 8 / 4 * size_mb, budget) if streamable else 6 * size_mb  # float32 input: 2 × as float64
        else:
            data = min(2.5 * size_mb, budget)
        need = _BASE_MB[rule] + 1.25 * data
    else:
        shape = tiles_shape(files[0]) if files else None
        if shape is None:
            return _FALLBACK_MB
        n, height, width = shape
        n_pixels = height * width
        data = _BYTES_PER_PIXEL.get(rule, 16) * n * n_pixels + _BYTES_PER_IMAGE_PIXEL.get(rule, 0) * n_pixels
        if generator == "var":
            from dualdiv.generators.bases import var_max_order, var_memory_bytes

            options = dict(generator_settings or {})
            max_order = var_max_order(width, options.get("order"), options.get("max_order"))
            data += var_memory_bytes(height, width, max_order)
        need = _BASE_MB.get(rule, 1200) + 1.25 * data / 2**20
    return int(-(-need // 100) * 100)
