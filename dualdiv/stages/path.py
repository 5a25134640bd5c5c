"""Stages 3–4 on files: the path plan, one path step, and the dual coordinate F.

- :func:`write_plan`: ``tiles.h5`` → ``path/plan.json`` (nested pixel sets S_1 ⊂ … ⊂ S_K).
- :func:`write_step`: ``tiles.h5`` + ``plan.json`` → ``path/step_{k}.pt`` (the trained
  critic f_k) + ``path/step_{k}.json`` (D_k on held-out images, its standard error,
  iterations, wall time, validation curve). Steps are independent jobs; a killed
  step resumes from ``path/step_{k}.ckpt``.
- :func:`write_dual`: every step → ``dual.h5`` (F(x) = Σ_k f_k(x) for every image of
  ``tiles.h5``, for product-of-marginals reference samples, and per step) and
  ``divergence.json`` (total correlation Σ_k D_k in nats, its standard error, the
  per-step table, the dual-space end points ``lo``/``hi`` of DESIGN §5.3).

The array-level algorithms live in :mod:`dualdiv.estimators.path` and :mod:`dualdiv.estimators.divergence`;
these functions only read, check and write files (always atomically).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from dualdiv.core.errors import InputError
from dualdiv.core.io import atomic_output, provenance, sha256_file
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.divergence import sample_marginals
from dualdiv.estimators.path import (
    StepSettings,
    check_plan,
    combine_steps,
    load_critic,
    make_plan,
    pixel_rank,
    step_values,
    substep_bounds,
    summed_substep_values,
    train_step,
)

log = logging.getLogger(__name__)

# Quantile of F on reference (product-of-marginals) samples used as the lower end point.
LO_QUANTILE = 0.99


def _write_json(path: str | os.PathLike, content: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(content, indent=1, sort_keys=True, allow_nan=False) + "\n")


def read_plan(path: str | os.PathLike) -> dict:
    """``plan.json`` as a dict; unreadable JSON or a malformed plan is an InputError naming the file."""
    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read path plan ({exc}); rerun path_plan") from None
    try:
        check_plan(plan, 1)
    except InputError as exc:
        raise InputError(f"{path}: {exc}; rerun path_plan") from None
    return plan


def write_plan(tiles_path: str | os.PathLike, out: str | os.PathLike, n_blocks: int, order: str = "time",
               substeps: str = "pixel", seed: int = 0) -> dict:
    """Entry of rule ``path_plan``: the plan for the images of ``tiles_path``, written to ``out``."""
    tiles = load_tiles(tiles_path)
    plan = make_plan(tiles.images.shape[1:], n_blocks, order, seed, substeps)
    plan["provenance"] = provenance("path_plan", {"n_blocks": n_blocks, "order": order, "substeps": substeps,
                                                  "seed": seed}, {str(tiles_path): sha256_file(tiles_path)})
    _write_json(out, plan)
    return plan


def write_step(tiles_path: str | os.PathLike, plan_path: str | os.PathLike, step: int, out_critic: str | os.PathLike,
               out_record: str | os.PathLike, settings: StepSettings = StepSettings(), seed: int = 0,
               device: str = "auto", progress: bool = False) -> dict:
    """Entry of rule ``path_step``: train critic f_k on the training split; write critic and record.

    Checkpoints go to ``out_critic`` with suffix ``.ckpt`` (resumed if a job was
    killed; one from other settings or data is ignored) and are removed on success.
    """
    tiles = load_tiles(tiles_path)
    plan = read_plan(plan_path)
    checkpoint = Path(out_critic).with_suffix(".ckpt")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    state, record = train_step(tiles.subset("train"), plan, step, settings, seed, checkpoint=checkpoint,
                               device=device, progress=progress)
    if record["fallback"] is not None:
        log.warning("%s: path step %d falls back to f_k = 0: %s (trained bound %s nats)", out_critic, step,
                    record["fallback"]["reason"], record["fallback"]["trained_D"])
    record["plan_sha256"] = sha256_file(plan_path)  # write_dual refuses steps of another plan
    record["provenance"] = provenance("path_step", {"step": step, "seed": seed, "settings": record["key"]},
                                      {str(tiles_path): sha256_file(tiles_path)})
    with atomic_output(out_critic) as tmp:
        torch.save(state, tmp)
    _write_json(out_record, record)
    checkpoint.unlink(missing_ok=True)
    return record


class DualFunction(torch.nn.Module):
    """F(x) = Σ_k Σ_{j ∈ B_k} f_k(x; sub-step j) and its gradient (for the walks of §5.5).

    plan: the path plan; states: the step critics' states in step order 1..K.
    forward: x (B, H, W) → (B,) in x's dtype. value_and_grad: (F(x), ∇F(x)) without keeping
    the whole graph. Cost: one critic pass per pixel sub-step, on a window around the pixel
    for the conv critic (:meth:`dualdiv.estimators.critics.ConvCritic.substep_values`).
    """

    def __init__(self, plan: dict, states: Sequence[dict], device: str = "auto"):
        super().__init__()
        self.shape = tuple(plan["shape"])
        self.critics = torch.nn.ModuleList(load_critic(state, device) for state in states)
        for critic in self.critics:
            critic.requires_grad_(False)
        self.register_buffer("rank", pixel_rank(plan).to(self.device))
        self.bounds = [substep_bounds(plan, k) for k in range(1, len(states) + 1)]

    @property
    def device(self) -> torch.device:
        return next(self.critics[0].parameters()).device

    def _summed(self, x: torch.Tensor, gradient: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        flat = x.reshape(len(x), -1).to(self.device)  # (B, P)
        value, grad = torch.zeros(len(x), dtype=torch.float64, device=self.device), None
        for critic, bounds in zip(self.critics, self.bounds, strict=True):
            step_value, step_grad = summed_substep_values(critic, flat, self.rank, bounds, self.shape, gradient)
            value = value + step_value
            grad = step_grad if grad is None else grad + step_grad
        return value.to(x.dtype), None if grad is None else grad.reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._summed(x, gradient=False)[0]

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(F(x) (B,), ∇F(x) (B, H, W)) for images x (B, H, W)."""
        return self._summed(x, gradient=True)


def load_step_states(critic_paths: Sequence[str]) -> list[dict]:
    """The critic states of ``step_1.pt`` … ``step_K.pt`` (in step order)."""
    states = []
    for step, path in enumerate(critic_paths, start=1):
        try:
            states.append(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # truncated/foreign files raise many types
            raise InputError(f"{path}: cannot load step critic ({exc}); rerun path_step {step}") from None
    return states


def load_dual_function(plan_path: str | os.PathLike, critic_paths: Sequence[str], device: str = "auto"
                       ) -> DualFunction:
    """The differentiable F of a finished path (plan.json and step_{k}.pt files)."""
    return DualFunction(read_plan(plan_path), load_step_states(critic_paths), device)


def write_dual(tiles_path: str | os.PathLike, plan_path: str | os.PathLike, critic_paths: Sequence[str],
               record_paths: Sequence[str], out_dual: str | os.PathLike, out_divergence: str | os.PathLike,
               n_reference: int = 1000, seed: int = 0, device: str = "auto") -> dict:
    """Entry of rule ``dual``: F for every image and reference sample; the total divergence.

    critic_paths / record_paths: ``step_{k}`` files in step order 1..K.
    """
    tiles = load_tiles(tiles_path)
    plan = read_plan(plan_path)
    if len(critic_paths) != len(plan["blocks"]):
        raise InputError(f"{plan_path}: plan has {len(plan['blocks'])} steps but {len(critic_paths)} critics given")
    records, plan_sha256 = [], sha256_file(plan_path)
    for step, path in enumerate(record_paths, start=1):
        try:
            records.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: cannot read step record ({exc}); rerun that path step") from None
        if records[-1].get("plan_sha256", plan_sha256) != plan_sha256:
            raise InputError(f"{path}: trained on another plan.json than {plan_path}; rerun path_step {step}")
    train = tiles.subset("train")
    reference = sample_marginals(train, n_reference, torch.Generator().manual_seed(seed))
    f_steps, f_reference = [], []
    for step, state in enumerate(load_step_states(critic_paths), start=1):
        f_steps.append(step_values(state, plan, step, tiles.images, device))
        f_reference.append(step_values(state, plan, step, reference, device))
    f_steps = np.stack(f_steps, axis=1)  # (n, K)
    f_reference = np.stack(f_reference, axis=1)  # (n_reference, K)
    F, F_reference = f_steps.sum(axis=1), f_reference.sum(axis=1)
    lo = float(np.quantile(F_reference, LO_QUANTILE))
    hi = float(F[tiles.split == "train"].max())
    total = combine_steps(records)
    summary = {
        "tc": total["tc"], "stderr": total["stderr"], "units": "nats", "n_steps": len(records),
        "lo": lo, "hi": hi, "lo_quantile": LO_QUANTILE,
        "steps": [{key: r[key] for key in ("step", "D", "stderr", "n_substeps", "iterations", "best_iteration",
                                            "stopped", "wall_time_s")} for r in records],
        "provenance": provenance("dual", {"n_reference": n_reference, "seed": seed},
                                 {str(tiles_path): sha256_file(tiles_path), str(plan_path): plan_sha256,
                                  **{str(p): sha256_file(p) for p in critic_paths}}),
    }
    with atomic_output(out_dual) as tmp, h5py.File(tmp, "w") as handle:
        for name, data in [("F", F), ("F_reference", F_reference), ("f_steps", f_steps),
                           ("f_steps_reference", f_reference), ("sample_id", tiles.sample_id),
                           ("split", np.array(tiles.split, dtype="S5"))]:
            handle.create_dataset(name, data=data, track_times=False)
        handle.attrs["lo"], handle.attrs["hi"] = lo, hi
        handle.attrs["tc"], handle.attrs["stderr"] = total["tc"], total["stderr"]
        handle.attrs["provenance"] = json.dumps(summary["provenance"])
    _write_json(out_divergence, summary)
    return summary
