"""Reader of TMY3 typical-meteorological-year CSV files (format ``tmy3``, named explicitly).

A TMY3 file (NREL; e.g. ``723170TYA.CSV`` inside pvlib): 8760 hourly rows → 365
daily images of 9 channels × 24 hours (irradiance GHI/DNI/DHI, air temperature,
dew point, relative humidity, pressure, wind speed, wind direction), labelled by month.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries, _numbers, _raw_series, _read_table

# Channel name (pvlib's naming) → (TMY3 column, unit).
TMY3_CHANNELS = {
    "ghi": ("GHI (W/m^2)", "W/m^2"),
    "dni": ("DNI (W/m^2)", "W/m^2"),
    "dhi": ("DHI (W/m^2)", "W/m^2"),
    "temp_air": ("Dry-bulb (C)", "degC"),
    "temp_dew": ("Dew-point (C)", "degC"),
    "relative_humidity": ("RHum (%)", "%"),
    "pressure": ("Pressure (mbar)", "mbar"),
    "wind_speed": ("Wspd (m/s)", "m/s"),
    "wind_direction": ("Wdir (degrees)", "degrees from north, clockwise (circular)"),
}
_TMY3_DATE, _TMY3_TIME = "Date (MM/DD/YYYY)", "Time (HH:MM)"
HOURS = tuple(f"{hour:02d}:00" for hour in range(1, 25))  # TMY3 stamps the end of each hour


def daily_images(hourly: np.ndarray) -> np.ndarray:
    """Hourly rows ``(days · 24, channels)`` → daily images ``(days, channels, 24)``."""
    return hourly.reshape(-1, 24, hourly.shape[1]).transpose(0, 2, 1)


def read(path: Path) -> RawSeries:
    """One image per day of a TMY3 file: 9 channels (:data:`TMY3_CHANNELS`) × 24 hours, label = month (01–12).

    Wind direction stays in degrees: the images treat it as a linear quantity
    (north wraps from 360 to 0 between hours); its units say it is circular.
    """
    columns = tuple(column for column, _ in TMY3_CHANNELS.values())
    table = _read_table(path, (_TMY3_DATE, _TMY3_TIME, *columns), skip_rows=1)
    if len(table) % 24:
        raise InputError(f"{path}: {len(table)} hourly rows, not a whole number of days (24 rows each)")
    hours = table[_TMY3_TIME].to_numpy(dtype=str).reshape(-1, 24)
    dates = table[_TMY3_DATE].to_numpy(dtype=str).reshape(-1, 24)
    bad = np.flatnonzero((hours != np.array(HOURS)).ravel() | (dates != dates[:, :1]).ravel())
    if len(bad):
        raise InputError(f"{path}:{bad[0] + 3}: expected hour {HOURS[bad[0] % 24]} of "
                         f"{dates.ravel()[bad[0] - bad[0] % 24]}, got {dates.ravel()[bad[0]]} "
                         f"{hours.ravel()[bad[0]]}: days must be 24 consecutive rows 01:00..24:00")
    images = daily_images(_numbers(table, columns, path, first_line=3))
    units = "; ".join(f"{name} [{unit}]" for name, (_, unit) in TMY3_CHANNELS.items())
    return _raw_series(path, images, labels=[date[:2] for date in dates[:, 0]],
                       channel_names=list(TMY3_CHANNELS), sampling_rate=1 / 3600, units=units)


read_tmy3 = read  # its name before the readers had a module each
