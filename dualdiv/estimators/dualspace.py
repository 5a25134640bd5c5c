"""The paper's dual divergence space as one scikit-learn-shaped estimator (Garg et al., arXiv 2404.07377).

``DualSpace().fit(images)`` estimates the total correlation TC = D(P‖Q) of the images
(P the data, Q the product of its marginals) along the dependency-diffusion path of
:mod:`dualdiv.estimators.path` — K path steps, one DV critic f_k each — and keeps the
trained critics. Their sum is the dual coordinate

    F(x) = Σ_k f_k(x) = log p(x)/q(x) + const,

which embeds every image in one dimension: :meth:`DualSpace.transform` gives F,
:meth:`~DualSpace.step_values` the per-step f_k, :meth:`~DualSpace.gradient` ∇F,
:meth:`~DualSpace.localize` the clusters along F (:mod:`dualdiv.estimators.clusters`).
The dual window [lo, hi] is where the data live on that axis: ``lo_`` the
:data:`LO_QUANTILE` quantile of F on product-of-marginals samples of the fitted
images, ``hi_`` the largest F of a fitted image.

The pipeline runs each path step as its own job (``train_step``) and assembles the
pieces with :meth:`DualSpace.assemble`; :meth:`DualSpace.fit` does the same in one
process. :meth:`~DualSpace.save` / :meth:`DualSpace.load` round-trip a fitted space
through a folder (``dualspace.json`` + ``critics.pt``) with identical F. All
divergences are in nats; images are ``(n, H, W)`` float32 (H = channels, W = time),
or ``(n, d)`` vectors treated as ``(n, 1, d)`` images.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from dualdiv.core.errors import ConfigError, InputError, OutputError
from dualdiv.estimators.clusters import ClusterSettings, find_clusters
from dualdiv.estimators.settings import THOROUGH_TRAINING, StepSettings, resolve_critic

# torch and the path's modules are imported where a space is fitted or evaluated, so that
# ``from dualdiv import DualSpace`` costs no torch import.

# Quantile of F on reference (product-of-marginals) samples used as the lower end of the dual window.
LO_QUANTILE = 0.99
_FORMAT = "dualdiv.DualSpace/1"


class DualSpace:
    """Total correlation along a dependency-diffusion path, and the dual coordinate F of its critics.

    Settings (the pipeline's ``estimate`` section; the defaults are the pipeline's):
    n_blocks: K path steps (blocks of pixels permuted in turn; 1 ≤ K ≤ H·W).
    order: pixel order of the path: "time" (column strips, the default), "channel",
        "patch", "random" (:func:`dualdiv.estimators.path.make_plan`).
    substeps: "pixel" (each step telescopes over single pixels) or "block".
    training: :class:`~dualdiv.estimators.path.StepSettings` (or a dict of its fields) of
        every step's critic; critic kind "auto" is an MLP for ``(n, d)`` vectors, else conv.
        None is the pipeline's fast budget, whose TC reads low where dependence is strong;
        ``n_blocks=1, training=THOROUGH_TRAINING, n_jobs=-1`` is ``dualdiv estimate``'s accurate one
        (:data:`~dualdiv.estimators.settings.THOROUGH_TRAINING`, benchmarks/ESTIMATE_GAUSSIAN.md).
    steps: per-step overrides of ``training``, e.g. ``{"3": {"max_iterations": 400}}``.
    n_reference: product-of-marginals samples scored by F for ``lo_``; 0 skips the dual
        window (``lo_``/``hi_`` None; an estimate of TC only).
    standardise: False, True (= "zscore": z-score every pixel across the fitted images first; TC is
        invariant; the pipeline's tiles are already z-scored per channel, so it is off there) or
        "ranks": every pixel to its normal scores, Φ⁻¹ of its mid-rank among the fitted images over
        n + 1 (the Gaussian copula; TC is invariant to any increasing map of a pixel, so skewed,
        heavy-tailed or bounded marginals cost nothing; F is then piecewise constant in x: no
        :meth:`gradient`).
    seed: seeds the plan, every step and the reference samples.
    device: "auto" (CUDA when available), "cpu", "cuda", ...; progress: tqdm bar per step.
    n_jobs: threads a cross-fitted step's folds train on (``training.folds`` ≥ 2; None: 1, −1:
        every usable core); the result does not depend on it
        (:func:`~dualdiv.estimators.path.train_step`'s ``jobs``).

    Fitted attributes: ``plan_`` (dict), ``critic_states_`` (one state dict per step),
    ``critics_`` (the critics as eval-mode modules), ``steps_`` (per-step records: D,
    stderr, iterations, curve, ...), ``tc_`` and ``tc_stderr_`` (nats), ``min_ess_``,
    ``fit_F_`` (F of the fitted images, (n,)), ``reference_F_`` (n_reference,) and
    ``reference_steps_`` (n_reference, K) on the product-of-marginals samples, ``lo_``,
    ``hi_``, ``shape_`` ((H, W)), ``pixel_mean_``/``pixel_std_`` (standardise "zscore"),
    ``pixel_sorted_`` ((n, H, W), the fitted images' sorted pixel values; standardise "ranks").
    """

    def __init__(self, n_blocks: int = 4, order: str = "time", substeps: str = "pixel",
                 training: StepSettings | Mapping | None = None, steps: Mapping | None = None,
                 n_reference: int = 500, standardise: bool = False, seed: int = 0, device: str = "auto",
                 progress: bool = False, n_jobs: int | None = None):
        self.n_blocks, self.order, self.substeps = n_blocks, order, substeps
        self.training, self.steps = training, steps
        self.n_reference, self.standardise, self.seed = n_reference, standardise, seed
        self.device, self.progress, self.n_jobs = device, progress, n_jobs

    # ------------------------------------------------------------------ settings

    @classmethod
    def from_config(cls, estimate: Mapping, seed: int = 0, device: str = "auto", **extra) -> DualSpace:
        """The space of a config's ``estimate`` section (keys n_blocks, order, substeps, n_reference,
        training, steps; others are ignored)."""
        keys = ("n_blocks", "order", "substeps", "n_reference", "training", "steps")
        return cls(**{k: estimate[k] for k in keys if k in estimate}, seed=seed, device=device, **extra)

    def get_params(self) -> dict:
        """Constructor settings, JSON-serialisable (``training`` as a dict)."""
        training = self.training
        if isinstance(training, StepSettings):
            training = asdict(training)
        return {"n_blocks": self.n_blocks, "order": self.order, "substeps": self.substeps,
                "training": dict(training) if training is not None else None,
                "steps": {str(k): dict(v) for k, v in (self.steps or {}).items()},
                "n_reference": self.n_reference, "standardise": self.standardise, "seed": self.seed,
                "device": self.device, "progress": self.progress, "n_jobs": self.n_jobs}

    def step_settings(self, step: int, vectors: bool = False) -> StepSettings:
        """Training settings of path step ``step``: ``training`` updated by ``steps[step]``; "auto" resolved."""
        base = self.training if isinstance(self.training, StepSettings) else StepSettings(**(self.training or {}))
        override = dict((self.steps or {}).get(str(step)) or (self.steps or {}).get(step) or {})
        if override:
            merged = asdict(base)
            critic = override.pop("critic", None)
            if critic:
                merged["critic"] = {**merged["critic"], **critic}
            base = StepSettings(**{**merged, **override})
        return resolve_critic(base, vectors)

    # ------------------------------------------------------------------ fitting

    def _as_images(self, images, fitting: bool) -> np.ndarray:
        """Images (n, H, W) float32 as the critics see them (vectors as one-row images, standardised)."""
        x = np.asarray(images, dtype=np.float32)
        if x.ndim not in (2, 3):
            raise InputError(f"images must be (n, d) vectors or (n, H, W) images, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InputError("images contain NaN or infinite values")
        if fitting:
            self.vectors_ = x.ndim == 2
        x = x[:, None, :] if x.ndim == 2 else x
        if not fitting and tuple(x.shape[1:]) != self.shape_:
            raise InputError(f"images of shape {x.shape[1:]} given to a DualSpace fitted on {self.shape_}")
        mode = _standardise_mode(self.standardise)
        if mode == "zscore":
            if fitting:
                self.pixel_mean_ = x.mean(axis=0)
                std = x.std(axis=0)
                self.pixel_std_ = np.where(std > 0, std, 1).astype(np.float32)
            x = ((x - self.pixel_mean_) / self.pixel_std_).astype(np.float32)
        elif mode == "ranks":
            if fitting:
                self.pixel_sorted_ = np.sort(x, axis=0)
            x = normal_scores(x, self.pixel_sorted_)
        return x

    def fit(self, images) -> DualSpace:
        """Train every path step on ``images`` (n, H, W) or (n, d) and compute the dual window; returns self."""
        from dualdiv.estimators.path import make_plan, train_step

        x = self._as_images(images, fitting=True)
        plan = make_plan(x.shape[1:], self.n_blocks, self.order, self.seed, self.substeps)
        pieces = [train_step(x, plan, k, self.step_settings(k, self.vectors_), self.seed, device=self.device,
                             progress=self.progress, jobs=self.n_jobs) for k in range(1, self.n_blocks + 1)]
        return self._assemble(x, plan, [state for state, _ in pieces], [record for _, record in pieces])

    def assemble(self, images, plan: dict, states: Sequence[dict], records: Sequence[dict],
                 fit_steps=None, reference_steps=None) -> DualSpace:
        """A fitted space from path steps trained apart (one job each, e.g. on a cluster); returns self.

        images: the images the steps were trained on (n, H, W); plan: their plan;
        states/records: :func:`~dualdiv.estimators.path.train_step`'s outputs in step order 1..K.
        fit_steps (n, K) / reference_steps (n_reference, K): f_k of ``images`` and of
        :func:`reference_samples` when the step jobs computed them; None computes them here.
        """
        from dualdiv.estimators.path import check_plan

        x = self._as_images(images, fitting=True)
        if len(states) != len(plan["blocks"]) or len(records) != len(states):
            raise InputError(f"plan has {len(plan['blocks'])} steps but {len(states)} critics and "
                             f"{len(records)} records were given")
        check_plan(plan, 1)
        if tuple(plan["shape"]) != tuple(x.shape[1:]):
            raise InputError(f"plan is for images {tuple(plan['shape'])}, got images {tuple(x.shape[1:])}")
        values = None
        if fit_steps is not None or reference_steps is not None:
            values = (np.asarray(fit_steps, dtype=np.float64), np.asarray(reference_steps, dtype=np.float64))
            expected = ((len(x), len(states)), (self.n_reference, len(states)))
            if tuple(values[0].shape) != expected[0] or tuple(values[1].shape) != expected[1]:
                raise InputError(f"step values of shapes {values[0].shape} and {values[1].shape} given, "
                                 f"expected {expected[0]} and {expected[1]} (images, reference samples × steps)")
        return self._assemble(x, plan, list(states), list(records), values)

    def _assemble(self, x: np.ndarray, plan: dict, states: list[dict], records: list[dict],
                  values: tuple[np.ndarray, np.ndarray] | None = None) -> DualSpace:
        from dualdiv.estimators.path import combine_steps

        self.plan_, self.critic_states_, self.steps_ = plan, states, records
        self.shape_ = tuple(int(v) for v in plan["shape"])
        total = combine_steps(records)
        self.tc_, self.tc_stderr_ = total["tc"], total["stderr"]
        self.min_ess_ = min(r["min_ess"] for r in records)
        self.n_fit_ = len(x)
        self._build_critics()
        self.fit_F_ = self.reference_F_ = self.reference_steps_ = self.lo_ = self.hi_ = None
        if self.n_reference:
            if values is None:
                values = (self._step_values(x), self._step_values(reference_samples(x, self.n_reference, self.seed)))
            self.fit_F_ = values[0].sum(axis=1)
            self.reference_steps_ = values[1]  # (n_reference, K)
            self.reference_F_ = self.reference_steps_.sum(axis=1)
            self.lo_ = float(np.quantile(self.reference_F_, LO_QUANTILE))
            self.hi_ = float(self.fit_F_.max())
        return self

    def _build_critics(self) -> None:
        from dualdiv.estimators.path import load_critic

        self.critics_ = [load_critic(state, self.device) for state in self.critic_states_]

    # ------------------------------------------------------------------ the dual coordinate

    def _check_fitted(self) -> None:
        if not hasattr(self, "plan_"):
            raise ConfigError("this DualSpace is not fitted yet: call fit(images) or DualSpace.load(folder)")

    def _step_values(self, x: np.ndarray) -> np.ndarray:
        from dualdiv.estimators.path import step_values

        return np.stack([step_values(critic, self.plan_, k, x) for k, critic in enumerate(self.critics_, 1)], axis=1)

    def step_values(self, images) -> np.ndarray:
        """f_k(x) of every path step: (n, K) float64, nats (their row sums are F)."""
        self._check_fitted()
        return self._step_values(self._as_images(images, fitting=False))

    def transform(self, images) -> np.ndarray:
        """The dual coordinate F(x) = Σ_k f_k(x) of each image: (n,) float64."""
        return self.step_values(images).sum(axis=1)

    def dual_function(self):
        """F as a differentiable torch module (:class:`~dualdiv.estimators.dual_function.DualFunction`)
        on the critics' inputs (standardised when ``standardise``)."""
        from dualdiv.estimators.dual_function import DualFunction

        self._check_fitted()
        return DualFunction(self.plan_, self.critic_states_, self.device)

    def gradient(self, images) -> np.ndarray:
        """∇F(x) with respect to the images as given: same shape as ``images``, float32."""
        import torch

        self._check_fitted()
        if _standardise_mode(self.standardise) == "ranks":
            raise ConfigError("gradient: F is piecewise constant in the images with standardise 'ranks' "
                              "(normal scores); fit with standardise True for gradients")
        x = self._as_images(images, fitting=False)
        _, grad = self.dual_function().value_and_grad(torch.as_tensor(x))
        grad = grad.cpu().numpy()
        if self.standardise:  # chain rule through the z-score
            grad = grad / self.pixel_std_
        return grad.reshape(np.shape(images)).astype(np.float32)

    def localize(self, images, settings: ClusterSettings | Mapping | None = None, seed: int | None = None,
                 F: np.ndarray | None = None) -> dict:
        """Clusters of ``images`` along F (:func:`dualdiv.estimators.clusters.find_clusters`).

        Returns its dict: ``boundaries`` (kept cut values in F, ascending), ``membership``
        (cluster per image), ``cuts``, ``tree``, ``n_clusters``. F: the images' dual values
        when already computed (else :meth:`transform`).
        """
        settings = settings if isinstance(settings, ClusterSettings) else ClusterSettings(**(settings or {}))
        values = self.transform(images) if F is None else np.asarray(F, dtype=np.float64)
        return find_clusters(values, np.asarray(images, dtype=np.float32), settings,
                             self.seed if seed is None else seed)

    # ------------------------------------------------------------------ files

    def summary(self) -> dict:
        """The fitted scalars and per-step table (JSON-serialisable)."""
        self._check_fitted()
        keep = ("step", "D", "stderr", "n_substeps", "iterations", "best_iteration", "stopped", "wall_time_s")
        return {"tc": self.tc_, "stderr": self.tc_stderr_, "units": "nats", "n_steps": len(self.steps_),
                "lo": self.lo_, "hi": self.hi_, "lo_quantile": LO_QUANTILE,
                "steps": [{key: r[key] for key in keep} for r in self.steps_]}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the fitted space to ``folder`` (``dualspace.json`` + ``critics.pt``), replacing it whole.

        Written into a temporary folder beside it and renamed, so a killed save leaves the
        previous version or nothing, never a mix.
        """
        import torch

        from dualdiv.core.io import atomic_output, write_json

        self._check_fitted()
        folder = Path(folder)
        content = {"format": _FORMAT, "settings": self.get_params(), "plan": self.plan_, "steps": self.steps_,
                   "shape": list(self.shape_), "vectors": self.vectors_, "n_fit": self.n_fit_,
                   **{k: v for k, v in self.summary().items() if k not in ("steps", "n_steps")},
                   "min_ess": self.min_ess_,
                   **{name: None if getattr(self, name, None) is None else np.asarray(getattr(self, name)).tolist()
                      for name in ("fit_F_", "reference_F_", "reference_steps_", "pixel_mean_", "pixel_std_",
                                   "pixel_sorted_")}}
        tmp_folder = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp_folder, ignore_errors=True)
        try:
            tmp_folder.mkdir(parents=True)
            write_json(tmp_folder / "dualspace.json", content)
            with atomic_output(tmp_folder / "critics.pt") as tmp:
                torch.save(self.critic_states_, tmp)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp_folder, folder)
        except OSError as exc:
            shutil.rmtree(tmp_folder, ignore_errors=True)
            raise OutputError(f"{folder}: cannot write output: {exc.strerror or exc}") from None
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | None = None) -> DualSpace:
        """A space written by :meth:`save`; F of the loaded space equals F of the saved one exactly."""
        import torch

        folder = Path(folder)
        try:
            content = json.loads((folder / "dualspace.json").read_text())
            states = torch.load(folder / "critics.pt", map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise InputError(f"{folder}: no such DualSpace ({exc.filename} missing)") from None
        except Exception as exc:  # json, pickle and zip raise many types for corrupt files
            raise InputError(f"{folder}: cannot read DualSpace ({str(exc).splitlines()[0]}); fit and save it again"
                             ) from None
        if content.get("format") != _FORMAT:
            raise InputError(f"{folder}/dualspace.json: not a {_FORMAT} file (format {content.get('format')!r})")
        settings = content["settings"]
        if device is not None:
            settings["device"] = device
        space = cls(**settings)
        space.plan_, space.steps_, space.critic_states_ = content["plan"], content["steps"], states
        space.shape_, space.vectors_, space.n_fit_ = tuple(content["shape"]), content["vectors"], content["n_fit"]
        space.tc_, space.tc_stderr_, space.min_ess_ = content["tc"], content["stderr"], content["min_ess"]
        space.lo_, space.hi_ = content["lo"], content["hi"]
        for name in ("fit_F_", "reference_F_", "reference_steps_", "pixel_mean_", "pixel_std_", "pixel_sorted_"):
            value = content[name]
            dtype = np.float32 if name.startswith("pixel") else np.float64
            setattr(space, name, None if value is None else np.asarray(value, dtype=dtype))
        space._build_critics()
        return space


def _standardise_mode(standardise) -> str | None:
    """None, "zscore" or "ranks" of a DualSpace ``standardise`` value (False/True/"zscore"/"ranks")."""
    if standardise is False or standardise is None:
        return None
    if standardise is True or standardise == "zscore":
        return "zscore"
    if standardise == "ranks":
        return "ranks"
    raise ConfigError(f"standardise: must be False, True, 'zscore' or 'ranks', got {standardise!r}")


def normal_scores(x: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """Φ⁻¹(u) of every pixel of x (m, H, W), u its mid-rank among ``sorted_values`` (n, H, W) (each pixel's
    fitted values, ascending) over n + 1: (#below + #not above + 1) / (2(n + 1)), so a fitted value of rank r
    gets r / (n + 1) (ties their mean rank) and every u lies in (0, 1). float32, same shape as x."""
    from scipy.special import ndtri

    n = len(sorted_values)
    flat_x, flat_sorted = x.reshape(len(x), -1), sorted_values.reshape(n, -1)
    u = np.empty(flat_x.shape, dtype=np.float64)
    for pixel in range(flat_x.shape[1]):
        below = np.searchsorted(flat_sorted[:, pixel], flat_x[:, pixel], side="left")
        not_above = np.searchsorted(flat_sorted[:, pixel], flat_x[:, pixel], side="right")
        u[:, pixel] = (below + not_above + 1) / (2 * (n + 1))
    return ndtri(u).astype(np.float32).reshape(x.shape)


def reference_samples(images, n_reference: int, seed: int = 0) -> np.ndarray:
    """The product-of-marginals samples of a fitted space's dual window: (n_reference, H, W) float32.

    images: the fitted images (n, H, W) as the critics see them. The same draw wherever it
    is made (a path step's job or the dual stage), so per-step values computed apart add up.
    """
    import torch

    from dualdiv.estimators.divergence import sample_marginals

    x = np.asarray(images, dtype=np.float32)
    return sample_marginals(x, n_reference, torch.Generator().manual_seed(seed))


def estimate_tc(x, n_blocks: int = 1, order: str = "time", seed: int = 0, settings: StepSettings | None = None,
                substeps: str = "pixel", device: str = "auto", progress: bool = False, n_jobs: int | None = -1,
                marginals: str = "ranks") -> dict:
    """Total correlation of x (nats) along the path, without the dual window: a thin use of :class:`DualSpace`.

    x: (n, d) vectors or (n, C, T) images; each pixel is mapped to its normal scores first (marginals
    "ranks", the default: the Gaussian copula, so skewed, heavy-tailed or bounded pixels cost nothing —
    8 × 8 separable Gaussians at TC 20 through exp/cube/tanh maps read −5.8 % on normal scores and −44 %
    on z-scores) or z-scored ("zscore"); TC is unchanged by either (:class:`DualSpace` ``standardise``).
    settings: None is
    :data:`~dualdiv.estimators.settings.THOROUGH_TRAINING` (= ``dualdiv estimate``'s default budget:
    the bilinear critic, 5 cross-fitted folds on ``n_jobs`` threads, −1 = every usable core); pass
    ``StepSettings()`` for the pipeline's faster, less accurate budget. Returns {"tc", "stderr",
    "min_ess", "steps": [per-step records], "n_blocks", "order", "substeps"}.
    """
    space = DualSpace(n_blocks, order, substeps, training=THOROUGH_TRAINING if settings is None else settings,
                      n_reference=0, standardise=marginals, seed=seed, device=device, progress=progress,
                      n_jobs=n_jobs).fit(x)
    return {"tc": space.tc_, "stderr": space.tc_stderr_, "min_ess": space.min_ess_, "steps": space.steps_,
            "n_blocks": n_blocks, "order": order, "substeps": substeps}
