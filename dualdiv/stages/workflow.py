"""What the Snakefile needs from the library: the config check, data-set selection and merged
per-stage settings (the scripts' wrapper is :mod:`dualdiv.stages.runner`).

Kept free of Snakemake imports so it is testable on plain dicts.
"""

from __future__ import annotations

import functools
import json
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


def dataset_settings(config: Mapping[str, Any], dataset: str, stage: str) -> dict:
    """Settings of ``stage`` for ``dataset``: the defaults (:func:`dualdiv.stages.settings.default_config`)
    updated by the config's global section, then by the data set's own.

    Seeded stages get ``seed`` from the top level, so the same config gives the
    same artifacts and changing the seed reruns exactly the seeded stages.
    """
    entry = selected_datasets(config)[dataset]
    merged = deep_merge(deep_merge(_defaults().get(stage) or {}, config.get(stage)), entry.get(stage))
    if stage in _SEEDED_STAGES:
        merged["seed"] = config["seed"]
    return merged


def step_settings(config: Mapping[str, Any], dataset: str, step: int) -> dict:
    """Training settings of path step ``step``: ``estimate.training`` updated by ``estimate.steps[step]``.

    Only this step's entry enters its job's parameters, so changing one step's
    settings reruns that step (and what follows) and nothing else.
    """
    estimate = dataset_settings(config, dataset, "estimate")
    overrides = (estimate.get("steps") or {}).get(str(step)) or {}
    return deep_merge(estimate.get("training") or {}, overrides)
