"""The true and a plug-in (Ledoit–Wolf / OAS / sample covariance) Gaussian critic, cross-fitted over
5 folds, on the cells of ESTIMATE_GAUSSIAN.md (#21): the noise floor of the held-out score.

usage: python benchmarks/gaussian_floor.py
"""

import sys

import numpy as np
import torch
from sklearn.covariance import OAS, LedoitWolf

sys.path.insert(0, "benchmarks")
import estimate_gaussian as eg  # noqa: E402

from dualdiv.estimators.path import StepSettings, make_plan, score_step, standardise_pixels  # noqa: E402

CELLS = [("separable", (8, 8), 20), ("equicorrelated", (1, 64), 20), ("ar1", (1, 64), 20),
         ("separable", (16, 16), 20), ("separable", (4, 64), 20), ("separable", (8, 8), 5),
         ("separable", (8, 8), 60)]


def correlation_estimate(train: np.ndarray, how: str, truth: np.ndarray) -> np.ndarray:
    if how == "true":
        return truth
    cov = {"lw": lambda x: LedoitWolf().fit(x).covariance_, "oas": lambda x: OAS().fit(x).covariance_,
           "sample": lambda x: np.cov(x.T)}[how](train)
    sd = np.sqrt(np.diag(cov))
    return cov / np.outer(sd, sd)


def floor(family, shape, tc, seed, how) -> float:
    x, corr = eg.sample(family, shape, tc, 500, seed)
    images = standardise_pixels(x)
    settings, plan = StepSettings(folds=5), make_plan(shape, 1)
    if how == "true":
        return score_step(eg.GaussianLogRatio(corr), images, plan, 1, settings, seed)["D"]
    # a plug-in critic per fold, from that fold's training images: score each fold with its own
    from dualdiv.estimators.path import _cross_fitted, _fold_splits, _held_out_score, pixel_rank, substep_bounds
    flat = torch.as_tensor(images.reshape(len(images), -1))
    splits = _fold_splits(len(images), settings, seed)
    scores = [_held_out_score(eg.GaussianLogRatio(correlation_estimate(flat[train].double().numpy(), how, corr)),
                              flat[val], val, shape, pixel_rank(plan), substep_bounds(plan, 1), settings, seed, 1, i)
              for i, (train, val) in enumerate(splits)]
    return _cross_fitted(scores, splits, len(images))["D"]


if __name__ == "__main__":
    torch.set_num_threads(1)
    for family, shape, tc in CELLS:
        for how in ("true", "lw", "oas", "sample"):
            values = [floor(family, shape, tc, seed, how) for seed in (0, 1, 2)]
            print(family, shape, tc, how, " ".join(f"{v:.2f}({100 * (v / tc - 1):+.0f}%)" for v in values), flush=True)
