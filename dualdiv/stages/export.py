"""Export generated images in physical units, in a layout the ingest stage reads back.

- ``.npy``: the array ``(n, channels, time)`` float32.
- ``.npz``: ``data`` ``(n, channels, time)``, ``channel_names``, and ``sampling_rate`` when known.
- ``.csv``: the wide table of the CSV reader: a ``sample`` column (``<method>_<i>``), ``time``
  (the time index), one column per channel.
- ``-epo.fif`` (or ``_epo.fif``): MNE-Python epochs (``mne.read_epochs``): values back in SI
  units (volts, tesla), channel names and types, sampling rate, one event per image (the
  records' ``label`` where every record has one, else ``generated``), epochs back to back
  from t = 0, and the samples' provenance as JSON in ``info["description"]``.
- ``.edf`` / ``.bdf``: the images one after another as one continuous recording
  (``mne.export.export_raw``), an annotation at each image's start (its label, or
  ``generated``) lasting one image.

The MNE formats need the optional extra ``dualdiv[eeg]``. Images from data that were not
read through MNE have no channel types: channels in a sub-multiple of volts (``uV``...)
are written as ``eeg``, any others as ``misc`` with the values unchanged. FIF files hold
MNE's file id, which carries the time of writing: the data are deterministic, the bytes not.

So ``dualdiv ingest exported.csv`` (or ``.npy``/``.npz``/``-epo.fif``/``.edf``) gives the
generated series back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import atomic_output
from dualdiv.data.readers import MNE_FORMATS, detect_format
from dualdiv.data.samples import Samples, load_samples

FORMATS = (".npy", ".npz", ".csv", "-epo.fif", ".edf", ".bdf")
# sample.export's names → the file each writes beside samples/{method}.h5 (in the workflow)
EXPORT_SUFFIXES = {"fif": "-epo.fif", "edf": ".edf", "bdf": ".bdf"}


def export_format(out: str | os.PathLike) -> str:
    """The format ``out`` is written in, from its name (one of :data:`FORMATS`); ConfigError otherwise."""
    name = Path(out).name.lower()
    if name.endswith(("-epo.fif", "_epo.fif")):
        return "-epo.fif"
    suffix = Path(name).suffix
    if suffix == ".fif":
        raise ConfigError(f"{out}: MNE names epochs files *-epo.fif; name the output e.g. "
                          f"{Path(out).stem}-epo.fif")
    if suffix not in FORMATS:
        raise ConfigError(f"{out}: cannot export to {suffix or 'a file without extension'}; use one of "
                          f"{', '.join(FORMATS)}")
    return suffix


def export_formats(setting: str | Sequence[str], files: Sequence[str | os.PathLike], fmt: str | None = None
                   ) -> tuple[str, ...]:
    """The formats the workflow exports a data set's samples in (``sample.export``).

    ``auto``: ``("fif",)`` when the data set's files are read through MNE (EEG/MEG files), else none.
    """
    if setting == "auto":
        return ("fif",) if all(detect_format(Path(f), fmt) in MNE_FORMATS for f in files) else ()
    return tuple(setting)


def export_samples(samples_path: str | os.PathLike, out: str | os.PathLike, sampling_rate: float | None = None
                   ) -> Path:
    """Write the physical-unit images of ``samples_path`` to ``out`` (format from its name, :data:`FORMATS`).

    sampling_rate: Hz; overrides the samples file's (needed by the MNE formats when the file has none).
    """
    out = Path(out)
    suffix = export_format(out)
    samples = load_samples(samples_path)
    if samples.failed is not None:
        raise InputError(f"{samples_path}: {samples.method} failed on these data ({samples.failed}); "
                         "no images to export")
    if suffix in ("-epo.fif", ".edf", ".bdf"):
        _export_mne(samples, samples_path, out, suffix, sampling_rate)
        return out
    images = samples.images_physical.astype(np.float32)  # (n, C, T)
    names = [str(c) for c in (samples.channel_names or [f"ch{c}" for c in range(images.shape[1])])]
    rate = sampling_rate if sampling_rate is not None else samples.sampling_rate
    with atomic_output(out) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, images)
        elif suffix == ".npz":
            extra = {} if rate is None else {"sampling_rate": np.float64(rate)}
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


# ------------------------------------------------------------------ MNE formats

def _export_mne(samples: Samples, samples_path, out: Path, suffix: str, sampling_rate: float | None) -> None:
    from dualdiv.data.readers.mne_files import import_mne

    mne = import_mne(out, "write")
    rate = sampling_rate if sampling_rate is not None else samples.sampling_rate
    if not rate:
        raise InputError(f"{samples_path}: no sampling rate stored with these samples; give one "
                         "(dualdiv export --sampling-rate HZ)")
    images = np.asarray(samples.images_physical, dtype=np.float64)  # (n, C, T), data units
    n, n_channels, length = images.shape
    names = [str(c) for c in (samples.channel_names or [f"ch{c}" for c in range(n_channels)])]
    types, factors = _types_and_si_factors(mne, samples, n_channels)
    info = mne.create_info(names, float(rate), types, verbose="error")
    data = images / factors[None, :, None]  # SI units, as MNE holds them
    labels = _labels(samples)
    event_id = {label: code for code, label in enumerate(sorted(set(labels)), start=1)}
    with atomic_output(out) as tmp:
        if suffix == "-epo.fif":
            info["description"] = json.dumps({"dualdiv": {
                "method": samples.method, "generator": samples.generator, "seed": samples.seed,
                "units": samples.units, "samples_file": str(samples_path), "provenance": samples.provenance}},
                sort_keys=True, default=str)
            events = np.column_stack([np.arange(n) * length, np.zeros(n, int),
                                      [event_id[label] for label in labels]]).astype(int)
            epochs = mne.EpochsArray(data, info, events=events, tmin=0.0, event_id=event_id, baseline=None,
                                     verbose="error")
            # MNE checks the name ends in -epo.fif; the temporary's does not (it warns only)
            epochs.save(tmp, fmt="single", overwrite=True, verbose="error")
        else:
            raw = mne.io.RawArray(data.transpose(1, 0, 2).reshape(n_channels, n * length), info, verbose="error")
            raw.set_annotations(mne.Annotations(np.arange(n) * length / rate, length / rate, labels))
            mne.export.export_raw(tmp, raw, fmt=suffix[1:], physical_range="channelwise", overwrite=True,
                                  verbose="error")


def _types_and_si_factors(mne, samples: Samples, n_channels: int) -> tuple[list[str], np.ndarray]:
    """MNE channel types and, per channel, how many data units one SI unit is (values / factor = SI)."""
    from dualdiv.data.readers.mne_files import channel_units, unit_factor

    si_units = mne.defaults.DEFAULTS["si_units"]
    if samples.channel_types is not None:
        types = list(samples.channel_types)
        units = channel_units(samples.units, types)
        factors = []
        for kind, unit in zip(types, units, strict=True):
            si = si_units.get(kind)
            factor = unit_factor(unit, si) if unit and si and si != "AU" else 1.0
            factors.append(1.0 if factor is None else factor)
        return types, np.array(factors)
    volts = unit_factor(samples.units or "", "V")
    if volts is not None:  # EEG-like data read from other formats (e.g. .ts in uV)
        return ["eeg"] * n_channels, np.full(n_channels, volts)
    return ["misc"] * n_channels, np.ones(n_channels)


def _labels(samples: Samples) -> list[str]:
    """One event name per image: the records' ``label`` where every record has one, else ``generated``."""
    if samples.records and all("label" in record for record in samples.records):
        return [str(record["label"]) for record in samples.records]
    return ["generated"] * len(samples.images)
