"""The coupled-neuron spike simulator behind the ``spikes_sim`` format (no file IO).

Trials of spike counts from a discrete-time linear Hawkes process: a stimulus
drives half of the neurons in each of two conditions, and spikes excite other
neurons through a sparse coupling matrix. :mod:`dualdiv.data.readers.spikes` reads
the settings from a JSON file and calls :func:`simulate_spike_counts`.
"""

from __future__ import annotations  # keeps the field types strings ("int"), which the spikes reader checks

from dataclasses import dataclass

import numpy as np


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
