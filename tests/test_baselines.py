"""Baselines: registered, train on a tiny fixture, right shape, finite, deterministic for a seed."""

import numpy as np
import pytest
from scipy.optimize import nnls

import dualdiv.generators.baselines.common  # noqa: F401  (registers the baselines)
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.generators import REGISTRY, make_generator
from dualdiv.generators.baselines.sb_langevin import sinkhorn_scaling, squared_distances

TINY = {"vae": {"max_iterations": 30}, "wgan_gp": {"max_iterations": 5, "n_critic": 2},
        "ddpm": {"max_iterations": 30, "diffusion_steps": 20}, "sb_langevin": {"n_steps": 10}}


@pytest.fixture(scope="module")
def tiny_images():
    """(24, 3, 16) float32 z-scored series with correlated channels."""
    rng = np.random.default_rng(0)
    common = rng.normal(size=(24, 1, 16)).cumsum(axis=2)
    x = common + 0.5 * rng.normal(size=(24, 3, 16))
    return ((x - x.mean((0, 2), keepdims=True)) / x.std((0, 2), keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("key", sorted(TINY))
def test_baseline_samples_have_the_right_shape_and_are_deterministic(key, tiny_images):
    assert key in REGISTRY
    first = make_generator(key, **TINY[key]).fit(tiny_images, seed=3)
    images, records = first.sample(7, seed=5)
    assert images.shape == (7, 3, 16) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.std() > 0
    assert len(records) == 7 and all(isinstance(r, dict) for r in records)
    again, _ = make_generator(key, **TINY[key]).fit(tiny_images, seed=3).sample(7, seed=5)
    np.testing.assert_array_equal(images, again)
    other, _ = first.sample(7, seed=6)
    assert not np.array_equal(images, other)


@pytest.mark.parametrize("key", ["vae", "wgan_gp", "ddpm"])
def test_neural_baselines_record_their_budget_and_leave_global_torch_state_alone(key, tiny_images):
    import torch

    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    model = make_generator(key, **TINY[key]).fit(tiny_images, seed=0)
    assert torch.equal(state, torch.random.get_rng_state()) and torch.get_num_threads() == threads
    assert model.iterations_ == TINY[key]["max_iterations"] and model.train_seconds_ > 0
    assert len(model.loss_curve_) == 1 and np.isfinite(model.loss_curve_).all()  # the loss of iteration 1 (of 51, …)
    assert model.settings()["max_iterations"] == TINY[key]["max_iterations"]
    timed = make_generator(key, max_iterations=10**6, max_seconds=0.5).fit(tiny_images, seed=0)
    assert 0 < timed.iterations_ < 10**6


def test_neural_baselines_handle_odd_widths():
    x = np.random.default_rng(1).normal(size=(10, 2, 13)).astype(np.float32)
    for key in ("vae", "wgan_gp", "ddpm"):
        images, _ = make_generator(key, **TINY[key]).fit(x, 0).sample(3, 0)
        assert images.shape == (3, 2, 13)


def test_sb_langevin_sinkhorn_makes_the_kernel_markov(tiny_images):
    flat = tiny_images.reshape(len(tiny_images), -1).astype(np.float64)
    log_kernel = -squared_distances(flat, flat) / 40.0
    log_v = sinkhorn_scaling(log_kernel)
    transition = np.exp(log_v[:, None] + log_kernel + log_v[None, :])
    np.testing.assert_allclose(transition.sum(axis=1), 1.0, atol=1e-8)
    np.testing.assert_allclose(transition, transition.T)


def test_sb_langevin_split_step_stays_in_the_convex_hull(tiny_images):
    model = make_generator("sb_langevin", bandwidth=4.0, n_steps=20).fit(tiny_images, 0)
    images, records = model.sample(20, seed=0)
    flat, train = images.reshape(20, -1).astype(np.float64), tiny_images.reshape(24, -1).astype(np.float64)
    # each sample is Σ_j w_j x_j with w ≥ 0, Σ_j w_j = 1: non-negative least squares recovers such weights
    assert (flat >= train.min(0) - 1e-5).all() and (flat <= train.max(0) + 1e-5).all()
    system = np.r_[train.T, 100 * np.ones((1, 24))]  # (d + 1, M): the last row asks Σ w = 1
    for point in flat:
        weights, residual = nnls(system, np.r_[point, 100.0])
        assert residual < 1e-3 and weights.sum() == pytest.approx(1, abs=1e-4)
    assert all(r["effective_samples"] >= 1 for r in records)


def test_baselines_reject_bad_settings_and_inputs(tiny_images):
    with pytest.raises(ConfigError):
        make_generator("vae", max_iterations=0)
    with pytest.raises(ConfigError):
        make_generator("sb_langevin", scheme="leapfrog")
    with pytest.raises(InputError, match=r"^ddpm: expected \(n, H, W\) images with n ≥ 2, got shape \(24, 16\)$"):
        make_generator("ddpm", **TINY["ddpm"]).fit(tiny_images[:, 0], 0)
    with pytest.raises(InputError, match=r"^vae: expected \(n, H, W\) images with n ≥ 2, got shape \(1, 3, 16\)$"):
        make_generator("vae", **TINY["vae"]).fit(tiny_images[:1], 0)
    with pytest.raises(InputError, match="^sb_langevin: images contain NaN or infinite values$"):
        make_generator("sb_langevin").fit(np.full((4, 2, 3), np.nan), 0)
