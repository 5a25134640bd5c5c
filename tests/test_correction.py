"""Dual correction p ∝ q·e^g: exact and learned critics on Gaussians, the generator, determinism."""

import json

import numpy as np
import pytest
import torch

from dualdiv.core.errors import ConfigError
from dualdiv.generators import generator_class
from dualdiv.generators.bases import FixedGaussian
from dualdiv.generators.correction import (
    DualCorrected,
    ResidualCriticSettings,
    auc_z_score,
    mala,
    sir,
    train_critic,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: extra torch threads only add contention on a shared machine (20–40× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_pair(shape):
    """Target p and a deliberately wrong base q: mean shifted by 0.5, covariance inflated and decorrelated."""
    d = int(np.prod(shape))
    lags = np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    target_cov = 0.6 ** lags + 0.2 * np.eye(d)
    base_cov = 1.4 * (0.3 ** lags + 0.2 * np.eye(d))
    mean = np.linspace(-1, 1, d).reshape(shape)
    return FixedGaussian(mean, target_cov), FixedGaussian(mean + 0.5, base_cov)


def moments(images):
    flat = images.reshape(len(images), -1)
    return flat.mean(0), np.cov(flat.T)


def errors(images, target):
    mean, cov = moments(images)
    return np.abs(mean - target.location_).max(), np.abs(cov - target.covariance_matrix).max()


def test_exact_critic_recovers_the_target_by_sir_and_mala():
    target, base = gaussian_pair((2, 3))
    critic = lambda x: target.log_density(x) - base.log_density(x)  # noqa: E731  exact log p/q
    base_mean_error, base_cov_error = errors(base.sample(4000, seed=0)[0], target)
    assert base_mean_error > 0.45 and base_cov_error > 0.5
    # SIR with M = 128: biased towards q only by O(1/M); tolerance 0.1 on means, 0.15 on covariances
    images, records = sir(base, critic, 4000, 128, np.random.default_rng(1))
    mean_error, cov_error = errors(images, target)
    assert mean_error < 0.1 and cov_error < 0.15, (mean_error, cov_error)
    assert 1 <= np.mean([r["ess"] for r in records]) <= 128
    # MALA in whitened base coordinates: exact once mixed (Monte Carlo error ≈ 0.03–0.05)
    images, records = mala(base, critic, 3000, 150, np.random.default_rng(2))
    mean_error, cov_error = errors(images, target)
    assert mean_error < 0.08 and cov_error < 0.12, (mean_error, cov_error)
    assert 0.3 < np.mean([r["acceptance"] for r in records]) < 0.9


def test_learned_critic_shrinks_the_error():
    target, base = gaussian_pair((2, 8))
    real = target.sample(600, seed=3)[0]
    settings = ResidualCriticSettings(width=16, layers=2, iterations=400, batch_size=64, periodogram=False)
    network, report = train_critic(base, real, settings, np.random.default_rng(4))
    assert report["auc"] > 0.8 and report["auc_z"] > 3
    critic = lambda x: network(x.float()).double()  # noqa: E731
    base_mean_error, base_cov_error = errors(base.sample(3000, seed=5)[0], target)
    for images, _ in (sir(base, critic, 3000, 32, np.random.default_rng(6)),
                      mala(base, critic, 1000, 100, np.random.default_rng(7))):
        mean_error, cov_error = errors(images, target)
        # measured: base 0.54 / 0.54, corrected 0.20–0.31 / 0.22–0.31 (the exact critic: SIR 0.19 / 0.11)
        assert mean_error < 0.7 * base_mean_error and cov_error < 0.7 * base_cov_error, (mean_error, cov_error)


def test_critic_stops_early_on_nothing_to_learn_and_leaves_the_global_rng_alone():
    """Base = target: the held-out loss stops improving; training ends ``patience`` evaluations after its best."""
    target, _ = gaussian_pair((2, 8))
    settings = ResidualCriticSettings(width=4, layers=1, iterations=400, eval_every=5, patience=2, periodogram=False)
    state = torch.get_rng_state()
    _, report = train_critic(target, target.sample(200, seed=3)[0], settings, np.random.default_rng(0))
    assert torch.equal(state, torch.get_rng_state())
    assert report["iterations_run"] < 400 and report["best_iteration"] % 5 == 0
    assert report["iterations_run"] == report["best_iteration"] + 2 * 5
    assert report["auc_z"] < 2  # measured: AUC 0.46


@pytest.fixture
def bimodal_images():
    """(60, 2, 16): channel 0 a fixed wave of amplitude ±2 (bimodal: its power never varies) + noise."""
    rng = np.random.default_rng(8)
    images = 0.3 * rng.normal(size=(60, 2, 16))
    images[:, 0] += 2 * rng.choice([-1, 1], size=(60, 1)) * np.sin(2 * np.pi * np.arange(16) / 8)
    return images.astype(np.float32)


def power_spread(images):
    """Spread over images of channel 0's log power: ≈ 0.09 for the data, ≈ 1.4 under a Gaussian fit."""
    return np.log((images[:, 0] ** 2).mean(-1)).std()


@pytest.mark.parametrize("sampler", ["sir", "mala"])
def test_corrected_generator_is_deterministic_and_records_provenance(bimodal_images, sampler):
    settings = {"base": "gaussian_lw", "sampler": sampler, "candidates": 16, "mala_steps": 20,
                "critic_iterations": 300, "critic": {"width": 8, "layers": 2}}
    first = generator_class("dualdiv_corrected")(**settings).fit(bimodal_images, seed=1)
    second = generator_class("dualdiv_corrected")(**settings).fit(bimodal_images, seed=1)
    a, records_a = first.sample(12, seed=2)
    b, records_b = second.sample(12, seed=2)
    np.testing.assert_array_equal(a, b)
    assert records_a == records_b
    assert not np.array_equal(a, first.sample(12, seed=3)[0])
    assert a.shape == (12, 2, 16) and a.dtype == np.float32
    assert first.corrected_ and all(r["corrected"] and r["sampler"] == sampler for r in records_a)
    json.dumps(first.settings())
    json.dumps(first.critic_report_)
    # the correction moves the Gaussian base towards the data (measured: base 1.37, SIR 0.36, MALA 0.56)
    assert power_spread(first.sample(400, seed=4)[0]) < 0.7 * power_spread(first.base_.sample(400, seed=4)[0])


def test_correction_skipped_when_the_critic_is_not_clearly_better(bimodal_images):
    generator = DualCorrected(base="gaussian_lw", critic_iterations=20, critic={"width": 4, "layers": 1},
                              min_auc_z=1e9).fit(bimodal_images, seed=0)
    images, records = generator.sample(5, seed=0)
    assert not generator.corrected_ and images.shape == (5, 2, 16)
    assert all(not r["corrected"] and "not clearly above 0.5" in r["reason"] for r in records)


def test_local_mixture_mala_moves_components(bimodal_images):
    generator = DualCorrected(base="spectral", base_settings={"local_mixture": True}, sampler="mala",
                              mala_steps=10, critic_iterations=60, critic={"width": 4, "layers": 1},
                              min_auc_z=-1e9).fit(bimodal_images, seed=0)
    images, records = generator.sample(6, seed=1)
    assert images.shape == (6, 2, 16) and np.isfinite(images).all()
    assert all(len(r["train_index"]) == 2 and 0 <= r["component_acceptance"] <= 1 for r in records)


@pytest.mark.parametrize(("auto_ess", "expected"), [(1e-6, "sir"), (1.0, "mala")])
def test_auto_sampler_follows_the_pilot_ess(bimodal_images, auto_ess, expected):
    """auto: SIR when the pilot's ESS among M candidates reaches auto_ess · M, MALA below it."""
    generator = DualCorrected(base="gaussian_lw", sampler="auto", auto_ess=auto_ess, candidates=16, mala_steps=5,
                              critic_iterations=100, critic={"width": 4, "layers": 1},
                              min_auc_z=-1e9).fit(bimodal_images, seed=0)
    assert 1 <= generator.pilot_ess_ < 16  # the Gaussian base is wrong: the weights are uneven
    _, records = generator.sample(4, seed=1)
    assert generator.sampler_ == expected and all(r["sampler"] == expected for r in records)
    assert all(r["sampler_choice"].startswith("auto: pilot ESS") for r in records)


def test_auc_z_score():
    assert auc_z_score(0.5, 20, 256) == 0
    assert auc_z_score(0.634, 20, 256) == pytest.approx(2.0, abs=0.01)  # the default threshold on EEG


def test_bad_settings():
    with pytest.raises(ConfigError):
        DualCorrected(sampler="gibbs")
    with pytest.raises(ConfigError):
        DualCorrected(sampler="auto", auto_ess=0)
    with pytest.raises(ConfigError):
        DualCorrected(base="copy")
    with pytest.raises(ConfigError):
        DualCorrected(critic={"no_such_field": 1})
    with pytest.raises(ConfigError):
        DualCorrected(critic={"loss": "hinge"})
    with pytest.raises(ConfigError):
        DualCorrected(base="no_such_base")
    with pytest.raises(ConfigError):
        DualCorrected(base="var", base_settings={"no_such_setting": 1})


def test_critic_is_a_fixed_function_in_eval_mode(bimodal_images):
    generator = DualCorrected(base="gaussian_lw", critic_iterations=40, critic={"width": 4}).fit(bimodal_images)
    x = torch.as_tensor(bimodal_images[:4])
    torch.testing.assert_close(generator.critic_net_(x), generator.critic_net_(x))
