"""DV bound, its standard error, and the product-of-marginals samplers."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.divergence import dv_bound, dv_stderr, sample_marginals

pytestmark = pytest.mark.usefixtures("one_torch_thread")


MEAN_A, COV_A = np.array([0.5, -0.3]), np.array([[1.0, 0.6], [0.6, 1.0]])
MEAN_B, COV_B = np.zeros(2), np.eye(2)


def gaussian_kl(mean_a, cov_a, mean_b, cov_b) -> float:
    """KL(N_a ‖ N_b) in nats, closed form."""
    inv_b = np.linalg.inv(cov_b)
    diff = mean_b - mean_a
    return 0.5 * (np.trace(inv_b @ cov_a) + diff @ inv_b @ diff - len(diff)
                  + np.linalg.slogdet(cov_b)[1] - np.linalg.slogdet(cov_a)[1])


def exact_critic(x):
    return multivariate_normal(MEAN_A, COV_A).logpdf(x) - multivariate_normal(MEAN_B, COV_B).logpdf(x)


def draw(n, seed):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(MEAN_A, COV_A, n), rng.multivariate_normal(MEAN_B, COV_B, n)


KL = gaussian_kl(MEAN_A, COV_A, MEAN_B, COV_B)  # ≈ 0.40 nats


def test_dv_bound_matches_formula_in_numpy_and_torch():
    f_a, f_b = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0])
    expected = 2.0 - np.log(np.exp(0.0) + np.exp(1.0)) + np.log(2)
    assert dv_bound(f_a, f_b) == pytest.approx(expected)
    assert dv_bound(f_a, f_b, "max") == pytest.approx(2.0 - 1.0 + np.log(2))
    assert dv_bound(f_a, f_b, "max") >= dv_bound(f_a, f_b)
    as_tensor = dv_bound(torch.tensor(f_a), torch.tensor(f_b))
    assert isinstance(as_tensor, torch.Tensor) and float(as_tensor) == pytest.approx(expected)


def test_dv_bound_is_batched_over_leading_dimensions():
    rng = np.random.default_rng(0)
    f_a, f_b = rng.normal(size=(3, 10)), rng.normal(size=(3, 20))
    batched = dv_bound(f_a, f_b)
    assert batched.shape == (3,)
    assert batched == pytest.approx([dv_bound(a, b) for a, b in zip(f_a, f_b, strict=True)])


def test_dv_bound_rejects_bad_input():
    with pytest.raises(ConfigError):
        dv_bound([1.0], [1.0], variant="mean")
    with pytest.raises(InputError):
        dv_bound([], [1.0])


def test_exact_critic_recovers_gaussian_kl():
    x_a, x_b = draw(20_000, seed=0)
    f_a, f_b = exact_critic(x_a), exact_critic(x_b)
    estimate, stderr = dv_bound(f_a, f_b), dv_stderr(f_a, f_b)
    assert 0 < stderr < 0.02
    assert abs(estimate - KL) < max(4 * stderr, 0.02)


def test_delta_method_stderr_matches_spread_over_repeats():
    estimates, stderrs = [], []
    for seed in range(200):
        x_a, x_b = draw(300, seed=seed)
        f_a, f_b = exact_critic(x_a), exact_critic(x_b)
        estimates.append(dv_bound(f_a, f_b))
        stderrs.append(dv_stderr(f_a, f_b))
    assert np.std(estimates) == pytest.approx(np.mean(stderrs), rel=0.25)


def test_trained_critic_recovers_gaussian_kl_on_held_out_samples():
    torch.manual_seed(0)
    (train_a, train_b), (test_a, test_b) = draw(4000, seed=1), draw(4000, seed=2)
    critic = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ELU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    a, b = torch.tensor(train_a, dtype=torch.float32), torch.tensor(train_b, dtype=torch.float32)
    for _ in range(300):
        optimizer.zero_grad()
        (-dv_bound(critic(a).squeeze(-1), critic(b).squeeze(-1))).backward()
        optimizer.step()
    with torch.no_grad():
        f_a = critic(torch.tensor(test_a, dtype=torch.float32)).squeeze(-1).numpy()
        f_b = critic(torch.tensor(test_b, dtype=torch.float32)).squeeze(-1).numpy()
    assert dv_bound(f_a, f_b) == pytest.approx(KL, abs=0.06)


def correlated_images(n=400, shape=(3, 4), seed=0):
    """(n, 3, 4) images whose pixels share one common factor (correlation ≈ 0.8)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=(n, 1, 1))
    return (2 * common + rng.normal(size=(n, *shape))).astype(np.float32)


def pixel_correlations(images):
    flat = images.reshape(len(images), -1)
    corr = np.corrcoef(flat, rowvar=False)
    return corr[~np.eye(len(corr), dtype=bool)]


def test_marginal_sampler_keeps_every_marginal_and_destroys_dependence():
    images = correlated_images()
    samples = sample_marginals(images, len(images), generator=0)
    assert samples.shape == images.shape and samples.dtype == images.dtype
    assert np.array_equal(np.sort(samples, axis=0), np.sort(images, axis=0))
    assert pixel_correlations(images).min() > 0.6
    assert np.abs(pixel_correlations(samples)).max() < 4 / math.sqrt(len(images))


def test_marginal_sampler_repeats_each_value_evenly_and_is_seeded():
    images = correlated_images(n=50)
    samples = sample_marginals(images, 150, generator=3)
    assert np.array_equal(np.sort(samples, axis=0), np.sort(np.concatenate([images] * 3), axis=0))
    assert np.array_equal(samples, sample_marginals(images, 150, generator=torch.Generator().manual_seed(3)))
    assert not np.array_equal(samples, sample_marginals(images, 150, generator=4))
    as_tensor = sample_marginals(torch.as_tensor(images), 150, generator=3)
    assert isinstance(as_tensor, torch.Tensor) and np.array_equal(as_tensor.numpy(), samples)


def test_partial_sampler_keeps_unmasked_pixels_jointly_from_one_image():
    images = correlated_images()
    mask = np.zeros(images.shape[1:], dtype=bool)
    mask[:, :2] = True  # permute the first two time columns only
    samples = sample_marginals(images, len(images), generator=1, mask=mask)
    kept = images[:, ~mask]
    for row in samples[:, ~mask]:
        assert (kept == row).all(axis=1).any()  # the unmasked part is one training image's
    assert np.array_equal(np.sort(samples, axis=0), np.sort(images, axis=0))
    assert pixel_correlations(samples[:, ~mask].reshape(len(samples), -1)).min() > 0.6
    cross = np.corrcoef(samples[:, mask], samples[:, ~mask], rowvar=False)[: mask.sum(), mask.sum():]
    assert np.abs(cross).max() < 4 / math.sqrt(len(images))


def test_partial_sampler_rejects_a_mask_of_the_wrong_shape():
    with pytest.raises(InputError):
        sample_marginals(correlated_images(), 10, mask=np.ones((4, 3), dtype=bool))
