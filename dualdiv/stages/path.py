"""The path stages on files: the plan, one path step, and the assembled dual space.

- :func:`write_plan`: ``tiles.h5`` → ``path/plan.json`` (nested pixel sets S_1 ⊂ … ⊂ S_K).
- :func:`write_step`: ``tiles.h5`` + ``plan.json`` → ``path/step_{k}.pt`` (the trained
  critic f_k) + ``path/step_{k}.json`` (D_k on held-out images, its standard error,
  iterations, wall time, validation curve). Steps are independent jobs; a killed
  step resumes from ``path/step_{k}.ckpt``.
- :func:`write_dual`: every step → a :class:`~dualdiv.estimators.dualspace.DualSpace`
  (saved as ``dualspace/``), ``dual.h5`` (F(x) = Σ_k f_k(x) for every image of
  ``tiles.h5``, for product-of-marginals reference samples, and per step) and
  ``divergence.json`` (total correlation Σ_k D_k in nats, its standard error, the
  per-step table, the dual window ``lo``/``hi``).

The algorithms live in :mod:`dualdiv.estimators.path` and :mod:`dualdiv.estimators.dualspace`;
these functions only read, check and write files (always atomically).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from dualdiv.core.errors import InputError
from dualdiv.core.io import atomic_output, provenance, sha256_file, write_json
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.dualspace import DualSpace
from dualdiv.estimators.path import check_plan, make_plan, train_step
from dualdiv.estimators.settings import StepSettings, resolve_critic

log = logging.getLogger(__name__)


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
    write_json(out, plan)
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
    settings = resolve_critic(settings)  # tiles are images: "auto" is the conv critic
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
    write_json(out_record, record)
    checkpoint.unlink(missing_ok=True)
    return record


def load_step_states(critic_paths: Sequence[str]) -> list[dict]:
    """The critic states of ``step_1.pt`` … ``step_K.pt`` (in step order)."""
    states = []
    for step, path in enumerate(critic_paths, start=1):
        try:
            states.append(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # truncated/foreign files raise many types
            raise InputError(f"{path}: cannot load step critic ({exc}); rerun path_step {step}") from None
    return states


def write_dual(tiles_path: str | os.PathLike, plan_path: str | os.PathLike, critic_paths: Sequence[str],
               record_paths: Sequence[str], out_dual: str | os.PathLike, out_divergence: str | os.PathLike,
               out_space: str | os.PathLike | None = None, estimate: Mapping | None = None, seed: int = 0,
               device: str = "auto") -> dict:
    """Entry of rule ``dual``: assemble the steps into a :class:`DualSpace`; F of every image and reference.

    critic_paths / record_paths: ``step_{k}`` files in step order 1..K. estimate: the
    config's ``estimate`` section (n_reference, training, ...; stored with the space).
    Writes ``dual.h5`` (F, F_reference, f_steps, f_steps_reference, sample_id, split;
    attributes lo, hi, tc, stderr), ``divergence.json`` (TC, stderr, per-step table, lo/hi)
    and, with ``out_space``, the fitted space folder (:meth:`DualSpace.save`).
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
    estimate = dict(estimate or {})
    estimate.update(n_blocks=plan["n_blocks"], order=plan["order"], substeps=plan["substeps"])
    space = DualSpace.from_config(estimate, seed=seed, device=device)
    space.assemble(tiles.subset("train"), plan, load_step_states(critic_paths), records)
    f_steps = space.step_values(tiles.images)  # (n, K)
    F = f_steps.sum(axis=1)
    summary = {**space.summary(), "provenance": provenance(
        "dual", {"n_reference": space.n_reference, "seed": seed},
        {str(tiles_path): sha256_file(tiles_path), str(plan_path): plan_sha256,
         **{str(p): sha256_file(p) for p in critic_paths}})}
    with atomic_output(out_dual) as tmp, h5py.File(tmp, "w") as handle:
        for name, data in [("F", F), ("F_reference", space.reference_F_), ("f_steps", f_steps),
                           ("f_steps_reference", space.reference_steps_), ("sample_id", tiles.sample_id),
                           ("split", np.array(tiles.split, dtype="S5"))]:
            handle.create_dataset(name, data=data, track_times=False)
        handle.attrs["lo"], handle.attrs["hi"] = space.lo_, space.hi_
        handle.attrs["tc"], handle.attrs["stderr"] = space.tc_, space.tc_stderr_
        handle.attrs["provenance"] = json.dumps(summary["provenance"])
    write_json(out_divergence, summary)
    if out_space is not None:
        space.save(out_space)
    return summary
