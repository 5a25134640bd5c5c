"""One path estimate on a Gaussian of benchmarks/estimate_gaussian.py, with its training curve (#21).

usage: python benchmarks/estimate_one.py FAMILY HxW TC SEED '{"max_iterations": 3000}' '{"kind": "hybrid"}'
(StepSettings fields, with "order" and "K" for the path; then CriticSettings fields). N = 500.
"""

import json
import sys
import time

import torch

sys.path.insert(0, "benchmarks")
import estimate_gaussian as eg  # noqa: E402

from dualdiv.estimators.dualspace import estimate_tc  # noqa: E402
from dualdiv.estimators.settings import CriticSettings, StepSettings  # noqa: E402


def parse_cell(argv: list[str]) -> tuple[str, tuple[int, int], float, int, dict, dict]:
    """(family, (H, W), tc, seed, training overrides, critic overrides) of FAMILY HxW TC SEED ['{…}'] ['{…}']."""
    family, shape = argv[1], tuple(int(v) for v in argv[2].split("x"))
    training = json.loads(argv[5]) if len(argv) > 5 else {}
    critic = json.loads(argv[6]) if len(argv) > 6 else {}
    return family, shape, float(argv[3]), int(argv[4]), training, critic


if __name__ == "__main__":
    torch.set_num_threads(1)
    family, shape, tc, seed, training, critic = parse_cell(sys.argv)
    order, n_blocks = training.pop("order", "time"), training.pop("K", 1)
    x, _ = eg.sample(family, shape, tc, 500, seed)
    started = time.time()
    result = estimate_tc(x, n_blocks=n_blocks, order=order, seed=seed,
                         settings=StepSettings(**training, critic=CriticSettings(**critic)))
    step = result["steps"][0]
    curve = [round(v, 1) for v in step["curve"]["validation"] if v is not None]
    print(f"{family} {shape} tc={tc} seed={seed} {training} {critic} -> {result['tc']:.2f} "
          f"({100 * (result['tc'] / tc - 1):+.1f} %) se {result['stderr']:.2f} "
          f"iterations {sum(s['iterations'] for s in result['steps'])} stopped {step['stopped']} "
          f"best {step['best_iteration']} {time.time() - started:.0f} s curve {curve}", flush=True)
