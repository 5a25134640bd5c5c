"""Stage sample on files: fit a generator on the training images, draw samples, write ``samples/{method}.h5``.

One entry function serves every generator — the dual-space variants, the fitted
bases, the neural baselines and the references — so the ``sample`` and
``baseline`` rules and ``dualdiv sample`` treat them alike. ``dualdiv`` is the
chosen default variant (``sample.default`` in the config); the walks also need
the fitted dual space and the clusters of a finished path (:func:`walk_inputs`).
The file layout is :mod:`dualdiv.data.samples`.
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


def write_samples(tiles_path: str | os.PathLike, method: str, out: str | os.PathLike, n: int, seed: int = 0,
                  sample_config: dict | None = None, walk: dict | None = None) -> Samples:
    """Entry of rules ``sample``/``baseline`` and ``dualdiv sample``: fit ``method`` on the training
    split of ``tiles_path``, draw ``n`` images with ``seed``, write ``out`` atomically.

    walk: for the walks, :func:`walk_inputs` (passed to their ``fit``).
    """
    key, settings = resolve_method(method, sample_config or {})
    if key in WALKS and walk is None:
        raise ConfigError(f"{method}: a walk needs the dual space and clusters of a finished path")
    tiles = load_tiles(tiles_path)
    started = time.perf_counter()
    try:
        # one BLAS and torch thread, whoever calls: float sums depend on the thread count, so the
        # CLI, the Python API and a pipeline job give the same images for the same seed
        generator = make_generator(key, **settings)  # imports its module (and torch, where it needs it)
        with threadpool_limits(1), _torch_threads(1):
            generator.fit(tiles.subset("train"), seed, **(walk if key in WALKS else {}))
            fitted = time.perf_counter()
            images, records = generator.sample(n, seed)
    except (np.linalg.LinAlgError, FloatingPointError) as exc:
        raise InputError(f"{tiles_path}: {method} failed numerically on these images ({exc}); constant, "
                         "duplicated or too few training images make a fit singular: try another method") from None
    if images.shape != (n, *tiles.images.shape[1:]) or not np.isfinite(images).all():
        raise InputError(f"{method}: generator returned {images.shape} images"
                         f"{'' if np.isfinite(images).all() else ' with NaN/inf values'}; "
                         f"expected ({n}, {tiles.images.shape[1]}, {tiles.images.shape[2]}) finite")
    log.info("%s (%s): fit %.1f s, %d samples %.1f s", method, key, fitted - started, n,
             time.perf_counter() - fitted)
    samples = Samples(images=images, images_physical=to_physical(images, tiles.channel_mean,
                                                                  tiles.channel_std).astype(np.float32),
                      records=records, method=method, generator=key, settings=generator.settings(), seed=seed)
    settings_json = json.loads(json.dumps(samples.settings, sort_keys=True, default=str))
    write_samples_file(out, samples, tiles.channel_names, tiles.units, provenance(
        "sample", {"method": method, "generator": key, "n": n, "seed": seed, "settings": settings_json},
        {str(tiles_path): sha256_file(tiles_path)}), tiles.channel_types, tiles.sampling_rate)
    return samples
