"""Total correlation along a dependency-diffusion path of DV critics.

Order the pixels of an (H, W) image, cut the order into K contiguous blocks B_k and
let S_k = B_1 ∪ … ∪ B_k. Q_k is the data with every pixel of S_k permuted
independently across samples (Q_0 = P, Q_K = Q, the product of marginals). Then

    TC(X) = D(P‖Q) = Σ_k D(Q_{k−1}‖Q_k),   D(Q_{k−1}‖Q_k) = I(X_{R_k}; X_{B_k}) + TC(X_{B_k})

exactly (R_k = pixels outside S_k). Each step telescopes once more over the single
pixels b_1, b_2, … of its block (``substeps="pixel"``, the default): sub-step j
compares the data with S_{k−1} ∪ {b_1..b_{j−1}} permuted (P-side) against the same
with b_j permuted too (Q-side); its divergence is I(X_{b_j}; X_rest), where "rest" is
every pixel not yet permuted. Permuted pixels are independent noise for that
comparison, so they are masked out of the critic's input. One critic per step,
conditioned on the sub-step through its input masks (:mod:`dualdiv.estimators.critics`),
is trained on the summed DV bounds of a few random sub-steps per iteration, and
the step's estimate is the sum over all its sub-steps of the held-out DV bound.
``substeps="block"`` instead tests the whole block at once (one DV per step; K = 1 is
then the plain single-critic DV between P and Q).

The optimal sub-step critics add up to the global log ratio, so the dual coordinate

    F(x) = Σ_k f_k(x) = log p(x)/q(x) + const,   f_k(x) = Σ_{j ∈ B_k} f_{k,j}(x)

is available from the trained steps (:func:`step_values`). Steps are independent:
each can run as its own process from (images, plan, step, settings, seed).
All divergences are in nats.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.training import (
    Checkpoint,
    LoopSettings,
    anneal,
    descend,
    resolve_device,
    seeded,
    torch_threads,
    train,
)
from dualdiv.estimators.critics import (
    GAUSSIAN_TERM_IMAGES_PER_PIXEL,
    ConstantCritic,
    CriticSettings,
    FoldEnsemble,
    build_critic,
    substep_input,
)
from dualdiv.estimators.divergence import dv_bound, dv_ess, dv_influence, permutation_indices, swap_pixels
from dualdiv.estimators.plan import ORDERS, SUBSTEPS, check_plan, make_plan  # noqa: F401 (re-exported)
from dualdiv.estimators.settings import StepSettings

_STREAMS = {"split": 0, "init": 1, "batches": 2, "validation": 3, "final": 4, "eval_pick": 5}
log = logging.getLogger(__name__)
_MAX_ELEMENTS = 2**20  # rows × pixels per critic forward pass when scoring (caps memory near 100 MB)


def substep_bounds(plan: dict, step: int) -> torch.Tensor:
    """(L, 2) int64: [start, stop) positions in the plan's order of the pixels each sub-step of ``step`` tests."""
    check_plan(plan, step)
    start, stop = plan["blocks"][step - 1]
    if plan["substeps"] == "block":
        return torch.tensor([[start, stop]])
    first = torch.arange(start, stop)
    return torch.stack([first, first + 1], dim=1)


def pixel_rank(plan: dict) -> torch.Tensor:
    """(P,) int64: position of every pixel in the plan's order."""
    rank = torch.empty(len(plan["pixel_order"]), dtype=torch.int64)
    rank[torch.as_tensor(plan["pixel_order"])] = torch.arange(len(rank))
    return rank


# ---------------------------------------------------------------------------- critic values


def _critic_values(model: nn.Module, x: torch.Tensor, rank: torch.Tensor, bound: torch.Tensor,
                   shape, rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
    """Critic on flat images x (m, P) for one sub-step (bound (2,)); (m,) float64, no grad.

    rows (m',), center (m',): score rows ``x[rows]`` with the tested (single) pixel set to ``center``
    instead (the resampled Q rows, without building them whole); (m',) values."""
    # rows a call: ~_MAX_ELEMENTS inputs (whole images, or the conv critic's windows when smaller)
    chunk = max(1, _MAX_ELEMENTS // min(x.shape[1], model.row_elements(shape)))
    with torch.no_grad():
        if rows is None:
            values = [model.substep_values(part, rank, bound.expand(len(part), 2), shape) for part in x.split(chunk)]
        else:
            values = [model.substep_values(x, rank, bound.expand(len(part), 2), shape, rows=part, center=value)
                      for part, value in zip(rows.split(chunk), center.split(chunk), strict=True)]
    return torch.cat(values).double()


def summed_substep_values(model: nn.Module, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                          gradient: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Σ over the sub-steps ``bounds`` (L, 2) of the critic on each flat image x (n, P).

    Returns (values (n,) float64, ∂values/∂x (n, P) or None). With ``gradient`` each batch
    of sub-steps is differentiated as soon as it is evaluated, so memory holds one batch's
    graph, not all L sub-steps'. A batch holds about _MAX_ELEMENTS critic input values: several
    sub-steps of all images when they are few, else one sub-step of a batch of
    ⌊_MAX_ELEMENTS / row_elements⌋ images at a time, so memory does not grow with n (the same
    sums within the float32 rounding of the critic, whose arithmetic may differ with the pass size).
    """
    batch = max(1, _MAX_ELEMENTS // model.row_elements(shape))  # images per pass at one sub-step a pass
    if len(x) > batch:  # F of many images: batches of images, so memory stays ~_MAX_ELEMENTS inputs
        parts = [summed_substep_values(model, part, rank, bounds, shape, gradient) for part in x.split(batch)]
        return (torch.cat([values for values, _ in parts]),
                torch.cat([grad for _, grad in parts]) if gradient else None)
    per_pass = max(1, _MAX_ELEMENTS // (model.row_elements(shape) * len(x)))  # sub-steps per batch
    image = torch.arange(len(x), device=x.device)
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    total_gradient = torch.zeros_like(x) if gradient else None
    for part in bounds.to(x.device).split(per_pass):
        with torch.set_grad_enabled(gradient):
            leaf = x.detach().requires_grad_(True) if gradient else x
            values = model.substep_values(leaf, rank, part.repeat_interleave(len(x), 0), shape,
                                          rows=image.repeat(len(part)))
            values = values.double().reshape(len(part), len(x)).sum(dim=0)
            if gradient and values.requires_grad:  # a constant critic has no gradient
                total_gradient += torch.autograd.grad(values.sum(), leaf)[0]
        total = total + values.detach()
    return total, total_gradient


def _score_substeps(model: nn.Module, x: torch.Tensor, shape, rank: torch.Tensor, bounds: torch.Tensor,
                    n_resamplings: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Held-out DV bound of each sub-step, the per-image influence of their sum, the worst ESS.

    x: (n, P) held-out images; each sub-step's P-side is x masked, its Q-side
    n_resamplings copies of x with the tested pixels replaced through independent
    permutations across x. Returns (dv (L,) nats, influence (n,), min_ess): influence[i]
    is image i's first-order contribution to Σ dv (delta method, its Q rows folded in),
    so sd(influence)/√n is the standard error of the sum with images as the unit (in a
    d = 8 Gaussian check with the exact critic it read ~15 % below the spread over 40
    data sets); min_ess is the smallest Q-weight ESS fraction over the sub-steps.
    """
    n, n_pixels = x.shape
    donors = permutation_indices(n, n * n_resamplings, n_pixels, generator).to(x.device)
    base_rows = torch.arange(n, device=x.device).repeat(n_resamplings)
    bounds = bounds.to(rank.device)
    single = bool((bounds[:, 1] - bounds[:, 0] == 1).all())
    # single-pixel sub-steps: a Q row differs from its data row in the tested pixel only, so it is
    # scored from the data row and that pixel's donor value (no (n·R, P) copy per sub-step, no (L, P) masks)
    blk = None if single else substep_input(rank, bounds)[1]
    order = torch.empty_like(rank)
    order[rank] = torch.arange(len(rank), device=rank.device)
    was_training = model.training
    model.eval()
    dv, ess, influence = [], [], torch.zeros(n, dtype=torch.float64, device=x.device)
    for j, bound in enumerate(bounds):
        f_p = _critic_values(model, x, rank, bound, shape)
        if single:
            pixel = order[bound[0]].to(x.device)
            f_q = _critic_values(model, x, rank, bound, shape, rows=base_rows, center=x[donors[:, pixel], pixel])
        else:
            f_q = _critic_values(model, swap_pixels(x, base_rows, donors, blk[j]), rank, bound, shape)
        dv.append(dv_bound(f_p, f_q))
        ess.append(dv_ess(f_q))
        infl_p, infl_q = dv_influence(f_p, f_q)
        influence += infl_p + infl_q.reshape(n_resamplings, n).mean(dim=0)
    model.train(was_training)
    return torch.stack(dv).cpu(), influence.cpu(), min(ess)


def _batch_loss(model: nn.Module, x: torch.Tensor, shape, rank: torch.Tensor, bounds: torch.Tensor,
                settings: StepSettings, generator: torch.Generator) -> torch.Tensor:
    """Minus the summed DV bounds of ``substeps_per_batch`` random sub-steps on training rows x (n, P)."""
    n_sub, n_rows, n_q = settings.substeps_per_batch, settings.rows_per_substep, settings.q_per_p
    n, n_pixels = x.shape
    pick = torch.randint(len(bounds), (n_sub,), generator=generator)
    single = bool((bounds[:, 1] - bounds[:, 0] == 1).all())
    if single and getattr(model, "pairs", False):
        return _pairs_loss(model, x, shape, rank, bounds[pick, 0], settings, generator)
    base = torch.randint(n, (n_sub, n_rows), generator=generator)
    # rows: the data rows of all sub-steps, then n_q more copies of them to be resampled
    rows = base.reshape(-1).repeat(1 + n_q)
    substep_of_row = torch.arange(n_sub).repeat_interleave(n_rows).repeat(1 + n_q)
    is_q = torch.arange(len(rows)) >= n_sub * n_rows
    row_bounds = bounds[pick][substep_of_row].to(rank.device)  # (rows, 2)
    if single:
        # single-pixel sub-steps swap one pixel per Q row: draw that pixel's donor only (the same
        # law as a donor per pixel, at 1/P of the random numbers and no (rows, P) gather)
        donors = torch.randint(n, (int(is_q.sum()),), generator=generator).to(x.device)
        order = torch.empty_like(rank)
        order[rank] = torch.arange(len(rank), device=rank.device)
        pixel = order[row_bounds[:, 0]].to(x.device)
        rows = rows.to(x.device)
        # each row's tested pixel (its donor's value on the Q rows): the critic cuts its window from x,
        # so an iteration costs O(rows · window), not O(rows · P)
        center = x[rows, pixel]
        center[is_q.to(x.device)] = x[donors, pixel[is_q.to(x.device)]]
        f = model.substep_values(x, rank, row_bounds, shape, rows=rows, center=center)
    else:
        donors = torch.randint(n, (len(rows), n_pixels), generator=generator)
        blk = substep_input(rank, row_bounds)[1]
        x_rows = swap_pixels(x, rows.to(x.device), donors.to(x.device), blk & is_q[:, None].to(x.device))
        f = model.substep_values(x_rows, rank, row_bounds, shape)  # (n_sub · n_rows · (1 + n_q),)
    f_p = f[~is_q].reshape(n_sub, n_rows)
    f_q = f[is_q].reshape(n_q, n_sub, n_rows).transpose(0, 1).reshape(n_sub, n_rows * n_q)
    if settings.loss == "logistic":
        # balanced logistic loss: minimised by f = log p/q exactly, with gradients free of the
        # DV bound's exponential weights (far less noisy on small batches)
        return (functional.softplus(-f_p).mean(dim=1) + functional.softplus(f_q).mean(dim=1)).sum()
    return -dv_bound(f_p, f_q).sum()


def _pairs_loss(model: nn.Module, x: torch.Tensor, shape, rank: torch.Tensor, positions: torch.Tensor,
                settings: StepSettings, generator: torch.Generator) -> torch.Tensor:
    """The batch loss of a critic g(x_b) · h(rest) (``model.pairs``) at single-pixel sub-steps ``positions``
    (n_sub,): m = rows_per_substep distinct training images per sub-step, each context paired with
    its own tested value (P) and with the other m − 1 images' (Q: the tested pixel from an independent
    image, the sub-step's reference law) — m context passes for m(m − 1) Q samples."""
    n_sub, m = len(positions), min(settings.rows_per_substep, len(x))
    rows = torch.rand(n_sub, len(x), generator=generator).argsort(dim=1)[:, :m]  # without replacement
    context, value = model.pair_features(x, rank, positions.repeat_interleave(m).to(rank.device), shape,
                                         rows=rows.reshape(-1).to(x.device), training_images=True)
    scores = torch.einsum("sie,sje->sij", context.reshape(n_sub, m, -1), value.reshape(n_sub, m, -1))
    own = torch.eye(m, dtype=torch.bool, device=x.device)
    f_p, f_q = scores[:, own], scores[:, ~own]  # (n_sub, m), (n_sub, m(m − 1))
    if settings.loss == "logistic":
        return (functional.softplus(-f_p).mean(dim=1) + functional.softplus(f_q).mean(dim=1)).sum()
    return -dv_bound(f_p, f_q).sum()


# ---------------------------------------------------------------------------- one step


def _stream_seed(seed: int, step: int, stream: str, fold: int | None = None) -> int:
    """Independent seeds per (seed, step, purpose[, fold]), so steps and folds can run in any order or place."""
    entropy = [seed, step, _STREAMS[stream]] + ([] if fold is None else [fold])
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def _split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) image indices; the same for every step of a run (seeded by seed only)."""
    n_val = max(2, round(n * val_fraction))
    if n - n_val < 2:
        raise InputError(f"need at least 4 images for a train/validation split, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_stream_seed(seed, 0, "split")))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _fold_splits(n: int, settings: StepSettings, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(train, validation)] image indices: one split (``folds`` = 1, :func:`_split`) or ``folds``
    cross-fitting splits whose validation parts partition the images (each held out once)."""
    if settings.folds == 1:
        return [_split(n, settings.val_fraction, seed)]
    if n < 2 * settings.folds:
        raise InputError(f"need at least {2 * settings.folds} images for {settings.folds} cross-fitting folds, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_stream_seed(seed, 0, "split")))
    splits = []
    for part in torch.tensor_split(perm, settings.folds):
        held_out = torch.zeros(n, dtype=torch.bool)
        held_out[part] = True
        splits.append(((~held_out).nonzero()[:, 0], part.sort().values))
    return splits


def _plan_images(images, plan: dict, step: int) -> np.ndarray:
    """(n ≥ 1, H, W) finite float32 with the plan's (H, W), C-contiguous (torch takes no negative strides)."""
    return np.ascontiguousarray(check_images(images, f"path step {step}", min_images=1, shape=plan["shape"]))


def run_key(settings: StepSettings, plan: dict, step: int, seed: int, images: np.ndarray) -> str:
    """sha256 naming everything a step's result depends on (guards checkpoint reuse)."""
    content = {"settings": asdict(settings), "plan": plan, "step": step, "seed": seed,
               "data": hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _held_out_score(model, x_val, val_rows, shape, rank, bounds, settings: StepSettings, seed: int,
                    step: int, fold: int | None = None) -> dict:
    """The step's final score: Σ of the sub-steps' DV bounds on fresh resamplings of the validation split."""
    final_gen = torch.Generator().manual_seed(_stream_seed(seed, step, "final", fold))
    substep_dv, influence, min_ess = _score_substeps(model, x_val, shape, rank, bounds, settings.final_resamplings,
                                                     final_gen)
    return {"D": float(substep_dv.sum()), "stderr": float(influence.std() / math.sqrt(len(influence))),
            "substep_D": substep_dv.tolist(), "n_substeps": len(bounds), "min_ess": min_ess,
            "n_reference": len(val_rows) * settings.final_resamplings, "influence": influence.tolist(),
            "split": hashlib.sha256(val_rows.numpy().tobytes()).hexdigest()[:16], "n_val": len(val_rows)}


def _cross_fitted(scores: list[dict], splits, n: int) -> dict:
    """One score of the folds' held-out scores: every image scored once, by the critic that did not see it.

    D = Σ_i (n_i / n) D_i; the influence of image j is its fold's influence plus D_i − D (so the
    spread between folds counts in the standard error); images in index order."""
    if len(scores) == 1:
        return scores[0]
    weights = [len(val) / n for _, val in splits]
    total = float(sum(w * s["D"] for w, s in zip(weights, scores, strict=True)))
    influence = np.zeros(n)
    for (_, val), score in zip(splits, scores, strict=True):
        influence[val.numpy()] = np.asarray(score["influence"]) + score["D"] - total
    substep = np.sum([w * np.asarray(s["substep_D"]) for w, s in zip(weights, scores, strict=True)], axis=0)
    assignment = np.zeros(n, dtype=np.int64)
    for i, (_, val) in enumerate(splits):
        assignment[val.numpy()] = i
    return {"D": total, "stderr": float(influence.std(ddof=1) / math.sqrt(n)), "substep_D": substep.tolist(),
            "n_substeps": scores[0]["n_substeps"], "min_ess": min(s["min_ess"] for s in scores),
            "n_reference": sum(s["n_reference"] for s in scores), "influence": influence.tolist(),
            "split": hashlib.sha256(assignment.tobytes()).hexdigest()[:16], "n_val": n}


def _finite_or_none(value: float) -> float | None:
    """A number for a JSON record: NaN and ±inf (a diverged critic) become None (null)."""
    return float(value) if math.isfinite(value) else None


def _fold_workers(jobs: int | None, n_folds: int, settings: StepSettings, device: torch.device) -> int:
    """Threads to cross-fit on: ``jobs`` (None: 1; −1: every core this process may use), at most one a fold.

    One thread where threads would change the result or gain nothing: dropout (it draws on the
    global torch RNG, which threads share) and non-CPU devices (one GPU runs one fold at a time well).
    """
    if jobs is not None and jobs != -1 and jobs < 1:
        raise ConfigError(f"jobs: must be ≥ 1 or −1 (every core), got {jobs}")
    if jobs is None or n_folds == 1 or settings.critic.dropout > 0 or device.type != "cpu":
        return 1
    if jobs == -1:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(jobs, n_folds)


def _gaussian_gate(settings: StepSettings, n_pixels: int, n_train: int) -> StepSettings:
    """``settings`` without the bilinear critic's Gaussian term (and its inputs) when the folds train on fewer
    than GAUSSIAN_TERM_IMAGES_PER_PIXEL images a pixel, too few to fit a full covariance that helps."""
    if not settings.critic.gaussian_term or n_train >= GAUSSIAN_TERM_IMAGES_PER_PIXEL * n_pixels:
        return settings
    log.info("critic.gaussian_term: %d training images for %d pixels (fewer than %d a pixel): trained without "
             "the Gaussian term", n_train, n_pixels, GAUSSIAN_TERM_IMAGES_PER_PIXEL)
    return replace(settings, critic=replace(settings.critic, gaussian_term=False, gaussian_inputs=False))


def train_step(images, plan: dict, step: int, settings: StepSettings | None = None, seed: int = 0,
               checkpoint: str | os.PathLike | None = None, device: str = "auto", progress: bool = False,
               callback=None, jobs: int | None = None) -> tuple[dict, dict]:
    """Train and score the critic of path step ``step`` (1-based); see the module docstring.

    images: (n, H, W) float32, the training images (normalised). plan: from :func:`make_plan`.
    settings.folds: 1 trains one critic on a (1 − val_fraction) split and scores it on the rest;
        k ≥ 2 cross-fits: k critics, each trained on k − 1 folds and scored on the fold it did not
        see, so every image is scored once (k times the training cost; the noise of the held-out
        mean falls as 1/√n instead of 1/√(val_fraction · n)). The step's critic is then their mean.
    checkpoint: file to resume from and to write every ``checkpoint_every`` iterations
        (atomically; fold i > 0 of a cross-fit uses ``<checkpoint>.fold<i>``); one written for other
        settings/plan/step/seed/data is ignored. Resuming gives a bit-identical result on CPU.
    device: "auto" (CUDA when available), "cpu", "cuda", ...
    callback: called as callback(iteration) after every iteration (and its checkpoint); with
        ``jobs`` > 1 from the folds' threads.
    jobs: cross-fit the folds on this many threads (None: 1; −1: every usable core); each fold
        trains on one torch thread either way, so the result does not depend on it. Threads are used
        only on the CPU with a critic without dropout (:func:`_fold_workers`).
    Returns (state, record). state: {"model": state_dict at the best validation,
    "critic": critic settings, "shape", "key", "constant", "folds" (per fold: constant or not)}
    for :func:`step_values`. record (JSON): D (nats, Σ of the held-out sub-step bounds), stderr
    (delta method over held-out images), substep_D, n_substeps, min_ess (smallest Kish ESS
    fraction of the reference weights over the sub-steps; ≪ 0.1 flags an unreliable bound),
    n_reference (reference samples per sub-step), iterations (all folds), best_iteration,
    stopped ("patience" | "budget"), wall_time_s, curve {"iteration", "validation"} (the first
    fold's), influence (per held-out image, for :func:`combine_steps`), split (hash of the
    held-out assignment), n_train, n_val, seed, device, key, resumed_from, folds (per fold: D,
    stderr, n_val, iterations, best_iteration, stopped, fallback), gaussian_term (whether the bilinear
    critic had its fitted Gaussian term: :func:`_gaussian_gate` drops it below
    ``GAUSSIAN_TERM_IMAGES_PER_PIXEL`` training images a pixel).
    """
    started = time.perf_counter()
    settings = settings or StepSettings()
    check_plan(plan, step)
    if settings.critic.kind == "bilinear" and plan["substeps"] != "pixel":
        raise ConfigError(f"path step {step}: critic kind 'bilinear' tests one pixel per sub-step; "
                          f"the plan's substeps are {plan['substeps']!r} (use substeps 'pixel')")
    images = _plan_images(images, plan, step)
    shape, bounds = tuple(plan["shape"]), substep_bounds(plan, step)
    device = resolve_device(device)
    splits = _fold_splits(len(images), settings, seed)
    settings = _gaussian_gate(settings, images.shape[1] * images.shape[2], min(len(train) for train, _ in splits))
    x = torch.as_tensor(images.reshape(len(images), -1)).to(device)
    rank = pixel_rank(plan).to(device)
    key = run_key(settings, plan, step, seed, images)
    eval_bounds = bounds
    if settings.eval_substeps is not None and settings.eval_substeps < len(bounds):
        pick_gen = torch.Generator().manual_seed(_stream_seed(seed, step, "eval_pick"))
        eval_bounds = bounds[torch.randperm(len(bounds), generator=pick_gen)[: settings.eval_substeps]]
    eval_scale = len(bounds) / len(eval_bounds)
    cross_fit = len(splits) > 1

    def fit_fold(i, model, optimizer, batches):
        """Train fold i's critic (built and seeded by the caller) and score it on the images it did not see."""
        train_rows, val_rows = splits[i]
        fold = i if cross_fit else None
        x_train, x_val = x[train_rows.to(device)], x[val_rows.to(device)]

        def batch_step():
            anneal(optimizer, settings.learning_rate, settings.final_lr_fraction, settings.max_iterations)
            return descend(optimizer, _batch_loss(model, x_train, shape, rank, bounds, settings, batches))

        def validate():
            # the same validation resampling every time, so evaluations compare critics only
            val_gen = torch.Generator().manual_seed(_stream_seed(seed, step, "validation", fold))
            dv = _score_substeps(model, x_val, shape, rank, eval_bounds, settings.eval_resamplings, val_gen)[0]
            return float(dv.sum()) * eval_scale

        label = f"path step {step}" + (f" fold {i + 1}/{len(splits)}" if cross_fit else "")
        loop = LoopSettings(max_iterations=settings.max_iterations, eval_every=settings.eval_every,
                            patience=settings.patience, progress=progress, description=label)
        fold_checkpoint = checkpoint if checkpoint is None or not i else f"{checkpoint}.fold{i}"
        saving = None if checkpoint is None else Checkpoint(fold_checkpoint, f"{key}:{i}" if i else key,
                                                            settings.checkpoint_every)
        trained = train(batch_step, loop, model=model, validate=validate, optimizer=optimizer,
                        generator=batches, checkpoint=saving, callback=callback)
        score = _held_out_score(model, x_val, val_rows, shape, rank, bounds, settings, seed, step, fold)
        fallback = None
        if not score["D"] > 0:  # NaN, or worse on held-out data than a constant critic (whose bound is 0)
            if settings.on_failed_critic == "error":
                raise InputError(f"{label}: the trained critic's held-out bound {score['D']:.4g} nats is not "
                                 "above 0 (diverged or worse than a constant critic); more data, another budget "
                                 "or on_failed_critic: constant")
            fallback = {"reason": "held-out bound of the trained critic not above 0, the bound of a constant "
                                  "critic: the step falls back to f_k = 0",
                        "trained_D": _finite_or_none(score["D"])}
            model = ConstantCritic().to(device)
            score = _held_out_score(model, x_val, val_rows, shape, rank, bounds, settings, seed, step, fold)
        return model, score, {"D": score["D"], "stderr": score["stderr"], "n_val": len(val_rows),
                              "iterations": trained.iterations, "best_iteration": trained.best_iteration,
                              "stopped": trained.stopped, "fallback": fallback, "trained": trained}

    def start_fold(i):
        """Fold i's critic, optimiser and batch generator (initialised on the global RNG seeded for the fold)."""
        model = build_critic(settings.critic, shape).to(device)
        if hasattr(model, "fit_gaussian"):  # a fitted term (no random draws), from the fold's training images
            model.fit_gaussian(x[splits[i][0].to(device)], rank)
        optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate,
                                      weight_decay=settings.critic.weight_decay)
        batches = torch.Generator().manual_seed(_stream_seed(seed, step, "batches", i if cross_fit else None))
        return model, optimizer, batches

    workers = _fold_workers(jobs, len(splits), settings, device)
    if workers == 1:
        fitted = []
        # a cross-fit's folds train on one torch thread each, however many run at once, so that
        # ``jobs`` does not change the sums' rounding
        with torch_threads(1) if cross_fit else contextlib.nullcontext():
            for i in range(len(splits)):
                with seeded(_stream_seed(seed, step, "init", i if cross_fit else None), device):  # dropout too
                    fitted.append(fit_fold(i, *start_fold(i)))
    else:
        # Folds on threads: the critics are built one by one on their seeded global RNG, and training draws
        # nothing from it (no dropout: _fold_workers), so the result is the sequential one, bit for bit.
        started_folds = []
        for i in range(len(splits)):
            with seeded(_stream_seed(seed, step, "init", i), device):
                started_folds.append(start_fold(i))
        # (fork_rng: a resumed fold's checkpoint sets the global RNG; the caller's is left as it was)
        with torch.random.fork_rng(devices=[]), torch_threads(1), ThreadPoolExecutor(workers) as pool:
            fitted = list(pool.map(lambda i: fit_fold(i, *started_folds[i]), range(len(splits))))
    models, scores, fits = (list(part) for part in zip(*fitted, strict=True))

    score = _cross_fitted(scores, splits, len(images))
    fallbacks = [f["fallback"] for f in fits]
    fallback = fallbacks[0] if not cross_fit else (
        None if all(f is None for f in fallbacks) else
        {"reason": f"folds {[i + 1 for i, f in enumerate(fallbacks) if f is not None]} of {len(fits)}: "
                   + next(f for f in fallbacks if f is not None)["reason"],
         "trained_D": [None if f is None else f["trained_D"] for f in fallbacks]})
    first = fits[0]["trained"]
    record = {
        "step": step, **score, "fallback": fallback,
        "iterations": sum(f["iterations"] for f in fits), "best_iteration": first.best_iteration,
        "stopped": "patience" if all(f["stopped"] == "patience" for f in fits) else first.stopped,
        "wall_time_s": time.perf_counter() - started,
        "curve": {"iteration": [i for i, _ in first.curve],
                  "validation": [_finite_or_none(v) for _, v in first.curve]},
        "n_train": len(images) if cross_fit else len(splits[0][0]), "seed": seed, "device": str(device),
        "key": key, "resumed_from": first.resumed_from, "gaussian_term": settings.critic.gaussian_term,
    }
    if cross_fit:
        record["folds"] = [{k: v for k, v in f.items() if k != "trained"} for f in fits]
    constant = [isinstance(m, ConstantCritic) for m in models]
    model = models[0] if not cross_fit else FoldEnsemble(models)
    critic_state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "critic": asdict(settings.critic), "shape": list(shape), "key": key,
                    "constant": all(constant)}
    if cross_fit:
        critic_state["folds"] = constant
    return critic_state, record


def score_step(critic: nn.Module, images, plan: dict, step: int, settings: StepSettings | None = None,
               seed: int = 0) -> dict:
    """Held-out score of any critic for path step ``step``, exactly as :func:`train_step` scores its own.

    critic: a :class:`dualdiv.estimators.critics.Critic`, planes (B, 4, H, W) → (B,) (e.g. a known
    log-ratio, to separate a trained critic's shortfall from the noise of the validation split). images: (n, H, W),
    split (or cut into ``settings.folds`` folds, every fold scored) by ``seed`` as in training.
    Returns the score part of a step record (D, stderr,
    substep_D, n_substeps, min_ess, n_reference, influence, split, n_val).
    """
    settings = settings or StepSettings()
    check_plan(plan, step)
    images = _plan_images(images, plan, step)
    splits = _fold_splits(len(images), settings, seed)
    device = next(critic.parameters(), torch.empty(0)).device
    x = torch.as_tensor(images.reshape(len(images), -1))
    scores = [_held_out_score(critic, x[val_rows].to(device), val_rows, tuple(plan["shape"]),
                              pixel_rank(plan).to(device), substep_bounds(plan, step), settings, seed, step,
                              i if len(splits) > 1 else None)
              for i, (_, val_rows) in enumerate(splits)]
    return _cross_fitted(scores, splits, len(images))


def load_critic(state: dict, device: str = "auto") -> nn.Module:
    """The trained critic of a state returned by :func:`train_step` (eval mode)."""
    def one(constant: bool) -> nn.Module:
        return ConstantCritic() if constant else build_critic(CriticSettings(**state["critic"]), state["shape"])

    model = FoldEnsemble([one(c) for c in state["folds"]]) if "folds" in state else one(state.get("constant"))
    model.load_state_dict(state["model"])
    return model.to(resolve_device(device)).eval()


def step_values(critic: nn.Module | dict, plan: dict, step: int, images, device: str = "auto") -> np.ndarray:
    """f_k(x) = Σ over the sub-steps of step k of the step's critic on x, masked as in training.

    critic: a module or a state from :func:`train_step`. images: (n, H, W).
    Returns (n,) float64; Σ_k f_k(x) = F(x) = log p(x)/q(x) + const (the dual coordinate).
    """
    check_plan(plan, step)
    images = _plan_images(images, plan, step)
    model = critic if isinstance(critic, nn.Module) else load_critic(critic, device)
    model_device = next(model.parameters()).device
    x = torch.as_tensor(images.reshape(len(images), -1)).to(model_device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        total, _ = summed_substep_values(model, x, pixel_rank(plan).to(model_device), substep_bounds(plan, step),
                                         tuple(plan["shape"]))
    model.train(was_training)
    return total.cpu().numpy()


# ---------------------------------------------------------------------------- whole path


def combine_steps(records: list[dict]) -> dict:
    """Total correlation Σ_k D_k (nats) and its standard error from per-step records.

    Steps scored on the same validation images (same ``split``) are correlated; their
    per-image influences are summed before taking the spread. Otherwise the steps are
    treated as independent (√Σ se²).
    """
    total = float(sum(r["D"] for r in records))
    if len({r["split"] for r in records}) == 1:
        influence = np.sum([r["influence"] for r in records], axis=0)
        stderr = float(influence.std(ddof=1) / math.sqrt(len(influence)))
    else:
        stderr = math.sqrt(sum(r["stderr"] ** 2 for r in records))
    return {"tc": total, "stderr": stderr}


def standardise_pixels(x: np.ndarray) -> np.ndarray:
    """Each pixel z-scored across samples (TC is invariant to it); constant pixels become 0."""
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1)).astype(np.float32)
