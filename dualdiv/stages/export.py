"""Export generated images in physical units, in a layout the ingest stage reads back.

- ``.npy``: the array ``(n, channels, time)`` float32.
- ``.npz``: ``data`` ``(n, channels, time)``, ``channel_names``, and ``sampling_rate`` when known.
- ``.csv``: the wide table of the CSV reader: a ``sample`` column (``<method>_<i>``), ``time``
  (the time index), one column per channel.

So ``dualdiv ingest exported.csv`` (or ``.npy``/``.npz``) gives the generated series back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dualdiv.core.errors import ConfigError
from dualdiv.core.io import atomic_output
from dualdiv.data.samples import load_samples

FORMATS = (".npy", ".npz", ".csv")


def export_samples(samples_path: str | os.PathLike, out: str | os.PathLike, sampling_rate: float | None = None
                   ) -> Path:
    """Write the physical-unit images of ``samples_path`` to ``out`` (format from its extension)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{out}: cannot export to {suffix or 'a file without extension'}; use one of "
                          f"{', '.join(FORMATS)}")
    samples = load_samples(samples_path)
    images = samples.images_physical.astype(np.float32)  # (n, C, T)
    names = [str(c) for c in (samples.channel_names or [f"ch{c}" for c in range(images.shape[1])])]
    with atomic_output(out) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, images)
        elif suffix == ".npz":
            extra = {} if sampling_rate is None else {"sampling_rate": np.float64(sampling_rate)}
            with open(tmp, "wb") as handle:
                np.savez(handle, data=images, channel_names=np.array(names), **extra)
        else:
            n, _, length = images.shape
            rows = images.transpose(0, 2, 1).reshape(n * length, -1)  # (n·T, C): one row per time point
            sample = np.repeat([f"{samples.method}_{i}" for i in range(n)], length)
            time = np.tile(np.arange(length), n)
            with open(tmp, "w") as handle:
                handle.write(",".join(["sample", "time", *names]) + "\n")
                for label, t, values in zip(sample, time, rows, strict=True):
                    handle.write(f"{label},{t}," + ",".join(f"{v:.7g}" for v in values) + "\n")
    return out
