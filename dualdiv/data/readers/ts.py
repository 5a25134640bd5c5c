"""Reader of UEA/sktime ``.ts`` files (format ``ts``).

Header lines start with ``@``, data after ``@data``; one sample per line, channels
separated by ``:``, values by ``,``, the class label last when ``@classLabel true``.
``?`` marks a missing value (read as NaN, which ingest rejects). Equal or unequal
length; ``@timestamps true`` is not supported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries

_TS_FLAGS = ("timestamps", "univariate", "equallength", "classlabel", "targetlabel", "missing")


def _read_text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}): is this the right file?") from None


def _parse_values(text: str, path: Path, lineno: int, channel: int) -> np.ndarray:
    try:
        return np.array([float("nan") if v.strip() == "?" else float(v) for v in text.split(",")])
    except ValueError:
        bad = next(v for v in text.split(",") if not _is_float(v))
        raise InputError(f"{path}:{lineno}: channel {channel + 1}: {bad.strip()[:40]!r} is not a number") from None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip() == "?"
    return True


def read(path: Path) -> RawSeries:
    """Parse a UEA/sktime ``.ts`` file (equal or unequal length, no timestamps)."""
    header: dict[str, list[str]] = {}
    series, labels = [], []
    in_data = False
    n_channels = None
    for lineno, raw in enumerate(_read_text_lines(path), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise InputError(f"{path}:{lineno}: expected a header line starting with '@' "
                                 f"before @data, got {line[:40]!r}")
            if not line[1:].strip():
                raise InputError(f"{path}:{lineno}: a header line '@' without a name")
            name, *values = line[1:].split()
            key = name.lower()
            if key == "data":
                in_data = True
                _check_ts_header(header, path, lineno)
                continue
            if key in _TS_FLAGS and (not values or values[0].lower() not in ("true", "false")):
                raise InputError(f"{path}:{lineno}: @{name} must be followed by true or false")
            if key in ("serieslength", "dimension") and (len(values) != 1 or not values[0].isdigit()):
                raise InputError(f"{path}:{lineno}: @{name} must be a positive integer")
            header[key] = values
            continue
        has_label = _ts_flag(header, "classlabel") or _ts_flag(header, "targetlabel")
        fields = line.split(":")
        if has_label:
            if len(fields) < 2:
                raise InputError(f"{path}:{lineno}: expected channels and a label separated by ':'")
            label = fields.pop().strip()
            allowed = header["classlabel"][1:] if _ts_flag(header, "classlabel") else []
            if allowed and label not in allowed:
                raise InputError(f"{path}:{lineno}: label {label!r} is not one of the declared "
                                 f"@classLabel values {' '.join(allowed)}")
            labels.append(label)
        if n_channels is None:
            n_channels = len(fields)
            declared = header.get("dimension")
            if declared and int(declared[0]) != n_channels:
                raise InputError(f"{path}:{lineno}: {n_channels} channels but @dimension says {declared[0]}")
        elif len(fields) != n_channels:
            raise InputError(f"{path}:{lineno}: {len(fields)} channels, but earlier lines have {n_channels}")
        series.append([_parse_values(text, path, lineno, c) for c, text in enumerate(fields)])
    if not in_data:
        raise InputError(f"{path}: no @data line: not a .ts file, or truncated")
    if not series:
        raise InputError(f"{path}: no data lines after @data")
    return RawSeries(path, series, labels or None,
                     meta={"problem_name": " ".join(header.get("problemname", []))})


read_ts = read  # its name before the readers had a module each


def _ts_flag(header: dict, key: str) -> bool:
    return bool(header.get(key)) and header[key][0].lower() == "true"


def _check_ts_header(header: dict, path: Path, lineno: int) -> None:
    if _ts_flag(header, "timestamps"):
        raise InputError(f"{path}:{lineno}: @timestamps true is not supported; "
                         "export the series without timestamps")
