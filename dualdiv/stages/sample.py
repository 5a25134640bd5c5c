"""Stage 5 on files: fit a generator on the training images, draw samples, write ``samples/{method}.h5``.

One entry function serves every generator — the dual-space variants, the fitted
bases, the neural baselines and the references — so the ``sample`` and
``baseline`` rules and ``dualdiv sample`` treat them alike. ``dualdiv`` is the
chosen default variant (``sample.default`` in the config); the walks also need
the dual context (F, clusters, the dual window) of a finished path.

``samples/{method}.h5`` (DESIGN §8): ``/images`` float32 ``(n, H, W)`` in the
normalised units of ``tiles.h5``; ``/images_physical`` float32 in the data's units;
``/provenance`` one JSON record per sample (for the walks: start, target, steps,
accepted or why not; for the correction: weight/ESS or MALA acceptance);
attributes ``method``, ``generator`` (the registry key used), ``settings`` (JSON),
``seed``, ``channel_names``, ``units`` and the stage provenance.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import atomic_output, provenance, sha256_file
from dualdiv.data.tiles import load_tiles, to_physical
from dualdiv.generators import DEFAULT_VARIANT, WALKS, known_keys, make_generator, resolve_key

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """Contents of a ``samples/{method}.h5`` file."""

    images: np.ndarray  # (n, H, W) float32, normalised units
    images_physical: np.ndarray  # (n, H, W) float32, data units
    records: list[dict]
    method: str
    generator: str
    settings: dict
    seed: int


def resolve_method(method: str, sample_config: dict) -> tuple[str, dict]:
    """Registry key and constructor settings of ``method`` (``dualdiv`` → ``sample.default``)."""
    key = sample_config.get("default", DEFAULT_VARIANT) if method == "dualdiv" else method
    try:
        key = resolve_key(key)
    except ConfigError:
        raise ConfigError(f"sample: unknown method {method!r}; known: {', '.join(known_keys())}") from None
    settings = dict((sample_config.get("settings") or {}).get(key) or {})
    return key, settings


def dual_context(tiles_path, dual_path, clusters_path, plan_path, critic_paths, device: str = "auto"):
    """The :class:`~dualdiv.generators.walks.DualContext` of a finished path, for the walks."""
    from dualdiv.generators.walks import DualContext, novelty_threshold
    from dualdiv.stages.path import load_dual_function

    tiles = load_tiles(tiles_path)
    try:
        with h5py.File(dual_path, "r") as handle:
            F, lo, hi = handle["F"][()], float(handle.attrs["lo"]), float(handle.attrs["hi"])
        boundaries = json.loads(Path(clusters_path).read_text())["boundaries"]
    except Exception as exc:  # h5py and json raise many types for corrupt or missing files
        raise InputError(f"cannot read the dual context ({exc}); rerun the dual and localize stages") from None
    train = tiles.split == "train"
    return DualContext(F=load_dual_function(plan_path, critic_paths, device), train_F=F[train],
                       boundaries=boundaries, lo=lo, hi=hi,
                       novelty_threshold=novelty_threshold(tiles.subset("test"), tiles.subset("train")))


def write_samples(tiles_path: str | os.PathLike, method: str, out: str | os.PathLike, n: int, seed: int = 0,
                  sample_config: dict | None = None, context=None) -> Samples:
    """Entry of rules ``sample``/``baseline`` and ``dualdiv sample``: fit ``method`` on the training
    split of ``tiles_path``, draw ``n`` images with ``seed``, write ``out`` atomically."""
    key, settings = resolve_method(method, sample_config or {})
    if key in WALKS:
        if context is None:
            raise ConfigError(f"{method}: a walk needs the dual context of a finished path")
        settings["context"] = context
    tiles = load_tiles(tiles_path)
    started = time.perf_counter()
    try:
        generator = make_generator(key, **settings).fit(tiles.subset("train"), seed)
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
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as handle:
        chunks = (1, *images.shape[1:])
        for name, data in (("images", samples.images), ("images_physical", samples.images_physical)):
            handle.create_dataset(name, data=data, chunks=chunks, compression="gzip", track_times=False)
        handle.create_dataset("provenance", data=[json.dumps(r, sort_keys=True) for r in records],
                              dtype=h5py.string_dtype(), track_times=False)
        handle.attrs["method"], handle.attrs["generator"], handle.attrs["seed"] = method, key, seed
        handle.attrs["settings"] = json.dumps(samples.settings, sort_keys=True, default=str)
        handle.attrs["channel_names"] = json.dumps(tiles.channel_names)
        handle.attrs["units"] = tiles.units
        handle.attrs["provenance"] = json.dumps(provenance(
            "sample", {"method": method, "generator": key, "n": n, "seed": seed,
                       "settings": json.loads(handle.attrs["settings"])},
            {str(tiles_path): sha256_file(tiles_path)}))
    return samples


def load_samples(path: str | os.PathLike) -> Samples:
    """Read and check a ``samples/{method}.h5`` file."""
    try:
        with h5py.File(path, "r") as handle:
            return Samples(images=handle["images"][()], images_physical=handle["images_physical"][()],
                           records=[json.loads(r) for r in handle["provenance"].asstr()[()]],
                           method=str(handle.attrs["method"]), generator=str(handle.attrs["generator"]),
                           settings=json.loads(handle.attrs["settings"]), seed=int(handle.attrs["seed"]))
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError, ValueError... for corrupt files
        raise InputError(f"{path}: cannot read samples file (corrupt or truncated? rerun its stage): "
                         f"{str(exc).splitlines()[0]}") from None
