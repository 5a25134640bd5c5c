"""Corrupt intermediate artifacts: a truncated or bit-flipped tiles.h5, a checkpoint of another run, a
plan.json edited by hand. Each is detected and reported, or ignored and rebuilt, never silently used."""

import json
import re
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability_support import TINY_STEP, assert_same_tiles, tiny_tiles

from dualdiv.core.errors import InputError
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.path import train_step
from dualdiv.stages.path import write_dual, write_plan, write_step
from dualdiv.stages.sample import write_samples

CORRUPTIONS = settings(max_examples=50, deadline=None, database=None, derandomize=True)  # the same every run


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """tiles.h5 and path/plan.json (2 steps) of a tiny data set."""
    folder = tmp_path_factory.mktemp("artifacts")
    write_plan(tiny_tiles(folder), folder / "path" / "plan.json", n_blocks=2)
    return folder


def _consumers(tiles: Path, out: Path):
    """Every stage that reads tiles.h5, as (name, call, output it must not leave)."""
    return [("path_plan", lambda: write_plan(tiles, out / "plan.json", 2), out / "plan.json"),
            ("sample", lambda: write_samples(tiles, "copy", out / "copy.h5", 4), out / "copy.h5")]


@CORRUPTIONS
@given(kept=st.floats(0, 1, exclude_max=True))
def test_truncated_tiles_are_refused_by_every_stage_that_reads_them(artifacts, kept):
    content = (artifacts / "tiles.h5").read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        broken = Path(folder) / "tiles.h5"
        broken.write_bytes(content[: int(len(content) * kept)])
        for stage, call, output in _consumers(broken, Path(folder) / "out"):
            with pytest.raises(InputError, match="rerun the tile stage") as error:
                call()
            assert str(error.value).startswith(str(broken)), stage
            assert not output.exists(), stage


@CORRUPTIONS
@given(st.data())
def test_a_flipped_byte_in_tiles_is_refused_or_changes_nothing(artifacts, data):
    original = load_tiles(artifacts / "tiles.h5")
    content = bytearray((artifacts / "tiles.h5").read_bytes())
    position = data.draw(st.integers(0, len(content) - 1), label="position")
    content[position] ^= data.draw(st.integers(1, 255), label="xor")
    with tempfile.TemporaryDirectory() as folder:
        flipped = Path(folder) / "tiles.h5"
        flipped.write_bytes(content)
        try:
            tiles = load_tiles(flipped)
        except InputError as error:
            assert str(error).startswith(str(flipped)) and "\n" not in str(error)
            return
        assert_same_tiles(tiles, original)  # the flip hit padding or free space: nothing read changed


@pytest.mark.parametrize("edit", ["pixel", "channel_std", "split", "provenance"])
def test_tiles_edited_in_place_fail_their_checksum(artifacts, tmp_path, edit):
    edited = tmp_path / "tiles.h5"
    edited.write_bytes((artifacts / "tiles.h5").read_bytes())
    with h5py.File(edited, "r+") as handle:
        if edit == "pixel":
            handle["images"][0, 0, 0] += 1.0
        elif edit == "channel_std":
            handle.attrs["channel_std"] = handle.attrs["channel_std"] * 2
        elif edit == "split":
            handle["split"][0] = b"test" if handle["split"][0] == b"train" else b"train"
        else:
            handle.attrs["provenance"] = json.dumps({"stage": "tile", "settings": {"seed": 99}})
    with pytest.raises(InputError, match=r"do not match the checksum .* rerun the tile stage"):
        load_tiles(edited)


def _train_images(artifacts):
    return load_tiles(artifacts / "tiles.h5").subset("train")


def _step(artifacts, folder: Path, step_settings=TINY_STEP):
    """write_step of step 1 into ``folder``; (critic state, record)."""
    record = write_step(artifacts / "tiles.h5", artifacts / "path" / "plan.json", 1, folder / "step_1.pt",
                        folder / "step_1.json", step_settings, seed=0, device="cpu")
    return torch.load(folder / "step_1.pt", weights_only=True), record


def _assert_same_step(a, b):
    (state_a, record_a), (state_b, record_b) = a, b
    for name in ("D", "stderr", "curve", "influence", "key"):
        assert record_a[name] == record_b[name], name
    assert state_a["model"].keys() == state_b["model"].keys()
    assert all(torch.equal(state_a["model"][k], state_b["model"][k]) for k in state_a["model"])


@pytest.fixture(scope="module")
def fresh_step(artifacts, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like the tests it is compared in: float sums depend on the thread count
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no checkpoint, nothing to warn about
            return _step(artifacts, tmp_path_factory.mktemp("fresh"))
    finally:
        torch.set_num_threads(threads)


def test_checkpoint_of_other_settings_is_ignored_and_the_step_rebuilt(artifacts, tmp_path, fresh_step,
                                                                      one_torch_thread):
    plan = json.loads((artifacts / "path" / "plan.json").read_text())
    other = replace(TINY_STEP, learning_rate=0.01)
    train_step(_train_images(artifacts), plan, 1, other, seed=0, checkpoint=tmp_path / "step_1.ckpt", device="cpu")
    assert (tmp_path / "step_1.ckpt").exists()
    with pytest.warns(UserWarning, match="ignoring checkpoint .* other settings"):
        rebuilt = _step(artifacts, tmp_path)
    assert rebuilt[1]["resumed_from"] == 0 and not (tmp_path / "step_1.ckpt").exists()
    _assert_same_step(rebuilt, fresh_step)


def test_truncated_checkpoint_is_ignored_and_the_step_rebuilt(artifacts, tmp_path, fresh_step, one_torch_thread):
    plan = json.loads((artifacts / "path" / "plan.json").read_text())
    train_step(_train_images(artifacts), plan, 1, replace(TINY_STEP, max_iterations=20), seed=0,
               checkpoint=tmp_path / "step_1.ckpt", device="cpu")
    content = (tmp_path / "step_1.ckpt").read_bytes()
    (tmp_path / "step_1.ckpt").write_bytes(content[: len(content) // 2])
    with pytest.warns(UserWarning, match="ignoring unreadable checkpoint"):
        rebuilt = _step(artifacts, tmp_path)
    assert rebuilt[1]["resumed_from"] == 0
    _assert_same_step(rebuilt, fresh_step)


def _edited_plan(artifacts, folder: Path, edit) -> Path:
    plan = json.loads((artifacts / "path" / "plan.json").read_text())
    edit(plan)
    (folder / "plan.json").write_text(json.dumps(plan))
    return folder / "plan.json"


def test_plan_that_is_not_json_is_refused_naming_the_file(artifacts, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{"shape": [2, 6], "blocks": [[0, 6], [6,')
    with pytest.raises(InputError, match=rf"^{re.escape(str(plan))}: cannot read path plan .* rerun path_plan"):
        write_step(artifacts / "tiles.h5", plan, 1, tmp_path / "s.pt", tmp_path / "s.json", TINY_STEP)
    assert not (tmp_path / "s.pt").exists() and not (tmp_path / "s.json").exists()


def test_plan_edited_into_an_invalid_plan_is_refused_naming_the_file(artifacts, tmp_path):
    plan = _edited_plan(artifacts, tmp_path, lambda p: p["pixel_order"].__setitem__(0, p["pixel_order"][1]))
    with pytest.raises(InputError, match=rf"^{re.escape(str(plan))}: .*malformed.* rerun path_plan"):
        write_step(artifacts / "tiles.h5", plan, 1, tmp_path / "s.pt", tmp_path / "s.json", TINY_STEP)


def test_dual_refuses_steps_trained_on_another_plan(artifacts, tmp_path, one_torch_thread):
    steps = [write_step(artifacts / "tiles.h5", artifacts / "path" / "plan.json", k, tmp_path / f"step_{k}.pt",
                        tmp_path / f"step_{k}.json", TINY_STEP, device="cpu") for k in (1, 2)]
    assert len(steps) == 2
    reversed_plan = _edited_plan(artifacts, tmp_path, lambda p: p["pixel_order"].reverse())  # still a valid plan
    with pytest.raises(InputError, match=r"step_1\.json: .*another plan.* rerun path_step"):
        write_dual(artifacts / "tiles.h5", reversed_plan, [str(tmp_path / f"step_{k}.pt") for k in (1, 2)],
                   [str(tmp_path / f"step_{k}.json") for k in (1, 2)], tmp_path / "dual.h5",
                   tmp_path / "divergence.json", estimate={"n_reference": 20}, device="cpu")
    assert not (tmp_path / "dual.h5").exists()
