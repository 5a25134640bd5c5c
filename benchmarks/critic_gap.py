"""A trained critic against the true one on a large fresh sample: the critic's shortfall without split noise (#21).

usage: python benchmarks/critic_gap.py FAMILY HxW TC SEED ['{StepSettings overrides}'] ['{CriticSettings overrides}']
Trains one critic of THOROUGH_TRAINING (folds 1; with the overrides) on N = 500 images of
benchmarks/estimate_gaussian.py, then scores the trained critic and the exact Gaussian log-ratio critic on
6 000 fresh images (seed 1000 + SEED), so the difference is the trained critic's shortfall alone (the
100-image split's noise is ±1.5 nats at TC 20).
Prints one JSON line: split_D (the estimate), fresh_trained, fresh_true (nats), iterations, best, wall_s.
"""

import json
import sys
import time
from dataclasses import replace

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
import estimate_gaussian as eg  # noqa: E402
from estimate_one import parse_cell  # noqa: E402

from dualdiv.estimators.path import load_critic, make_plan, score_step, train_step  # noqa: E402
from dualdiv.estimators.settings import THOROUGH_TRAINING  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    family, shape, tc, seed, overrides, critic = parse_cell(sys.argv)
    # one critic on one split unless the overrides say otherwise (THOROUGH_TRAINING cross-fits 5)
    settings = replace(THOROUGH_TRAINING, **{"folds": 1, **overrides},
                       critic=replace(THOROUGH_TRAINING.critic, **critic))
    x, corr = eg.sample(family, shape, tc, 500, seed)
    mean, std = x.mean(0), x.std(0)
    plan = make_plan(shape, 1)
    started = time.time()
    state, record = train_step(((x - mean) / std).astype(np.float32), plan, 1, settings, seed)
    wall = time.time() - started
    fresh, _ = eg.sample(family, shape, tc, 6000, 1000 + seed)
    scales = np.logspace(*eg.UNEVEN_SCALES, shape[0])[None, :, None] if family == "separable" else 1.0
    scoring = replace(settings, val_fraction=0.999, folds=1)  # (nearly) every fresh image scored
    trained = score_step(load_critic(state, "cpu"), ((fresh - mean) / std).astype(np.float32), plan, 1, scoring, 7)
    true = score_step(eg.GaussianLogRatio(corr), (fresh / scales).astype(np.float32), plan, 1, scoring, 7)
    print(json.dumps({"family": family, "shape": sys.argv[2], "tc": tc, "seed": seed, "overrides": overrides,
                      "critic": critic, "split_D": round(record["D"], 3), "fresh_trained": round(trained["D"], 3),
                      "fresh_true": round(true["D"], 3), "iterations": record["iterations"],
                      "best": record["best_iteration"], "wall_s": round(wall)}), flush=True)
