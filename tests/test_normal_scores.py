"""Normal scores (standardise "ranks", `dualdiv estimate --marginals ranks`): the Gaussian copula of each pixel."""

import numpy as np
import pytest
from scipy.special import ndtri

from dualdiv.core.errors import ConfigError
from dualdiv.estimators.dualspace import DualSpace, estimate_tc, normal_scores
from dualdiv.estimators.path import StepSettings
from dualdiv.estimators.settings import CriticSettings

QUICK = StepSettings(critic=CriticSettings(kind="bilinear", channels=4, hidden=16, dropout=0.0, rank=4,
                                           value_hidden=8), max_iterations=30, eval_every=10, folds=2)


def test_fitted_values_get_the_normal_score_of_their_mid_rank():
    x = np.array([3.0, -1.0, 7.0, 3.0])[:, None, None]
    scores = normal_scores(x, np.sort(x, axis=0))[:, 0, 0]
    np.testing.assert_allclose(scores, ndtri(np.array([2.5, 1, 4, 2.5]) / 5), rtol=1e-6)
    new = normal_scores(np.array([-5.0, 0.0, 100.0])[:, None, None], np.sort(x, axis=0))[:, 0, 0]
    np.testing.assert_allclose(new, ndtri(np.array([0.5, 1.5, 4.5]) / 5), rtol=1e-6)  # between fitted ranks


def test_the_estimate_on_normal_scores_ignores_increasing_maps_of_each_pixel():
    """TC is invariant to an increasing map of any variable; on normal scores so is the estimate, exactly."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(80, 1, 1))
    x = z + 0.7 * rng.normal(size=(80, 2, 3))
    warped = x.copy()
    warped[:, 0] = np.exp(2 * x[:, 0])
    warped[:, 1] = x[:, 1] ** 3
    direct = estimate_tc(x, settings=QUICK, marginals="ranks")["tc"]
    assert estimate_tc(warped, settings=QUICK, marginals="ranks")["tc"] == direct
    assert estimate_tc(warped, settings=QUICK)["tc"] == direct  # normal scores are the default
    assert estimate_tc(warped, settings=QUICK, marginals="zscore")["tc"] != direct  # z-scores see the warps


def test_a_space_on_normal_scores_saves_loads_and_has_no_gradient(tmp_path):
    x = np.random.default_rng(1).normal(size=(40, 2, 3)) ** 3
    space = DualSpace(n_blocks=1, training=QUICK, n_reference=20, standardise="ranks").fit(x)
    np.testing.assert_allclose(space.transform(x), space.fit_F_, rtol=1e-5, atol=1e-6)
    space.save(tmp_path / "space")
    loaded = DualSpace.load(tmp_path / "space")
    np.testing.assert_allclose(loaded.transform(x[:5]), space.transform(x[:5]), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="piecewise constant"):
        space.gradient(x[:2])
    with pytest.raises(ConfigError, match="standardise"):
        DualSpace(standardise="copula").fit(x)


def test_cli_estimate_takes_marginals_ranks(tmp_path, capsys):
    import json

    from dualdiv.cli import main

    x = np.random.default_rng(2).normal(size=(40, 2, 3))
    np.save(tmp_path / "x.npy", np.exp(x + x[:, :1, :1]))
    assert main(["estimate", str(tmp_path / "x.npy"), "--marginals", "ranks", "--max-iterations", "20",
                 "--jobs", "1"]) == 0
    assert np.isfinite(json.loads(capsys.readouterr().out)["tc"])
