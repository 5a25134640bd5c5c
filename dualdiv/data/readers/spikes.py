"""Reader of spike-simulator settings (format ``spikes_sim``, named explicitly).

A JSON file of :class:`~dualdiv.data.simulate_spikes.SpikeSimulation` settings →
spike-count images of coupled neurons (a discrete-time linear Hawkes process),
deterministic from the file's seed. Simulated data, labelled so in the units.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from dualdiv.core.errors import InputError
from dualdiv.data.readers.common import RawSeries, _raw_series
from dualdiv.data.simulate_spikes import SpikeSimulation, simulate_spike_counts


def read(path: Path) -> RawSeries:
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


read_spike_simulation = read  # its name before the readers had a module each
