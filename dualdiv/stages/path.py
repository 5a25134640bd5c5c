"""The path stages on files: the plan, one path step, and the assembled dual space.

- :func:`write_plan`: ``tiles.h5`` → ``path/plan.json`` (nested pixel sets S_1 ⊂ … ⊂ S_K).
- :func:`write_step`: ``tiles.h5`` + ``plan.json`` → ``path/step_{k}.pt`` (the trained
  critic f_k) + ``path/step_{k}.json`` (D_k on held-out images, its standard error,
  iterations, wall time, validation curve) + ``path/step_{k}.values.h5`` (f_k of every
  image and of the reference samples, so the dual stage only sums them). Steps are
  independent jobs; a killed step resumes from ``path/step_{k}.ckpt``.
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

from dualdiv.core.errors import InputError
from dualdiv.core.io import atomic_output, provenance, sha256_file, write_json
from dualdiv.data.tiles import Tiles, load_tiles
from dualdiv.estimators.plan import check_plan, make_plan
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
               device: str = "auto", progress: bool = False, out_values: str | os.PathLike | None = None,
               n_reference: int = 500) -> dict:
    """Entry of rule ``path_step``: train critic f_k on the training split; write critic and record.

    Checkpoints go to ``out_critic`` with suffix ``.ckpt`` (resumed if a job was
    killed; one from other settings or data is ignored) and are removed on success.
    out_values: also write f_k of every image of ``tiles_path`` and of the ``n_reference``
    product-of-marginals samples the dual stage draws (:func:`write_step_values`).
    """
    import torch

    from dualdiv.estimators.path import load_critic, train_step

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
    tiles_sha256 = sha256_file(tiles_path)
    record["plan_sha256"] = sha256_file(plan_path)  # write_dual refuses steps of another plan
    record["provenance"] = provenance("path_step", {"step": step, "seed": seed, "settings": record["key"]},
                                      {str(tiles_path): tiles_sha256})
    if out_values is not None:  # before the critic and record: a job killed here leaves no output behind
        write_step_values(load_critic(state, device), tiles, tiles_sha256, plan, step, out_values, n_reference,
                          seed, device)
    with atomic_output(out_critic) as tmp:
        torch.save(state, tmp)
    write_json(out_record, record)
    checkpoint.unlink(missing_ok=True)
    return record


def write_step_values(critic, tiles: Tiles, tiles_sha256: str, plan: dict, step: int, out: str | os.PathLike,
                      n_reference: int = 500, seed: int = 0, device: str = "auto") -> None:
    """f_k of every image of ``tiles`` (loaded from the file of hash ``tiles_sha256``) and of the dual
    stage's reference samples → ``out`` (HDF5).

    Computed in the step's own job, so the K steps' values are evaluated in parallel and the
    dual stage only sums them. Datasets ``f_tiles`` (n,) and ``f_reference`` (n_reference,),
    float64 nats; attributes step, n_reference, seed, tiles_sha256.
    """
    from dualdiv.estimators.dualspace import reference_samples
    from dualdiv.estimators.path import step_values

    reference = reference_samples(tiles.subset("train"), n_reference, seed)
    f_tiles = step_values(critic, plan, step, tiles.images, device)
    f_reference = step_values(critic, plan, step, reference, device) if n_reference else np.zeros(0)
    with atomic_output(out) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("f_tiles", data=f_tiles, track_times=False)
        handle.create_dataset("f_reference", data=f_reference, track_times=False)
        handle.attrs.update(step=step, n_reference=n_reference, seed=seed, tiles_sha256=tiles_sha256)


def _read_step_values(paths: Sequence[str], tiles_sha256: str, n_reference: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(f_tiles (n, K), f_reference (n_reference, K)) from the steps' values files, checked against the run."""
    columns = []
    for step, path in enumerate(paths, start=1):
        try:
            with h5py.File(path, "r") as handle:
                attrs = dict(handle.attrs)
                columns.append((handle["f_tiles"][...], handle["f_reference"][...]))
        except (OSError, KeyError) as exc:
            raise InputError(f"{path}: cannot read step values ({exc}); rerun path_step {step}") from None
        if (attrs.get("tiles_sha256"), int(attrs.get("n_reference", -1)), int(attrs.get("seed", -1))) != \
                (tiles_sha256, n_reference, seed):
            raise InputError(f"{path}: computed for other tiles, n_reference or seed than this run; "
                             f"rerun path_step {step}")
    return (np.stack([c[0] for c in columns], axis=1).astype(np.float64),
            np.stack([c[1] for c in columns], axis=1).astype(np.float64))


def load_step_states(critic_paths: Sequence[str]) -> list[dict]:
    """The critic states of ``step_1.pt`` … ``step_K.pt`` (in step order)."""
    import torch

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
               device: str = "auto", value_paths: Sequence[str] | None = None) -> dict:
    """Entry of rule ``dual``: assemble the steps into a :class:`DualSpace`; F of every image and reference.

    critic_paths / record_paths: ``step_{k}`` files in step order 1..K. estimate: the
    config's ``estimate`` section (n_reference, training, ...; stored with the space).
    value_paths: the steps' ``step_{k}.values.h5`` (:func:`write_step_values`); None
    evaluates every critic here instead (the same numbers, one job's time).
    Writes ``dual.h5`` (F, F_reference, f_steps, f_steps_reference, sample_id, split;
    attributes lo, hi, tc, stderr), ``divergence.json`` (TC, stderr, per-step table, lo/hi)
    and, with ``out_space``, the fitted space folder (:meth:`DualSpace.save`).
    """
    from dualdiv.estimators.dualspace import DualSpace  # sklearn and torch: only in this stage

    tiles = load_tiles(tiles_path)
    plan = read_plan(plan_path)
    if len(critic_paths) != len(plan["blocks"]):
        raise InputError(f"{plan_path}: plan has {len(plan['blocks'])} steps but {len(critic_paths)} critics given")
    records, plan_sha256, tiles_sha256 = [], sha256_file(plan_path), sha256_file(tiles_path)
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
    if value_paths is None:
        space.assemble(tiles.subset("train"), plan, load_step_states(critic_paths), records)
        f_steps = space.step_values(tiles.images)  # (n, K)
    else:
        if len(value_paths) != len(critic_paths):
            raise InputError(f"{plan_path}: {len(critic_paths)} critics but {len(value_paths)} step values given")
        f_steps, reference_steps = _read_step_values(value_paths, tiles_sha256, space.n_reference, seed)
        space.assemble(tiles.subset("train"), plan, load_step_states(critic_paths), records,
                       fit_steps=f_steps[tiles.split == "train"], reference_steps=reference_steps)
    F = f_steps.sum(axis=1)
    summary = {**space.summary(), "provenance": provenance(
        "dual", {"n_reference": space.n_reference, "seed": seed},
        {str(tiles_path): tiles_sha256, str(plan_path): plan_sha256,
         **{str(p): sha256_file(p) for p in [*critic_paths, *(value_paths or [])]}})}
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
