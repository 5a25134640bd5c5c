"""Reader of daily price tables (format ``prices``, named explicitly).

A table in Yahoo's layout ``Date,Open,High,Low,Close,Adj Close,Volume`` (e.g.
``^NDX.csv`` inside nolds) → one recording of the day-over-day log-changes of
open, high, low, close and volume; the tile stage cuts it into windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries, _numbers, _raw_series, _read_table

PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


def log_changes(values: np.ndarray) -> np.ndarray:
    """Positive values ``(days, channels)`` → day-over-day log-changes ``(channels, days − 1)``."""
    return np.diff(np.log(values), axis=0).T


def read(path: Path) -> RawSeries:
    """One recording of daily log-changes of open, high, low, close and volume (channels × trading days − 1)."""
    table = _read_table(path, ("Date", *PRICE_COLUMNS))
    values = _numbers(table, PRICE_COLUMNS, path, first_line=2)
    row, column = np.unravel_index(np.argmin(values), values.shape)
    if values[row, column] <= 0:
        raise InputError(f"{path}:{row + 2}: column {PRICE_COLUMNS[column]!r}: {values[row, column]:g} is not "
                         "positive; log-changes need positive prices and volumes")
    dates = table["Date"].to_numpy(dtype=str)
    if not (dates[1:] > dates[:-1]).all():
        row = int(np.flatnonzero(dates[1:] <= dates[:-1])[0]) + 1
        raise InputError(f"{path}:{row + 2}: date {dates[row]} does not follow {dates[row - 1]}; "
                         "rows must be in increasing date order (YYYY-MM-DD)")
    return _raw_series(path, log_changes(values)[None], channel_names=[c.lower() for c in PRICE_COLUMNS],
                       units="log change per trading day")


read_prices = read  # its name before the readers had a module each
