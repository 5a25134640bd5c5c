"""Independent realism critics: MiniRocket C2ST, TimeGAN's GRU discriminative score, per-pixel marginal errors.

Tolerances. Under the null (both sets from one distribution) an AUC on 2m out-of-fold scores has a standard
deviation of about √((2m + 1) / (12 m²)) (Hanley & McNeil 1982): 0.075 for the MiniRocket C2ST's 30 + 30
images, 0.15 for each GRU split's 8 + 8 held-out series (0.09 over its 3 splits). |AUC − 0.5| < 0.2 and
< 0.25 are ≈ 2.7 standard deviations; the seeds are fixed, so the tests are deterministic, not flaky.
"Clearly different" sets (white noise vs a noisy sinusoid of random phase, of equal variance per pixel) are
separated perfectly by either critic; ≥ 0.9 leaves room for a bad fold.
"""

import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.evaluation import utility
from dualdiv.evaluation.discriminators import gru_discriminative_score, marginal_errors, minirocket_c2st

needs_minirocket = pytest.mark.skipif(utility.minirocket_backend() is None,
                                      reason="MiniRocket needs aeon or sktime (dualdiv[utility])")


def white_noise(n: int, seed: int, shape=(3, 32)) -> np.ndarray:
    """(n, H, W) float32 standard normal images."""
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def sinusoids(n: int, seed: int, shape=(3, 32)) -> np.ndarray:
    """(n, H, W) float32: √2·0.9 sin(2π t/8 + random phase per channel) + 0.44 noise — unit variance per pixel."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, size=(n, shape[0], 1))
    wave = np.sqrt(2) * 0.9 * np.sin(2 * np.pi * np.arange(shape[1]) / 8 + phase)
    return (wave + np.sqrt(1 - 0.81) * rng.standard_normal((n, *shape))).astype(np.float32)


# ----------------------------------------------------------------------------- MiniRocket C2ST

FAST_ROCKET = {"repeats": 2, "folds": 3, "kernels": 84 * 3}  # few kernels: the tests' images are 3 × 32


@needs_minirocket
def test_minirocket_c2st_is_chance_for_one_distribution_and_one_for_different_ones():
    same = minirocket_c2st(white_noise(30, 1), white_noise(40, 2), seed=0, **FAST_ROCKET)
    assert abs(same["auc"] - 0.5) < 0.2 and same["n"] == 30  # balanced: 30 of each
    different = minirocket_c2st(white_noise(30, 1), sinusoids(30, 3), seed=0, **FAST_ROCKET)
    assert different["auc"] >= 0.9


@needs_minirocket
def test_minirocket_c2st_is_deterministic_for_a_seed():
    real, generated = white_noise(20, 1), sinusoids(25, 2) * 0.3 + white_noise(25, 3) * 0.95
    first = minirocket_c2st(real, generated, seed=4, **FAST_ROCKET)
    assert minirocket_c2st(real, generated, seed=4, **FAST_ROCKET) == first
    assert set(first) == {"auc", "auc_std", "n"}


def test_minirocket_c2st_without_a_backend_names_the_extra(monkeypatch):
    monkeypatch.setattr(utility, "minirocket_backend", lambda: None)
    with pytest.raises(ConfigError, match=r"aeon or sktime \(pip install 'dualdiv\[utility\]'\)"):
        minirocket_c2st(white_noise(10, 1), white_noise(10, 2))


@needs_minirocket
def test_minirocket_c2st_refuses_series_shorter_than_its_kernel():
    with pytest.raises(ConfigError, match="≥ 9 time points"):
        minirocket_c2st(white_noise(10, 1, (3, 8)), white_noise(10, 2, (3, 8)))
    with pytest.raises(InputError, match="shapes differ"):
        minirocket_c2st(white_noise(10, 1, (3, 16)), white_noise(10, 2, (2, 16)))


# ----------------------------------------------------------------------------- GRU discriminative score

FAST_GRU = {"splits": 3, "iterations": 60, "hidden": 8}


def test_gru_score_is_chance_for_one_distribution_and_one_for_different_ones():
    same = gru_discriminative_score(white_noise(40, 1), white_noise(50, 2), seed=0, **FAST_GRU)
    assert abs(same["auc"] - 0.5) < 0.25 and same["n"] == 40 and same["n_test"] == 16
    assert same["discriminative_score"] >= abs(same["accuracy"] - 0.5) - 1e-12  # the mean of |accuracy − 0.5|
    different = gru_discriminative_score(white_noise(40, 1), sinusoids(40, 3), seed=0, **FAST_GRU)
    assert different["auc"] >= 0.9 and different["accuracy"] >= 0.8
    assert different["discriminative_score"] >= 0.3  # TimeGAN's score: |accuracy − 0.5|, 0.5 at most


def test_gru_score_is_deterministic_for_a_seed_and_leaves_torch_state_alone():
    import torch

    real, generated = white_noise(20, 1), sinusoids(20, 2)
    before = torch.get_rng_state()
    first = gru_discriminative_score(real, generated, seed=3, splits=1, iterations=10, hidden=4)
    assert torch.equal(torch.get_rng_state(), before)  # the training ran in a forked RNG
    assert gru_discriminative_score(real, generated, seed=3, splits=1, iterations=10, hidden=4) == first


# ----------------------------------------------------------------------------- marginal errors

def test_marginal_errors_are_zero_for_identical_sets():
    images = white_noise(25, 1, (4, 16))
    assert marginal_errors(images, images[::-1]) == {"w1": 0.0, "ks": 0.0, "w1_max": 0.0, "ks_max": 0.0}


@pytest.mark.parametrize("counts", [False, True], ids=["continuous", "ties"])
def test_marginal_errors_match_scipy_per_pixel(counts):
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=(30, 2, 3)), rng.normal(0.5, 2.0, size=(45, 2, 3))
    if counts:  # count data: many equal values within and across the sets
        real, generated = rng.poisson(2.0, size=(30, 2, 3)), rng.poisson(3.0, size=(45, 2, 3))
    real, generated = real.astype(np.float32), generated.astype(np.float32)
    pixels = [(c, t) for c in range(2) for t in range(3)]
    w1 = [wasserstein_distance(real[:, c, t], generated[:, c, t]) for c, t in pixels]
    ks = [ks_2samp(real[:, c, t], generated[:, c, t]).statistic for c, t in pixels]
    out = marginal_errors(real, generated)
    assert out["w1"] == pytest.approx(np.mean(w1), rel=1e-6) and out["w1_max"] == pytest.approx(max(w1), rel=1e-6)
    assert out["ks"] == pytest.approx(np.mean(ks), rel=1e-9) and out["ks_max"] == pytest.approx(max(ks), rel=1e-9)


def test_marginal_errors_see_a_shift_in_units_of_the_images():
    images = white_noise(50, 1, (2, 8))
    shifted = marginal_errors(images, images + 0.5)
    assert shifted["w1"] == pytest.approx(0.5, rel=1e-5)  # W1 of a translate is the translation
    assert shifted["ks"] > 0.1
