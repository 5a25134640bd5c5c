"""Reader of EEG/MEG files through MNE-Python: formats ``edf``, ``bdf``, ``fif``, ``fif_epochs``,
``brainvision``, ``eeglab`` (extensions ``.edf``, ``.bdf``, ``.fif``, ``-epo.fif``/``_epo.fif``,
``.vhdr``, ``.set``).

MNE parses every file; this module only chooses what to keep, in MNE's own calls:

1. channels: ``picks`` (a channel type such as ``eeg``, or a list of types/names; None:
   MNE's data channels — EEG, MEG, sEEG, ECoG, …, not stim, EOG, ECG or misc);
2. ``l_freq``/``h_freq``: ``raw.filter`` (FIR, MNE's defaults), on the continuous recording;
3. ``resample``: ``raw.resample`` (or ``epochs.resample``), Hz;
4. ``epochs``: ``{events: [description, ...], tmin, tmax}`` cuts one epoch per annotation
   of those descriptions (``mne.events_from_annotations``; without annotations, the events
   of a stim channel, their codes as descriptions), labelled by its description
   (``mne.Epochs(..., baseline=None)``; epochs beyond the recording or overlapping
   ``BAD_`` annotations are dropped, as MNE does); ``{duration, overlap}`` cuts
   fixed-length windows (``mne.make_fixed_length_epochs``), unlabelled; None keeps the
   recording whole (one series: set ``ingest.min_samples: 1`` and a ``tile.window``).
   An ``-epo.fif`` file (or an EEGLAB ``.set`` of several trials) holds epochs already: its
   labels are its event names.

MNE holds volts (tesla for MEG); values are converted to ``units`` (any sub-multiple of
each picked channel type's SI unit: ``uV``, ``mV``, ``fT``, ...; None: MNE's display
units, µV for EEG, fT for magnetometers, fT/cm for gradiometers) and the units recorded
(one unit, or ``"µV (eeg, eog); fT (mag)"`` when channel types differ, see
:func:`channel_units`). ``mne`` is imported inside the functions only: the package runs
without the optional extra ``dualdiv[eeg]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.readers.common import RawSeries, _first_line

# MNE's reader of each continuous format (mne.io.<name>)
_RAW_READERS = {"edf": "read_raw_edf", "bdf": "read_raw_bdf", "fif": "read_raw_fif",
                "brainvision": "read_raw_brainvision", "eeglab": "read_raw_eeglab"}
# SI prefixes as MNE writes them (µ: micro sign; μ: Greek mu; u: ASCII), value of 1 SI unit in the prefixed one
_PREFIXES = {"": 1.0, "k": 1e-3, "h": 1e-2, "d": 1e1, "c": 1e2, "m": 1e3, "µ": 1e6, "μ": 1e6, "u": 1e6,
             "n": 1e9, "p": 1e12, "f": 1e15}


def import_mne(path: Path | str, action: str = "read"):
    """The ``mne`` module, or a one-line InputError saying to install the extra."""
    try:
        import mne
    except ImportError:
        suffix = "-epo.fif" if str(path).lower().endswith(("-epo.fif", "_epo.fif")) else Path(path).suffix
        raise InputError(f"{path}: install dualdiv[eeg] to {action} {suffix or 'EEG/MEG'} files "
                         "(pip install -e \".[eeg]\": MNE-Python is not installed)") from None
    return mne


# ------------------------------------------------------------------ units

def unit_factor(unit: str, si_unit: str) -> float | None:
    """How many ``unit`` one ``si_unit`` is (``unit_factor("µV", "V") == 1e6``, ``("fT/cm", "T/m") == 1e13``);
    None when ``unit`` is no prefixed form of ``si_unit``."""
    parts, si_parts = unit.strip().split("/"), si_unit.split("/")
    if len(parts) != len(si_parts):
        return None
    factor = 1.0
    for position, (part, si_part) in enumerate(zip(parts, si_parts, strict=True)):
        prefix = part[:len(part) - len(si_part)]
        if not part.endswith(si_part) or prefix not in _PREFIXES:
            return None
        factor = factor * _PREFIXES[prefix] if position == 0 else factor / _PREFIXES[prefix]
    return factor


def units_label(units: Sequence[str], channel_types: Sequence[str]) -> str:
    """The units attribute of one unit per channel: that unit when all agree, else ``"µV (eeg, eog); fT (mag)"``."""
    if len(set(units)) == 1:
        return units[0]
    by_unit: dict[str, list[str]] = {}
    for unit, kind in zip(units, channel_types, strict=True):
        kinds = by_unit.setdefault(unit, [])
        if kind not in kinds:
            kinds.append(kind)
    return "; ".join(f"{unit} ({', '.join(kinds)})" for unit, kinds in by_unit.items())


def channel_units(units: str | None, channel_types: Sequence[str]) -> list[str | None]:
    """One unit per channel from a units attribute written by :func:`units_label` (None: unknown)."""
    if not units or units == "unknown":
        return [None] * len(channel_types)
    if "(" not in units:
        return [units] * len(channel_types)
    by_type = {}
    for group in units.split(";"):
        unit, _, kinds = group.strip().partition(" (")
        by_type.update({kind.strip(): unit for kind in kinds.rstrip(")").split(",")})
    return [by_type.get(kind) for kind in channel_types]


def _target_units(mne, channel_types: list[str], units: str | None) -> tuple[list[str], np.ndarray]:
    """Unit and factor (SI → unit) of each channel: ``units`` for all, or MNE's display unit of each type."""
    si_units, shown = mne.defaults.DEFAULTS["si_units"], mne.defaults.DEFAULTS["units"]
    targets, factors = [], []
    for kind in channel_types:
        si = si_units.get(kind)
        if si is None or si == "AU":  # no physical unit known to MNE (stim, misc): values as stored
            targets.append("AU")
            factors.append(1.0)
            continue
        unit = units if units else shown.get(kind, si)
        factor = unit_factor(unit, si)
        if factor is None:
            raise ConfigError(f"ingest.units: {unit!r} is not a unit of {kind} channels (a sub-multiple of "
                              f"{si}, e.g. {shown.get(kind, si)}); leave it null for each type's default")
        targets.append(unit)
        factors.append(factor)
    return targets, np.array(factors)


# ------------------------------------------------------------------ readers (one per format)

def read_edf(path: Path, **options) -> RawSeries:
    """Read an EDF/EDF+ file (``mne.io.read_raw_edf``); options: see :func:`read`."""
    return read(path, "edf", **options)


def read_bdf(path: Path, **options) -> RawSeries:
    """Read a BDF/BDF+ file (``mne.io.read_raw_bdf``); options: see :func:`read`."""
    return read(path, "bdf", **options)


def read_fif(path: Path, **options) -> RawSeries:
    """Read a continuous FIF file (``mne.io.read_raw_fif``); options: see :func:`read`."""
    return read(path, "fif", **options)


def read_fif_epochs(path: Path, **options) -> RawSeries:
    """Read an epochs FIF file (``mne.read_epochs``); options: see :func:`read`."""
    return read(path, "fif_epochs", **options)


def read_brainvision(path: Path, **options) -> RawSeries:
    """Read a BrainVision ``.vhdr`` header and its data (``mne.io.read_raw_brainvision``)."""
    return read(path, "brainvision", **options)


def read_eeglab(path: Path, **options) -> RawSeries:
    """Read an EEGLAB ``.set`` file (``mne.io.read_raw_eeglab``); options: see :func:`read`."""
    return read(path, "eeglab", **options)


def read(path: Path, fmt: str, epochs: dict | None = None, picks: str | Sequence[str] | None = None,
         resample: float | None = None, l_freq: float | None = None, h_freq: float | None = None,
         units: str | None = None) -> RawSeries:
    """Read ``path`` with MNE as format ``fmt`` and return its epochs ``(n, channels, time)`` in ``units``.

    The settings are those of :class:`~dualdiv.data.ingest.IngestSettings` (module docstring);
    every problem is a one-line InputError (ConfigError for a setting) naming the file.
    """
    mne = import_mne(path)
    inst = _open(mne, path, fmt)
    is_epochs = isinstance(inst, mne.BaseEpochs)  # -epo.fif, or an EEGLAB file of several trials
    meta = {"mne_version": mne.__version__, "format": fmt, "original_sampling_rate": float(inst.info["sfreq"])}
    if inst.info["bads"]:
        meta["bad_channels"] = list(inst.info["bads"])  # kept: every file keeps the same channels
    if is_epochs:
        if epochs is not None:
            raise ConfigError(f"ingest.epochs: {path} holds epochs already; remove ingest.epochs for it")
        events = event_id = None
    else:
        events, event_id = _events(mne, path, inst, epochs)
    _pick(path, inst, picks)
    if l_freq is not None or h_freq is not None:
        try:
            inst.filter(l_freq, h_freq, picks=np.arange(len(inst.ch_names)), verbose="error")
        except ValueError as exc:  # e.g. an edge at or above the Nyquist frequency
            raise ConfigError(f"ingest.l_freq/h_freq: {path} ({inst.info['sfreq']:g} Hz): {_first_line(exc)}") \
                from None
        meta["filter"] = {"l_freq": l_freq, "h_freq": h_freq, "method": "fir (MNE defaults)"}
    if resample is not None and not math.isclose(resample, inst.info["sfreq"]):
        if events is not None:
            inst, events = inst.resample(resample, events=events, verbose="error")
        else:
            inst.resample(resample, verbose="error")
        meta["resampled_to"] = float(resample)
    try:
        data, labels = _epochs(mne, inst, is_epochs, epochs, events, event_id, meta)
    except (ValueError, RuntimeError) as exc:  # e.g. windows longer than the recording
        raise InputError(f"{path}: MNE cannot cut these epochs (ingest.epochs: {epochs}): {_first_line(exc)}") \
            from None
    if is_epochs or epochs is not None:
        if len(data) == 0:
            raise InputError(f"{path}: every epoch was dropped (beyond the recording's ends or overlapping "
                             f"BAD_ annotations): {_drop_reasons(data)}")
        values = data.get_data()  # (n, C, T) in SI units
    else:
        values = data.get_data()[None]  # (1, C, T)
    channel_types = list(data.get_channel_types())
    target, factors = _target_units(mne, channel_types, units)
    values *= factors[None, :, None]
    return RawSeries(path, values, labels, list(data.ch_names), float(data.info["sfreq"]),
                     units_label(target, channel_types), {"mne": meta}, channel_types)


def _epochs(mne, inst, is_epochs: bool, epochs: dict | None, events, event_id, meta: dict):
    """The Epochs (or the Raw, kept whole) to take the values of, and their labels (None: unlabelled)."""
    labels = None
    if is_epochs:
        names = {code: name for name, code in inst.event_id.items()}
        labels = [names[code] for code in inst.events[:, 2]]
        data = inst
    elif epochs is None:
        data = inst  # the whole recording: one series
    elif "events" in epochs:
        data = mne.Epochs(inst, events, event_id, tmin=float(epochs["tmin"]), tmax=float(epochs["tmax"]),
                          baseline=None, preload=True, reject_by_annotation=True, verbose="error")
        names = {code: name for name, code in event_id.items()}
        labels = [names[code] for code in data.events[:, 2]]
        meta["epochs"] = {"events": {name: labels.count(name) for name in event_id},
                          "dropped": int(len(events) - len(data)), "tmin": float(epochs["tmin"]),
                          "tmax": float(epochs["tmax"])}
    else:
        data = mne.make_fixed_length_epochs(inst, duration=float(epochs["duration"]),
                                            overlap=float(epochs.get("overlap", 0.0)), preload=True,
                                            reject_by_annotation=True, verbose="error")
        meta["epochs"] = {"duration": float(epochs["duration"]), "overlap": float(epochs.get("overlap", 0.0)),
                          "windows": len(data)}
    return data, labels


def _open(mne, path: Path, fmt: str):
    """The Raw (or Epochs) of ``path``, preloaded; an InputError when MNE cannot read it."""
    try:
        if fmt == "fif_epochs":
            return mne.read_epochs(path, preload=True, verbose="error")
        return getattr(mne.io, _RAW_READERS[fmt])(path, preload=True, verbose="error")
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # MNE raises ValueError, RuntimeError, OSError, KeyError... for foreign files
        if fmt == "eeglab":  # an epoched .set (several trials) is no raw file: its epochs, as an -epo.fif
            try:
                return mne.read_epochs_eeglab(path, verbose="error")
            except Exception:  # not epochs either: the raw reader's message says more
                pass
        hint = {"fif": "; epochs? name the file *-epo.fif or set ingest.format: fif_epochs",
                "fif_epochs": "; a continuous recording? set ingest.format: fif"}.get(fmt, "")
        raise InputError(f"{path}: MNE-Python cannot read this file as {fmt} ({_first_line(exc)}){hint}") from None


def _events(mne, path: Path, raw, epochs: dict | None) -> tuple[np.ndarray | None, dict | None]:
    """Events ``(n, 3)`` and ``{description: code}`` of the requested descriptions (None without events)."""
    if epochs is None or "events" not in epochs:
        return None, None
    wanted = [str(d) for d in epochs["events"]]
    present = sorted({str(d) for d in raw.annotations.description})
    event_id = {d: code for code, d in enumerate(wanted, start=1)}
    if any(d in present for d in wanted):
        events, event_id = mne.events_from_annotations(raw, event_id={d: c for d, c in event_id.items()
                                                                      if d in present}, verbose="error")
        return events, event_id
    stim = mne.pick_types(raw.info, meg=False, stim=True)
    if not present and len(stim):  # no annotations: the stim channel's codes (FIF, BDF), e.g. events: ["1"]
        found = mne.find_events(raw, stim_channel=[raw.ch_names[i] for i in stim], verbose="error")
        codes = sorted({str(c) for c in found[:, 2]})
        chosen = {d: int(d) for d in wanted if d in codes}
        if chosen:
            return found[np.isin(found[:, 2], list(chosen.values()))], chosen
        present = [f"stim code {c}" for c in codes]
    raise InputError(f"{path}: no events {', '.join(map(repr, wanted))} (ingest.epochs.events); the file has "
                     f"{', '.join(map(repr, present[:12])) or 'no annotations or stim events'}"
                     f"{' …' if len(present) > 12 else ''}")


def _pick(path: Path, inst, picks: str | Sequence[str] | None) -> None:
    """Keep the channels of ``picks`` (in place); None: MNE's data channels."""
    chosen = "data" if picks is None else (picks if isinstance(picks, str) else list(picks))
    if not isinstance(chosen, str):
        missing = [name for name in chosen if name not in inst.ch_names and not _is_channel_type(name)]
        if missing:
            raise InputError(f"{path}: channel(s) {', '.join(missing)} of ingest.picks not in the file "
                             f"(it has {', '.join(inst.ch_names[:16])}{' …' if len(inst.ch_names) > 16 else ''})")
    try:
        inst.pick(chosen, verbose="error")
    except ValueError:
        types = sorted(set(inst.get_channel_types()))
        raise InputError(f"{path}: ingest.picks {chosen!r} selects no channel; the file has channel types "
                         f"{', '.join(types)}") from None


def _is_channel_type(name: str) -> bool:
    from mne.io import get_channel_type_constants

    return name in get_channel_type_constants() or name in ("meg", "data", "all", "data_or_ica", "fnirs")


def _drop_reasons(epochs) -> str:
    reasons: dict[str, int] = {}
    for entry in epochs.drop_log:
        for reason in entry:
            reasons[reason] = reasons.get(reason, 0) + 1
    return ", ".join(f"{reason} ×{count}" for reason, count in sorted(reasons.items())) or "no epochs"
