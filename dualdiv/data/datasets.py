"""Readers of the benchmark data sets, and files shipped inside installed Python packages.

Four ingest formats beyond the generic ones of :mod:`dualdiv.data.ingest` (which
registers them in its ``READERS``):

- ``finger_movements``: the UEA FingerMovements ``.ts`` files, whose rows are
  overlapping cuts of each trial's electrode-major stream, not electrodes: the 16
  electrodes they contain whole (× 50 time points at 100 Hz), see
  :func:`recover_electrodes`.
- ``tmy3``: a TMY3 typical-meteorological-year CSV (NREL; e.g. ``723170TYA.CSV``
  inside pvlib): 8760 hourly rows → 365 daily images of 9 channels × 24 hours
  (irradiance GHI/DNI/DHI, air temperature, dew point, relative humidity,
  pressure, wind speed, wind direction), labelled by month.
- ``prices``: a daily price table (Yahoo layout ``Date,Open,High,Low,Close,Adj
  Close,Volume``, e.g. ``^NDX.csv`` inside nolds) → one recording of the day-over-day
  log-changes of open, high, low, close and volume; the tile stage cuts it into
  windows.
- ``spikes_sim``: a JSON file of simulator settings → spike-count images of
  coupled neurons (a discrete-time linear Hawkes process), deterministic from
  the file's seed. Simulated data, labelled so in the units.

A data file inside an installed package is named ``package:<package>/<path in it>``
(e.g. ``package:pvlib/data/723170TYA.CSV``); :func:`resolve_path` finds it
without importing the package. Every problem raises an
:class:`~dualdiv.core.errors.InputError` naming the file.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dualdiv.core.errors import InputError

if TYPE_CHECKING:
    from dualdiv.data.ingest import RawSeries

PACKAGE_PREFIX = "package:"


def resolve_path(path: str | os.PathLike) -> Path:
    """The file ``path`` names: ``package:<package>/<inner path>`` inside an installed package, else as is.

    The package is located with :func:`importlib.util.find_spec`, which does not
    import it (some data packages fail to import, e.g. nolds on Python 3.11).
    """
    text = os.fspath(path)
    if not text.startswith(PACKAGE_PREFIX):
        return Path(path)
    package, _, inner = text[len(PACKAGE_PREFIX):].partition("/")
    if not package.isidentifier() or not inner:
        raise InputError(f"{text}: expected {PACKAGE_PREFIX}<package>/<file inside it>, "
                         "e.g. package:pvlib/data/723170TYA.CSV")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"{text}: the Python package {package!r} is not installed; install it with "
                         f"`pip install {package}` (all benchmark data packages: pip install -e \".[benchmark]\")")
    for location in spec.submodule_search_locations:
        if (Path(location) / inner).is_file():
            return Path(location) / inner
    raise InputError(f"{text}: no file {inner!r} in the installed package {package} "
                     f"({', '.join(spec.submodule_search_locations)}); is it the pinned version?")


def _raw_series(path: Path, series: np.ndarray, **metadata) -> RawSeries:
    """Wrap ``series`` ``(n, channels, time)`` as the ingest stage's :class:`RawSeries`."""
    from dualdiv.data.ingest import RawSeries  # imported here: ingest imports this module's readers

    return RawSeries(path, [list(sample) for sample in series], **metadata)


def _read_table(path: Path, required: tuple[str, ...], skip_rows: int = 0):
    """A CSV table with the ``required`` columns as text (pandas DataFrame); header on line ``skip_rows + 1``."""
    import pandas as pd

    try:
        table = pd.read_csv(path, skiprows=skip_rows, dtype=str, keep_default_na=False, encoding="utf-8",
                            skipinitialspace=True)  # text as written: a bad cell is quoted in the error
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text: is this the right file?") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV table: {str(exc).splitlines()[0]}") from None
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))} on line {skip_rows + 1}; "
                         f"found {', '.join(map(str, table.columns[:8]))}")
    if table.empty:
        raise InputError(f"{path}: no data rows")
    return table


def _numbers(table, columns: tuple[str, ...], path: Path, first_line: int) -> np.ndarray:
    """``columns`` of a text table as float64 ``(rows, len(columns))``; line numbers start at ``first_line``."""
    import pandas as pd

    values = np.empty((len(table), len(columns)))
    for c, name in enumerate(columns):
        numeric = pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if len(bad):
            raise InputError(f"{path}:{bad[0] + first_line}: column {name!r}: {table[name].iloc[bad[0]]!r} "
                             "is not a finite number")
        values[:, c] = numeric
    return values


# ---------------------------------------------------------------------- UEA FingerMovements EEG

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


def read_finger_movements(path: Path) -> RawSeries:
    """The recoverable electrodes (16 × 50 time points at 100 Hz) of a UEA FingerMovements ``.ts`` file."""
    from dualdiv.data.ingest import read_ts

    raw = read_ts(path)
    rows = np.array(raw.series, dtype=float)
    n_rows, width = rows.shape[1:] if rows.ndim == 3 else (0, 0)
    if not n_rows < width or not np.array_equal(rows[:, 1:, :width - n_rows], rows[:, :-1, n_rows:]):
        raise InputError(f"{path}: not the UEA FingerMovements layout (equal-length rows whose last "
                         "W − R values repeat as the next row's first); read it with format ts")
    electrodes = recover_electrodes(rows)
    return _raw_series(path, electrodes, labels=raw.labels, sampling_rate=100.0,
                       channel_names=list(FINGER_MOVEMENTS_ELECTRODES[:electrodes.shape[1]]))


# ---------------------------------------------------------------------- TMY3 weather

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


def read_tmy3(path: Path) -> RawSeries:
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


# ---------------------------------------------------------------------- daily prices

PRICE_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


def log_changes(values: np.ndarray) -> np.ndarray:
    """Positive values ``(days, channels)`` → day-over-day log-changes ``(channels, days − 1)``."""
    return np.diff(np.log(values), axis=0).T


def read_prices(path: Path) -> RawSeries:
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


# ---------------------------------------------------------------------- simulated spikes

@dataclass(frozen=True)
class SpikeSimulation:
    """Settings of the coupled-neuron simulator (the keys of a ``spikes_sim`` JSON file).

    Trials alternate between two conditions (labels ``A``/``B``); in each, one half
    of the neurons gets a raised-cosine stimulus bump over the middle half of the
    trial. Spikes excite other neurons through a sparse non-negative coupling
    matrix with an exponential kernel; ``branching_ratio`` (< 1, its spectral
    radius) is the expected number of spikes one spike causes, which keeps the
    process stationary.
    """

    n_trials: int = 200
    n_neurons: int = 16
    n_bins: int = 64
    bin_ms: float = 25.0
    baseline_hz: float = 8.0
    stimulus_gain: float = 2.0  # peak rate of driven neurons = baseline · (1 + gain)
    branching_ratio: float = 0.6
    connection_probability: float = 0.25
    kernel_tau_bins: float = 2.0
    seed: int = 0

    def problems(self) -> list[str]:
        """What is out of range, one message per setting."""
        checks = {"n_trials must be ≥ 2": self.n_trials >= 2, "n_neurons must be ≥ 2": self.n_neurons >= 2,
                  "n_bins must be ≥ 4": self.n_bins >= 4, "bin_ms must be > 0": self.bin_ms > 0,
                  "baseline_hz must be > 0": self.baseline_hz > 0, "stimulus_gain must be ≥ 0": self.stimulus_gain >= 0,
                  "branching_ratio must be in [0, 1)": 0 <= self.branching_ratio < 1,
                  "connection_probability must be in [0, 1]": 0 <= self.connection_probability <= 1,
                  "kernel_tau_bins must be > 0": self.kernel_tau_bins > 0, "seed must be ≥ 0": self.seed >= 0}
        return [message for message, ok in checks.items() if not ok]


def coupling_matrix(n_neurons: int, connection_probability: float, branching_ratio: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Sparse non-negative ``(post, pre)`` coupling, no self-coupling, scaled to spectral radius ``branching_ratio``."""
    weights = rng.exponential(size=(n_neurons, n_neurons)) * (rng.random((n_neurons, n_neurons))
                                                                < connection_probability)
    np.fill_diagonal(weights, 0.0)
    radius = np.abs(np.linalg.eigvals(weights)).max()
    return weights * (branching_ratio / radius) if radius > 0 else weights


def stimulus_drive(sim: SpikeSimulation) -> np.ndarray:
    """Expected spikes per bin without coupling, ``(2 conditions, neurons, bins)``."""
    t = np.arange(sim.n_bins) / sim.n_bins
    bump = np.where((t >= 0.25) & (t < 0.75), 0.5 - 0.5 * np.cos(4 * np.pi * (t - 0.25)), 0.0)  # (bins,)
    driven = np.arange(sim.n_neurons) < sim.n_neurons // 2  # condition A drives the first half, B the rest
    preference = np.stack([driven, ~driven]).astype(float)  # (2, neurons)
    baseline = sim.baseline_hz * sim.bin_ms / 1000
    return baseline * (1 + sim.stimulus_gain * preference[:, :, None] * bump)


def simulate_spike_counts(sim: SpikeSimulation) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts ``(n_trials, n_neurons, n_bins)`` float64 and condition labels ``(n_trials,)`` (0/1).

    Discrete-time linear Hawkes process: the rate in bin t is the stimulus drive
    plus the coupling applied to an exponentially decaying trace of past counts
    (the kernel sums to 1 over later bins, so coupling entries are spikes caused
    per spike). The same settings give the same counts.
    """
    rng = np.random.default_rng(sim.seed)
    coupling = coupling_matrix(sim.n_neurons, sim.connection_probability, sim.branching_ratio, rng)
    conditions = np.arange(sim.n_trials) % 2
    drive = stimulus_drive(sim)[conditions]  # (trials, neurons, bins)
    decay = np.exp(-1 / sim.kernel_tau_bins)
    trace = np.zeros((sim.n_trials, sim.n_neurons))
    counts = np.empty_like(drive)
    for t in range(sim.n_bins):
        counts[:, :, t] = rng.poisson(drive[:, :, t] + trace @ coupling.T)
        trace = decay * trace + (1 - decay) * counts[:, :, t]
    return counts, conditions


def read_spike_simulation(path: Path) -> RawSeries:
    """Simulate the spike-count images that the JSON settings file ``path`` describes (see :class:`SpikeSimulation`)."""
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file of simulator settings: {exc}") from None
    known = {f.name: f.type for f in fields(SpikeSimulation)}
    if not isinstance(settings, dict) or set(settings) - set(known):
        unknown = sorted(set(settings) - set(known)) if isinstance(settings, dict) else ["(not an object)"]
        raise InputError(f"{path}: unknown simulator setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    wrong_type = [key for key, value in settings.items()
                  if isinstance(value, bool) or not isinstance(value, int if known[key] == "int" else (int, float))]
    if wrong_type:
        raise InputError(f"{path}: {wrong_type[0]}: expected a {known[wrong_type[0]]}, got "
                         f"{settings[wrong_type[0]]!r}")
    sim = SpikeSimulation(**settings)
    if sim.problems():
        raise InputError(f"{path}: {'; '.join(sim.problems())}")
    counts, conditions = simulate_spike_counts(sim)
    return _raw_series(path, counts, labels=["AB"[c] for c in conditions],
                       channel_names=[f"neuron{i:02d}" for i in range(sim.n_neurons)],
                       sampling_rate=1000 / sim.bin_ms, units="spikes per bin (simulated)")


READERS = {"finger_movements": read_finger_movements, "tmy3": read_tmy3, "prices": read_prices,
           "spikes_sim": read_spike_simulation}
