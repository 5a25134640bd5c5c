"""Clusters in the dual space: recovery of separated clusters, no false cuts on structureless data."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from dualdiv.estimators.clusters import ClusterSettings, cut_scores, find_clusters
from dualdiv.evaluation.metrics import knn_kl_divergence

FAST = ClusterSettings(n_permutations=300, scales=(8, 16))


def three_clusters(seed, n_per=30, d=12):
    """Images (3·n_per, 3, d/3) of 3 separated Gaussian clusters and the known critic F (cluster log-ratio)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, d)) * 3.0
    labels = np.repeat(np.arange(3), n_per)
    x = centres[labels] + rng.normal(size=(len(labels), d))
    F = labels * 5.0 + rng.normal(scale=0.5, size=len(labels))  # known critic: ordered by cluster
    return x.reshape(len(x), 3, d // 3), F, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_separated_clusters_are_recovered(seed):
    images, F, labels = three_clusters(seed)
    result = find_clusters(F, images, FAST, seed=seed)
    assert result["n_clusters"] == 3
    assert adjusted_rand_score(labels, result["membership"]) >= 0.9


def test_no_structure_no_cut_over_seeds():
    false_cuts = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        images = rng.normal(size=(80, 3, 4))
        F = rng.normal(size=80)  # a critic that carries no cluster information
        false_cuts += find_clusters(F, images, FAST, seed=seed)["n_clusters"] > 1
    assert false_cuts <= 1  # α = 0.01 (only the root is tested): at most one false cut in 10 seeds


def test_cut_scores_peak_at_gap():
    f = np.sort(np.concatenate([np.zeros(20), np.full(30, 10.0)]))
    assert int(np.nanargmax(cut_scores(f, 5))) == 20


def test_knn_divergence_gaussians():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2000, 2)), rng.normal(loc=[1.0, 0.0], size=(2000, 2))
    assert knn_kl_divergence(x, y) == pytest.approx(0.5, abs=0.1)  # KL of unit Gaussians 1 apart = 0.5


def test_same_seed_same_tree():
    images, F, _ = three_clusters(5)
    assert find_clusters(F, images, FAST, seed=1) == find_clusters(F, images, FAST, seed=1)
