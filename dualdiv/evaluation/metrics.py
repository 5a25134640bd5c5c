"""Every metric of generated images against the held-out real split.

Images are ``(n, H, W)`` float32 in the normalised units of ``tiles.h5`` (H =
channels, W = time). ``generated`` is judged against ``test`` (the held-out real
split); ``train`` (the real images the generator was fitted on) serves only where
the definition needs it: the distance to the closest training record, and the
fitted references (PCA projection, feature standardisation) so that no compared
set shapes its own yardstick. All divergences and entropies are in nats.

Definitions (``x`` generated, ``y`` held-out real, ``t`` training):

- **Projection.** PCA fitted on the flattened training images, whitened (each
  component has unit variance on ``t``); KL is invariant to it, and entropies of
  ``x`` and ``y`` shift by the same constant.
- **kNN KL** (Wang, Kulkarni & Verdú 2009, IEEE Trans. Inf. Theory 55:2392), for
  n samples of P and m of Q in d dimensions, ρ_k(i) the distance from p_i to its
  k-th neighbour among the other p's and ν_k(i) to its k-th neighbour among the q's:
  D̂(P‖Q) = (d/n) Σ_i log(ν_k(i)/ρ_k(i)) + log(m/(n−1)).
- **Entropy** (Kozachenko & Leonenko 1987): Ĥ = ψ(n) − ψ(k) + log V_d + (d/n) Σ_i log ρ_k(i),
  V_d the volume of the unit d-ball. Its bias depends on n, so H(x) is averaged
  over random subsets of x of the size of y.
- **Neural DV KL.** A spectrally normalised MLP critic of fixed size and iteration
  budget on the whitened projection (``dv_components``). Two folds over halves of
  x: the critic is fitted on one half of x and on t, and the DV bound is scored on
  the other half of x and on y (delta-method standard error,
  :func:`dualdiv.estimators.divergence.dv_stderr`); the folds are averaged. Spectral
  normalisation makes the critic ``dv_lipschitz``-Lipschitz, so its values cannot
  run away on a few far samples (an unconstrained critic read 10⁴–10⁵ nats on EEG
  references here); with ~20 held-out images the bound is a weak, noisy lower bound.
- **Maximal between-cluster divergence** of a set: k-means (``n_clusters``) on the
  projection, then max over ordered cluster pairs (i ≠ j) of the kNN KL D̂(C_i‖C_j);
  reported for x (subsets of the size of y, averaged) and y, and their gap.
  (The paper clusters in its dual coordinate; the projection makes the metric
  independent of any critic.)
- **Memorisation.** DCR = Euclidean distance of a flattened image to its closest
  training image. DCR ratio = median DCR(x) / median DCR(y) (≈ 1 as novel as new
  real data, ≪ 1 copies; the gate is ratio ≥ :data:`DCR_GATE`). Near-copy fraction =
  share of x with DCR below the 5th percentile of DCR(y). The same two in the
  standardised feature space (below), where a sample can copy a training sample's
  spectrum while being far in raw distance.
- **Features** (per image): per-channel log Welch spectra (Hann, ``welch_nperseg``,
  frequency in cycles per time step), the upper triangle of the channel
  correlation matrix over time, and the raw values. Each feature is standardised
  by its mean and standard deviation on ``t``; the "features" space (spectra +
  correlations, used for feature DCR and MMD) scales each block by 1/√(its size)
  so both blocks weigh alike in distances.
- **C2ST** (classifier two-sample test): logistic regression (standardised inputs,
  L2, C = 1) separating x from y, with x subsampled to the size of y in each
  repeat; out-of-fold decision values over stratified k folds give one AUC per
  repeat; mean and std over repeats. 0.5 = indistinguishable. On spectra,
  correlations, raw values, spectra + correlations ("features"), and all three
  ("combined").
- **Spectrum error**: mean over channels and frequencies of |mean log S(x) − mean log S(y)|
  (Welch, natural log). **Autocorrelation error**: mean over channels and lags 1..L
  of |mean ACF(x) − mean ACF(y)|. **Correlation error**: Frobenius norm of the
  difference of the mean per-image channel-correlation matrices (off-diagonal).
- **MMD**: unbiased MMD² with a Gaussian kernel (bandwidth = median pooled distance)
  and a permutation p-value, on the standardised features and on raw pixels.
- **TC gap**: |TC(x) − TC(y)| with an injected estimator (the project's path
  estimator, :func:`dualdiv.estimators.path.estimate_tc`), x subsampled to the size of y
  (``tc_reference="train"`` uses the training images as the real set instead).

- **Downstream utility** (labelled data, class-conditional samples): accuracy of a classifier trained on
  real (TRTR), generated (TSTR) or real + generated images (augmentation), tested on the held-out split —
  :mod:`dualdiv.evaluation.utility`, merged into ``eval/{method}.json`` by the evaluate stage
  (``utility*`` settings below).

Exact duplicate generated images are dropped before the kNN metrics (a continuous
generator has none; the ``copy`` reference draws with replacement, and duplicates
would send ρ to 0); their number is reported. Memorisation is DCR's job.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.features import (  # noqa: F401  (metrics of these features)
    FeatureSpace,
    autocorrelations,
    channel_correlations,
    feature_blocks,
    log_spectra,
)
from dualdiv.estimators.knn import (
    closest_distances,
    cluster_divergence,
    distinct_rows,
    fit_projection,
    knn_entropy,
    knn_kl_divergence,
)
from dualdiv.estimators.knn import (  # noqa: F401
    flatten as _flat,
)
from dualdiv.evaluation.utility import check_utility_settings

DCR_GATE = 0.8  # memorisation gate: DCR ratio ≥ 0.8
NEAR_COPY_QUANTILE = 0.05
FEATURE_SETS = ("spectra", "correlation", "raw", "features", "combined")

# ----------------------------------------------------------------------------- neural DV


def dv_kl(generated, train, test, reverse: bool = False, seed: int = 0, **critic) -> dict:
    """Held-out neural DV estimate of KL(generated‖real), or KL(real‖generated) with ``reverse``.

    generated (n ≥ 4, d), train (m, d), test (m', d ≥ 2): projected samples. Two folds
    over halves of the generated set; in each, the critic is fitted on one half and the
    real **training** samples and scored on the other half and the held-out **test**
    samples (so neither side is scored on what the critic saw; using the training
    images for fitting gives the critic 4× the real samples of a split test set).
    Returns {"kl", "stderr"}: the mean of the two folds, stderr √(se₁² + se₂²)/2.
    """
    from dualdiv.estimators.neural_dv import heldout_dv  # torch: imported when a DV metric is computed

    gen = _flat(generated)
    if len(gen) < 4:
        raise InputError("neural DV needs at least 4 generated samples")
    halves = np.array_split(np.random.default_rng(seed).permutation(len(gen)), 2)
    folds = []
    for fit, score in ((0, 1), (1, 0)):
        a_fit, b_fit, a_score, b_score = gen[halves[fit]], train, gen[halves[score]], test
        if reverse:
            a_fit, b_fit, a_score, b_score = b_fit, a_fit, b_score, a_score
        folds.append(heldout_dv(a_fit, b_fit, a_score, b_score, seed=seed + fit, **critic))
    return {"kl": float(np.mean([f["kl"] for f in folds])),
            "stderr": float(math.sqrt(sum(f["stderr"] ** 2 for f in folds)) / 2)}


# ----------------------------------------------------------------------------- memorisation

def _sq_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, m) squared Euclidean distances."""
    return (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T


def memorisation(generated, test, train) -> dict:
    """DCR ratio and near-copy fraction of generated (n, ...) vs held-out real (m, ...).

    Returns {"dcr_ratio", "near_copy_fraction", "dcr_median_generated", "dcr_median_real"}.
    """
    d_gen, d_real = closest_distances(generated, train), closest_distances(test, train)
    median_real = float(np.median(d_real))
    threshold = np.quantile(d_real, NEAR_COPY_QUANTILE)
    return {"dcr_ratio": float(np.median(d_gen) / median_real) if median_real > 0 else float("nan"),
            "near_copy_fraction": float(np.mean(d_gen < threshold)),
            "dcr_median_generated": float(np.median(d_gen)), "dcr_median_real": median_real}


def c2st_auc(x, y, seed: int = 0, repeats: int = 10, folds: int = 5, balance: bool = True) -> dict:
    """Classifier two-sample test: AUC of logistic regression telling x (n, d) from y (m, d).

    Each repeat subsamples x to m rows (``balance``), collects out-of-fold decision
    values over ``folds`` stratified folds and scores one AUC. Returns {"auc", "std"}.
    """
    x, y = _flat(x), _flat(y)
    folds = min(folds, len(x), len(y))
    if folds < 2:
        raise InputError("C2ST needs at least 2 samples on each side")
    rng = np.random.default_rng(seed)
    with threadpool_limits(limits=1):
        aucs = [_c2st_repeat(x, y, rng, folds, balance) for _ in range(repeats)]
    return {"auc": float(np.mean(aucs)), "std": float(np.std(aucs))}


def _c2st_repeat(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, folds: int, balance: bool) -> float:
    """One C2ST repeat: out-of-fold logistic-regression decision values → AUC."""
    xs = x[rng.choice(len(x), size=len(y), replace=False)] if balance and len(x) > len(y) else x
    features = np.concatenate([xs, y])
    labels = np.r_[np.ones(len(xs)), np.zeros(len(y))]
    scores = np.empty(len(labels))
    split = StratifiedKFold(folds, shuffle=True, random_state=int(rng.integers(2**31)))
    for fit, held in split.split(features, labels):
        scaler = StandardScaler().fit(features[fit])
        z_fit, z_held = _row_space(scaler.transform(features[fit]), scaler.transform(features[held]))
        model = LogisticRegression(C=1.0, max_iter=2000).fit(z_fit, labels[fit])
        scores[held] = model.decision_function(z_held)
    return float(roc_auc_score(labels, scores))


def _row_space(fit: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n, d) and (m, d) in coordinates of the fitted rows' span, when d > n: (n, r) and (m, r).

    An L2-penalised linear model's weights lie in the span of its training rows (any other part
    only adds to the penalty), so fitting on these coordinates gives the same decision values
    at a fraction of the cost when the features outnumber the rows (raw pixels: d = H·W).
    """
    if fit.shape[1] <= fit.shape[0]:
        return fit, held
    _, singular, basis = np.linalg.svd(fit, full_matrices=False)
    basis = basis[singular > singular[0] * 1e-10]  # (r, d), orthonormal rows spanning the fitted rows
    return fit @ basis.T, held @ basis.T


def mmd_test(x, y, seed: int = 0, permutations: int = 500) -> dict:
    """Unbiased MMD² (Gaussian kernel, bandwidth = median pooled distance) and permutation p-value.

    x: (n, d), y: (m, d), n, m ≥ 2. p = (1 + #{MMD²_perm ≥ MMD²}) / (1 + permutations).
    Returns {"mmd2", "pvalue", "bandwidth"}.
    """
    x, y = _flat(x), _flat(y)
    if len(x) < 2 or len(y) < 2:
        raise InputError("MMD needs at least 2 samples on each side")
    z = np.concatenate([x, y])
    sq = np.maximum(_sq_distances(z, z), 0)
    off = sq[np.triu_indices(len(z), k=1)]
    bandwidth = float(np.sqrt(np.median(off[off > 0]))) if (off > 0).any() else 1.0
    kernel = np.exp(-sq / (2 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)
    n, m = len(x), len(y)

    def statistic(is_x: np.ndarray) -> np.ndarray:  # is_x: (B, n + m) bool → (B,)
        a = is_x.astype(np.float64)
        b = 1.0 - a
        ka, kb = a @ kernel, b @ kernel  # (B, n + m)
        return ((ka * a).sum(1) / (n * (n - 1)) + (kb * b).sum(1) / (m * (m - 1))
                - 2 * (ka * b).sum(1) / (n * m))

    observed = statistic(np.r_[np.ones(n, bool), np.zeros(m, bool)][None])[0]
    rng = np.random.default_rng(seed)
    keys = rng.random((permutations, n + m))
    perm = keys.argsort(axis=1) < n  # first n of a random order are labelled x
    null = statistic(perm)
    return {"mmd2": float(observed), "pvalue": float((1 + np.sum(null >= observed)) / (1 + permutations)),
            "bandwidth": bandwidth}


def spectrum_error(x, y, nperseg: int | None = 64) -> float:
    """Mean over channels and frequencies of |mean log S(x) − mean log S(y)| (Welch, nats of power)."""
    return float(np.mean(np.abs(log_spectra(x, nperseg).mean(0) - log_spectra(y, nperseg).mean(0))))


def autocorrelation_error(x, y, max_lag: int | None = None) -> float:
    """Mean over channels and lags 1..max_lag of |mean ACF(x) − mean ACF(y)|; max_lag defaults to min(32, W//4)."""
    width = np.asarray(x).shape[-1]
    max_lag = max_lag or max(1, min(32, width // 4))
    return float(np.mean(np.abs(autocorrelations(x, max_lag).mean(0) - autocorrelations(y, max_lag).mean(0))))


def correlation_error(x, y) -> float:
    """Frobenius norm of the difference of the mean channel-correlation matrices of x and y."""
    return float(np.linalg.norm(channel_correlations(x).mean(0) - channel_correlations(y).mean(0)))


def gaussian_tc(x) -> dict:
    """Total correlation (nats) of a Gaussian fitted to x (n, d) or (n, H, W): −½ log det(correlation).

    A reference/stub estimator with the ``tc_estimator`` signature; exact for Gaussian data,
    needs n > d.
    """
    flat = _flat(x)
    corr = np.corrcoef(flat, rowvar=False)
    sign, logdet = np.linalg.slogdet(corr)
    return {"tc": float(-0.5 * logdet) if sign > 0 else float("inf"), "stderr": float("nan")}


# ----------------------------------------------------------------------------- evaluate


def tc_fields(real: Mapping | None, generated: Sequence[Mapping] | None, note: str) -> dict:
    """The TC entries of an evaluation from estimator results ({"tc", "stderr"}, nats): the
    real set's, the mean over generated subsets, and their gap; all None without results."""
    if real is None or not generated:
        return {"tc_generated": None, "tc_real": None, "tc_gap": None, "tc_note": note}
    tc_generated = _mean_finite(float(r["tc"]) for r in generated)
    return {"tc_real": float(real["tc"]), "tc_real_stderr": float(real.get("stderr", np.nan)),
            "tc_generated": tc_generated,
            "tc_generated_stderr": float(np.mean([float(r.get("stderr", np.nan)) for r in generated])),
            "tc_gap": abs(tc_generated - float(real["tc"])), "tc_note": note}



MAX_TWO_SAMPLE = 2000  # held-out images at most in the quadratic two-sample tests (MMD, C2ST)


def two_sample_subset(n: int, seed: int = 0, max_rows: int = MAX_TWO_SAMPLE) -> np.ndarray:
    """Indices of the held-out images the quadratic two-sample tests use: all ``n`` (in order) up to
    ``max_rows``, else a seeded subset of that size (sorted). MMD is O((n_gen + n)²) in time and memory and
    the C2ST folds O(n_gen + n) fits, so with generated images capped by ``max_generated`` both stay bounded
    whatever the test split's size; DCR (:func:`memorisation`) stays exact: O(n_gen · n_train) by blocks."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 19]).choice(n, max_rows, replace=False))


@dataclass(frozen=True)
class EvalSettings:
    """Sizes and budgets of the metrics (fixed across methods so their values compare).

    n_components: whitened PCA components for the kNN KL, entropy and cluster metrics.
    k: neighbours in the kNN estimators.
    repeats: random subsets of the generated images (size of the test split) for the
        entropy, cluster and TC metrics, and C2ST repeats.
    n_clusters: k-means clusters for the between-cluster divergence.
    dv_components, dv_iterations, dv_hidden, dv_lipschitz: the neural DV critic.
    c2st_folds, mmd_permutations, welch_nperseg: as named.
    max_generated: generated images used at most (a seeded subset beyond it).
    tc_reference: real images for TC(real): "test" (the held-out split, the rule for
        every metric) or "train" (more images, for when the test split is too small for
        the path estimator); TC(generated) uses random subsets of the same size.
    tc_repeats: generated subsets whose TC is averaged (each is one estimator run).
    utility: downstream utility of labelled generated images (:mod:`dualdiv.evaluation.utility`: TRTR, TSTR,
        augmentation): "auto" computes it where the tiles have labels (None values and a note where the samples
        have none), True also reports an unlabelled data set as undefined, False never.
    utility_classifier: "auto" (tangent space for EEG/MEG-like data with pyRiemann, else MiniRocket with aeon or
        sktime, else the scikit-learn fallback; :func:`dualdiv.evaluation.utility.resolve_classifier`),
        "tangent_space", "minirocket" or "logistic_features".
    utility_seeds: repeats of every classifier fit (own seed and generated subsample each).
    utility_k: augmentation sizes: real training split + k × its class counts of generated images.
    utility_kernels: MiniRocket kernels (its default, 10 000, in benchmarks/utility.py; fewer here: cost per
        evaluate job). utility_bootstrap: bootstrap resamples of the test images for the 95 % intervals.
    critics: realism critics on the raw series, independent of the generator's own features
        (:mod:`dualdiv.evaluation.discriminators`; none by default, they cost seconds to tens of seconds a job):
        "minirocket" (C2ST with MiniRocket features: ``c2st_auc_minirocket``; needs aeon or sktime), "gru"
        (TimeGAN's post-hoc discriminative score: ``gru_discriminative_score``, ``gru_auc``), "marginals"
        (per-pixel ``marginal_w1``, ``marginal_ks``). critic_kernels: MiniRocket kernels of the C2ST.
    """

    n_components: int = 8
    k: int = 1
    repeats: int = 10
    n_clusters: int = 2
    dv_components: int = 16
    dv_iterations: int = 300
    dv_hidden: int = 64
    dv_lipschitz: float = 2.0
    c2st_folds: int = 5
    mmd_permutations: int = 500
    welch_nperseg: int = 64
    max_generated: int = 1000
    tc_reference: str = "test"
    tc_repeats: int = 1
    utility: str | bool = "auto"
    utility_classifier: str = "auto"
    utility_seeds: int = 3
    utility_k: tuple[int, ...] = (1, 2, 5)
    utility_kernels: int = 2016
    utility_bootstrap: int = 1000
    critics: tuple[str, ...] = ()
    critic_kernels: int = 10_000

    def __post_init__(self):
        object.__setattr__(self, "utility_k", tuple(self.utility_k))  # YAML/JSON give a list
        object.__setattr__(self, "critics", tuple(self.critics))
        unknown = [c for c in self.critics if c not in INDEPENDENT_CRITICS]
        if unknown:
            raise ConfigError(f"evaluate.critics: unknown {', '.join(map(repr, unknown))}; expected some of "
                              f"{', '.join(INDEPENDENT_CRITICS)}")
        if self.critic_kernels < 84:
            raise ConfigError(f"evaluate.critic_kernels: MiniRocket needs ≥ 84 kernels, got {self.critic_kernels}")
        check_utility_settings(self.utility, self.utility_classifier, self.utility_seeds, self.utility_k,
                               self.utility_kernels, self.utility_bootstrap)
        if min(self.n_components, self.k, self.repeats, self.dv_components, self.dv_iterations,
               self.dv_hidden, self.mmd_permutations, self.welch_nperseg, self.max_generated, self.tc_repeats) < 1:
            raise ConfigError("evaluate: every size and budget must be ≥ 1")
        if self.n_clusters < 2 or self.c2st_folds < 2:
            raise ConfigError("evaluate: n_clusters and c2st_folds must be ≥ 2")
        if self.dv_lipschitz <= 0:
            raise ConfigError(f"evaluate.dv_lipschitz: must be > 0, got {self.dv_lipschitz}")
        if self.tc_reference not in ("test", "train"):
            raise ConfigError(f"evaluate.tc_reference: must be 'test' or 'train', got {self.tc_reference!r}")


INDEPENDENT_CRITICS = ("minirocket", "gru", "marginals")
# their ranked outputs (lower is better: AUC and score toward chance, distances toward 0)
CRITIC_METRICS = ("c2st_auc_minirocket", "gru_discriminative_score", "gru_auc", "marginal_w1", "marginal_ks")

# Direction of every ranked metric: "lower" is better (the generated set is closer to real).
DISTRIBUTION_METRICS = ("kl_dv_gen_real", "kl_dv_real_gen", "kl_knn_gen_real", "kl_knn_real_gen", "entropy_gap",
                        "cluster_divergence_gap")  # each on pixels and, with suffix _features, in the feature space
QUALITY_METRICS = (
    *DISTRIBUTION_METRICS, *(f"{m}_features" for m in DISTRIBUTION_METRICS),
    *(f"c2st_auc_{s}" for s in FEATURE_SETS), "spectrum_error", "autocorrelation_error", "correlation_error",
    "mmd2_features", "mmd2_pixels", "tc_gap", *CRITIC_METRICS,
)
MEMORISATION_METRICS = ("dcr_ratio", "dcr_ratio_features", "near_copy_fraction", "near_copy_fraction_features")


def metric_direction(metric: str) -> str | None:
    """Which way ``metric`` improves: "lower" (the quality metrics, near-copy fractions), "higher" (the
    downstream-utility accuracies and gains), or None (DCR ratios: ≈ 1 is best; counts, settings, TC values)."""
    if metric in QUALITY_METRICS or metric.startswith("near_copy_fraction"):
        return "lower"
    if metric.startswith(("tstr_", "augmentation_k")) and metric.endswith(("_balanced_accuracy", "_gain")):
        return "higher"
    return None


def _mean_finite(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _json_number(value):
    """Floats as JSON numbers; NaN/inf become None."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def evaluate(generated, test, train, seed: int = 0, settings: EvalSettings | None = None,
             tc_estimator: Callable[[np.ndarray], Mapping] | None = None) -> dict:
    """Every metric of ``generated`` vs the held-out real ``test`` images; ``train`` as the reference.

    generated, test, train: (n, H, W) in the normalised units of tiles.h5 (test ≥ 4,
    train ≥ 3 images). tc_estimator: callable (n, H, W) → {"tc", "stderr", ...}, e.g.
    ``lambda x: dualdiv.estimators.path.estimate_tc(x, ...)``; without it the TC metrics read None
    and ``tc_note`` says why. Returns a flat dict of JSON-serialisable numbers (None
    where a metric is undefined) plus ``settings``.
    """
    with threadpool_limits(limits=1):  # many small BLAS/OpenMP calls: threads only add overhead here
        return _evaluate(generated, test, train, seed, settings or EvalSettings(), tc_estimator)


def _distribution_metrics(gen: np.ndarray, test: np.ndarray, train: np.ndarray, unique: np.ndarray, seed: int,
                          seeds: list[int], settings: EvalSettings) -> dict:
    """kNN KL both ways, entropy gap, cluster-divergence gap (whitened PCA of ``train``) and held-out neural
    DV KL both ways (its own projection), for rows (n, d); ``unique``: the generated rows without repeats."""
    out = {}
    projection = fit_projection(train, settings.n_components, seed)
    p_gen, p_test = projection.transform(gen[unique]), projection.transform(test)
    out["projection_components"] = int(projection.n_components_)
    k = settings.k
    out["kl_knn_gen_real"] = knn_kl_divergence(p_gen, p_test, k) if len(p_gen) > k else float("nan")
    out["kl_knn_real_gen"] = knn_kl_divergence(p_test, p_gen, k) if len(p_gen) >= k else float("nan")
    rng = np.random.default_rng(seeds[0])
    m = min(len(p_gen), len(p_test))
    subsets = [rng.choice(len(p_gen), m, replace=False) for _ in range(settings.repeats)]
    out["entropy_real"] = knn_entropy(p_test, k)
    out["entropy_generated"] = _mean_finite(knn_entropy(p_gen[s], k) for s in subsets) if m > k else float("nan")
    out["entropy_gap"] = abs(out["entropy_generated"] - out["entropy_real"])
    out["cluster_divergence_real"] = cluster_divergence(p_test, settings.n_clusters, k, seeds[1])
    out["cluster_divergence_generated"] = _mean_finite(
        cluster_divergence(p_gen[s], settings.n_clusters, k, seeds[1]) for s in subsets)
    out["cluster_divergence_gap"] = abs(out["cluster_divergence_generated"] - out["cluster_divergence_real"])
    dv_projection = fit_projection(train, settings.dv_components, seed)
    d_gen, d_train, d_test = (dv_projection.transform(v) for v in (gen, train, test))
    critic = {"iterations": settings.dv_iterations, "hidden": settings.dv_hidden, "lipschitz": settings.dv_lipschitz}
    for name, reverse in (("gen_real", False), ("real_gen", True)):
        result = dv_kl(d_gen, d_train, d_test, reverse, seeds[2], **critic) if len(d_gen) >= 4 else \
            {"kl": np.nan, "stderr": np.nan}
        out[f"kl_dv_{name}"], out[f"kl_dv_{name}_stderr"] = result["kl"], result["stderr"]
    return out


def _evaluate(generated, test, train, seed: int, settings: EvalSettings, tc_estimator) -> dict:
    gen = check_images(generated, "generated", dtype=np.float64)
    test = check_images(test, "test", min_images=4, dtype=np.float64)
    train = check_images(train, "train", min_images=3, dtype=np.float64)
    if not gen.shape[1:] == test.shape[1:] == train.shape[1:]:
        raise InputError(f"image shapes differ: generated {gen.shape[1:]}, test {test.shape[1:]}, "
                         f"train {train.shape[1:]}")
    streams = iter(np.random.SeedSequence(seed).generate_state(16))  # one independent seed per metric
    if len(gen) > settings.max_generated:
        gen = gen[np.random.default_rng(next(streams)).choice(len(gen), settings.max_generated, replace=False)]
    else:
        next(streams)
    out: dict = {"n_generated": len(gen), "n_test": len(test), "n_train": len(train)}

    # memorisation: raw and feature space
    out |= memorisation(gen, test, train)
    features = FeatureSpace(train, settings.welch_nperseg)
    feat_gen, feat_test, feat_train = (features.transform(v) for v in (gen, test, train))
    mem_features = memorisation(feat_gen, feat_test, feat_train)
    out["dcr_ratio_features"] = mem_features["dcr_ratio"]
    out["near_copy_fraction_features"] = mem_features["near_copy_fraction"]
    out["memorised"] = bool(out["dcr_ratio"] < DCR_GATE)  # the memorisation gate
    out["memorised_features"] = bool(out["dcr_ratio_features"] < DCR_GATE)

    # distribution metrics (kNN KL, entropy, clusters, neural DV), on pixels and in the feature space
    unique, out["n_duplicates"] = distinct_rows(gen)
    seeds = [int(next(streams) % 2**31) for _ in range(3)]
    spaces = {"": (_flat(gen), _flat(test), _flat(train)), "_features": (feat_gen, feat_test, feat_train)}
    for suffix, rows in spaces.items():
        metrics = _distribution_metrics(*rows, unique, seed, seeds, settings)
        out |= {f"{key}{suffix}": value for key, value in metrics.items()}

    # discriminative scores
    blocks_gen, blocks_test = feature_blocks(gen, settings.welch_nperseg), feature_blocks(test, settings.welch_nperseg)
    sets = {"spectra": ["spectra"], "correlation": ["correlation"], "raw": ["raw"],
            "features": ["spectra", "correlation"], "combined": ["spectra", "correlation", "raw"]}
    c2st_seed = int(next(streams) % 2**31)
    held = two_sample_subset(len(test), seed)  # all of them up to MAX_TWO_SAMPLE
    for name, names in sets.items():
        result = c2st_auc(np.concatenate([blocks_gen[b] for b in names], axis=1),
                          np.concatenate([blocks_test[b] for b in names], axis=1)[held],
                          c2st_seed, settings.repeats, settings.c2st_folds)
        out[f"c2st_auc_{name}"], out[f"c2st_auc_{name}_std"] = result["auc"], result["std"]

    # independent critics on the raw series (opt-in; seeded from the C2ST's seed: the other metrics are unchanged)
    out |= _independent_critics(gen, test[held], c2st_seed, settings)

    # summary-statistic errors
    out["spectrum_error"] = spectrum_error(gen, test, settings.welch_nperseg)
    out["autocorrelation_error"] = autocorrelation_error(gen, test)
    out["correlation_error"] = correlation_error(gen, test)

    # MMD
    mmd_seed = int(next(streams) % 2**31)
    for name, (a, b) in {"features": (feat_gen, feat_test), "pixels": (_flat(gen), _flat(test))}.items():
        result = mmd_test(a, b[held], mmd_seed, settings.mmd_permutations)
        out[f"mmd2_{name}"], out[f"mmd_pvalue_{name}"] = result["mmd2"], result["pvalue"]

    # total correlation (injected estimator)
    tc_rng = np.random.default_rng(next(streams))
    if tc_estimator is None:
        out |= tc_fields(None, None, "not available: no tc_estimator given")
    else:
        reference = test if settings.tc_reference == "test" else train
        n_tc = min(len(gen), len(reference))
        real = tc_estimator(reference[tc_rng.choice(len(reference), n_tc, replace=False)].astype(np.float32))
        generated_tc = [tc_estimator(gen[tc_rng.choice(len(gen), n_tc, replace=False)].astype(np.float32))
                        for _ in range(settings.tc_repeats)]
        out |= tc_fields(real, generated_tc, f"estimated on {n_tc} images per set, real = {settings.tc_reference} "
                                             "split")
    out = {key: _json_number(value) for key, value in out.items()}
    out["settings"] = {key: list(value) if isinstance(value, tuple) else value  # as JSON reads it back
                       for key, value in asdict(settings).items()}
    return out


def _independent_critics(gen: np.ndarray, test: np.ndarray, seed: int, settings: EvalSettings) -> dict:
    """The ``settings.critics`` metrics of generated (n, H, W) vs held-out real (m, H, W) images."""
    from dualdiv.evaluation import discriminators

    out: dict = {}
    if "minirocket" in settings.critics:
        result = discriminators.minirocket_c2st(test, gen, seed, settings.repeats, settings.c2st_folds,
                                                settings.critic_kernels)
        out["c2st_auc_minirocket"], out["c2st_auc_minirocket_std"] = result["auc"], result["auc_std"]
    if "gru" in settings.critics:
        result = discriminators.gru_discriminative_score(test, gen, seed)
        out |= {"gru_discriminative_score": result["discriminative_score"], "gru_accuracy": result["accuracy"],
                "gru_auc": result["auc"], "gru_auc_std": result["auc_std"]}
    if "marginals" in settings.critics:
        result = discriminators.marginal_errors(test, gen)
        out |= {"marginal_w1": result["w1"], "marginal_ks": result["ks"]}
    return out


# ----------------------------------------------------------------------------- reliability

REFERENCES = ("copy", "interpolate", "marginals")


def reliability(table: Mapping[str, Mapping], tc_tolerance: float = 0.1) -> dict[str, dict]:
    """Which metrics rank the references right on this data set.

    table: {method: evaluate() output}, with at least ``copy``, ``interpolate`` and
    ``marginals``. Rules:

    - quality metrics (lower is better): ``copy`` (real training images) must score
      strictly better than both ``interpolate`` (averaging) and ``marginals`` (lost
      dependence); TC gap additionally needs TC(marginals) ≈ 0, i.e.
      |TC(marginals)| ≤ tc_tolerance · TC(copy) (or ≤ 2 of its standard errors);
    - DCR ratios: ``copy`` flagged as memorised (ratio < DCR_GATE) and below
      ``interpolate``; ``marginals`` not flagged;
    - near-copy fractions: ``copy`` above ½ and above both other references.

    Returns {metric: {"reliable": bool | None, "reason": str}} (quality metrics also say
    ``detects_averaging``: copy < interpolate, and ``detects_lost_dependence``: copy <
    marginals); "reliable" is None where a value is missing (metric not computed).
    """
    missing = [r for r in REFERENCES if r not in table]
    if missing:
        raise InputError(f"reliability needs the references {', '.join(missing)} in the table")
    c, i, m = (table[r] for r in REFERENCES)
    verdicts: dict[str, dict] = {}

    def value(row, key):
        v = row.get(key)
        return None if v is None or not np.isfinite(v) else float(v)

    for key in QUALITY_METRICS:
        vc, vi, vm = value(c, key), value(i, key), value(m, key)
        if None in (vc, vi, vm):
            verdicts[key] = {"reliable": None, "reason": "not available for every reference"}
            continue
        problems = [f"copy {vc:.3g} not below {name} {v:.3g}" for name, v in (("interpolate", vi), ("marginals", vm))
                    if not vc < v]
        if key == "tc_gap":
            tc_m, tc_c = value(m, "tc_generated"), value(c, "tc_generated")
            se = value(m, "tc_generated_stderr") or 0.0
            if tc_m is None or tc_c is None or abs(tc_m) > max(tc_tolerance * abs(tc_c), 2 * se):
                problems.append(f"TC(marginals) = {tc_m} is not ≈ 0 (TC(copy) = {tc_c})")
        verdicts[key] = {"reliable": not problems, "detects_averaging": vc < vi, "detects_lost_dependence": vc < vm,
                         "reason": "; ".join(problems) or "ranks the references right"}

    for key in ("dcr_ratio", "dcr_ratio_features"):
        vc, vi, vm = value(c, key), value(i, key), value(m, key)
        if None in (vc, vi, vm):
            verdicts[key] = {"reliable": None, "reason": "not available for every reference"}
            continue
        problems = ([f"copy {vc:.3g} not flagged (≥ {DCR_GATE})"] if vc >= DCR_GATE else []) + \
                   ([f"copy {vc:.3g} not below interpolate {vi:.3g}"] if not vc < vi else []) + \
                   ([f"marginals {vm:.3g} flagged as memorised"] if vm < DCR_GATE else [])
        verdicts[key] = {"reliable": not problems, "reason": "; ".join(problems) or "ranks the references right"}

    for key in ("near_copy_fraction", "near_copy_fraction_features"):
        vc, vi, vm = value(c, key), value(i, key), value(m, key)
        if None in (vc, vi, vm):
            verdicts[key] = {"reliable": None, "reason": "not available for every reference"}
            continue
        problems = ([f"copy {vc:.3g} ≤ 0.5"] if vc <= 0.5 else []) + \
                   [f"copy {vc:.3g} not above {name} {v:.3g}" for name, v in (("interpolate", vi), ("marginals", vm))
                    if not vc > v]
        verdicts[key] = {"reliable": not problems, "reason": "; ".join(problems) or "ranks the references right"}
    return verdicts
