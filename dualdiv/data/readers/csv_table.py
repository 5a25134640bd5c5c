"""Reader of wide CSV tables (format ``csv``, extension ``.csv``).

One row per time point, a ``sample`` column naming the series the row belongs to,
one numeric column per channel; optional ``time`` (rows of a sample are sorted by
it) and ``label`` (constant within a sample). Samples keep the order in which they
first appear. Named ``csv_table`` so that it does not shadow the standard ``csv`` module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries


def read(path: Path) -> RawSeries:
    """Read a wide CSV: a ``sample`` column, one column per channel, one row per time point."""
    import pandas as pd

    try:
        table = pd.read_csv(path, encoding="utf-8", skipinitialspace=True)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text: is this the right file?") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    columns = [str(c) for c in table.columns]
    if "sample" not in columns:
        raise InputError(f"{path}: no 'sample' column; expected a wide table with columns "
                         f"sample,<channel>,<channel>,... (got {', '.join(map(repr, columns[:8]))})")
    channels = [c for c in columns if c not in ("sample", "time", "label")]
    if not channels:
        raise InputError(f"{path}: no channel columns besides sample/time/label")
    for name in channels:
        numeric = pd.to_numeric(table[name], errors="coerce")
        bad = numeric.isna() & table[name].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}:{row + 2}: column {name!r}: {str(table[name].iloc[row])[:40]!r} "
                             "is not a number")
        table[name] = numeric.astype(float)
    if table[channels].isna().to_numpy().any():
        row, col = np.argwhere(table[channels].isna().to_numpy())[0]
        raise InputError(f"{path}:{row + 2}: column {channels[col]!r}: empty or NaN value")
    series, labels = [], []
    for key, rows in table.groupby("sample", sort=False):  # samples in order of first appearance
        if "time" in columns:
            rows = rows.sort_values("time", kind="stable")
        values = rows[channels].to_numpy(dtype=np.float64).T  # (channels, time)
        series.append(list(values))
        if "label" in columns:
            distinct = rows["label"].astype(str).unique()
            if len(distinct) != 1:
                raise InputError(f"{path}: sample {key!r} has several labels ({', '.join(map(repr, distinct[:4]))}); "
                                 "a label must be constant within a sample")
            labels.append(distinct[0])
    return RawSeries(path, series, labels or None, channel_names=channels)


read_csv = read  # its name before the readers had a module each
