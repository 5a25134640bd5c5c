"""Clusters in the one-dimensional dual space F.

Samples are sorted by their dual value F(x). Two levels:

*Coarse* (the authors' cut search): for every cut position with at least
``min_fraction`` of the samples on each side, score the symmetric "max" DV
divergence between the samples above (A) and below (B) with F as the critic,

    D_max(A‖B) + D_max(B‖A) = [mean_A F − max_B F + log n_B] + [−mean_B F + min_A F + log n_A],

(−F is the critic of the reverse direction), take the best cut and recurse into
both sides. Prefix sums make one level O(n); with the sort, the search is O(n log n), and a
localized test costs O(k²) whatever n (its neighbours in F are a slice of the sorted order).

*Localized* (the significance of a cut): take the k samples just below and the k
just above the cut in F order, estimate the divergence between those two small
sets in data space with the Wang–Kulkarni–Verdú k-NN estimator on a PCA
projection (symmetrised; the axes from a random subset when n is large, :func:`pca_projection`),
and calibrate it by a permutation null (side labels
shuffled). Several k give a multi-scale view; a cut is kept when its
Bonferroni-adjusted (over scales) p-value is below ``alpha`` at some scale, and
only kept cuts are split further. The kept cuts define the cluster tree; its
leaves are the clusters. (A permutation test of k against k samples cannot give
p below ~2/C(2k, k): k ≥ 6 is needed for α = 0.01.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.knn import knn_kl_divergence


@dataclass(frozen=True)
class ClusterSettings:
    """min_fraction: smallest share of a node's samples on each side of a cut (coarse level).
    min_size: smallest number of samples on each side of a cut.
    scales: k values of the localized test (neighbours in F on each side).
    alpha: significance level of a cut (Bonferroni across its scales; a node's
        children are tested only when its own cut is kept, so on data without
        structure only the root is tested and the false-cut rate is ≤ alpha).
    n_permutations: permutations of the null of each localized test.
    n_components: PCA dimensions of the data-space projection.
    max_depth: depth limit of the recursion.
    """

    min_fraction: float = 0.1
    min_size: int = 5
    scales: tuple[int, ...] = (8, 16, 32)
    alpha: float = 0.01
    n_permutations: int = 500
    n_components: int = 5
    max_depth: int = 4

    def __post_init__(self):
        if not 0 < self.min_fraction < 0.5:
            raise ConfigError(f"localize.min_fraction: must be in (0, 0.5), got {self.min_fraction}")
        if not self.scales or min(self.scales) < 2:
            raise ConfigError(f"localize.scales: need k ≥ 2, got {self.scales}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"localize.alpha: must be in (0, 1), got {self.alpha}")
        if self.n_permutations < 20 or self.n_components < 1 or self.min_size < 2 or self.max_depth < 1:
            raise ConfigError("localize: n_permutations ≥ 20, n_components ≥ 1, min_size ≥ 2, max_depth ≥ 1")


# ------------------------------------------------------------------------- coarse

def cut_scores(f_sorted: np.ndarray, min_side: int) -> np.ndarray:
    """Symmetric max-DV score of every cut of ascending ``f_sorted`` (n,); NaN where a side < min_side.

    Entry j scores the cut between positions j−1 and j (below = f[:j], above = f[j:]).
    """
    n = len(f_sorted)
    j = np.arange(n + 1)
    prefix = np.concatenate([[0.0], np.cumsum(f_sorted)])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_below = prefix[j] / j
        mean_above = (prefix[n] - prefix[j]) / (n - j)
        max_below = np.concatenate([[np.nan], f_sorted])  # f sorted: max of f[:j] is f[j−1]
        min_above = np.concatenate([f_sorted, [np.nan]])  # min of f[j:] is f[j]
        scores = (mean_above - max_below + np.log(j)) + (-mean_below + min_above + np.log(n - j))
    scores[(j < min_side) | (n - j < min_side)] = np.nan
    return scores


# ---------------------------------------------------------------------- localized

def symmetric_divergence(a: np.ndarray, b: np.ndarray) -> float:
    """D(A‖B) + D(B‖A) by :func:`dualdiv.estimators.knn.knn_kl_divergence` (k = 1), nats."""
    return knn_kl_divergence(a, b) + knn_kl_divergence(b, a)


def local_test(below: np.ndarray, above: np.ndarray, n_permutations: int,
               rng: np.random.Generator) -> tuple[float, float]:
    """Symmetric k-NN divergence between two small sets (k, d) and its permutation p-value.

    p = (1 + #{null ≥ observed}) / (1 + n_permutations), the null shuffling side labels.
    """
    observed = symmetric_divergence(below, above)
    pooled = np.concatenate([below, above])
    n_below = len(below)
    null = np.empty(n_permutations)
    for i in range(n_permutations):
        order = rng.permutation(len(pooled))
        null[i] = symmetric_divergence(pooled[order[:n_below]], pooled[order[n_below:]])
    return observed, float((1 + np.sum(null >= observed)) / (1 + n_permutations))


PCA_FIT_ELEMENTS = 2**23  # pixels × images of the float64 matrix the principal axes are fitted on (64 MiB)


def pca_projection(images: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Images (n, ...) flattened, centred and projected on their first principal axes: (n, c).

    Up to ⌊:data:`PCA_FIT_ELEMENTS` / pixels⌋ images (4 681 of 14 × 128; 297 of 168 × 168) the axes
    are those of all of them (an exact SVD); beyond, of that many drawn at random (``seed``; the leading
    axes by a randomized SVD), and every image is projected in batches of that size, so time and memory
    grow linearly in n.
    """
    n = len(images)
    n_pixels = int(np.prod(images.shape[1:]))
    fit_rows = max(n_components + 2, PCA_FIT_ELEMENTS // max(1, n_pixels))
    if n <= fit_rows:
        flat = images.reshape(n, -1).astype(np.float64)
        flat = flat - flat.mean(axis=0)
        n_components = min(n_components, len(flat) - 1, flat.shape[1])
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        return flat @ vt[:n_components].T
    from sklearn.utils.extmath import randomized_svd

    pick = np.sort(np.random.default_rng(seed).choice(n, fit_rows, replace=False))
    sample = images[pick].reshape(fit_rows, -1).astype(np.float64)
    mean = sample.mean(axis=0)
    sample -= mean
    n_components = min(n_components, fit_rows - 1, n_pixels)
    # the leading axes only (no full SVD workspace of the (fit_rows, P) matrix)
    axes = randomized_svd(sample, n_components, n_iter=7, random_state=seed)[2].T  # (P, c)
    del sample
    return np.concatenate([(images[a:a + fit_rows].reshape(-1, n_pixels).astype(np.float64) - mean) @ axes
                           for a in range(0, n, fit_rows)])


# -------------------------------------------------------------------------- tree

def find_clusters(F: np.ndarray, images: np.ndarray, settings: ClusterSettings = ClusterSettings(),
                  seed: int = 0) -> dict:
    """Cluster tree of samples by their dual values.

    F: (n,) dual values; images: (n, ...) the same samples in data space.
    Returns a JSON-serialisable dict: ``cuts`` (every tested cut: F value, position
    in F order, depth, coarse score, per-scale local divergence / p-value / adjusted
    p, ``kept`` and the smallest significant ``scale`` k), ``tree`` (nested nodes:
    [start, stop) positions in F order, F range, n, children), ``boundaries``
    (sorted F values of the kept cuts) and ``membership`` (leaf index per sample,
    leaves numbered in increasing F).
    """
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 1 or len(F) != len(images):
        raise InputError(f"F must be (n,) aligned with images, got {F.shape} and {len(images)} images")
    if not np.isfinite(F).all():
        raise InputError("F contains NaN or infinite values (the path critics diverged?)")
    if len(F) < 2 * settings.min_size:
        raise InputError(f"{len(F)} samples: too few to look for clusters (need {2 * settings.min_size})")
    rng = np.random.default_rng(seed)
    order = np.argsort(F, kind="stable")
    f_sorted = F[order]
    projected = pca_projection(images, settings.n_components, seed)[order]
    cuts: list[dict] = []

    def split(start: int, stop: int, depth: int) -> dict:
        node = {"start": start, "stop": stop, "F_min": float(f_sorted[start]),
                "F_max": float(f_sorted[stop - 1]), "n": stop - start, "children": []}
        size = stop - start
        min_side = max(settings.min_size, math.ceil(settings.min_fraction * size))
        if depth >= settings.max_depth or size < 2 * min_side:
            return node
        scores = cut_scores(f_sorted[start:stop], min_side)
        if np.all(np.isnan(scores)):
            return node
        j = int(np.nanargmax(scores))
        position = start + j
        cut = {"position": position, "F": float((f_sorted[position - 1] + f_sorted[position]) / 2),
               "depth": depth, "coarse_score": float(scores[j]), "scales": []}
        for k in settings.scales:
            k_eff = min(k, j, size - j)
            if k_eff < 2 or any(s["k"] == k_eff for s in cut["scales"]):
                continue
            divergence, p = local_test(projected[position - k_eff:position], projected[position:position + k_eff],
                                       settings.n_permutations, rng)
            cut["scales"].append({"k": k_eff, "divergence": divergence, "p_value": p})
        # Bonferroni across this cut's scales; children are tested only below a kept cut.
        for scale in cut["scales"]:
            scale["p_adjusted"] = min(1.0, scale["p_value"] * len(cut["scales"]))
        significant = [s["k"] for s in cut["scales"] if s["p_adjusted"] < settings.alpha]
        cut["kept"], cut["scale"] = bool(significant), min(significant, default=None)
        cuts.append(cut)
        node["cut"] = len(cuts) - 1
        if cut["kept"]:
            node["children"] = [split(start, position, depth + 1), split(position, stop, depth + 1)]
        return node

    tree = split(0, len(F), 0)
    boundaries = sorted(c["F"] for c in cuts if c["kept"])
    membership = np.searchsorted(np.asarray(boundaries), F, side="right")
    return {"cuts": cuts, "tree": tree, "boundaries": boundaries, "membership": membership.tolist(),
            "n_clusters": len(boundaries) + 1, "settings": {**asdict(settings), "seed": seed}}


def assign(F: np.ndarray, boundaries: list[float]) -> np.ndarray:
    """Cluster index of each dual value given the kept cut values (ascending)."""
    return np.searchsorted(np.asarray(boundaries), np.asarray(F), side="right")
