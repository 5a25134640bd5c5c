"""DualSpace: the in-memory estimator of the dual space (fit, transform, gradient, localize, save/load)."""

import numpy as np
import pytest
import torch

from dualdiv import DualSpace
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.path import make_plan, train_step

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"max_iterations": 40, "eval_every": 20, "eval_substeps": 4, "rows_per_substep": 8, "final_resamplings": 2,
         "critic": {"channels": 4}}


def ar1_images(n: int, shape=(2, 8), rho: float = 0.8, seed: int = 0) -> tuple[np.ndarray, float]:
    """Images whose pixels, in time order (channels within a column), form one AR(1) chain; and its TC (nats)."""
    d = shape[0] * shape[1]
    rng = np.random.default_rng(seed)
    chain = np.empty((n, d))
    chain[:, 0] = rng.normal(size=n)
    for j in range(1, d):
        chain[:, j] = rho * chain[:, j - 1] + np.sqrt(1 - rho**2) * rng.normal(size=n)
    images = chain.reshape(n, shape[1], shape[0]).transpose(0, 2, 1)  # column j // H holds pixels of time j // H
    return images.astype(np.float32), -(d - 1) / 2 * np.log(1 - rho**2)


@pytest.fixture(scope="module")
def small_space():
    images, _ = ar1_images(60, seed=1)
    return DualSpace(n_blocks=2, training=SMALL, n_reference=50, seed=3).fit(images), images


def test_default_dualspace_reads_a_gaussian_total_correlation():
    """Equicorrelated Gaussian vectors, d = 8, ρ = 0.5: TC = −½ log det Σ = 1.67 nats. The default
    training budget (the pipeline's) on 4000 samples, one path step, reads it within 0.25 nats
    (over seeds 0–1 with four steps: 1.57 and 1.6x; see tests/test_path.py for the same bound)."""
    d, rho = 8, 0.5
    corr = np.full((d, d), rho) + (1 - rho) * np.eye(d)
    truth = -0.5 * np.linalg.slogdet(corr)[1]
    x = np.random.default_rng(0).multivariate_normal(np.zeros(d), corr, 4000)
    space = DualSpace(n_blocks=1, n_reference=0, standardise=True).fit(x)
    assert space.tc_ == pytest.approx(truth, abs=0.25)
    assert 0.04 < space.tc_stderr_ < 0.2 and len(space.steps_) == 1


def test_shapes_and_the_dual_window(small_space):
    space, images = small_space
    F, f = space.transform(images[:7]), space.step_values(images[:7])
    assert F.shape == (7,) and f.shape == (7, 2)
    np.testing.assert_allclose(f.sum(axis=1), F)
    assert space.fit_F_.shape == (60,) and space.reference_F_.shape == (50,)
    assert space.lo_ == pytest.approx(np.quantile(space.reference_F_, 0.99)) and space.hi_ == space.fit_F_.max()
    np.testing.assert_allclose(space.transform(images), space.fit_F_)
    assert space.tc_ == pytest.approx(sum(step["D"] for step in space.steps_))


def test_gradient_is_the_gradient_of_transform(small_space):
    space, images = small_space
    x = images[:3].astype(np.float64)
    grad = space.gradient(x)
    assert grad.shape == x.shape
    direction = np.random.default_rng(0).normal(size=x.shape)
    eps = 1e-2
    numeric = (space.transform(x + eps * direction) - space.transform(x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose((grad * direction).sum(axis=(1, 2)), numeric, rtol=0.05, atol=1e-3)


def test_standardised_gradient_follows_the_chain_rule():
    images, _ = ar1_images(60, seed=2)
    scaled = images * np.linspace(1, 50, 16, dtype=np.float32).reshape(2, 8)
    space = DualSpace(n_blocks=1, training=SMALL, n_reference=20, standardise=True).fit(scaled)
    x = scaled[:2].astype(np.float64)
    direction = np.random.default_rng(1).normal(size=x.shape)
    eps = 1e-2
    numeric = (space.transform(x + eps * direction) - space.transform(x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose((space.gradient(x) * direction).sum(axis=(1, 2)), numeric, rtol=0.05, atol=1e-3)


def test_save_and_load_give_identical_F(small_space, tmp_path):
    space, images = small_space
    space.save(tmp_path / "space")
    loaded = DualSpace.load(tmp_path / "space")
    assert np.array_equal(loaded.transform(images), space.transform(images))
    assert (loaded.tc_, loaded.lo_, loaded.hi_) == (space.tc_, space.lo_, space.hi_)
    assert np.array_equal(loaded.fit_F_, space.fit_F_) and loaded.get_params() == space.get_params()
    space.save(tmp_path / "space")  # replaces the folder whole
    assert sorted(p.name for p in (tmp_path / "space").iterdir()) == ["critics.pt", "dualspace.json"]
    assert not list(tmp_path.glob(".space.tmp*"))


def test_steps_trained_apart_assemble_to_the_same_space(small_space):
    space, images = small_space
    plan = make_plan(images.shape[1:], 2, "time", 3, "pixel")
    pieces = [train_step(images, plan, k, space.step_settings(k), 3) for k in (1, 2)]
    assembled = DualSpace(n_blocks=2, training=SMALL, n_reference=50, seed=3).assemble(
        images, plan, [p[0] for p in pieces], [p[1] for p in pieces])
    assert np.array_equal(assembled.transform(images), space.transform(images))
    assert assembled.tc_ == space.tc_ and assembled.lo_ == space.lo_


def test_per_step_overrides_reach_only_their_step():
    space = DualSpace(n_blocks=2, training=SMALL, steps={"2": {"max_iterations": 7, "critic": {"channels": 2}}})
    assert space.step_settings(1).max_iterations == 40 and space.step_settings(1).critic.channels == 4
    assert space.step_settings(2).max_iterations == 7 and space.step_settings(2).critic.channels == 2
    assert space.step_settings(2).critic.kind == "conv" and space.step_settings(2, vectors=True).critic.kind == "mlp"


def test_localize_returns_a_cluster_per_image(small_space):
    space, images = small_space
    clusters = space.localize(images, {"n_permutations": 50, "scales": [6]})
    assert len(clusters["membership"]) == len(images) and clusters["n_clusters"] == len(clusters["boundaries"]) + 1


def test_vectors_are_one_row_images_with_an_mlp():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 1))
    x = np.hstack([z + 0.5 * rng.normal(size=(200, 1)), z]).astype(np.float32)
    space = DualSpace(n_blocks=1, training={"max_iterations": 100}, n_reference=0, standardise=True).fit(x)
    assert space.shape_ == (1, 2) and space.critic_states_[0]["critic"]["kind"] == "mlp"
    assert space.lo_ is None and space.transform(x).shape == (200,)
    assert space.tc_ > 0.3  # I = 0.5 log(1 + 1/0.25) = 0.80 nats


def test_errors_are_one_line():
    with pytest.raises(ConfigError, match="not fitted"):
        DualSpace().transform(np.zeros((2, 2, 2)))
    with pytest.raises(InputError, match=r"\(n, d\) vectors or \(n, H, W\) images"):
        DualSpace().fit(np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        DualSpace().fit(np.full((4, 2, 2), np.nan))


def test_load_names_a_missing_or_foreign_folder(tmp_path):
    with pytest.raises(InputError, match="no such DualSpace"):
        DualSpace.load(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "dualspace.json").write_text('{"format": "other"}')
    torch.save([], tmp_path / "bad" / "critics.pt")
    with pytest.raises(InputError, match="not a dualdiv.DualSpace/1 file"):
        DualSpace.load(tmp_path / "bad")
