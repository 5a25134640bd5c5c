"""Settings of the path estimator: the critic and the training of one path step (no torch here).

Their defaults are the pipeline's (config ``estimate.training``): the budget sized for
the default EEG run on 2 CPU cores (a step stops by patience after 300–450 iterations
there). The Gaussian accuracy benchmark (``benchmarks/estimate_gaussian.py``) states its
own, larger budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from dualdiv.core.errors import ConfigError

KINDS = ("auto", "conv", "mlp", "hybrid", "bilinear")
LOSSES = ("dv", "logistic")


@dataclass(frozen=True)
class CriticSettings:
    """Architecture and regularisation of a critic.

    kind: "conv" (local window), "mlp" (whole image), "hybrid" (the conv window plus an MLP on
        every channel near the tested time and per-channel means of the rest: local and global
        dependence), "bilinear" (g(tested value) · h(the hybrid's inputs without it), trained on every
        pairing of a batch's contexts and values; single-pixel sub-steps only), or "auto" (the caller decides — see
        :meth:`dualdiv.estimators.dualspace.DualSpace.step_settings`).
    channels, kernel, conv_layers: conv critic width, square kernel size (odd), depth (conv, hybrid).
    hidden, mlp_layers, dropout: MLP width, depth, dropout rate (mlp; the hybrid's global branch).
    strip: the hybrid's channel strip reaches this many time points either side of the tested one.
    relative_channels: the global branch (hybrid, bilinear) sees the channels in the order tested + 0,
        + 1, … (mod H) and the tested channel one-hot, so its weights are shared across channels.
    rank, value_hidden: the bilinear critic's g(x_b) · h(rest) width and the width of its value MLP g.
    gaussian_term: the bilinear critic adds w · the sub-step log ratio of a Gaussian fitted to its training
        images (Ledoit–Wolf covariance; w learned, starting at 1), so the network learns the correction to
        the linear-Gaussian dependence instead of all of it (:class:`dualdiv.estimators.critics.BilinearCritic`).
    gaussian_inputs: with ``gaussian_term``, the global MLP also sees the fitted conditional mean and log
        precision of the tested pixel, so it can weigh the fit against its own reading of the context.
    spectral_norm: spectrally normalise every layer.
    weight_decay: decoupled (AdamW) weight decay used when training the critic.
    """

    kind: str = "auto"
    channels: int = 16
    kernel: int = 3
    conv_layers: int = 2
    hidden: int = 256
    mlp_layers: int = 2
    dropout: float = 0.1
    strip: int = 2
    relative_channels: bool = False
    rank: int = 16
    value_hidden: int = 32
    gaussian_term: bool = False
    gaussian_inputs: bool = False
    spectral_norm: bool = False
    weight_decay: float = 0.01

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"critic.kind: must be one of {KINDS}, got {self.kind!r}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"critic.kernel: must be odd and ≥ 1, got {self.kernel}")
        if min(self.channels, self.conv_layers, self.hidden, self.mlp_layers, self.rank, self.value_hidden) < 1:
            raise ConfigError("critic.channels, conv_layers, hidden, mlp_layers, rank, value_hidden: must be ≥ 1")
        if self.strip < 0:
            raise ConfigError(f"critic.strip: must be ≥ 0, got {self.strip}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"critic.dropout: must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise ConfigError(f"critic.weight_decay: must be ≥ 0, got {self.weight_decay}")
        if self.gaussian_term and self.kind != "bilinear":
            raise ConfigError(f"critic.gaussian_term: only the bilinear critic has one, got kind {self.kind!r}")



@dataclass(frozen=True)
class StepSettings:
    """How one path step's critic is trained and scored .

    critic: architecture and regularisation (a dict is accepted, e.g. from a config file).
    max_iterations: iteration budget (Adam steps).
    substeps_per_batch, rows_per_substep, q_per_p: each iteration sums the DV bounds of
        this many random sub-steps, each on this many data rows and q_per_p resampled
        rows per data row.
    learning_rate: AdamW learning rate (weight decay from ``critic.weight_decay``).
    final_lr_fraction: the learning rate falls on a cosine to this fraction of ``learning_rate`` at
        ``max_iterations`` (1: constant). A falling rate lets the critic settle instead of wandering
        at the noise level of its batches, which also makes the validation curve, hence the
        stopping, less noisy.
    loss: what the critic is trained on: "dv" (minus the summed DV bounds) or "logistic" (the
        balanced logistic loss of telling P rows from Q rows, minimised by the same log p/q); the
        held-out score is the DV bound either way.
    val_fraction: share of the images held out for validation and the final score (folds = 1).
    folds: 1 holds out ``val_fraction``; k ≥ 2 cross-fits k critics, each scored on the fold it
        was not trained on, so every image is scored (k times the training).
    eval_every, patience: validate every eval_every iterations; stop after ``patience``
        validations without improving the best summed validation bound.
    eval_substeps: validate on a fixed seeded subset of at most this many sub-steps
        (the sum rescaled to the whole block); None uses all.
    eval_resamplings: resampled Q rows per validation image in each validation (fixed).
    final_resamplings: fresh resamplings of the validation split for the final score.
    checkpoint_every: iterations between checkpoints (when a checkpoint path is given).
    on_failed_critic: what a step does when its trained critic's held-out bound is not above
        0 (NaN, diverged, or worse than a constant): "constant" falls back to f_k = 0 (D_k = 0,
        recorded with the reason), "error" stops with an InputError.
    """

    critic: CriticSettings = field(default_factory=CriticSettings)
    max_iterations: int = 600
    substeps_per_batch: int = 8
    rows_per_substep: int = 32
    q_per_p: int = 2
    learning_rate: float = 3e-3
    final_lr_fraction: float = 1.0
    loss: str = "dv"
    val_fraction: float = 0.2
    folds: int = 1
    eval_every: int = 50
    patience: int = 4
    eval_substeps: int | None = 64
    eval_resamplings: int = 2
    final_resamplings: int = 4
    checkpoint_every: int = 50
    on_failed_critic: str = "constant"

    def __post_init__(self):
        if isinstance(self.critic, dict):
            object.__setattr__(self, "critic", CriticSettings(**self.critic))
        positive = ("folds", "max_iterations", "substeps_per_batch", "rows_per_substep", "q_per_p", "eval_every",
                    "patience", "eval_resamplings", "final_resamplings", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"path.{name}: must be ≥ 1, got {getattr(self, name)}")
        if self.eval_substeps is not None and self.eval_substeps < 1:
            raise ConfigError(f"path.eval_substeps: must be ≥ 1 or null, got {self.eval_substeps}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"path.val_fraction: must be in (0, 1), got {self.val_fraction}")
        if not 0 < self.final_lr_fraction <= 1:
            raise ConfigError(f"path.final_lr_fraction: must be in (0, 1], got {self.final_lr_fraction}")
        if self.learning_rate <= 0:
            raise ConfigError(f"path.learning_rate: must be > 0, got {self.learning_rate}")
        if self.loss not in LOSSES:
            raise ConfigError(f"path.loss: must be one of {LOSSES}, got {self.loss!r}")
        if self.on_failed_critic not in ("constant", "error"):
            raise ConfigError(f"path.on_failed_critic: must be 'constant' or 'error', got {self.on_failed_critic!r}")


# The budget of `dualdiv estimate` and `estimate_tc` (its `--budget thorough`, the default there; the
# pipeline keeps StepSettings()): the bilinear critic with channel-relative global inputs and no dropout
# (dropout draws on the global RNG, which would keep the folds off threads), 1500 iterations with the
# learning rate annealed to 5 % and patience long enough to run the whole schedule (patience 5 stopped it
# at 1000 of 3000 iterations with the rate still high: −0.5 nats at 8 × 8), cross-fitted over 5 folds
# so that every image is scored (one 20 % split scatters ±8 % at TC 20 even with the true critic), and the
# fitted Gaussian term, which the network then corrects, seeing the fit among its inputs (one critic on
# 6 000 fresh images, 8 × 8: 57.5 vs 55.7 nats at TC 60, true 60.1; 19.3 either way at TC 20; used from
# 4 training images a pixel, critics.GAUSSIAN_TERM_IMAGES_PER_PIXEL).
# Measured in benchmarks/ESTIMATE_GAUSSIAN.md ("The default of `dualdiv estimate`").
THOROUGH_TRAINING = StepSettings(critic=CriticSettings(kind="bilinear", relative_channels=True, dropout=0.0,
                                                        gaussian_term=True, gaussian_inputs=True),
                                 max_iterations=1500, eval_every=100, patience=15, final_lr_fraction=0.05,
                                 folds=5)


def resolve_critic(settings: StepSettings, vectors: bool = False) -> StepSettings:
    """``settings`` with critic kind "auto" made concrete: an MLP for (n, d) vectors, else the conv critic."""
    if settings.critic.kind != "auto":
        return settings
    return replace(settings, critic=replace(settings.critic, kind="mlp" if vectors else "conv"))
