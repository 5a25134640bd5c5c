"""One source of settings: every stage's defaults come from its settings dataclass (or estimator constructor).

The config file of the workflow, the JSON schema and the CLI all read the same
defaults through :func:`default_config`; a config section becomes the stage's settings
object through :func:`from_config`. Sections and where their defaults live:

- ``ingest``   → :class:`dualdiv.data.ingest.IngestSettings`
- ``tile``     → :class:`dualdiv.data.tiles.TileSettings` (its ``seed`` is the top-level seed)
- ``estimate`` → :class:`dualdiv.estimators.dualspace.DualSpace` (n_blocks, order, substeps,
  n_reference) with ``training`` → :class:`dualdiv.estimators.path.StepSettings`
  and ``steps`` (per-step overrides of ``training``)
- ``localize`` → :class:`dualdiv.estimators.clusters.ClusterSettings`
- ``sample``   → :class:`SampleSettings`; ``sample.settings[key]`` → the generator's constructor
- ``evaluate`` → ``metrics`` → :class:`dualdiv.evaluation.metrics.EvalSettings`; ``tc``: the
  optional path-estimator TC of real and generated images (None: off)

Importing this module imports no torch: the estimators' settings are read from
light modules or their signatures only when asked.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualdiv.core.errors import ConfigError
from dualdiv.generators.base import DEFAULT_VARIANT
from dualdiv.generators.conditional import DEFAULT_MIN_CLASS_SIZE, check_per_class

TOP_LEVEL = {"seed": 0, "results": "results", "device": "auto", "gpus": 0}
DEFAULT_METHODS = ("dualdiv", "dualdiv_walk", "spectral", "var", "gaussian_lw", "copy", "interpolate", "marginals")
EXPORT_FORMATS = ("fif", "edf", "bdf")  # sample.export (the suffixes: dualdiv.stages.export.EXPORT_SUFFIXES)


@dataclass(frozen=True)
class SampleSettings:
    """What the sample and baseline stages generate.

    n_samples: images per method. default: the generator key written as ``samples/dualdiv.h5``.
    methods: the methods every data set runs (each a generator key, ``dualdiv`` = ``default``).
    settings: constructor settings per generator key (absent keys: the constructor's defaults).
    export: formats the workflow also writes the dual-space methods' ``samples/{method}.h5`` in (``dualdiv``,
        ``dualdiv_*``; ``dualdiv export`` writes any other's), for MNE-Python users
        (``fif``: ``{method}-epo.fif``; ``edf``, ``bdf``: ``{method}.edf``/``.bdf``; needs
        ``dualdiv[eeg]``); ``auto``: ``fif`` when the data set's files are EEG/MEG files read
        through MNE, else none.
    conditional: fit one generator per class of the tiles' training labels and draw labelled samples
        (:class:`~dualdiv.generators.conditional.ClassConditional`); ``auto``: when the tiles carry labels
        of two or more classes. Off (or without labels), samples are exactly the unconditional ones.
    per_class: images per class when conditional — None: ``n_samples`` in the training labels'
        proportions; an int: that many of every class; a mapping {class: count}: those counts. An int
        or a mapping replaces ``n_samples``.
    min_class_size: a class with fewer training images gets no generator of its own: the generator
        fitted on all images, its samples shifted to the class's mean image.
    constraints: keep what the training data obey in every method's samples
        (:mod:`dualdiv.generators.constraints`: constant pixels and channels, integer channels,
        non-negative, % and circular channels); generators are fitted on the non-constant channels.
        Off: samples are the generator's output as it is.
    """

    n_samples: int = 100
    default: str = DEFAULT_VARIANT
    methods: tuple[str, ...] = DEFAULT_METHODS
    settings: dict = field(default_factory=dict)
    export: tuple[str, ...] | str = "auto"
    conditional: bool | str = "auto"
    per_class: int | dict | None = None
    min_class_size: int = DEFAULT_MIN_CLASS_SIZE
    constraints: bool = True

    def __post_init__(self):
        if self.n_samples < 1:
            raise ConfigError(f"sample.n_samples: must be ≥ 1, got {self.n_samples}")
        if isinstance(self.export, list):
            object.__setattr__(self, "export", tuple(self.export))
        if self.export != "auto" and (isinstance(self.export, str)
                                      or not set(self.export) <= set(EXPORT_FORMATS)):
            raise ConfigError(f"sample.export: 'auto' or a list of {', '.join(EXPORT_FORMATS)}, got {self.export!r}")
        if self.conditional not in (True, False, "auto"):
            raise ConfigError(f"sample.conditional: true, false or 'auto', got {self.conditional!r}")
        try:
            object.__setattr__(self, "per_class", check_per_class(self.per_class))
        except ConfigError as exc:
            raise ConfigError(f"sample.{exc}") from None
        if not isinstance(self.constraints, bool):
            raise ConfigError(f"sample.constraints: true or false, got {self.constraints!r}")
        if isinstance(self.min_class_size, bool) or not isinstance(self.min_class_size, int) \
                or self.min_class_size < 2:
            raise ConfigError(f"sample.min_class_size: must be an integer ≥ 2, got {self.min_class_size!r}")

    def is_conditional(self, train_labels) -> bool:
        """Whether sampling is class-conditional for these training labels ``(n,)`` (None: unlabelled).

        ``per_class`` without conditional sampling (no labels, ``conditional: false``, or ``auto`` and one
        class) is a ConfigError: it would be silently ignored.
        """
        n_classes = 0 if train_labels is None else len(set(map(str, train_labels)))
        if self.conditional is True and n_classes == 0:
            raise ConfigError("sample.conditional: true, but the tiles have no labels")
        conditional = n_classes >= 2 if self.conditional == "auto" else bool(self.conditional and n_classes)
        if self.per_class is not None and not conditional:
            why = ("the tiles have no labels" if n_classes == 0 else "sample.conditional is false"
                   if self.conditional is False else "the training labels have one class")
            raise ConfigError(f"sample.per_class: set, but sampling is not conditional ({why})")
        return conditional


# section → "module:class" of its settings (imported when asked)
_SETTINGS_CLASSES = {
    "ingest": "dualdiv.data.ingest:IngestSettings",
    "tile": "dualdiv.data.tiles:TileSettings",
    "localize": "dualdiv.estimators.clusters:ClusterSettings",
    "sample": "dualdiv.stages.settings:SampleSettings",
    "evaluate.metrics": "dualdiv.evaluation.metrics:EvalSettings",
    "estimate.training": "dualdiv.estimators.settings:StepSettings",
}


def _settings_class(section: str) -> type:
    if section not in _SETTINGS_CLASSES:
        raise ConfigError(f"config: no settings class for section {section!r}; known: {', '.join(_SETTINGS_CLASSES)}")
    module, name = _SETTINGS_CLASSES[section].split(":")
    return getattr(importlib.import_module(module), name)


def _plain(value: Any) -> Any:
    """A dataclass value as YAML/JSON would hold it (tuples as lists, nested dataclasses as dicts)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _estimate_defaults() -> dict:
    from dualdiv.estimators.dualspace import DualSpace
    from dualdiv.estimators.settings import StepSettings

    parameters = inspect.signature(DualSpace).parameters
    return {**{name: parameters[name].default for name in ("n_blocks", "order", "substeps", "n_reference")},
            "training": _plain(StepSettings()), "steps": {}}


def default_config() -> dict:
    """The whole default config: top-level keys and every stage section, from the dataclasses."""
    sections = {name: _plain(_settings_class(name)()) for name in ("ingest", "tile", "localize", "sample")}
    sections["tile"].pop("seed")  # the top-level seed
    del sections["tile"]["folds"], sections["tile"]["fold"]  # a fold unit's, set by the workflow (evaluate.folds)
    return {**TOP_LEVEL, **sections, "estimate": _estimate_defaults(),
            "evaluate": {"tc": None, "folds": None, "seeds": None,
                         "metrics": _plain(_settings_class("evaluate.metrics")())}}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict:
    """``base`` updated by ``override``, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | os.PathLike | None = None) -> dict:
    """The default config, with the YAML file ``path`` merged over it (None: the defaults alone)."""
    config = default_config()
    if path is None:
        return config
    import yaml

    try:
        content = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config ({str(exc).splitlines()[0]})") from None
    if not isinstance(content, Mapping):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(content).__name__}")
    return deep_merge(config, content)


def _is_tuple_field(annotation: Any) -> bool:
    """Whether a dataclass field's annotation (a string with postponed annotations) is a tuple type."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("tuple", "typing.Tuple")) or "tuple[" in text.split("|")[0]


def from_config(section: str, values: Mapping | None = None, **extra: Any):
    """The settings object of ``section`` (e.g. ``"tile"``) from a config mapping over the defaults.

    Lists become tuples where the field is a tuple; an unknown key is a one-line
    :class:`ConfigError` naming the section and the key. ``extra`` adds fields (e.g. ``seed``).
    """
    cls = _settings_class(section)
    known = {f.name: f for f in dataclasses.fields(cls)}
    given = {**dict(values or {}), **extra}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"config: {section}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    converted = {name: tuple(value) if isinstance(value, list) and _is_tuple_field(known[name].type) else value
                 for name, value in given.items()}
    try:
        return cls(**converted)
    except TypeError as exc:
        raise ConfigError(f"config: {section}: {exc}") from None


__all__ = ["DEFAULT_METHODS", "TOP_LEVEL", "SampleSettings", "deep_merge", "default_config", "from_config",
           "load_config"]
