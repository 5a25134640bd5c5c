"""The core: the one training loop (budget, early stopping, checkpoints, seeding, threads) and the image checker."""

import ast
import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dualdiv.core.checks import check_images
from dualdiv.core.errors import InputError
from dualdiv.core.training import (
    Checkpoint,
    LoopSettings,
    descend,
    resolve_device,
    seeded,
    torch_generator,
    torch_threads,
    train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CORE = Path(__file__).resolve().parents[1] / "dualdiv" / "core"


# ---------------------------------------------------------------------------- budget


def test_budget_counts_steps_and_records_every_kth_loss():
    calls = []
    result = train(lambda: calls.append(1) or float(len(calls)), LoopSettings(7, record_every=3))
    assert len(calls) == result.iterations == 7 and result.stopped == "budget"
    assert result.losses == [1.0, 4.0, 7.0]  # iterations 1, 1 + 3, 1 + 6
    assert result.resumed_from == 0 and result.curve == [] and result.seconds >= 0
    assert train(lambda: calls.append(1), LoopSettings(0)).iterations == 0 and len(calls) == 7


def test_wall_time_limit_stops_before_the_iteration_budget():
    def slow_step():
        time.sleep(0.02)
        return 0.0

    result = train(slow_step, LoopSettings(10**6, max_seconds=0.1))
    assert 1 <= result.iterations < 50 and result.stopped == "time"


def test_bad_settings_and_missing_parts_are_refused():
    for bad in ({"max_iterations": -1}, {"max_iterations": 5, "max_seconds": 0},
                {"max_iterations": 5, "patience": 2}, {"max_iterations": 5, "eval_every": 0},
                {"max_iterations": 5, "if_no_best": "best"}):
        with pytest.raises(ValueError):
            LoopSettings(**bad)
    with pytest.raises(ValueError, match="validate"):
        train(lambda: 0.0, LoopSettings(3, eval_every=1), model=nn.Linear(1, 1))
    with pytest.raises(ValueError, match="eval_every"):
        train(lambda: 0.0, LoopSettings(3), model=nn.Linear(1, 1), validate=lambda: 0.0)
    with pytest.raises(ValueError, match="checkpoint"):
        train(lambda: 0.0, LoopSettings(3), model=nn.Linear(1, 1), checkpoint=Checkpoint("x.ckpt", "k"))


# ---------------------------------------------------------------------------- validation and early stopping


def scripted(scores, settings):
    """A one-weight model whose weight is the iteration number; validation reads ``scores`` by that weight."""
    model = nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(-1.0)
    modes = []

    def step():
        modes.append(("step", model.training, torch.is_grad_enabled()))
        model.weight.data += 1 if model.weight.item() >= 0 else 2  # -1 → 1, then 2, 3, …
        return 0.0

    def validate():
        modes.append(("validate", model.training, torch.is_grad_enabled()))
        return scores[int(model.weight.item())]

    return model, train(step, settings, model=model, validate=validate), modes


def test_early_stopping_keeps_the_best_state():
    scores = {1: 0.5, 2: 2.0, 3: 2.0, 4: math.nan, 5: 9.0}
    model, result, modes = scripted(scores, LoopSettings(10, eval_every=1, patience=2))
    assert result.stopped == "patience" and result.iterations == 4  # 3 (a tie) and 4 (NaN) did not beat 2
    assert result.best_iteration == 2 and result.best_value == 2.0 and model.weight.item() == 2.0
    assert [i for i, _ in result.curve] == [1, 2, 3, 4] and math.isnan(result.curve[-1][1])
    assert not model.training  # eval mode on return
    assert {m for m in modes if m[0] == "step"} == {("step", True, True)}
    assert {m for m in modes if m[0] == "validate"} == {("validate", False, False)}


def test_minimising_and_validation_after_the_last_iteration():
    scores = {i: float(abs(i - 3)) for i in range(1, 8)}  # a loss, lowest at 3
    model, result, _ = scripted(scores, LoopSettings(7, eval_every=3, higher_is_better=False))
    assert [i for i, _ in result.curve] == [3, 6, 7]  # every 3rd and the last of the budget
    assert result.stopped == "budget" and result.best_iteration == 3 and model.weight.item() == 3.0


@pytest.mark.parametrize(("if_no_best", "weight"), [("initial", -1.0), ("last", 3.0)])
def test_without_a_finite_validation_the_model_is_the_initial_or_the_last(if_no_best, weight):
    scores = dict.fromkeys(range(1, 4), math.nan)
    model, result, _ = scripted(scores, LoopSettings(3, eval_every=1, if_no_best=if_no_best))
    assert model.weight.item() == weight and result.best_iteration == 0 and result.best_value == -math.inf


# ---------------------------------------------------------------------------- checkpoints


class Interrupt(Exception):
    pass


def noisy_run(checkpoint=None, stop_at=None, seed=0):
    """A dropout MLP trained on seeded minibatches: global RNG (dropout), a generator (batches), Adam state."""
    x = torch.linspace(-2, 2, 64)[:, None]
    y = torch.sin(3 * x)

    def callback(iteration):
        if iteration == stop_at:
            raise Interrupt

    with seeded(seed) as batches:
        model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, 1))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

        def step():
            rows = torch.randint(len(x), (16,), generator=batches)
            return descend(optimizer, ((model(x[rows]) - y[rows]) ** 2).mean())

        def validate():
            return -float(((model(x) - y) ** 2).mean())

        settings = LoopSettings(30, eval_every=5, patience=100, record_every=1)
        result = train(step, settings, model=model, validate=validate, optimizer=optimizer, generator=batches,
                       checkpoint=checkpoint, callback=callback)
    return model.state_dict(), result


def assert_same_run(a, b):
    (state_a, result_a), (state_b, result_b) = a, b
    assert result_a.curve == result_b.curve and result_a.losses == result_b.losses
    assert result_a.best_iteration == result_b.best_iteration and result_a.iterations == result_b.iterations
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path):
    uninterrupted = noisy_run()
    checkpoint = Checkpoint(tmp_path / "run.ckpt", key="run-1", every=10)
    with pytest.raises(Interrupt):  # dies 5 iterations after the checkpoint at 20
        noisy_run(checkpoint, stop_at=25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # written atomically: no temporary left
    resumed = noisy_run(checkpoint)
    assert resumed[1].resumed_from == 20
    assert_same_run(uninterrupted, resumed)
    assert not np.array_equal(noisy_run(seed=1)[1].losses, uninterrupted[1].losses)  # the seed matters


def test_foreign_or_truncated_checkpoint_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "run.ckpt"
    fresh = noisy_run()
    noisy_run(Checkpoint(path, key="another run", every=10))
    with pytest.warns(UserWarning, match="ignoring checkpoint .* other settings"):
        foreign = noisy_run(Checkpoint(path, key="this run", every=10))
    assert foreign[1].resumed_from == 0
    assert_same_run(fresh, foreign)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.warns(UserWarning, match="ignoring unreadable checkpoint"):
        truncated = noisy_run(Checkpoint(path, key="this run", every=10))
    assert_same_run(fresh, truncated)
    torch.save({"key": "this run"}, path)  # readable, but not a checkpoint of this loop
    with pytest.warns(UserWarning, match="ignoring unreadable checkpoint .* no "):
        assert noisy_run(Checkpoint(path, key="this run", every=10))[1].resumed_from == 0


# ---------------------------------------------------------------------------- seeding, threads, devices


def test_seeded_leaves_the_global_rng_untouched_and_seeds_the_generator_alike():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    with seeded(5) as generator:
        inside, from_generator = torch.rand(4), torch.rand(4, generator=generator)
    assert torch.equal(before, torch.get_rng_state())
    assert torch.equal(inside, from_generator)
    with seeded(5):
        assert torch.equal(torch.rand(4), inside)
    with seeded(6):
        assert not torch.equal(torch.rand(4), inside)


def test_torch_threads_are_set_and_restored_even_after_an_error():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    with pytest.raises(RuntimeError), torch_threads(other):
        assert torch.get_num_threads() == other
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_devices_and_generators():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    a, b = (torch_generator(np.random.default_rng(3)) for _ in range(2))
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))


def test_progress_bar_is_shown_only_when_asked(capsys):
    train(lambda: 0.0, LoopSettings(3, description="tiny loop"))
    assert "tiny loop" not in capsys.readouterr().err
    train(lambda: 0.0, LoopSettings(3, progress=True, description="tiny loop"))
    assert "tiny loop" in capsys.readouterr().err


def test_loop_logs_a_progress_line_every_few_seconds_and_one_at_the_end(caplog, monkeypatch):
    clock = iter(range(0, 10_000, 2))  # perf_counter: 2 s per call, so lines are due every other step
    monkeypatch.setattr("dualdiv.core.training.time.perf_counter", lambda: float(next(clock)))
    model = nn.Linear(1, 1)
    with caplog.at_level(logging.INFO, logger="dualdiv.core.training"):
        train(lambda: 0.0, LoopSettings(6, eval_every=2, description="path step 3", log_every_s=3.0), model=model,
              validate=lambda: 1.5)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3 and all(line.startswith("path step 3: ") for line in lines)
    assert "iteration 2/6, validation 1.5 (best 1.5 at 2)" in lines[0] and "s to go" in lines[0]
    assert "stopped (budget) after 6 iterations" in lines[-1]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="dualdiv.core.training"):
        train(lambda: 0.0, LoopSettings(6, log_every_s=None))
    assert not caplog.records
    with pytest.raises(ValueError, match="log_every_s"):
        LoopSettings(3, log_every_s=0)


def test_loop_and_checker_import_nothing_above_core():
    for path in (CORE / "training.py", CORE / "checks.py"):
        tree = ast.parse(path.read_text())
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module] + \
                  [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        above = [m for m in modules if m.startswith("dualdiv") and not m.startswith("dualdiv.core")]
        assert not above, (path.name, above)
    training = ast.parse((CORE / "training.py").read_text())
    runtime = {a.name.split(".")[0] for n in training.body if isinstance(n, ast.Import) for a in n.names} | \
              {n.module.split(".")[0] for n in training.body if isinstance(n, ast.ImportFrom) and n.module}
    assert runtime - {"__future__", "contextlib", "logging", "math", "os", "time", "warnings", "collections",
                      "dataclasses", "typing"} == {"torch", "tqdm"}


# ---------------------------------------------------------------------------- the image checker


def test_check_images_names_the_argument_and_what_was_expected():
    good = np.zeros((3, 2, 5))
    assert check_images(good, "x").dtype == np.float32
    assert check_images(good, "x", dtype=np.float64) is good  # no copy when nothing changes
    cases = [(np.zeros((3, 10)), {}, r"^x: expected \(n, H, W\) images with n ≥ 2, got shape \(3, 10\)$"),
             (good[:1], {}, r"^x: expected \(n, H, W\) images with n ≥ 2, got shape \(1, 2, 5\)$"),
             (good, {"min_images": 4}, r"^x: expected \(n, H, W\) images with n ≥ 4, got shape"),
             (good, {"shape": [5, 2]}, r"^x: expected .* and \(H, W\) = \(5, 2\), got shape \(3, 2, 5\)$"),
             (np.full((3, 2, 5), np.nan), {}, r"^x: images contain NaN or infinite values$"),
             ([[[1.0, 2.0]], [[1.0]]], {}, r"^x: expected \(n, H, W\) images with n ≥ 2 of numbers, got list")]
    for images, options, message in cases:
        with pytest.raises(InputError, match=message):
            check_images(images, "x", **options)


def test_check_images_keeps_the_memory_layout():
    """Sums over an array depend on its layout: the checker must not reorder what it is given."""
    transposed = np.random.default_rng(0).normal(size=(8, 5, 3)).transpose(0, 2, 1)
    checked = check_images(transposed, "x", dtype=np.float64)
    assert checked.strides == transposed.strides
