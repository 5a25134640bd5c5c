"""Readers of the benchmark data sets (dualdiv.data.readers): real files where their package is
installed, tiny hand-made files always; package:<package>/<file> paths; the spike simulator."""

import importlib.util
import json

import numpy as np
import pytest
from conftest import ROOT

from dualdiv.core.errors import InputError
from dualdiv.data.ingest import IngestSettings
from dualdiv.data.packages import resolve_path
from dualdiv.data.readers.finger_movements import read_finger_movements, recover_electrodes
from dualdiv.data.readers.prices import read_prices
from dualdiv.data.readers.spikes import read_spike_simulation
from dualdiv.data.readers.tmy3 import HOURS, TMY3_CHANNELS, read_tmy3
from dualdiv.data.simulate_spikes import SpikeSimulation, simulate_spike_counts
from dualdiv.stages.ingest import ingest

FINGER_FILES = [ROOT / "resources/finger_movements/FingerMovements_TRAIN.ts",
                ROOT / "resources/finger_movements/FingerMovements_TEST.ts"]
SPIKE_SETTINGS = ROOT / "resources/spikes_sim/simulation.json"


def installed(package):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"{package} not installed (pip install -e '.[benchmark]')")


def as_array(raw):
    return np.array(raw.series, dtype=float)


# ------------------------------------------------------------------ package paths

def test_package_path_resolves_to_the_installed_file_and_plain_paths_stay():
    assert resolve_path("package:dualdiv/core/errors.py") == ROOT / "dualdiv/core/errors.py"
    assert str(resolve_path("data/x.npy")) == "data/x.npy"


@pytest.mark.parametrize("spec, message", [
    ("package:no_such_package_xyz/data.csv", "'no_such_package_xyz' is not installed; install it with `pip install"),
    ("package:dualdiv/no_such_file.csv", "no file 'no_such_file.csv' in the installed package dualdiv"),
    ("package:dualdiv", "expected package:<package>/<file inside it>"),
])
def test_bad_package_path_names_it_and_what_to_do(spec, message):
    with pytest.raises(InputError, match="^" + spec) as error:
        resolve_path(spec)
    assert message in str(error.value)


# ------------------------------------------------------------------ FingerMovements

def test_finger_movements_recovers_16_electrodes_of_the_real_files():
    raws = [read_finger_movements(path) for path in FINGER_FILES]
    assert [as_array(raw).shape for raw in raws] == [(316, 16, 50), (100, 16, 50)]
    assert raws[0].channel_names[:3] == ["F3", "F1", "Fz"] and raws[0].channel_names[-1] == "Cz"
    assert set(raws[0].labels) == {"left", "right"} and raws[0].sampling_rate == 100
    x = as_array(raws[0])
    x = x - x.mean(axis=2, keepdims=True)
    fz_f2 = np.mean([np.corrcoef(trial[2], trial[3])[0, 1] for trial in x])
    assert fz_f2 > 0.9  # neighbouring electrodes at the same time points: the recovered layout is right


def test_recover_electrodes_inverts_the_overlapping_rows():
    n, n_rows, width = 3, 4, 6  # rows cover 4·3 + 6 = 18 of the stream: 3 whole electrodes
    stream = np.arange(n * n_rows * width, dtype=float).reshape(n, -1)
    rows = np.stack([stream[:, n_rows * r:n_rows * r + width] for r in range(n_rows)], axis=1)
    np.testing.assert_array_equal(recover_electrodes(rows), stream[:, :18].reshape(n, 3, width))


def test_finger_movements_refuses_a_plain_ts_file():
    path = ROOT / "resources/eeg_eyes/EyesOpenShut_TEST.ts"
    with pytest.raises(InputError, match=f"^{path}: not the UEA FingerMovements layout"):
        read_finger_movements(path)


# ------------------------------------------------------------------ TMY3

def tmy3_text(n_days=2, bad=None):
    """A TMY3-like CSV of ``n_days`` days with the columns the reader needs; ``bad`` = (row, column, text)."""
    columns = ["Date (MM/DD/YYYY)", "Time (HH:MM)"] + [column for column, _ in TMY3_CHANNELS.values()]
    lines = ['723170,"GREENSBORO",NC,-5.0,36.1,-79.95,273', ",".join(columns)]
    for day in range(n_days):
        for h, hour in enumerate(HOURS):
            values = [str(100 * day + h + c) for c in range(len(TMY3_CHANNELS))]
            lines.append(",".join([f"0{day + 1}/1{day}/1990", hour, *values]))
    if bad is not None:
        row, column, text = bad
        cells = lines[row - 1].split(",")
        cells[column] = text
        lines[row - 1] = ",".join(cells)
    return "\n".join(lines) + "\n"


def test_tmy3_fixture_gives_daily_images(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text(tmy3_text())
    raw = read_tmy3(path)
    x = as_array(raw)
    assert x.shape == (2, 9, 24) and raw.labels == ["01", "02"]
    assert x[1, 2, 5] == 100 + 5 + 2  # day 2, channel dhi, hour 06:00
    assert raw.channel_names == list(TMY3_CHANNELS) and raw.sampling_rate == 1 / 3600


@pytest.mark.parametrize("bad, message", [
    ((5, 2, "abc"), ":5: column 'GHI (W/m^2)': 'abc' is not a finite number"),
    ((5, 1, "09:00"), ":5: expected hour 03:00 of 01/10/1990, got 01/10/1990 09:00"),
])
def test_tmy3_bad_cell_names_file_and_line(tmp_path, bad, message):
    path = tmp_path / "bad.csv"
    path.write_text(tmy3_text(bad=bad))
    with pytest.raises(InputError, match="^" + str(path)) as error:
        read_tmy3(path)
    assert message in str(error.value)


def test_tmy3_partial_day_and_missing_column(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text(tmy3_text()[:-1].rsplit("\n", 1)[0] + "\n")
    with pytest.raises(InputError, match="47 hourly rows, not a whole number of days"):
        read_tmy3(path)
    path.write_text(tmy3_text().replace("Wspd (m/s)", "Wind"))
    with pytest.raises(InputError, match=r"missing column\(s\) 'Wspd \(m/s\)' on line 2"):
        read_tmy3(path)


@installed("pvlib")
def test_tmy3_real_file_from_pvlib():
    raw = read_tmy3(resolve_path("package:pvlib/data/723170TYA.CSV"))
    x = as_array(raw)
    assert x.shape == (365, 9, 24) and np.isfinite(x).all()
    months, days = np.unique(raw.labels, return_counts=True)
    assert list(months) == [f"{m:02d}" for m in range(1, 13)] and days[1] == 28 and days.sum() == 365
    assert (x[:, 0, 0] == 0).all() and x[:, 0, 12].mean() > 300  # no sun at 01:00, GHI at noon
    assert 0 <= x[:, 8].min() and x[:, 8].max() <= 360  # wind direction in degrees


# ------------------------------------------------------------------ daily prices

PRICES = """Date,Open,High,Low,Close,Adj Close,Volume
1990-01-02,100,110,95,105,105,1000
1990-01-03,105,112,100,110,110,2000
1990-01-04,110,111,99,100,100,1000
"""


def test_prices_fixture_gives_log_changes(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(PRICES)
    raw = read_prices(path)
    x = as_array(raw)
    assert x.shape == (1, 5, 2) and raw.channel_names == ["open", "high", "low", "close", "volume"]
    np.testing.assert_allclose(x[0, 3], np.log([110 / 105, 100 / 110]))
    np.testing.assert_allclose(x[0, 4], np.log([2, 0.5]))


@pytest.mark.parametrize("edit, message", [
    (("1990-01-03,105,112", "1990-01-03,null,112"), ":3: column 'Open': 'null' is not a finite number"),
    (("2000\n1990-01-04", "0\n1990-01-04"), ":3: column 'Volume': 0 is not positive"),
    (("1990-01-04", "1990-01-01"), ":4: date 1990-01-01 does not follow 1990-01-03"),
    (("Close,", "Closing,"), "missing column(s) 'Close' on line 1"),
])
def test_prices_bad_content_names_file_and_line(tmp_path, edit, message):
    path = tmp_path / "bad.csv"
    path.write_text(PRICES.replace(*edit))
    with pytest.raises(InputError, match="^" + str(path)) as error:
        read_prices(path)
    assert message in str(error.value)


@installed("nolds")
def test_prices_real_file_from_nolds_through_ingest(tmp_path):
    dataset = ingest(["package:nolds/datasets/^NDX.csv"], tmp_path / "raw.nc",
                     IngestSettings(format="prices", min_samples=1))
    assert dataset["signal"].shape == (1, 5, 2861)
    assert np.abs(dataset["signal"].sel(channel="close")).max() < 0.2  # daily index moves, not prices
    assert "nolds/datasets/^NDX.csv" in dataset.attrs["sha256"]


# ------------------------------------------------------------------ simulated spikes

def coupling_correlation(counts, labels, rng):
    """Mean correlation between neurons' counts around their condition means: as simulated, and with each
    neuron's trials shuffled within its condition (no coupling left, same means)."""
    residual = counts.copy()
    for condition in np.unique(labels):
        residual[labels == condition] -= counts[labels == condition].mean(axis=0)
    shuffled = np.stack([residual[rng.permutation(len(residual)), i] for i in range(residual.shape[1])], axis=1)

    def mean_off_diagonal(x):
        correlation = np.corrcoef(x.transpose(1, 0, 2).reshape(x.shape[1], -1))
        return correlation[~np.eye(len(correlation), dtype=bool)].mean()

    return mean_off_diagonal(residual), mean_off_diagonal(shuffled)


def test_spike_simulation_of_the_shipped_settings_is_deterministic_and_labelled():
    first, second = read_spike_simulation(SPIKE_SETTINGS), read_spike_simulation(SPIKE_SETTINGS)
    x = as_array(first)
    assert x.shape == (200, 16, 64) and np.array_equal(x, as_array(second))
    assert (x >= 0).all() and np.array_equal(x, np.round(x)) and 1 < x.mean() < 5  # 10 Hz, coupling gain
    assert sorted(set(first.labels)) == ["A", "B"] and first.labels.count("A") == 100
    assert "simulated" in first.units and first.sampling_rate == 40


def test_spike_seed_changes_the_counts():
    a, _ = simulate_spike_counts(SpikeSimulation(n_trials=20, seed=1))
    b, _ = simulate_spike_counts(SpikeSimulation(n_trials=20, seed=2))
    assert not np.array_equal(a, b)


def test_spike_coupling_correlates_neurons_beyond_shuffled_trials():
    rng = np.random.default_rng(0)
    coupled, shuffled = coupling_correlation(*simulate_spike_counts(SpikeSimulation(seed=3)), rng)
    assert coupled > shuffled + 0.005 and abs(shuffled) < 0.003
    uncoupled, _ = coupling_correlation(*simulate_spike_counts(SpikeSimulation(branching_ratio=0, seed=3)), rng)
    assert abs(uncoupled) < 0.003


@pytest.mark.parametrize("settings, message", [
    ({"n_neurons": 8, "speed": 1}, "unknown simulator setting(s) speed"),
    ({"n_trials": 2.5}, "n_trials: expected a int, got 2.5"),
    ({"branching_ratio": 1.2}, "branching_ratio must be in [0, 1)"),
])
def test_bad_simulator_settings_name_the_file(tmp_path, settings, message):
    path = tmp_path / "sim.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(InputError, match="^" + str(path)) as error:
        read_spike_simulation(path)
    assert message in str(error.value)


def test_spikes_through_ingest_keep_labels_and_units(tmp_path):
    dataset = ingest([SPIKE_SETTINGS], tmp_path / "raw.nc", IngestSettings(format="spikes_sim"))
    assert dataset["signal"].shape == (200, 16, 64)
    assert dataset.attrs["units"] == "spikes per bin (simulated)" and set(dataset["label"].values) == {"A", "B"}
