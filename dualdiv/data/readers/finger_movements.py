"""Reader of the UEA FingerMovements ``.ts`` files (format ``finger_movements``, named explicitly).

The rows of each trial are overlapping cuts of the trial's electrode-major stream,
not electrodes: the reader returns the 16 electrodes they contain whole (× 50 time
points at 100 Hz), see :func:`recover_electrodes`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries, _raw_series
from dualdiv.data.readers.ts import read_ts

# Electrode order of the BCI Competition II set IV recordings (FingerMovements.txt).
FINGER_MOVEMENTS_ELECTRODES = ("F3", "F1", "Fz", "F2", "F4", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6",
                               "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "CP5", "CP3", "CP1", "CPz", "CP2",
                               "CP4", "CP6", "O1", "O2")


def recover_electrodes(rows: np.ndarray) -> np.ndarray:
    """The whole electrodes inside the UEA FingerMovements rows: ``(n, R, W)`` → ``(n, E, W)``.

    In the UEA file, row r of a trial is ``stream[R·r : R·r + W]`` of the trial's
    electrode-major stream (electrode 0's W time points, then electrode 1's, …):
    rows overlap by W − R values and cover only ``R·(R − 1) + W`` of its values, so
    the first ``E = (R·(R − 1) + W) // W`` electrodes are recovered exactly and the
    rest are lost (R = 28, W = 50: 16 of 28).
    """
    n, n_rows, width = rows.shape
    stream = np.concatenate([rows[:, :, :n_rows].reshape(n, -1), rows[:, -1, n_rows:]], axis=1)
    n_electrodes = stream.shape[1] // width
    return stream[:, :n_electrodes * width].reshape(n, n_electrodes, width)


def read(path: Path) -> RawSeries:
    """The recoverable electrodes (16 × 50 time points at 100 Hz) of a UEA FingerMovements ``.ts`` file."""
    raw = read_ts(path)
    rows = np.array(raw.series, dtype=float)
    n_rows, width = rows.shape[1:] if rows.ndim == 3 else (0, 0)
    if not n_rows < width or not np.array_equal(rows[:, 1:, :width - n_rows], rows[:, :-1, n_rows:]):
        raise InputError(f"{path}: not the UEA FingerMovements layout (equal-length rows whose last "
                         "W − R values repeat as the next row's first); read it with format ts")
    electrodes = recover_electrodes(rows)
    return _raw_series(path, electrodes, labels=raw.labels, sampling_rate=100.0,
                       channel_names=list(FINGER_MOVEMENTS_ELECTRODES[:electrodes.shape[1]]))


read_finger_movements = read  # its name before the readers had a module each
