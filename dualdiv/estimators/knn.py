"""k-nearest-neighbour estimators of divergence and entropy on sample sets (nats).

Shared by the local cluster tests (:mod:`dualdiv.estimators.clusters`), the walks'
novelty check and the evaluation metrics. Samples are ``(n, d)`` rows or images
``(n, H, W)`` (flattened).

- **kNN KL** (Wang, Kulkarni & Verdú 2009, IEEE Trans. Inf. Theory 55:2392), for
  n samples of P and m of Q in d dimensions, ρ_k(i) the distance from p_i to its
  k-th neighbour among the other p's and ν_k(i) to its k-th neighbour among the q's:
  D̂(P‖Q) = (d/n) Σ_i log(ν_k(i)/ρ_k(i)) + log(m/(n−1)).
- **Entropy** (Kozachenko & Leonenko 1987): Ĥ = ψ(n) − ψ(k) + log V_d + (d/n) Σ_i log ρ_k(i),
  V_d the volume of the unit d-ball.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist
from scipy.special import digamma, gammaln
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from dualdiv.core.errors import InputError


def flatten(images) -> np.ndarray:
    """(n, H, W) or (n, d) → (n, d) float64."""
    x = np.asarray(images, dtype=np.float64)
    return x.reshape(len(x), -1)


def distinct_rows(x) -> tuple[np.ndarray, int]:
    """Indices of the rows of x (n, ...) without exact repeats (first occurrences, in order); how many repeat."""
    _, first = np.unique(flatten(x), axis=0, return_index=True)
    return np.sort(first), len(x) - len(first)


def _kth_distances(points: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """Distance of each query to its k-th nearest point (skipping the query itself when it is a point)."""
    kk = k + 1 if exclude_self else k
    dist, _ = cKDTree(points).query(queries, k=kk)
    dist = dist.reshape(len(queries), kk)[:, -1]
    return np.maximum(dist, np.finfo(np.float64).tiny)  # log stays finite for coincident points


def knn_kl_divergence(p, q, k: int = 1) -> float:
    """Wang–Kulkarni–Verdú kNN estimate of D(P‖Q) in nats.

    p: (n, d) samples of P, n ≥ k + 1; q: (m, d) samples of Q, m ≥ k.
    D̂ = (d/n) Σ_i log(ν_k(i)/ρ_k(i)) + log(m/(n−1)).
    """
    p, q = flatten(p), flatten(q)
    n, d = p.shape
    if p.shape[1] != q.shape[1]:
        raise InputError(f"p and q differ in dimension: {p.shape[1]} vs {q.shape[1]}")
    if n < k + 1 or len(q) < k:
        raise InputError(f"kNN KL with k={k} needs ≥ {k + 1} samples of P and ≥ {k} of Q")
    rho = _kth_distances(p, p, k, exclude_self=True)
    nu = _kth_distances(q, p, k, exclude_self=False)
    return float(d * np.mean(np.log(nu) - np.log(rho)) + math.log(len(q) / (n - 1)))


def knn_entropy(x, k: int = 1) -> float:
    """Kozachenko–Leonenko differential entropy (nats) of samples x (n, d), n ≥ k + 1.

    Ĥ = ψ(n) − ψ(k) + log V_d + (d/n) Σ_i log ρ_k(i), V_d = π^{d/2} / Γ(d/2 + 1).
    """
    x = flatten(x)
    n, d = x.shape
    if n < k + 1:
        raise InputError(f"kNN entropy with k={k} needs ≥ {k + 1} samples, got {n}")
    rho = _kth_distances(x, x, k, exclude_self=True)
    log_unit_ball = 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1)
    return float(digamma(n) - digamma(k) + log_unit_ball + d * np.mean(np.log(rho)))


def fit_projection(train, n_components: int, seed: int = 0) -> PCA:
    """Whitened PCA of the flattened training images; at most n_train − 1 components."""
    flat = flatten(train)
    n_components = max(1, min(n_components, len(flat) - 1, flat.shape[1]))
    return PCA(n_components=n_components, whiten=True, random_state=seed).fit(flat)


def cluster_divergence(x, n_clusters: int = 2, k: int = 1, seed: int = 0) -> float:
    """Maximal kNN divergence between k-means clusters of x (n, d): max over i ≠ j of D̂(C_i‖C_j).

    Pairs whose clusters are too small for the estimator (|C_i| ≤ k or |C_j| < k) are
    skipped; NaN when none is left.
    """
    x = flatten(x)
    if len(x) < n_clusters:
        return float("nan")
    labels = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(x)
    clusters = [x[labels == c] for c in range(n_clusters)]
    values = [knn_kl_divergence(a, b, k) for i, a in enumerate(clusters) for j, b in enumerate(clusters)
              if i != j and len(a) >= k + 1 and len(b) >= k]
    return float(max(values)) if values else float("nan")


_DISTANCE_BLOCK = 2**22  # query × training distances held at once (32 MiB)


def closest_distances(images, train) -> np.ndarray:
    """(n,) Euclidean distance of each flattened image to its closest training image.

    Exact, by blocks of queries (at most ``_DISTANCE_BLOCK`` distances at once): memory does not grow with
    n × n_train, time is O(n · n_train · d)."""
    queries, reference = flatten(images), flatten(train)
    rows = max(1, _DISTANCE_BLOCK // max(1, len(reference)))
    return np.concatenate([cdist(queries[a:a + rows], reference).min(axis=1) for a in range(0, len(queries), rows)]
                          or [np.zeros(0)])


def closest_other_distances(images) -> np.ndarray:
    """(n,) Euclidean distance of each flattened image to its closest other image of the same set."""
    flat = flatten(images)
    return _kth_distances(flat, flat, 1, exclude_self=True)
