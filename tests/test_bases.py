"""Fitted bases: VAR recovery and stationary sampling, spectral cross-spectrum, Ledoit–Wolf, determinism."""

import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.generators import generator_class
from dualdiv.generators.bases import (
    GaussianLW,
    SpectralGaussian,
    VARGaussian,
    cross_periodogram,
    fit_var,
    var_autocovariance,
    var_loading,
)

# A stable 3-channel VAR(2) (companion spectral radius ≈ 0.8) with correlated innovations.
COEFS = np.array([[[0.5, 0.2, 0.0], [-0.1, 0.4, 0.1], [0.0, 0.3, 0.3]],
                  [[-0.2, 0.0, 0.1], [0.0, -0.1, 0.0], [0.1, 0.0, 0.2]]])
NOISE = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.1], [0.0, 0.1, 0.8]])


def simulate_var(coefs, noise, n, length, rng, burn=200):
    """(n, C, length) paths of a VAR started far in the past (burn-in ⇒ stationary)."""
    order, n_channels, _ = coefs.shape
    factor = np.linalg.cholesky(noise)
    y = np.zeros((n, burn + length, n_channels))
    for t in range(order, burn + length):
        y[:, t] = sum(y[:, t - 1 - i] @ coefs[i].T for i in range(order))
        y[:, t] += rng.standard_normal((n, n_channels)) @ factor.T
    return y[:, burn:].transpose(0, 2, 1)


def var_spectrum(coefs, noise, n_time):
    """True cross-spectral density S_k (K, C, C) of the VAR at the rfft frequencies 2πk/T."""
    order, n_channels, _ = coefs.shape
    out = []
    for k in range(n_time // 2 + 1):
        transfer = np.eye(n_channels) - sum(coefs[i] * np.exp(-2j * np.pi * k * (i + 1) / n_time)
                                            for i in range(order))
        inverse = np.linalg.inv(transfer)
        out.append(inverse @ noise @ inverse.conj().T)
    return np.array(out)


def test_registered():
    for key, cls in [("spectral", SpectralGaussian), ("var", VARGaussian), ("gaussian_lw", GaussianLW)]:
        assert generator_class(key) is cls


def test_var_fit_recovers_coefficients_and_order():
    rng = np.random.default_rng(0)
    series = simulate_var(COEFS, NOISE, 80, 120, rng)
    coefs, noise = fit_var(series, 2)
    np.testing.assert_allclose(coefs, COEFS, atol=0.05)  # ≈ 9000 time points: SE ≈ 0.01–0.015
    np.testing.assert_allclose(noise, NOISE, atol=0.05)
    fitted = VARGaussian(max_order=8).fit(series, seed=0)
    assert fitted.order_ in (2, 3) and fitted.shrink_ == 1.0  # held-out likelihood may add a spare lag
    scores = fitted.order_scores_  # held-out log-likelihood per time point, orders 1..8
    assert scores[1] - scores[0] > 10 * abs(scores[2] - scores[1])


def test_var_stationary_sampler_has_the_right_autocovariance():
    length = 24
    loading = var_loading(COEFS, NOISE, length).reshape(3, length, -1)  # (C, T, D): y = loading z
    gamma = var_autocovariance(COEFS, NOISE, max_lag=1)
    # exact covariance of the sampler at the first, a middle and the last time point
    for t in (0, 1, 11, length - 2):
        lag0 = loading[:, t] @ loading[:, t].T
        lag1 = loading[:, t + 1] @ loading[:, t].T  # E y_{t+1} y_tᵀ
        np.testing.assert_allclose(lag0, gamma[0], atol=1e-8)
        np.testing.assert_allclose(lag1, gamma[1], atol=1e-8)
    # and by Monte Carlo through the recursion's samples
    rng = np.random.default_rng(1)
    y = (loading @ rng.standard_normal((loading.shape[2], 4000))).transpose(2, 0, 1)  # (n, C, T)
    empirical0 = np.einsum("nc,nd->cd", y[:, :, 0], y[:, :, 0]) / len(y)
    empirical1 = np.einsum("nc,nd->cd", y[:, :, 1], y[:, :, 0]) / len(y)
    np.testing.assert_allclose(empirical0, gamma[0], atol=0.12)
    np.testing.assert_allclose(empirical1, gamma[1], atol=0.12)


def test_var_base_reproduces_lag_covariances_of_its_training_data():
    rng = np.random.default_rng(2)
    series = simulate_var(COEFS, NOISE, 60, 64, rng) + rng.normal(size=(60, 3, 1))  # per-sample offsets
    base = VARGaussian(max_order=6).fit(series.astype(np.float32), seed=0)
    images, records = base.sample(3000, seed=3)
    assert images.shape == (3000, 3, 64) and images.dtype == np.float32 and records[0] == {}

    def lag_cov(x, lag):
        r = x - x.mean(2, keepdims=True)
        return np.einsum("nct,ndt->cd", r[:, :, lag:], r[:, :, :x.shape[2] - lag]) / (len(x) * (x.shape[2] - lag))
    for lag in (0, 1):
        np.testing.assert_allclose(lag_cov(images, lag), lag_cov(series, lag), atol=0.1)
    # the channel means: the Ledoit–Wolf Gaussian of the training images' means
    means_cov = LedoitWolf().fit(series.mean(2)).covariance_
    np.testing.assert_allclose(np.cov(images.mean(2).T), means_cov, atol=0.1 * means_cov.diagonal().max())


def _spectrum(x):
    """Hann cross-periodogram (K, C, C) averaged over images, after removing each image's channel means."""
    coef = cross_periodogram(x - x.mean(2, keepdims=True))
    return np.einsum("nkc,nkd->kcd", coef, coef.conj()) / len(x)


def _power(s):
    return np.einsum("kcc->kc", s).real


def _coherence(s):
    return np.abs(s[:, 0, 1]) ** 2 / (s[:, 0, 0].real * s[:, 1, 1].real)


def test_spectral_base_reproduces_power_and_coherence():
    n_time = 64
    rng = np.random.default_rng(4)
    series = simulate_var(COEFS, NOISE, 400, n_time, rng)
    base = SpectralGaussian().fit(series, seed=0)
    assert base.latent_dim_ == 3 * n_time
    images, _ = base.sample(4000, seed=5)
    assert images.shape == (4000, 3, n_time) and images.dtype == np.float32
    assert np.isrealobj(images) and np.isfinite(images).all()
    # the normalisation: same residual variance as the training data, same channel-mean variance
    resid_var = lambda x: (x - x.mean(2, keepdims=True)).var(axis=(0, 2))  # noqa: E731
    np.testing.assert_allclose(resid_var(images), resid_var(series), rtol=0.05)
    np.testing.assert_allclose(images.mean(2).var(0), series.mean(2).var(0), rtol=0.15)
    fitted, generated, truth = _spectrum(series), _spectrum(images), var_spectrum(COEFS, NOISE, n_time)
    inner = slice(2, n_time // 2)  # away from DC (taken by the means) and Nyquist
    # samples vs the training estimate they reproduce: the Hann window smooths once more (±10 %)
    np.testing.assert_allclose(_power(generated)[inner], _power(fitted)[inner], rtol=0.1)
    np.testing.assert_allclose(_coherence(generated)[inner], _coherence(fitted)[inner], atol=0.05)
    # samples vs the true spectrum, averaged over bands of 4 frequencies (sampling error of 400 images),
    # from k = 4 on: at the lowest frequencies removing each image's mean takes power from the estimate
    bands = lambda a: a[4:n_time // 2].reshape(n_time // 8 - 1, 4, *a.shape[1:]).mean(1)  # noqa: E731
    np.testing.assert_allclose(bands(_power(generated)), bands(_power(truth)), rtol=0.12)
    np.testing.assert_allclose(bands(_coherence(generated)), bands(_coherence(truth)), atol=0.05)


def test_spectral_local_mixture_keeps_the_average_spectrum():
    rng = np.random.default_rng(6)
    series = simulate_var(COEFS, NOISE, 100, 33, rng)  # odd length: no Nyquist coefficient
    plain = SpectralGaussian().fit(series)
    mixture = SpectralGaussian(local_mixture=True).fit(series)
    images, records = mixture.sample(3000, seed=0)
    assert images.shape == (3000, 3, 33)
    assert all(len(r["train_index"]) == 2 and r["train_index"][0] != r["train_index"][1] for r in records)
    resid_var = lambda x: (x - x.mean(2, keepdims=True)).var(axis=(0, 2))  # noqa: E731
    np.testing.assert_allclose(resid_var(images), resid_var(plain.sample(3000, seed=0)[0]), rtol=0.08)
    # a sample's decode is linear in z: decode(2z) − mean = 2 (decode(z) − mean)
    z, component = mixture.draw(4, np.random.default_rng(0))
    zero = mixture.decode(torch.zeros_like(torch.from_numpy(z)), component)
    one, two = mixture.decode(torch.from_numpy(z), component), mixture.decode(torch.from_numpy(2 * z), component)
    torch.testing.assert_close(two - zero, 2 * (one - zero))


def test_gaussian_lw_matches_sklearn_covariance():
    rng = np.random.default_rng(7)
    images = rng.normal(size=(30, 2, 5)) @ rng.normal(size=(5, 5))
    base = GaussianLW().fit(images)
    np.testing.assert_allclose(base.covariance(), LedoitWolf().fit(images.reshape(30, -1)).covariance_, atol=1e-10)
    samples, _ = base.sample(20000, seed=1)
    scale = base.covariance().diagonal().max()
    np.testing.assert_allclose(np.cov(samples.reshape(20000, -1).T), base.covariance(), atol=0.05 * scale)


@pytest.mark.parametrize("key,settings", [("spectral", {}), ("spectral", {"local_mixture": True}),
                                          ("var", {"max_order": 4}), ("gaussian_lw", {})])
def test_same_seed_same_samples(key, settings):
    rng = np.random.default_rng(8)
    images = rng.normal(size=(12, 3, 16)).astype(np.float32)
    first = generator_class(key)(**settings).fit(images, seed=1)
    second = generator_class(key)(**settings).fit(images, seed=1)
    a, records_a = first.sample(5, seed=2)
    b, records_b = second.sample(5, seed=2)
    np.testing.assert_array_equal(a, b)
    assert records_a == records_b
    assert not np.array_equal(a, first.sample(5, seed=3)[0])


def test_bad_settings_and_inputs():
    with pytest.raises(ConfigError):
        SpectralGaussian(global_weight=1.5)
    with pytest.raises(ConfigError):
        VARGaussian(order=0)
    with pytest.raises(InputError, match=r"^spectral: expected \(n, H, W\) images with n ≥ 2, got shape \(5, 3\)$"):
        SpectralGaussian().fit(np.zeros((5, 3)))
    with pytest.raises(InputError, match="^gaussian_lw: images contain NaN or infinite values$"):
        GaussianLW().fit(np.full((4, 2, 8), np.nan))


def test_gaussian_lw_on_images_too_large_for_a_dense_covariance_keeps_sklearns_shrinkage():
    rng = np.random.default_rng(9)
    images = rng.normal(size=(12, 40, 60)) + rng.normal(size=(12, 1, 60))  # 2 400 pixels
    base = GaussianLW().fit(images)
    assert base.shrinkage_ == pytest.approx(LedoitWolf().fit(images.reshape(12, -1)).shrinkage_, rel=1e-12)
    assert not any(isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] == v.shape[1] == 2400
                   for v in vars(base).values())  # no dense (d, d) matrix kept


def test_var_refuses_images_it_could_not_hold_or_compute(monkeypatch):
    import dualdiv.generators.bases as bases

    images = np.random.default_rng(10).normal(size=(6, 3, 40))
    monkeypatch.setattr(bases, "available_memory", lambda: 1000)
    with pytest.raises(ConfigError, match=r"^var: images of 3 × 40 = 120 pixels need ≈ .* GiB for the dense VAR "
                                          r"loading .*use the spectral base or dualdiv"):
        VARGaussian(order=2).fit(images)
    monkeypatch.setattr(bases, "available_memory", lambda: 2**40)
    monkeypatch.setattr(bases, "VAR_MAX_FLOPS", 1e3)
    with pytest.raises(ConfigError, match=r"^var: order 2 on images of 3 × 40 needs ≈ .* floating-point operations"):
        VARGaussian(order=2).fit(images)
