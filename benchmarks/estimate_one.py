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

if __name__ == "__main__":
    torch.set_num_threads(1)
    family, shape = sys.argv[1], tuple(int(v) for v in sys.argv[2].split("x"))
    tc, seed = float(sys.argv[3]), int(sys.argv[4])
    training = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    critic = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
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
