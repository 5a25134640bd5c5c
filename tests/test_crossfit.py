"""Cross-fitted path steps, the hybrid critic, and the separable (global ⊗ local) Gaussian family."""

import math

import numpy as np
import pytest
import torch

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.critics import BilinearCritic, Critic, CriticSettings, FoldEnsemble, HybridCritic
from dualdiv.estimators.dualspace import DualSpace
from dualdiv.estimators.path import (
    StepSettings,
    load_critic,
    make_plan,
    pixel_rank,
    score_step,
    standardise_pixels,
    step_values,
    train_step,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def separable_corr(height, width, rho, phi):
    """Equicorrelated channels (ρ) ⊗ AR(1) time (φ), flat row-major; TC = −½ log det in closed form."""
    channels = np.full((height, height), rho) + (1 - rho) * np.eye(height)
    time = phi ** np.abs(np.subtract.outer(np.arange(width), np.arange(width)))
    return np.kron(channels, time)


def separable_tc(height, width, rho, phi):
    """TC of separable_corr without a determinant: W·TC(channels) + H·TC(time)."""
    tc_channels = -0.5 * ((height - 1) * math.log1p(-rho) + math.log1p((height - 1) * rho))
    tc_time = -0.5 * (width - 1) * math.log1p(-phi**2)
    return width * tc_channels + height * tc_time


class GaussianSubstepCritic(Critic):
    """The true sub-step log ratio log p(x_b | rest)/p(x_b) of x ~ N(0, corr) on (B, 4, H, W) planes."""

    def __init__(self, corr):
        super().__init__()
        self.corr = corr

    def forward(self, planes):
        context, block, prev, tested = (planes[:, i].flatten(1).double() for i in range(4))
        out = torch.zeros(len(planes), dtype=torch.float64)
        for b in tested.argmax(dim=1).unique().tolist():
            rows = tested.argmax(dim=1) == b
            rest = ((prev[rows][0] == 0) & (tested[rows][0] == 0)).nonzero()[:, 0].numpy()
            weights = np.linalg.solve(self.corr[np.ix_(rest, rest)], self.corr[rest, b]) if len(rest) else np.zeros(0)
            var = 1 - self.corr[b, rest] @ weights
            mean = context[rows][:, rest] @ torch.from_numpy(weights)
            out[rows] = -0.5 * (block[rows, b] - mean) ** 2 / var - 0.5 * math.log(var) + 0.5 * block[rows, b] ** 2
        return out.float()


def test_separable_family_total_correlation_is_the_closed_form():
    corr = separable_corr(3, 5, 0.4, 0.6)
    assert -0.5 * np.linalg.slogdet(corr)[1] == pytest.approx(separable_tc(3, 5, 0.4, 0.6), rel=1e-12)


def test_cross_fitted_exact_critic_scores_every_image_and_hits_the_separable_truth():
    """Separable equicorrelated ⊗ AR(1) images with uneven channel scales: the path's held-out score
    with the true sub-step critics, cross-fitted over 5 folds, is within 3 standard errors of the
    closed form, and its standard error is about √(1/val_fraction) smaller than one split's."""
    height, width, n = 3, 4, 1500
    corr = separable_corr(height, width, 0.5, 0.7)
    truth = separable_tc(height, width, 0.5, 0.7)
    x = np.random.default_rng(0).multivariate_normal(np.zeros(height * width), corr, n).reshape(n, height, width)
    images = standardise_pixels(x * np.array([0.1, 1.0, 30.0])[None, :, None])
    plan = make_plan((height, width), 1)
    critic = GaussianSubstepCritic(corr)
    single = score_step(critic, images, plan, 1, StepSettings(), seed=0)
    folds = score_step(critic, images, plan, 1, StepSettings(folds=5), seed=0)
    assert single["n_val"] == 300 and folds["n_val"] == n and len(folds["influence"]) == n
    assert abs(folds["D"] - truth) < 3 * folds["stderr"]
    assert 0.3 < folds["stderr"] / single["stderr"] < 0.65  # √(300/1500) ≈ 0.45


def test_cross_fitted_step_trains_one_critic_per_fold_and_its_critic_is_their_mean(tmp_path):
    corr = separable_corr(2, 4, 0.6, 0.6)
    x = np.random.default_rng(1).multivariate_normal(np.zeros(8), corr, 200).reshape(200, 2, 4)
    images = standardise_pixels(x)
    plan = make_plan((2, 4), 1)
    settings = StepSettings(folds=3, max_iterations=60, eval_every=20, patience=2,
                            critic=CriticSettings(kind="hybrid", channels=4, hidden=16, strip=1))
    state, record = train_step(images, plan, 1, settings, seed=0)
    assert record["n_val"] == 200 and len(record["folds"]) == 3
    assert sum(f["n_val"] for f in record["folds"]) == 200
    assert record["D"] == pytest.approx(sum(f["n_val"] / 200 * f["D"] for f in record["folds"]))
    assert record["iterations"] == sum(f["iterations"] for f in record["folds"])
    critic = load_critic(state, "cpu")
    assert isinstance(critic, FoldEnsemble) and len(critic.members) == 3
    values = step_values(state, plan, 1, images[:10], "cpu")
    members = [step_values(member, plan, 1, images[:10], "cpu") for member in critic.members]
    np.testing.assert_allclose(values, np.mean(members, axis=0), rtol=1e-5, atol=1e-6)
    again, _ = train_step(images, plan, 1, settings, seed=0)  # deterministic
    assert all(torch.equal(again["model"][k], v) for k, v in state["model"].items())
    space = DualSpace(n_blocks=1, training=settings, n_reference=20, seed=0, device="cpu").fit(images)
    np.testing.assert_array_equal(DualSpace.load(space.save(tmp_path / "space")).transform(images[:5]),
                                  space.transform(images[:5]))


def test_folds_need_enough_images_and_a_positive_count():
    with pytest.raises(ConfigError, match="folds"):
        StepSettings(folds=0)
    with pytest.raises(InputError, match="cross-fitting"):
        train_step(np.zeros((7, 1, 3), np.float32), make_plan((1, 3), 1), 1, StepSettings(folds=4))


@pytest.mark.parametrize(("kind", "relative"), [("hybrid", False), ("bilinear", False), ("bilinear", True),
                                                ("hybrid", True)])
@pytest.mark.parametrize(("shape", "order"), [((6, 9), "time"), ((1, 20), "time"), ((4, 5), "random")])
def test_hybrid_critic_fast_path_is_the_function_of_the_whole_planes(shape, order, kind, relative):
    """The fast path (windows, strips and means gathered from the images, Q rows' tested pixel
    replaced) equals the critic on the full planes, at the borders too; the global branch sees far
    channels and times. The same for the bilinear critic, built on the hybrid's inputs."""
    torch.manual_seed(0)
    settings = CriticSettings(kind=kind, channels=4, hidden=16, dropout=0.0, strip=1, rank=4, value_hidden=8,
                              relative_channels=relative)
    critic = {"hybrid": HybridCritic, "bilinear": BilinearCritic}[kind](settings, shape).eval()
    rank = pixel_rank(make_plan(shape, 1, order, seed=2))
    x = torch.randn(6, shape[0] * shape[1])
    position = torch.randint(len(rank), (9,))
    bounds = torch.stack([position, position + 1], dim=1)
    rows, center = torch.randint(6, (9,)), torch.randn(9)
    fast = critic.substep_values(x, rank, bounds, shape, rows=rows, center=center)
    whole = Critic.substep_values(critic, x, rank, bounds, shape, rows=rows, center=center)
    assert torch.allclose(fast, whole, atol=1e-5)
    # a pixel far in time that is still unpermuted moves the value through the per-channel means
    image = torch.zeros(1, shape[0] * shape[1])
    first = torch.tensor([[0, 1]])  # the first pixel of the order: everything else is context
    far = image.clone()
    far[0, int(torch.nonzero(rank == len(rank) - 1)[0, 0])] = 5.0
    assert critic.substep_values(far, rank, first, shape) != critic.substep_values(image, rank, first, shape)


def test_hybrid_critic_is_a_setting_with_a_strip():
    assert StepSettings(critic={"kind": "hybrid", "strip": 0}).critic.strip == 0
    with pytest.raises(ConfigError, match="strip"):
        CriticSettings(kind="hybrid", strip=-1)
    with pytest.raises(ConfigError, match="loss"):
        StepSettings(loss="hinge")


def test_folds_on_threads_give_the_sequential_result_bit_for_bit():
    """jobs only decides how many folds train at once: each fold draws from its own seeded streams and
    trains on one torch thread, so 2 threads give the sequential critics and score exactly; the caller's
    global RNG is left as it was."""
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(60, 2, 1)) + 0.6 * rng.normal(size=(60, 2, 5))).astype(np.float32)
    plan = make_plan((2, 5), 1)
    settings = StepSettings(critic=CriticSettings(kind="bilinear", channels=4, hidden=16, rank=4, value_hidden=8,
                                                  dropout=0.0), folds=3, max_iterations=30, eval_every=10,
                            final_lr_fraction=0.1)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    one_by_one = train_step(x, plan, 1, settings, seed=2)
    on_threads = train_step(x, plan, 1, settings, seed=2, jobs=2)
    assert torch.equal(torch.get_rng_state(), before)
    assert on_threads[1]["D"] == one_by_one[1]["D"] and on_threads[1]["folds"] == one_by_one[1]["folds"]
    assert all(torch.equal(on_threads[0]["model"][k], v) for k, v in one_by_one[0]["model"].items())


def test_fold_threads_only_where_they_cannot_change_the_result():
    from dualdiv.estimators.path import _fold_workers

    cpu, plain = torch.device("cpu"), StepSettings(critic=CriticSettings(dropout=0.0), folds=5)
    assert _fold_workers(None, 5, plain, cpu) == 1 and _fold_workers(8, 5, plain, cpu) == 5
    assert 1 <= _fold_workers(-1, 5, plain, cpu) <= 5
    assert _fold_workers(4, 5, StepSettings(folds=5), cpu) == 1  # dropout draws on the shared global RNG
    assert _fold_workers(4, 5, plain, torch.device("cuda")) == 1
    assert _fold_workers(4, 1, plain, cpu) == 1
    with pytest.raises(ConfigError, match="jobs"):
        _fold_workers(0, 5, plain, cpu)
