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
    """The conditional-sampling keys of a config's ``sample`` section (``conditional``, ``per_class``,
    ``min_class_size``), checked, with the defaults of :class:`~dualdiv.stages.settings.SampleSettings`."""
    keys = ("conditional", "per_class", "min_class_size")
    return SampleSettings(**{k: (sample_config or {})[k] for k in keys if k in (sample_config or {})})


def write_samples(tiles_path: str | os.PathLike, method: str, out: str | os.PathLike, n: int, seed: int = 0,
                  sample_config: dict | None = None, walk: dict | None = None) -> Samples:
    """Entry of rules ``sample``/``baseline`` and ``dualdiv sample``: fit ``method`` on the training
    split of ``tiles_path``, draw ``n`` images with ``seed``, write ``out`` atomically.

    Conditional (``sample_config``'s ``conditional``, ``per_class``, ``min_class_size``; see
    :class:`~dualdiv.stages.settings.SampleSettings`): one generator per class of the training labels,
    the samples labelled; ``per_class`` as an int or a mapping replaces ``n``.
    walk: for the walks, :func:`walk_inputs` (passed to their ``fit``).
    """
    key, settings = resolve_method(method, sample_config or {})
    options = sample_options(sample_config)
    if key in WALKS and walk is None:
        raise ConfigError(f"{method}: a walk needs the dual space and clusters of a finished path")
    tiles = load_tiles(tiles_path)
    train_labels = None if tiles.labels is None else tiles.labels[tiles.split == "train"]
    conditional = options.is_conditional(train_labels)
    started = time.perf_counter()
    try:
        # one BLAS and torch thread, whoever calls: float sums depend on the thread count, so the
        # CLI, the Python API and a pipeline job give the same images for the same seed
        # (imports the generator's module, and torch where it needs it)
        generator = (ClassConditional(key, settings, options.min_class_size, options.per_class) if conditional
                     else make_generator(key, **settings))
        with threadpool_limits(1), _torch_threads(1):
            if conditional:  # unlabelled or off: exactly the unconditional fit and draw below
                generator.fit(tiles.subset("train"), seed, labels=train_labels, **(walk if key in WALKS else {}))
                fitted = time.perf_counter()
                images, records = generator.sample(n if options.per_class is None else None, seed)
            else:
                generator.fit(tiles.subset("train"), seed, **(walk if key in WALKS else {}))
                fitted = time.perf_counter()
                images, records = generator.sample(n, seed)
    except (np.linalg.LinAlgError, FloatingPointError) as exc:
        raise InputError(f"{tiles_path}: {method} failed numerically on these images ({exc}); constant, "
                         "duplicated or too few training images make a fit singular: try another method") from None
    n = len(images) if conditional else n  # per_class decides the number
    if images.shape != (n, *tiles.images.shape[1:]) or not np.isfinite(images).all():
        raise InputError(f"{method}: generator returned {images.shape} images"
                         f"{'' if np.isfinite(images).all() else ' with NaN/inf values'}; "
                         f"expected ({n}, {tiles.images.shape[1]}, {tiles.images.shape[2]}) finite")
    log.info("%s (%s%s): fit %.1f s, %d samples %.1f s", method, key, ", per class" if conditional else "",
             fitted - started, n, time.perf_counter() - fitted)
    labels = np.array([record["label"] for record in records]) if conditional else None
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
    write_samples_file(out, samples, tiles.channel_names, tiles.units, provenance(
        "sample", stage_settings, {str(tiles_path): sha256_file(tiles_path)}), tiles.channel_types,
        tiles.sampling_rate)
    return samples
