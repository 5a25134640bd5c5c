"""The one optimisation loop of dualdiv, and the seeding, thread and device helpers around it.

Every network the package trains — path-step critics, the residual critic of the dual
correction, the metric DV critic, the VAE / WGAN-GP / DDPM baselines — runs through
:func:`train`. The caller supplies ``step()`` (one optimiser step, returning its loss)
and optionally ``validate()`` (a score of the current model); the loop owns the
iteration and wall-time budget, validation every k iterations with early stopping and
best-state keeping, atomic checkpoint/resume, the progress bar and a per-iteration
callback. The loop draws no random numbers itself: a caller's results depend only on
the order of its own draws.

Determinism: inside :func:`seeded` (the global torch RNG forked, so the caller's state is
untouched) and at a fixed thread count (:func:`torch_threads`: float sums depend on it),
training is bit-identical on CPU for a seed — also across a kill and a resume from a
checkpoint, which holds the model, optimizer, generator and global torch RNG states. A
binding ``max_seconds`` makes the number of iterations machine-dependent.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # only an annotation: the loop itself needs torch and tqdm alone
    import numpy as np

__all__ = ["Checkpoint", "LoopSettings", "TrainResult", "anneal", "descend", "resolve_device", "seeded",
           "torch_generator", "torch_threads", "train"]

NO_BEST = ("last", "initial")

# ---------------------------------------------------------------------------- seeding, threads, devices


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as ``torch.device`` reads it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _cuda_indices(device: str | torch.device | None) -> list[int]:
    """The CUDA device whose RNG :func:`seeded` forks besides the CPU's: [index] for a CUDA device, else []."""
    if device is None or torch.device(device).type != "cuda":
        return []
    index = torch.device(device).index
    return [index if index is not None else torch.cuda.current_device()]


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device | None = None) -> Iterator[torch.Generator]:
    """Fork the global torch RNG (restored afterwards), seed it with ``seed``, and yield a CPU generator seeded alike.

    device: a CUDA device's RNG is forked too (``torch.manual_seed`` seeds it), so dropout
    and initialisation on it leave the caller's CUDA state alone as well.
    """
    with torch.random.fork_rng(devices=_cuda_indices(device)):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads, restoring the previous number afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A torch generator seeded from a numpy generator (one draw from it)."""
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


def anneal(optimizer: torch.optim.Optimizer, base: float, final_fraction: float, horizon: int) -> None:
    """Set every group's learning rate on a cosine from ``base`` to ``final_fraction`` · base over ``horizon``
    optimiser steps (constant after). The step count is read from the optimiser's own state (Adam's
    "step"), so a run resumed from a checkpoint continues the same schedule."""
    if final_fraction == 1:
        return
    states = [optimizer.state[p] for group in optimizer.param_groups for p in group["params"] if p in optimizer.state]
    done = float(states[0]["step"]) if states and "step" in states[0] else 0.0
    progress = min(done / max(horizon, 1), 1.0)
    rate = base * (final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))
    for group in optimizer.param_groups:
        group["lr"] = rate


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One optimiser step on ``loss`` (gradients zeroed, back-propagated, applied); returns the loss."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


# ---------------------------------------------------------------------------- settings and result


@dataclass(frozen=True)
class LoopSettings:
    """Budget, validation and display of :func:`train`.

    max_iterations: optimiser steps at most, counted from 1 (a resumed run counts on); 0 trains nothing.
    max_seconds: wall-time limit (s) of this call, checked before each step; None: none.
    eval_every: validate after every ``eval_every``-th iteration and after the last of the budget; None: never.
    patience: stop after this many validations in a row without a better score; None: never.
    higher_is_better: the validation score is maximised (a bound) or minimised (a loss).
    if_no_best: the model at the end when no validation scored better than the start (all NaN, or
        none run): "last" keeps it as trained, "initial" restores the weights it started with.
    record_every: keep the loss of iterations 1, 1 + k, 1 + 2k, …; None: none.
    progress: show a tqdm bar labelled ``description``.
    log_every_s: log a line (iteration, last validation, best, elapsed, ETA) at INFO at most
        every this many seconds, and one when a run that long ends — a rule's log shows a
        training job's progress while it runs; None: no lines. Not while a bar is shown
        (``progress``): the bar carries the same, and lines would break it up.
    """

    max_iterations: int
    max_seconds: float | None = None
    eval_every: int | None = None
    patience: int | None = None
    higher_is_better: bool = True
    if_no_best: str = "last"
    record_every: int | None = None
    progress: bool = False
    description: str = "training"
    log_every_s: float | None = 5.0

    def __post_init__(self):
        if self.max_iterations < 0:
            raise ValueError(f"max_iterations must be ≥ 0, got {self.max_iterations}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0 or None, got {self.max_seconds}")
        if self.log_every_s is not None and self.log_every_s <= 0:
            raise ValueError(f"log_every_s must be > 0 or None, got {self.log_every_s}")
        for name in ("eval_every", "patience", "record_every"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1 or None, got {getattr(self, name)}")
        if self.patience is not None and self.eval_every is None:
            raise ValueError("patience needs eval_every")
        if self.if_no_best not in NO_BEST:
            raise ValueError(f"if_no_best must be one of {NO_BEST}, got {self.if_no_best!r}")


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often :func:`train` checkpoints; ``key`` names everything the run's result depends on.

    A file at ``path`` with another key (other settings, data or seed), or one that cannot be
    read, is ignored with a warning and overwritten.
    """

    path: str | os.PathLike
    key: str
    every: int = 100

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"checkpoint every must be ≥ 1, got {self.every}")


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did. curve: [[iteration, validation score], …]; losses: as ``record_every`` asks.

    stopped: "patience" (early stopping), "time" (``max_seconds``) or "budget" (``max_iterations``).
    best_value: ∓inf and best_iteration 0 when no validation beat the start.
    """

    iterations: int
    seconds: float
    stopped: str
    resumed_from: int
    best_value: float
    best_iteration: int
    curve: list
    losses: list


@dataclass
class _Progress:
    """Training state beyond model, optimizer and RNGs; all of it goes into a checkpoint."""

    iteration: int = 0
    best_value: float = -math.inf
    best_iteration: int = 0
    best_state: dict | None = None
    since_best: int = 0
    curve: list = field(default_factory=list)  # [[iteration, validation score], ...]
    losses: list = field(default_factory=list)

    def add_validation(self, value: float, model: nn.Module, higher_is_better: bool) -> None:
        """Log a validation score; keep the model if it is the best so far (NaN never is)."""
        self.curve.append([self.iteration, value])
        if (value > self.best_value) if higher_is_better else (value < self.best_value):
            self.best_value, self.best_iteration, self.since_best = value, self.iteration, 0
            self.best_state = _snapshot(model)
        else:
            self.since_best += 1


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


# ---------------------------------------------------------------------------- checkpoints


def _save_checkpoint(checkpoint: Checkpoint, progress: _Progress, model: nn.Module,
                     optimizer: torch.optim.Optimizer, generator: torch.Generator | None) -> None:
    """Write atomically: a temp name in the same folder, then os.replace (a kill leaves the old file whole)."""
    device = _device_of(model)
    content = {"key": checkpoint.key, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "generator": None if generator is None else generator.get_state(), "torch_rng": torch.get_rng_state(),
               "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None, **asdict(progress)}
    tmp = f"{checkpoint.path}.tmp{os.getpid()}"
    torch.save(content, tmp)
    os.replace(tmp, checkpoint.path)


def _load_checkpoint(checkpoint: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator | None) -> _Progress | None:
    """The saved progress with model, optimizer and RNGs restored; None (with a warning) if unusable."""
    path = checkpoint.path
    if not os.path.exists(path):
        return None
    device = _device_of(model)
    needed = {"key", "model", "optimizer", "generator", "torch_rng", "cuda_rng", *_Progress.__dataclass_fields__}
    try:
        content = torch.load(path, map_location=device, weights_only=True)
        problem = None if isinstance(content, dict) else f"holds a {type(content).__name__}, not a checkpoint"
    except Exception as err:  # a truncated or foreign file must not stop a fresh run
        problem = str(err)
    if problem is None and needed - set(content):
        problem = f"no {', '.join(sorted(needed - set(content)))} in it"
    if problem is not None:
        warnings.warn(f"ignoring unreadable checkpoint {path}: {problem}", stacklevel=4)
        return None
    if content["key"] != checkpoint.key:
        warnings.warn(f"ignoring checkpoint {path}: it belongs to other settings, seed or data (another run key)",
                      stacklevel=4)
        return None
    model.load_state_dict(content["model"])
    optimizer.load_state_dict(content["optimizer"])
    if generator is not None:
        generator.set_state(content["generator"].cpu())
    torch.set_rng_state(content["torch_rng"].cpu())
    if content["cuda_rng"] is not None:
        torch.cuda.set_rng_state(content["cuda_rng"].cpu(), device)
    return _Progress(**{name: content[name] for name in _Progress.__dataclass_fields__})


def _log_progress(settings: LoopSettings, progress: _Progress, started: float, resumed_from: int) -> None:
    """One INFO line: iteration i/N, last and best validation, elapsed and the time the budget's rest takes."""
    elapsed = time.perf_counter() - started
    done = progress.iteration - resumed_from
    eta = elapsed / done * (settings.max_iterations - progress.iteration) if done else math.nan
    validation = (f", validation {progress.curve[-1][1]:.4g} (best {progress.best_value:.4g} at "
                  f"{progress.best_iteration})" if progress.curve else "")
    log.info("%s: iteration %d/%d%s, %.0f s elapsed, at most %.0f s to go", settings.description,
             progress.iteration, settings.max_iterations, validation, elapsed, eta)


# ---------------------------------------------------------------------------- the loop


def train(step: Callable[[], float | torch.Tensor], settings: LoopSettings, *, model: nn.Module | None = None,
          validate: Callable[[], float] | None = None, optimizer: torch.optim.Optimizer | None = None,
          generator: torch.Generator | None = None, checkpoint: Checkpoint | None = None,
          callback: Callable[[int], None] | None = None) -> TrainResult:
    """Call ``step()`` until the budget is spent or validation stops improving.

    step: one optimiser step (e.g. via :func:`descend`); returns its loss (a float or a
        0-d tensor, converted only when recorded, so GPU steps need not synchronise).
    model: put in train mode before each step and in eval mode (under no_grad) for
        ``validate``; with validation it ends in the state of its best score (see
        ``if_no_best``); it is in eval mode on return.
    validate: the model's score (float), called as ``settings.eval_every`` says.
    optimizer, generator: restored from and saved into ``checkpoint`` with the model and the
        global torch RNG (the CPU's, and the model's CUDA device's); generator is optional.
    checkpoint: resume from its file when its key matches, and write it every ``every``
        iterations (after that iteration's validation).
    callback: called as callback(iteration) after every iteration and its checkpoint.
    """
    if (settings.eval_every is None) != (validate is None) or (validate is not None and model is None):
        raise ValueError("validation needs eval_every, validate and model together")
    if checkpoint is not None and (model is None or optimizer is None):
        raise ValueError("a checkpoint needs model and optimizer")
    if settings.if_no_best == "initial" and model is None:
        raise ValueError("if_no_best='initial' needs model")
    started = time.perf_counter()
    progress = _load_checkpoint(checkpoint, model, optimizer, generator) if checkpoint is not None else None
    if progress is None:
        progress = _Progress(best_value=-math.inf if settings.higher_is_better else math.inf,
                             best_state=_snapshot(model) if settings.if_no_best == "initial" else None)
    resumed_from = progress.iteration
    timed_out = False
    bar = tqdm(total=settings.max_iterations, initial=progress.iteration, disable=not settings.progress,
               desc=settings.description)
    last_line = started
    logging_lines = settings.log_every_s is not None and not settings.progress  # a shown bar says the same
    try:
        while progress.iteration < settings.max_iterations:
            if settings.patience is not None and progress.since_best >= settings.patience:
                break
            if settings.max_seconds is not None and time.perf_counter() - started >= settings.max_seconds:
                timed_out = True
                break
            if model is not None:
                model.train()
            loss = step()
            progress.iteration += 1
            iteration = progress.iteration
            if settings.record_every is not None and (iteration - 1) % settings.record_every == 0:
                progress.losses.append(loss.item() if isinstance(loss, torch.Tensor) else float(loss))
            if validate is not None and (iteration % settings.eval_every == 0 or iteration == settings.max_iterations):
                model.eval()
                with torch.no_grad():
                    progress.add_validation(float(validate()), model, settings.higher_is_better)
                bar.set_postfix(validation=f"{progress.curve[-1][1]:.3f}", best=f"{progress.best_value:.3f}")
            if checkpoint is not None and iteration % checkpoint.every == 0:
                _save_checkpoint(checkpoint, progress, model, optimizer, generator)
            bar.update()
            if logging_lines and time.perf_counter() - last_line >= settings.log_every_s:
                _log_progress(settings, progress, started, resumed_from)
                last_line = time.perf_counter()
            if callback is not None:
                callback(iteration)
    finally:
        bar.close()
    if model is not None:
        if progress.best_state is not None:
            model.load_state_dict(progress.best_state)
        model.eval()
    patience_spent = settings.patience is not None and progress.since_best >= settings.patience
    stopped = "patience" if patience_spent else "time" if timed_out else "budget"
    seconds = time.perf_counter() - started
    if logging_lines and seconds >= settings.log_every_s:
        best = f", best validation {progress.best_value:.4g} at {progress.best_iteration}" if progress.curve else ""
        log.info("%s: stopped (%s) after %d iterations in %.1f s%s", settings.description, stopped,
                 progress.iteration, seconds, best)
    return TrainResult(iterations=progress.iteration, seconds=seconds, stopped=stopped,
                       resumed_from=resumed_from, best_value=progress.best_value,
                       best_iteration=progress.best_iteration, curve=progress.curve, losses=progress.losses)
