"""The sample file ``samples/{method}.h5``: generated images with their provenance.

``/images`` float32 ``(n, H, W)`` in the normalised units of ``tiles.h5``;
``/images_physical`` float32 in the data's units; ``/provenance`` one JSON record per
sample (for the walks: start, target, steps, accepted or why not; for the correction:
weight/ESS or MALA acceptance); attributes ``method``, ``generator`` (the registry key
used), ``settings`` (JSON), ``seed``, ``channel_names``, ``units`` and the stage provenance;
``sampling_rate`` (Hz) and ``channel_types`` (JSON, MNE's channel types) where the tiles have them
(older files lack them: they read back as None); ``/labels`` (utf-8 class names, one per image) where
the samples were drawn per class (files without it read back with ``labels`` None); attribute ``failed``
(the reason, with no images) where the method could not generate on these data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.core.io import atomic_output


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
    channel_names: list[str] | None = None  # as written: the data's channel names and units
    units: str | None = None
    channel_types: list[str] | None = None  # (H,) MNE's channel types (eeg, mag, ...), where known
    sampling_rate: float | None = None  # Hz, where known
    provenance: dict | None = None  # the stage's provenance record, as read back
    labels: np.ndarray | None = None  # (n,) str: each image's class, where drawn per class; else None
    failed: str | None = None  # why the method could not generate (then no images); None when it did


def write_samples_file(out: str | os.PathLike, samples: Samples, channel_names: list[str], units: str,
                       provenance: dict, channel_types: list[str] | None = None,
                       sampling_rate: float | None = None) -> None:
    """Write ``samples`` to ``out`` atomically (bit-reproducible: no HDF5 time stamps)."""
    labels = None if samples.labels is None else np.asarray(samples.labels).astype(str)
    if labels is not None and labels.shape != (len(samples.images),):
        raise InputError(f"{out}: {labels.shape} labels for {len(samples.images)} images; expected one per image")
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as handle:
        chunks = (1, *samples.images.shape[1:]) if len(samples.images) else None  # a failed method's: none
        for name, data in (("images", samples.images), ("images_physical", samples.images_physical)):
            handle.create_dataset(name, data=data, chunks=chunks, compression="gzip" if chunks else None,
                                  track_times=False)
        handle.create_dataset("provenance", data=[json.dumps(r, sort_keys=True) for r in samples.records],
                              dtype=h5py.string_dtype(), track_times=False)
        if labels is not None:  # fixed-length utf-8 bytes, as tiles.h5 stores its labels
            handle.create_dataset("labels", data=np.char.encode(labels, "utf-8"), track_times=False)
        handle.attrs["method"], handle.attrs["generator"] = samples.method, samples.generator
        handle.attrs["seed"] = samples.seed
        handle.attrs["settings"] = json.dumps(samples.settings, sort_keys=True, default=str)
        handle.attrs["channel_names"] = json.dumps(channel_names)
        handle.attrs["units"] = units
        handle.attrs["provenance"] = json.dumps(provenance)
        if channel_types is not None:
            handle.attrs["channel_types"] = json.dumps(list(channel_types))
        if sampling_rate:
            handle.attrs["sampling_rate"] = float(sampling_rate)
        if samples.failed is not None:
            handle.attrs["failed"] = samples.failed


def load_samples(path: str | os.PathLike) -> Samples:
    """Read and check a ``samples/{method}.h5`` file."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such samples file; run its sample stage first")
    try:
        with h5py.File(path, "r") as handle:
            samples = Samples(images=handle["images"][()], images_physical=handle["images_physical"][()],
                              records=[json.loads(r) for r in handle["provenance"].asstr()[()]],
                              method=str(handle.attrs["method"]), generator=str(handle.attrs["generator"]),
                              settings=json.loads(handle.attrs["settings"]), seed=int(handle.attrs["seed"]),
                              channel_names=json.loads(handle.attrs.get("channel_names", "null")),
                              units=str(handle.attrs["units"]) if "units" in handle.attrs else None,
                              channel_types=json.loads(handle.attrs.get("channel_types", "null")),
                              sampling_rate=float(handle.attrs["sampling_rate"]) if "sampling_rate" in handle.attrs
                              else None,
                              provenance=json.loads(handle.attrs.get("provenance", "null")),
                              labels=np.char.decode(handle["labels"][()], "utf-8") if "labels" in handle else None,
                              failed=str(handle.attrs["failed"]) if "failed" in handle.attrs else None)
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError, ValueError... for corrupt files
        raise InputError(f"{path}: cannot read samples file (corrupt or truncated? rerun its stage): "
                         f"{str(exc).splitlines()[0]}") from None
    if samples.labels is not None and samples.labels.shape != (len(samples.images),):
        raise InputError(f"{path}: /labels has shape {samples.labels.shape}, expected ({len(samples.images)},): "
                         "one class name per image (rerun its stage)")
    return samples
