"""Stage sample on files: fit a generator on the training images, draw samples, write ``samples/{method}.h5``.

One entry function serves every generator — the dual-space variants, the fitted
bases, the neural baselines and the references — so the ``sample`` and
``baseline`` rules and ``dualdiv sample`` treat them alike. ``dualdiv`` is the
chosen default variant (``sample.default`` in the config); the walks also need
the fitted dual space and the clusters of a finished path (:func:`walk_inputs`).
With ``sample.conditional`` (by default when the tiles carry labels of two or more
classes) the method is fitted per class of the training labels
(:class:`~dualdiv.generators.conditional.ClassConditional`) and the samples carry
their labels. The file layout is :mod:`dualdiv.data.samples`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import provenance, sha256_file
from dualdiv.data.samples import Samples, load_samples, write_samples_file  # noqa: F401  (load_samples: API)
from dualdiv.data.tiles import load_tiles, to_physical
from dualdiv.generators import WALKS, make_generator, resolve_method
from dualdiv.generators.conditional import ClassConditional
from dualdiv.generators.constraints import Constrained
from dualdiv.stages.settings import SampleSettings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _torch_threads(threads: int):
    """torch's intra-op threads set (and restored) only where torch is loaded: the references need none."""
    if "torch" not in sys.modules:
        yield
        return
    from dualdiv.core.training import torch_threads

    with torch_threads(threads):
        yield


def walk_inputs(tiles_path, space_path, clusters_path, device: str = "auto") -> dict:
    """What a walk's ``fit`` takes beside the images, from a finished path: the fitted
    :class:`~dualdiv.estimators.dualspace.DualSpace`, the kept cluster cuts (clusters.json)
    and the novelty threshold from the held-out images of ``tiles_path``."""
    from dualdiv.estimators.dualspace import DualSpace
    from dualdiv.generators.walks import distance_threshold

    tiles = load_tiles(tiles_path)
    try:
        boundaries = json.loads(Path(clusters_path).read_text())["boundaries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{clusters_path}: cannot read the cluster cuts ({exc}); rerun the localize stage") from None
    return {"space": DualSpace.load(space_path, device=device), "boundaries": boundaries,
            "novelty_threshold": distance_threshold(tiles.subset("test"), tiles.subset("train"))}


def sample_options(sample_config: dict | None) -> SampleSettings:
    """The keys of a config's ``sample`` section that say how any method samples (``conditional``,
    ``per_class``, ``min_class_size``, ``constraints``), checked, with the defaults of
    :class:`~dualdiv.stages.settings.SampleSettings`."""
    keys = ("conditional", "per_class", "min_class_size", "constraints")
    return SampleSettings(**{k: (sample_config or {})[k] for k in keys if k in (sample_config or {})})


def write_samples(tiles_path: str | os.PathLike, method: str, out: str | os.PathLike, n: int, seed: int = 0,
                  sample_config: dict | None = None, walk: dict | None = None,
                  record_failure: bool = False) -> Samples:
    """Entry of rules ``sample``/``baseline`` and ``dualdiv sample``: fit ``method`` on the training
    split of ``tiles_path``, draw ``n`` images with ``seed``, write ``out`` atomically.

    Conditional (``sample_config``'s ``conditional``, ``per_class``, ``min_class_size``; see
    :class:`~dualdiv.stages.settings.SampleSettings`): one generator per class of the training labels,
    the samples labelled; ``per_class`` as an int or a mapping replaces ``n``.
    Constraints (``sample_config``'s ``constraints``, default on): the generator is fitted on the
    non-constant channels, and its samples keep what the training data obey
    (:mod:`dualdiv.generators.constraints`); what was changed is in the file's provenance.
    walk: for the walks, :func:`walk_inputs` (passed to their ``fit``).
    record_failure: a generator that cannot fit or sample these images writes a samples file that
        says so (no images, ``failed`` = the reason) instead of raising — the ``baseline`` rule's
        choice, so that one baseline never stops the pipeline; the error is logged.
    """
    key, settings = resolve_method(method, sample_config or {})
    options = sample_options(sample_config)
    if key in WALKS and walk is None:
        raise ConfigError(f"{method}: a walk needs the dual space and clusters of a finished path")
    tiles = load_tiles(tiles_path)
    try:
        images, records, generator, conditional, labels, timing = _fit_and_draw(
            key, settings, options, tiles, n, seed, walk, method, tiles_path)
    except Exception as exc:  # noqa: BLE001  (any failure of a generator is reported the same way)
        if not record_failure:
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("%s failed on %s: %s: %s", method, tiles_path, type(exc).__name__, reason)
        return _write_failed(tiles, tiles_path, method, key, out, seed, f"{type(exc).__name__}: {reason}")
    n = len(images)
    constrained = generator.record() if options.constraints else {}
    log.info("%s (%s%s): fit %.1f s, %d samples %.1f s%s", method, key, ", per class" if conditional else "",
             timing[0], n, timing[1], f"; constraints changed {constrained['constraints_changed']}"
             if constrained.get("constraints_changed") else "")
    samples = Samples(images=images, images_physical=to_physical(images, tiles.channel_mean,
                                                                  tiles.channel_std).astype(np.float32),
                      records=records, method=method, generator=key, settings=generator.settings(), seed=seed,
                      labels=labels)
    settings_json = json.loads(json.dumps(samples.settings, sort_keys=True, default=str))
    stage_settings = {"method": method, "generator": key, "n": n, "seed": seed, "settings": settings_json}
    if conditional:  # unconditional files keep exactly the record they had
        stage_settings |= {"conditional": True, "per_class": options.per_class,
                           "min_class_size": options.min_class_size,
                           "class_counts": {c: int((labels == c).sum()) for c in generator.classes_},
                           "classes_with_own_generator": sorted(generator.generators_)}
    stage_settings |= constrained  # data without constraints: the record they had
    write_samples_file(out, samples, tiles.channel_names, tiles.units, provenance(
        "sample", stage_settings, {str(tiles_path): sha256_file(tiles_path)}), tiles.channel_types,
        tiles.sampling_rate)
    return samples


def _fit_and_draw(key, settings, options, tiles, n, seed, walk, method, tiles_path):
    """Fit generator ``key`` on the training images of ``tiles`` and draw: (images, records, generator,
    conditional, labels, (fit s, sample s)), with the checks of what it returned."""
    train = tiles.subset("train")
    train_labels = None if tiles.labels is None else tiles.labels[tiles.split == "train"]
    conditional = options.is_conditional(train_labels)
    started = time.perf_counter()
    try:
        # one BLAS and torch thread, whoever calls: float sums depend on the thread count, so the
        # CLI, the Python API and a pipeline job give the same images for the same seed
        # (imports the generator's module, and torch where it needs it)
        generator = (ClassConditional(key, settings, options.min_class_size, options.per_class) if conditional
                     else make_generator(key, **settings))
        if options.constraints:  # constant channels fitted around (not by the walks), constraints kept
            generator = Constrained(generator, tiles.channel_mean, tiles.channel_std, tiles.channel_names,
                                    tiles.units, fit_constant_channels=key in WALKS)
        with threadpool_limits(1), _torch_threads(1):
            if conditional:  # unlabelled or off: exactly the unconditional fit and draw below
                generator.fit(train, seed, labels=train_labels, **(walk if key in WALKS else {}))
                fitted = time.perf_counter()
                images, records = generator.sample(n if options.per_class is None else None, seed)
            else:
                generator.fit(train, seed, **(walk if key in WALKS else {}))
                fitted = time.perf_counter()
                images, records = generator.sample(n, seed)
    except (np.linalg.LinAlgError, FloatingPointError) as exc:
        raise InputError(f"{tiles_path}: {method} failed numerically on these images ({exc}); "
                         "duplicated or too few training images make a fit singular: try another method") from None
    n = len(images) if conditional else n  # per_class decides the number
    if images.shape != (n, *train.shape[1:]) or not np.isfinite(images).all():
        raise InputError(f"{method}: generator returned {images.shape} images"
                         f"{'' if np.isfinite(images).all() else ' with NaN/inf values'}; "
                         f"expected ({n}, {train.shape[1]}, {train.shape[2]}) finite")
    labels = np.array([record["label"] for record in records]) if conditional else None
    return images, records, generator, conditional, labels, (fitted - started, time.perf_counter() - fitted)


def _write_failed(tiles, tiles_path, method, key, out, seed, reason: str) -> Samples:
    """A samples file with no images that says why the method failed (read back with ``failed`` set)."""
    empty = np.zeros((0, *tiles.images.shape[1:]), dtype=np.float32)
    samples = Samples(images=empty, images_physical=empty, records=[], method=method, generator=key, settings={},
                      seed=seed, failed=reason)
    write_samples_file(out, samples, tiles.channel_names, tiles.units, provenance(
        "sample", {"method": method, "generator": key, "seed": seed, "failed": reason},
        {str(tiles_path): sha256_file(tiles_path)}), tiles.channel_types, tiles.sampling_rate)
    return samples
