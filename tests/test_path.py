"""The dependency-diffusion path: plans, one step's training and resume, the TC sum."""

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.critics import ConvCritic, CriticSettings, critic_input, substep_input
from dualdiv.estimators.dualspace import estimate_tc
from dualdiv.estimators.path import (
    StepSettings,
    load_critic,
    make_plan,
    pixel_rank,
    score_step,
    standardise_pixels,
    step_values,
    summed_substep_values,
    train_step,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


D, RHO, N = 8, 0.5, 4000
CORR = np.full((D, D), RHO) + (1 - RHO) * np.eye(D)
TRUE_TC = -0.5 * np.linalg.slogdet(CORR)[1]  # ≈ 1.67 nats
FAST = StepSettings(critic=CriticSettings(hidden=64), max_iterations=600, eval_every=50, patience=4,
                    val_fraction=0.25)


def gaussian(n=N, seed=0):
    return np.random.default_rng(seed).multivariate_normal(np.zeros(D), CORR, n)


@pytest.mark.parametrize("order", ["time", "random", "channel", "patch"])
def test_plan_orders_every_pixel_once_and_tiles_it_with_blocks(order):
    plan = make_plan((3, 5), n_blocks=4, order=order, seed=1)
    assert sorted(plan["pixel_order"]) == list(range(15))
    assert plan["blocks"][0][0] == 0 and plan["blocks"][-1][1] == 15
    assert all(a[1] == b[0] for a, b in zip(plan["blocks"], plan["blocks"][1:], strict=False))
    assert json.loads(json.dumps(plan)) == plan


def test_time_order_walks_column_strips_and_channel_order_rows():
    assert make_plan((2, 3), 1, "time")["pixel_order"] == [0, 3, 1, 4, 2, 5]
    assert make_plan((2, 3), 1, "channel")["pixel_order"] == [0, 1, 2, 3, 4, 5]
    assert make_plan((2, 4), 1, "patch", patch=(2, 2))["pixel_order"] == [0, 4, 1, 5, 2, 6, 3, 7]
    assert make_plan((2, 3), 2, "random", seed=5) == make_plan((2, 3), 2, "random", seed=5)


def test_plan_rejects_bad_settings():
    with pytest.raises(ConfigError):
        make_plan((2, 3), 7)
    with pytest.raises(ConfigError):
        make_plan((2, 3), 2, order="diagonal")


@pytest.fixture(scope="module")
def path_estimate():
    return estimate_tc(gaussian(), n_blocks=2, order="time", seed=0, settings=FAST)


def test_path_sum_recovers_gaussian_total_correlation(path_estimate):
    # 1000 validation images give stderr ≈ 0.08 nats; over data seeds 0–5 these settings
    # erred by −0.02 to −0.16 nats (a small underestimate: the bound of a finite-trained critic)
    assert 0.04 < path_estimate["stderr"] < 0.15
    assert path_estimate["tc"] == pytest.approx(TRUE_TC, abs=0.25)


def test_path_total_is_the_sum_of_its_steps(path_estimate):
    steps = path_estimate["steps"]
    assert len(steps) == 2 and [s["n_substeps"] for s in steps] == [4, 4]
    assert path_estimate["tc"] == pytest.approx(sum(s["D"] for s in steps))
    for s in steps:
        assert s["D"] == pytest.approx(sum(s["substep_D"]))
        assert s["best_iteration"] in s["curve"]["iteration"]
    json.dumps(path_estimate)


def test_dual_coordinate_tracks_the_true_log_ratio():
    x = standardise_pixels(gaussian(2000)[:, None, :])
    plan = make_plan((1, D), n_blocks=2, seed=0)
    settings = StepSettings(critic=CriticSettings(kind="mlp", hidden=64), max_iterations=400, eval_every=50,
                            patience=3)
    states = [train_step(x, plan, k, settings, seed=0)[0] for k in (1, 2)]
    test = standardise_pixels(gaussian(500, seed=9)[:, None, :])
    dual = sum(step_values(state, plan, k, test) for k, state in zip((1, 2), states, strict=True))
    flat = test[:, 0]
    log_ratio = -0.5 * np.einsum("ni,ij,nj->n", flat, np.linalg.inv(CORR) - np.eye(D), flat)
    assert np.corrcoef(dual, log_ratio)[0, 1] > 0.8


@pytest.mark.parametrize(("shape", "order", "kernel", "layers"),
                         [((14, 40), "time", 3, 2), ((5, 7), "random", 3, 3), ((1, 30), "time", 5, 2),
                          ((6, 9), "patch", 3, 1)])
def test_conv_critic_window_of_a_pixel_substep_equals_the_whole_image(shape, order, kernel, layers):
    """The fast path (a window around the tested pixel) is the same function as the full planes,
    including at the image borders where the window hangs over the zero padding."""
    torch.manual_seed(0)
    critic = ConvCritic(CriticSettings(kind="conv", channels=6, kernel=kernel, conv_layers=layers), shape)
    rank = pixel_rank(make_plan(shape, 1, order, seed=3))
    x = torch.randn(60, shape[0] * shape[1])
    position = torch.randint(len(rank), (60,))
    bounds = torch.stack([position, position + 1], dim=1)
    whole = critic(critic_input(x, *substep_input(rank, bounds), shape))
    window = critic.substep_values(x, rank, bounds, shape)
    assert torch.allclose(window, whole, atol=1e-5)
    # a pixel far from the tested one does not change the value (locality), a near one does
    far, near = x.clone(), x.clone()
    tested = int(torch.nonzero(rank == position[0])[0, 0])
    distance = torch.cdist(torch.tensor([[tested // shape[1], tested % shape[1]]], dtype=torch.float),
                           torch.stack(torch.meshgrid(torch.arange(shape[0]), torch.arange(shape[1]),
                                                      indexing="ij"), -1).reshape(-1, 2).float(), p=float("inf"))[0]
    far[0, distance > 2 * critic.radius[1]] += 1.0
    near[0, tested] += 1.0
    assert critic.substep_values(far, rank, bounds, shape)[0] == window[0]
    assert critic.substep_values(near, rank, bounds, shape)[0] != window[0]


def test_block_substeps_with_one_block_is_the_plain_single_critic():
    plan = make_plan((1, D), n_blocks=1, substeps="block")
    x = standardise_pixels(gaussian(500)[:, None, :])
    settings = StepSettings(critic=CriticSettings(kind="mlp", hidden=32), max_iterations=100, eval_every=50)
    _, record = train_step(x, plan, 1, settings, seed=0)
    assert record["n_substeps"] == 1 and math.isfinite(record["D"])


TINY = StepSettings(max_iterations=60, eval_every=10, checkpoint_every=20, patience=100, rows_per_substep=16,
                    eval_resamplings=2, final_resamplings=3)


class Interrupt(Exception):
    pass


def stop_at(iteration):
    def callback(i):
        if i == iteration:
            raise Interrupt
    return callback


def assert_same_result(a, b):
    (state_a, record_a), (state_b, record_b) = a, b
    for name in ("D", "stderr", "substep_D", "curve", "best_iteration", "iterations", "influence"):
        assert record_a[name] == record_b[name], name
    for name, tensor in state_a["model"].items():
        assert torch.equal(tensor, state_b["model"][name]), name


@pytest.mark.parametrize("critic", [CriticSettings(kind="mlp", hidden=16, dropout=0.2),
                                    CriticSettings(kind="conv", channels=4, spectral_norm=True)])
def test_resumed_step_is_bit_identical_to_an_uninterrupted_one(tmp_path, critic):
    images = np.random.default_rng(0).normal(size=(40, 2, 3)).astype(np.float32)
    plan = make_plan((2, 3), n_blocks=2)
    settings = replace(TINY, critic=critic)
    uninterrupted = train_step(images, plan, 2, settings, seed=3)
    checkpoint = tmp_path / "step_2.ckpt"
    with pytest.raises(Interrupt):  # dies after the checkpoint at 40, having done 5 more iterations
        train_step(images, plan, 2, settings, seed=3, checkpoint=checkpoint, callback=stop_at(45))
    resumed = train_step(images, plan, 2, settings, seed=3, checkpoint=checkpoint)
    assert resumed[1]["resumed_from"] == 40
    assert_same_result(uninterrupted, resumed)
    rescored = score_step(load_critic(resumed[0], device="cpu"), images, plan, 2, settings, seed=3)
    assert rescored["D"] == resumed[1]["D"] and rescored["influence"] == resumed[1]["influence"]


def test_checkpoint_of_another_run_is_ignored_with_a_warning(tmp_path):
    images = np.random.default_rng(0).normal(size=(40, 2, 3)).astype(np.float32)
    plan = make_plan((2, 3), n_blocks=2)
    checkpoint = tmp_path / "step_1.ckpt"
    train_step(images, plan, 1, TINY, seed=0, checkpoint=checkpoint)
    with pytest.warns(UserWarning, match="ignoring checkpoint"):
        other_seed = train_step(images, plan, 1, TINY, seed=1, checkpoint=checkpoint)
    assert other_seed[1]["resumed_from"] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_result(other_seed, train_step(images, plan, 1, TINY, seed=1))


def test_estimate_tc_takes_channel_by_time_images_with_the_conv_critic():
    images = np.random.default_rng(0).normal(size=(40, 2, 4))
    result = estimate_tc(images, n_blocks=3, order="patch", settings=TINY)
    assert [s["n_substeps"] for s in result["steps"]] == [3, 2, 3]
    assert result["tc"] == pytest.approx(sum(s["D"] for s in result["steps"]))
    with pytest.raises(InputError):
        estimate_tc(images[..., None], settings=TINY)


def test_train_step_rejects_images_that_do_not_fit_the_plan():
    plan = make_plan((2, 3), n_blocks=2)
    with pytest.raises(InputError, match=r"^path step 1: expected .* and \(H, W\) = \(2, 3\), got shape \(40, 3, 2\)$"):
        train_step(np.zeros((40, 3, 2), dtype=np.float32), plan, 1, TINY)
    with pytest.raises(InputError, match="^path step 1: images contain NaN or infinite values$"):
        step_values({}, plan, 1, np.full((2, 2, 3), np.nan))
    with pytest.raises(ConfigError):
        train_step(np.zeros((40, 2, 3), dtype=np.float32), plan, 3, TINY)


def test_step_worse_than_a_constant_critic_falls_back_to_zero():
    """Independent pixels and a one-iteration critic: a held-out bound ≤ 0 becomes f_k = 0, D_k = 0."""
    images = np.random.default_rng(5).normal(size=(40, 2, 4)).astype(np.float32)
    plan = make_plan((2, 4), 1)
    settings = StepSettings(max_iterations=1, eval_every=1, final_resamplings=2)
    found = False
    for seed in range(6):  # an untrained critic scores below 0 on most seeds
        state, record = train_step(images, plan, 1, settings, seed)
        if record["fallback"] is not None:
            found = True
            assert record["D"] == 0 and record["fallback"]["trained_D"] <= 0
            assert np.all(step_values(load_critic(state, "cpu"), plan, 1, images, "cpu") == 0)
        else:
            assert record["D"] > 0
    assert found


def test_dual_function_value_and_gradient_match_autograd_over_all_steps():
    """F = Σ_k f_k from the step states, in memory-light batches, against plain autograd on the
    whole-image critic; and F agrees with the per-step values written to dual.h5."""
    from dualdiv.estimators.dual_function import DualFunction

    shape = (3, 10)
    plan = make_plan(shape, n_blocks=2, order="time")
    settings = StepSettings(critic=CriticSettings(kind="conv", channels=4), max_iterations=150, eval_every=50,
                            rows_per_substep=16)
    images = standardise_pixels(np.random.default_rng(0).normal(size=(200, *shape)).cumsum(axis=2))
    states = [train_step(images, plan, k, settings, seed=0, device="cpu")[0] for k in (1, 2)]
    assert not any(state["constant"] for state in states)
    dual = DualFunction(plan, states, device="cpu")
    x = torch.as_tensor(images[:5])
    value, gradient = dual.value_and_grad(x)
    leaf = x.clone().requires_grad_(True)
    rank = pixel_rank(plan)
    whole = sum(critic(critic_input(leaf.reshape(5, -1).repeat_interleave(len(bounds), 0),
                                    *substep_input(rank, bounds.repeat(5, 1)), shape)).reshape(5, -1).sum(dim=1)
                for critic, bounds in zip(dual.critics, dual.bounds, strict=True))
    expected_gradient = torch.autograd.grad(whole.sum(), leaf)[0]
    assert torch.allclose(value, whole.detach(), rtol=1e-5, atol=1e-4)
    assert torch.allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-5)
    per_step = sum(step_values(state, plan, k, images[:5], "cpu") for k, state in zip((1, 2), states, strict=True))
    assert np.allclose(dual(x).numpy(), per_step, rtol=1e-5, atol=1e-4)
    # a step that fell back to the constant critic adds nothing, to the value or the gradient
    constant = DualFunction(plan, [states[0], {"constant": True, "model": {"anchor": torch.zeros(())}}], "cpu")
    first_step = summed_substep_values(dual.critics[0], x.reshape(5, -1), rank, dual.bounds[0], shape, True)
    assert torch.allclose(constant.value_and_grad(x)[1], first_step[1].reshape(x.shape).float(), atol=1e-6)


# ---------------------------------------------------------------------------- the stages on files


def test_step_jobs_values_give_the_dual_stage_the_numbers_it_would_compute(tmp_path):
    """f_k of every image and reference sample, computed in the step jobs, equals what the dual stage
    computes itself; values of another n_reference are refused in one line."""
    import h5py

    from dualdiv.data.tiles import TileSettings
    from dualdiv.stages.ingest import ingest
    from dualdiv.stages.path import write_dual, write_plan, write_step
    from dualdiv.stages.tile import tile

    x = np.random.default_rng(0).normal(size=(24, 2, 8)).cumsum(axis=2)
    np.save(tmp_path / "x.npy", x)
    ingest([tmp_path / "x.npy"], tmp_path / "raw.nc")
    tiles = tmp_path / "tiles.h5"
    tile(tmp_path / "raw.nc", tiles, TileSettings())
    plan = tmp_path / "plan.json"
    write_plan(tiles, plan, n_blocks=2)
    settings = StepSettings(max_iterations=20, eval_every=10, rows_per_substep=4, final_resamplings=1,
                            critic=CriticSettings(kind="conv", channels=2))
    paths = {k: [tmp_path / f"step_{k}.{s}" for s in ("pt", "json", "values.h5")] for k in (1, 2)}
    for k, (critic, record, values) in paths.items():
        write_step(tiles, plan, k, critic, record, settings, out_values=values, n_reference=30)
    critics, records, values = ([str(paths[k][i]) for k in (1, 2)] for i in range(3))
    estimate = {"n_reference": 30}
    here = write_dual(tiles, plan, critics, records, tmp_path / "a.h5", tmp_path / "a.json", None, estimate)
    apart = write_dual(tiles, plan, critics, records, tmp_path / "b.h5", tmp_path / "b.json", None, estimate,
                       value_paths=values)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        for name in ("F", "F_reference", "f_steps", "f_steps_reference"):
            np.testing.assert_allclose(b[name][...], a[name][...], rtol=1e-5, atol=1e-5)
    assert apart["lo"] == pytest.approx(here["lo"], abs=1e-5) and apart["tc"] == here["tc"]
    with pytest.raises(InputError, match=r"step_1\.values\.h5: computed for other tiles, n_reference or seed"):
        write_dual(tiles, plan, critics, records, tmp_path / "c.h5", tmp_path / "c.json", None, {"n_reference": 20},
                   value_paths=values)
    assert not (tmp_path / "c.h5").exists()
