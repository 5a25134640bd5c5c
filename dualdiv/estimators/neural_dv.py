"""A held-out neural Donsker–Varadhan estimate of D(A‖B) between two sample sets (nats).

A spectrally normalised MLP critic of fixed size and budget (the evaluation's neural DV
metric): fitted on one pair of sets, scored on another, so neither side is scored on
what the critic saw. Spectral normalisation makes the critic ``lipschitz``-Lipschitz, so
its values cannot run away on a few far samples.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dualdiv.core.errors import InputError
from dualdiv.core.training import LoopSettings, descend, seeded, torch_threads
from dualdiv.core.training import train as train_loop
from dualdiv.estimators.divergence import dv_bound, dv_stderr
from dualdiv.estimators.knn import flatten as _flat


class _DVCritic(nn.Module):
    """(B, d) → (B,): spectrally normalised ELU MLP, 1-Lipschitz times ``lipschitz``."""

    def __init__(self, d: int, hidden: int, lipschitz: float):
        super().__init__()
        self.lipschitz = lipschitz
        self.net = nn.Sequential(spectral_norm(nn.Linear(d, hidden)), nn.ELU(),
                                 spectral_norm(nn.Linear(hidden, hidden)), nn.ELU(),
                                 spectral_norm(nn.Linear(hidden, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lipschitz * self.net(x).squeeze(-1)


def heldout_dv(fit_a, fit_b, score_a, score_b, seed: int = 0, iterations: int = 300, hidden: int = 64,
               lr: float = 1e-2, lipschitz: float = 2.0) -> dict:
    """DV estimate of D(A‖B) in nats from a critic fitted on one pair of sample sets and scored on another.

    fit_a (n, d), fit_b (m, d): samples the critic is trained on (full batch, Adam,
    ``iterations`` steps maximising the DV bound); score_a, score_b (≥ 2 each): held-out
    samples the bound is evaluated on. Returns {"kl", "stderr"} (delta-method stderr
    with the critic held fixed).
    """
    as_tensor = lambda v: torch.as_tensor(_flat(v), dtype=torch.float32)  # noqa: E731
    fa, fb, sa, sb = (as_tensor(v) for v in (fit_a, fit_b, score_a, score_b))
    if min(len(fa), len(fb)) < 1 or min(len(sa), len(sb)) < 2:
        raise InputError("held-out DV needs ≥ 1 fitting and ≥ 2 scoring samples on each side")
    with seeded(seed), torch_threads(1):  # one thread: a tiny MLP only loses to thread overhead
        critic = _DVCritic(fa.shape[1], hidden, lipschitz)
        optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
        both = torch.cat([fa, fb])  # one forward per step: one spectral-norm power iteration, not two

        def batch_step() -> torch.Tensor:
            values = critic(both)
            return descend(optimizer, -dv_bound(values[:len(fa)], values[len(fa):]))

        train_loop(batch_step, LoopSettings(iterations, description="neural DV critic"), model=critic)
        with torch.no_grad():
            va, vb = critic(sa).double().numpy(), critic(sb).double().numpy()
    return {"kl": float(dv_bound(va, vb)), "stderr": float(dv_stderr(va, vb))}
