"""SIGKILL in the middle of a path step, of sampling and of an HDF5 write, in a real subprocess: no
output is left under its final name, the rerun resumes (the step from its checkpoint) and writes
artifacts bit-identical to an uninterrupted run with the same seed (CPU, one thread)."""

import json
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from reliability_support import TINY_STEP, kill_group, leftovers, start, tiny_tiles, wait_for

from dualdiv.stages.path import write_plan, write_step
from dualdiv.stages.sample import write_samples

# long enough that the step is still training when its first checkpoint (iteration 20) appears
KILLED_STEP = replace(TINY_STEP, max_iterations=300, eval_every=20, checkpoint_every=20)
SAMPLE_CONFIG = {"settings": {"dualdiv_corrected": {"critic_iterations": 20, "candidates": 4}}}

_CHILD = """
import json, sys, time
import torch
torch.set_num_threads(1)
import h5py
import dualdiv.stages.sample

def pause(owner, name, marker, after):
    '''Touch marker, then sleep before (or after) the first call of owner.name: a set moment to be killed at.'''
    original = getattr(owner, name)
    def paused(*args, **kwargs):
        result = original(*args, **kwargs) if after else None
        open(marker, "w").close()
        time.sleep(600)
        return result
    setattr(owner, name, paused)

args = json.loads(sys.argv[1])
"""

_STEP = """
from dualdiv.stages.path import write_step
from dualdiv.estimators.path import StepSettings
write_step(args["tiles"], args["plan"], 1, args["critic"], args["record"], StepSettings(**args["settings"]),
           seed=0, device="cpu")
"""

_SAMPLE = """
if args["pause"] == "sampling":  # between the generator's fit and its draw
    make = dualdiv.stages.sample.make_generator
    def make_paused(*a, **k):
        generator = make(*a, **k)
        pause(generator, "sample", args["marker"], after=False)
        return generator
    dualdiv.stages.sample.make_generator = make_paused
elif args["pause"] == "hdf5":  # the output's first dataset written, the file still open
    pause(h5py.Group, "create_dataset", args["marker"], after=True)
dualdiv.stages.sample.write_samples(args["tiles"], "dualdiv", args["out"], 6, 3, args["config"])
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """tiles.h5 and plan.json (2 steps) of a tiny data set."""
    folder = tmp_path_factory.mktemp("inputs")
    write_plan(tiny_tiles(folder), folder / "plan.json", n_blocks=2)
    return folder


def _python(body: str, folder: Path, args: dict):
    return start([sys.executable, "-c", _CHILD + body, json.dumps(args)], folder)


def _kill_when(process, condition, what: str) -> None:
    wait_for(lambda: condition() or process.poll() is not None, 120, what)
    assert process.poll() is None, f"finished before {what}: {process.communicate()[1][-2000:]}"
    kill_group(process)
    assert process.returncode == -signal.SIGKILL


def _finish(process) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]


def test_killed_path_step_resumes_from_its_checkpoint_to_the_same_artifacts(inputs, tmp_path, one_torch_thread):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    write_step(inputs / "tiles.h5", inputs / "plan.json", 1, reference / "step_1.pt", reference / "step_1.json",
               KILLED_STEP, seed=0, device="cpu")
    args = {"tiles": str(inputs / "tiles.h5"), "plan": str(inputs / "plan.json"), "critic": str(killed / "step_1.pt"),
            "record": str(killed / "step_1.json"), "settings": asdict(KILLED_STEP)}
    killed.mkdir()  # write_step does not create it when checkpointing (test_step_into_a_new_folder_...)
    _kill_when(_python(_STEP, killed, args), (killed / "step_1.ckpt").exists, "the first checkpoint")
    assert sorted(p.name for p in killed.iterdir()) == ["step_1.ckpt"]  # no critic, no record
    _finish(_python(_STEP, killed, args))
    resumed, uninterrupted = (json.loads((folder / "step_1.json").read_text()) for folder in (killed, reference))
    assert resumed["resumed_from"] >= 20 and not (killed / "step_1.ckpt").exists()
    for name in ("D", "stderr", "substep_D", "influence", "curve", "iterations", "best_iteration", "key"):
        assert resumed[name] == uninterrupted[name], name
    critic, reference_critic = (torch.load(folder / "step_1.pt", weights_only=True) for folder in (killed, reference))
    assert critic["model"].keys() == reference_critic["model"].keys()
    assert all(torch.equal(critic["model"][k], reference_critic["model"][k]) for k in critic["model"])


def _h5_contents(path: Path) -> dict:
    with h5py.File(path, "r") as handle:
        return {**{name: handle[name][()] for name in handle}, **{f"@{k}": v for k, v in handle.attrs.items()}}


@pytest.mark.parametrize("moment", ["sampling", "hdf5"])
def test_killed_sampling_leaves_no_output_and_the_rerun_is_identical(inputs, tmp_path, one_torch_thread, moment):
    write_samples(inputs / "tiles.h5", "dualdiv", tmp_path / "reference.h5", 6, 3, SAMPLE_CONFIG)
    out = tmp_path / "samples" / "dualdiv.h5"
    args = {"tiles": str(inputs / "tiles.h5"), "out": str(out), "config": SAMPLE_CONFIG, "pause": moment,
            "marker": str(tmp_path / "marker")}
    _kill_when(_python(_SAMPLE, tmp_path, args), (tmp_path / "marker").exists, f"the pause in {moment}")
    assert not out.exists()
    if moment == "hdf5":  # the killed writer's half-written temporary, under a name no stage reads
        assert len(leftovers(out)) == 1 and leftovers(out)[0].startswith(".dualdiv.h5.tmp-")
    _finish(_python(_SAMPLE, tmp_path, {**args, "pause": None}))
    assert leftovers(out) == ["dualdiv.h5"]  # and the rerun removed that temporary
    rerun, reference = _h5_contents(out), _h5_contents(tmp_path / "reference.h5")
    assert rerun.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_array_equal(rerun[name], value, err_msg=name, strict=True)


def test_step_into_a_new_folder_creates_it(inputs, tmp_path, one_torch_thread):
    out = tmp_path / "new" / "path"
    write_step(inputs / "tiles.h5", inputs / "plan.json", 1, out / "step_1.pt", out / "step_1.json",
               replace(TINY_STEP, max_iterations=10), seed=0, device="cpu")
    assert (out / "step_1.pt").exists()
