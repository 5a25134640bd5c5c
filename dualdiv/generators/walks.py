"""Generation by walks on the dual coordinate F: the paper's gap walk, and base samples walked along ∇F.

Both walks move an image x toward a target dual value t with the Newton-like step

    x ← clip(x + η (t − F(x)) ∇F(x) / (‖∇F(x)‖² + ε) + σ ξ),   ξ ~ N(0, I),

until |F(x) − t| < τ or the step budget runs out, clipping to the training data's
range. A walked image is accepted when lo < F(x) ≤ hi (inside the data's part of
the dual axis) and it is not a near-copy: its distance to the closest training
image exceeds the 5th percentile of held-out real images' distances (Euclidean
on flattened normalised images).

- ``dualdiv_walk`` (the paper's gap walk): targets in the gaps between adjacent
  clusters of F (or, with one cluster, in the largest holes of the training F
  values inside [lo, hi]); starts from a training image just below the cut, or
  from an interpolation of a pair of k-nearest neighbours across it.
- ``dualdiv_basewalk``: fresh samples of a fitted base (``spectral``, ``var``,
  ``gaussian_lw``) walked toward a training image's dual value.

Prototypes measured that walks on F alone make copies or interpolations
(benchmarks/GENERATION.md); they stay available for comparison. F and its gradient cost one
critic pass per pixel sub-step (on a small window with the conv critic).
"""

from __future__ import annotations

import numpy as np
import torch

from dualdiv.core.errors import ConfigError
from dualdiv.estimators.knn import closest_distances, closest_other_distances
from dualdiv.generators.base import Generator, make_generator, register


def distance_threshold(test: np.ndarray | None, train: np.ndarray, quantile: float = 0.05) -> float:
    """The ``quantile`` of held-out real images' distances to their closest training image.

    Without held-out images (``test`` None), each training image's distance to its closest
    other training image stands in for them.
    """
    train = np.asarray(train, dtype=np.float32)
    if test is not None:
        return float(np.quantile(closest_distances(test, train), quantile))
    return float(np.quantile(closest_other_distances(train), quantile))


def walk(F: torch.nn.Module, x0: np.ndarray, targets: np.ndarray, step_size: float = 1.0, noise: float = 0.0,
         tolerance: float = 0.5, max_steps: int = 30, bounds: tuple[np.ndarray, np.ndarray] | None = None,
         seed: int = 0, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[float]]]:
    """Walk images x0 (B, H, W) toward dual values ``targets`` (B,).

    bounds: per-pixel (low, high) arrays broadcastable to (H, W); steps never leave them.
    Returns (x (B, H, W) float32, F(x) (B,), steps taken (B,), F trajectory per image).
    Images that reached |F − t| < tolerance stop moving.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(np.asarray(x0, dtype=np.float32)).clone()
    t = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    low, high = (None, None) if bounds is None else (torch.as_tensor(b, dtype=torch.float32) for b in bounds)
    steps = torch.zeros(len(x), dtype=torch.int64)
    trajectory = [[] for _ in range(len(x))]
    active = torch.ones(len(x), dtype=torch.bool)
    value = torch.zeros(len(x))
    for _ in range(max_steps + 1):
        # F and its gradient of the moving images only: the others have stopped, their F is known
        rows = active.nonzero()[:, 0]
        value_rows, gradient = value_and_grad(F, x[rows])
        value[rows] = value_rows
        for i, v in zip(rows.tolist(), value_rows.tolist(), strict=True):
            trajectory[i].append(v)
        moving = ((value_rows - t[rows]).abs() >= tolerance) & (steps[rows] < max_steps)
        active[rows] = moving
        if not moving.any():
            break
        rows, gradient = rows[moving], gradient[moving]
        norm2 = gradient.flatten(1).pow(2).sum(dim=1)
        move = step_size * ((t[rows] - value[rows]) / (norm2 + eps))[:, None, None] * gradient
        move = move + noise * torch.randn(x.shape, generator=generator)[rows]  # the same draws as for all images
        x[rows] = x[rows] + move
        if low is not None:
            x = torch.maximum(torch.minimum(x, high), low)
        steps[rows] += 1
    return x.numpy(), value.numpy(), steps.numpy(), trajectory


def value_and_grad(F: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F(x), ∇F(x)), detached; through ``F.value_and_grad`` where F has one (the memory-light
    :class:`dualdiv.estimators.dual_function.DualFunction`), else through autograd."""
    if hasattr(F, "value_and_grad"):
        return F.value_and_grad(x)
    x = x.detach().requires_grad_(True)
    value = F(x)
    return value.detach(), torch.autograd.grad(value.sum(), x)[0]


class _Walk(Generator):
    """Shared fit/accept logic of the two walks; subclasses choose starts and targets.

    ``fit(images, seed, space=..., boundaries=..., novelty_threshold=...)`` takes the fitted
    :class:`~dualdiv.estimators.dualspace.DualSpace` of the same images (its F and dual
    window), the kept cluster cuts in F (default: ``space.localize(images)``) and the
    novelty threshold (default: from the training images alone, :func:`distance_threshold`).
    """

    def __init__(self, step_size: float = 1.0, noise: float = 0.01, tolerance: float = 0.5, max_steps: int = 20,
                 max_rounds: int = 2):
        self.step_size, self.noise, self.tolerance = step_size, noise, tolerance
        self.max_steps, self.max_rounds = max_steps, max_rounds

    def fit(self, images, seed=0, *, space=None, boundaries: list[float] | None = None,
            novelty_threshold: float | None = None):
        if space is None or not hasattr(space, "plan_"):
            raise ConfigError(f"{self.key}: fit needs space=, the fitted DualSpace of these images")
        self.train_ = np.asarray(images, dtype=np.float32)
        fitted_here = space.fit_F_ is not None and len(space.fit_F_) == len(self.train_)
        self.train_F_ = space.fit_F_ if fitted_here else space.transform(self.train_)
        if space.lo_ is None:
            raise ConfigError(f"{self.key}: the DualSpace has no dual window (fitted with n_reference=0)")
        self.F_, self.lo_, self.hi_ = space.dual_function(), space.lo_, space.hi_
        self.boundaries_ = (list(boundaries) if boundaries is not None
                            else space.localize(self.train_, F=self.train_F_)["boundaries"])
        self.novelty_threshold_ = (float(novelty_threshold) if novelty_threshold is not None
                                   else distance_threshold(None, self.train_))
        # per-channel data range: walks never leave it
        self.bounds_ = (self.train_.min(axis=(0, 2))[:, None], self.train_.max(axis=(0, 2))[:, None])
        return self

    def _starts(self, n, rng):  # -> (x0 (n, H, W), targets (n,), provenance dicts)
        raise NotImplementedError

    def _sample(self, n, rng):
        accepted, rejected = [], []
        for round_ in range(self.max_rounds):
            need = n - len(accepted)
            if need <= 0:
                break
            x0, targets, starts = self._starts(need, rng)
            x, value, steps, trajectory = walk(self.F_, x0, targets, self.step_size, self.noise, self.tolerance,
                                               self.max_steps, self.bounds_, int(rng.integers(2**31)))
            distance = closest_distances(x, self.train_)
            for i in range(len(x)):
                reason = ("outside_window" if not self.lo_ < value[i] <= self.hi_
                          else "near_copy" if distance[i] <= self.novelty_threshold_ else None)
                record = {**starts[i], "variant": self.key, "target": float(targets[i]), "F": float(value[i]),
                          "steps": int(steps[i]), "distance_to_train": float(distance[i]), "round": round_,
                          "accepted": reason is None, "rejected_because": reason,
                          "trajectory": [round(v, 4) for v in trajectory[i]]}
                (accepted if reason is None else rejected).append((x[i], record))
        # too few accepted within the budget: fill with the rejected closest to the window, flagged
        rejected.sort(key=lambda item: abs(item[1]["F"] - np.clip(item[1]["F"], self.lo_, self.hi_)))
        chosen = (accepted + rejected)[:n]
        return np.stack([image for image, _ in chosen]), [record for _, record in chosen]


@register("dualdiv_walk")
class GapWalk(_Walk):
    """The paper's gap walk between adjacent clusters of F (see the module docstring).

    start: "image" (a training image among the ``neighbours`` just below the gap) or
    "interpolation" (midpoint-ish convex combination of a neighbour pair across it).
    """

    def __init__(self, start: str = "interpolation", neighbours: int = 5, n_holes: int = 3, **walk):
        super().__init__(**walk)
        if start not in ("image", "interpolation"):
            raise ConfigError(f"dualdiv_walk.start: must be 'image' or 'interpolation', got {start!r}")
        self.start, self.neighbours, self.n_holes = start, neighbours, n_holes

    def fit(self, images, seed=0, **dual):
        super().fit(images, seed, **dual)
        self.gaps_ = gap_intervals(self.train_F_, self.boundaries_, self.lo_, self.hi_, self.n_holes)
        return self

    def _starts(self, n, rng):
        order = np.argsort(self.train_F_, kind="stable")
        sorted_F = self.train_F_[order]
        x0, targets, starts = [], [], []
        for _ in range(n):
            low, high = self.gaps_[rng.integers(len(self.gaps_))]
            target = rng.uniform(low, high)
            position = int(np.searchsorted(sorted_F, (low + high) / 2))  # first training image above the gap
            below = order[max(0, position - self.neighbours):position]
            above = order[position:position + self.neighbours]
            below = below if len(below) else order[:1]
            above = above if len(above) else order[-1:]
            a = int(rng.choice(below))
            if self.start == "image":
                x0.append(self.train_[a])
                starts.append({"start": "image", "train_index": a})
            else:
                b, weight = int(rng.choice(above)), float(rng.uniform(0.3, 0.7))
                x0.append(weight * self.train_[a] + (1 - weight) * self.train_[b])
                starts.append({"start": "interpolation", "train_index": [a, b], "weight": weight})
            targets.append(target)
        return np.stack(x0), np.array(targets), starts


def gap_intervals(train_F: np.ndarray, boundaries: list[float], lo: float, hi: float,
                  n_holes: int = 3) -> list[tuple[float, float]]:
    """Target intervals on the dual axis: around each cluster cut, the span between the
    training values adjacent to it; without cuts, the ``n_holes`` widest gaps between
    consecutive training values inside (lo, hi]."""
    values = np.sort(np.asarray(train_F, dtype=np.float64))
    if boundaries:
        intervals = []
        for cut in boundaries:
            position = int(np.searchsorted(values, cut))
            if 0 < position < len(values):
                intervals.append((float(values[position - 1]), float(values[position])))
        if intervals:
            return intervals
    inside = values[(values > lo) & (values <= hi)]
    if len(inside) < 2:
        inside = values
    widths = np.diff(inside)
    widest = np.argsort(widths)[::-1][:max(1, n_holes)]
    return [(float(inside[i]), float(inside[i + 1])) for i in sorted(widest)]


@register("dualdiv_basewalk")
class BaseWalk(_Walk):
    """Base samples walked along ∇F toward the dual value of a random training image."""

    def __init__(self, base: str = "spectral", **walk):
        super().__init__(**walk)
        self.base = base

    def fit(self, images, seed=0, **dual):
        super().fit(images, seed, **dual)
        self.base_ = make_generator(self.base).fit(images, seed)
        return self

    def _starts(self, n, rng):
        x0, base_records = self.base_.sample(n, int(rng.integers(2**31)))
        targets = rng.choice(self.train_F_, size=n)
        return x0, targets, [{"start": f"base:{self.base}", **r} for r in base_records]
