"""Intervals over cross-fitted evaluations and paired comparisons of two methods.

A cross-fitted benchmark scores every method on k folds × s workflow seeds ("fits"). The fits
are not independent — any two training sets of one seed share k − 2 of their k folds — so the
plain t-interval over the n = k·s values is too narrow. Both functions use the corrected
resampled t of Nadeau & Bengio (2003, *Inference for the generalization error*), in the
repeated-k-fold form of Bouckaert & Frank (2004): the variance of the mean is

    (1/n + n_test/n_train) · s²,   n_test/n_train = 1/(k − 1),

with the t distribution on n − 1 degrees of freedom. The paired comparison adds an exact
(or, beyond 2¹⁶ sign patterns, Monte Carlo) sign-flip permutation p-value of the per-fit
differences, which assumes exchangeable fits and is reported beside the corrected t.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

LEVEL = 0.95
_EXACT_SIGN_FLIPS = 16  # up to 2¹⁶ sign patterns are enumerated; more are sampled


def overlap_correction(folds: int | None) -> float:
    """n_test/n_train of k-fold cross-fitting, 1/(k − 1); 0 (the plain t) for None (independent fits)."""
    return 0.0 if folds is None else 1.0 / (folds - 1)


def mean_interval(values, folds: int | None = None, level: float = LEVEL) -> dict:
    """Mean of the finite ``values`` (one per fit) with its corrected ``level`` t-interval.

    folds: k of the k-fold cross-fitting the values come from (None: independent fits).
    Returns {"value", "ci_low", "ci_high", "n"}; the interval is NaN with fewer than 2 values,
    and collapses onto the mean when every value is equal.
    """
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return {"value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"value": mean, "ci_low": float("nan"), "ci_high": float("nan"), "n": 1}
    half = _t_quantile(level, n) * math.sqrt((1 / n + overlap_correction(folds)) * x.var(ddof=1))
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired_difference(a, b, folds: int | None = None, level: float = LEVEL, seed: int = 0,
                      resamples: int = 20_000) -> dict:
    """a − b over fits where both are finite (a[i], b[i] from the same fold and seed).

    Returns {"difference", "ci_low", "ci_high", "n"} (as :func:`mean_interval`), "p_value" (two-sided,
    corrected resampled t; NaN with < 2 pairs, 1 when every difference is 0) and "p_sign_flip"
    (two-sided sign-flip permutation test of the mean difference).
    """
    pairs = [(x, y) for x, y in zip(a, b, strict=True)
             if x is not None and y is not None and np.isfinite(x) and np.isfinite(y)]
    d = np.asarray([x - y for x, y in pairs], dtype=float)
    interval = mean_interval(d, folds, level)
    result = {"difference": interval["value"], "ci_low": interval["ci_low"], "ci_high": interval["ci_high"],
              "n": interval["n"], "p_value": float("nan"), "p_sign_flip": float("nan")}
    if len(d) < 2:
        return result
    spread = math.sqrt((1 / len(d) + overlap_correction(folds)) * d.var(ddof=1))
    if spread == 0:
        result["p_value"] = 1.0 if d.mean() == 0 else 0.0
    else:
        result["p_value"] = float(2 * stats.t.sf(abs(d.mean()) / spread, len(d) - 1))
    result["p_sign_flip"] = sign_flip_p(d, seed, resamples)
    return result


def sign_flip_p(d, seed: int = 0, resamples: int = 20_000) -> float:
    """Two-sided p-value of mean(d) = 0 under random signs of the differences ``d``.

    Exact (all 2ⁿ sign patterns) for n ≤ 16; else ``resamples`` seeded patterns, the observed one
    counted in (so p ≥ 1/(resamples + 1)).
    """
    d = np.asarray(d, dtype=float)
    observed = abs(d.sum()) - 1e-12 * max(1.0, float(np.abs(d).sum()))  # ties count as extreme
    if len(d) <= _EXACT_SIGN_FLIPS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) >= observed))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(resamples, len(d)))
    return float((np.sum(np.abs(signs @ d) >= observed) + 1) / (resamples + 1))


def verdict(comparison: dict, better: str | None) -> str:
    """"better", "worse" or "tied" for the first method of a :func:`paired_difference`, by whether its interval
    excludes 0; ``better`` says which way the metric improves ("lower" or "higher"); "" when it has no
    direction or no interval."""
    low, high = comparison["ci_low"], comparison["ci_high"]
    if better not in ("lower", "higher") or not (np.isfinite(low) and np.isfinite(high)):
        return ""
    if high < 0:
        return "better" if better == "lower" else "worse"
    if low > 0:
        return "worse" if better == "lower" else "better"
    return "tied"


def _t_quantile(level: float, n: int) -> float:
    return float(stats.t.ppf(0.5 + level / 2, n - 1))
