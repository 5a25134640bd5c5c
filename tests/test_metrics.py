"""Metrics of generated vs held-out real images: estimators against closed forms, references, reliability."""

import json
import math

import numpy as np
import pytest

from dualdiv.core.errors import InputError
from dualdiv.estimators.neural_dv import heldout_dv
from dualdiv.evaluation.metrics import (
    EvalSettings,
    c2st_auc,
    channel_correlations,
    cluster_divergence,
    distinct_rows,
    evaluate,
    gaussian_tc,
    knn_entropy,
    knn_kl_divergence,
    memorisation,
    mmd_test,
    reliability,
)
from dualdiv.generators import make_generator

FAST = EvalSettings(repeats=3, dv_iterations=100, mmd_permutations=200, welch_nperseg=8)


def gaussian_kl(mean_a, var_a, mean_b, var_b) -> float:
    """KL(N(mean_a, var_a I) ‖ N(mean_b, var_b I)) in nats, closed form."""
    d = len(mean_a)
    return 0.5 * (d * var_a / var_b + np.sum((mean_b - mean_a) ** 2) / var_b - d + d * math.log(var_b / var_a))


def correlated_images(n, seed, rho=0.8, shape=(3, 8)):
    """(n, H, W) Gaussian images: every pixel N(0, 1), channels correlated ρ at the same time point."""
    h, w = shape
    cov = np.full((h, h), rho) + (1 - rho) * np.eye(h)
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(h), cov, size=(n, w))  # (n, W, H)
    return x.transpose(0, 2, 1).astype(np.float32)


def test_knn_kl_matches_the_gaussian_closed_form():
    rng = np.random.default_rng(0)
    d = 3
    p = rng.normal(0.0, 1.0, size=(3000, d))
    q = rng.normal(0.5, math.sqrt(2.0), size=(3000, d))
    truth = gaussian_kl(np.zeros(d), 1.0, np.full(d, 0.5), 2.0)  # ≈ 0.46
    assert knn_kl_divergence(p, q, k=5) == pytest.approx(truth, abs=0.1)
    assert knn_kl_divergence(p, rng.normal(size=(3000, d)), k=5) == pytest.approx(0.0, abs=0.08)


def test_knn_entropy_matches_the_gaussian_closed_form():
    d, var = 4, 2.0
    x = np.random.default_rng(1).normal(0.0, math.sqrt(var), size=(4000, d))
    truth = 0.5 * d * math.log(2 * math.pi * math.e * var)  # ≈ 7.06
    assert knn_entropy(x, k=3) == pytest.approx(truth, abs=0.1)


def test_heldout_dv_is_close_to_the_truth_and_guarded():
    rng = np.random.default_rng(2)
    a, b = rng.normal(1.0, 1.0, size=(2000, 1)), rng.normal(0.0, 1.0, size=(2000, 1))  # KL = 0.5
    result = heldout_dv(a[:1000], b[:1000], a[1000:], b[1000:], seed=0, iterations=200)
    assert result["kl"] == pytest.approx(0.5, abs=0.15)
    assert 0 < result["stderr"] < 0.1
    # far apart with few samples: the Lipschitz critic cannot run away
    far = heldout_dv(a[:10] + 50, b[:10], a[10:20] + 50, b[10:20], iterations=200, lipschitz=1.0)
    assert far["kl"] < 60


def test_distinct_rows_keeps_first_occurrences():
    x = np.array([[1, 2], [3, 4], [1, 2], [5, 6]], dtype=float)
    unique, dropped = distinct_rows(x)
    assert dropped == 1 and x[unique].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_cluster_divergence_sees_separated_clusters():
    rng = np.random.default_rng(3)
    two = np.r_[rng.normal(-4, 1, size=(100, 2)), rng.normal(4, 1, size=(100, 2))]
    one = rng.normal(size=(200, 2))
    assert cluster_divergence(two, seed=0) > cluster_divergence(one, seed=0) + 1


def test_memorisation_flags_copies_and_not_fresh_samples():
    train, test, fresh = (correlated_images(60, s) for s in (4, 5, 6))
    copies = train[np.random.default_rng(0).integers(60, size=40)]
    copied = memorisation(copies, test, train)
    assert copied["dcr_ratio"] == 0 and copied["near_copy_fraction"] == 1
    novel = memorisation(fresh, test, train)
    assert 0.8 < novel["dcr_ratio"] < 1.25 and novel["near_copy_fraction"] < 0.2


def test_mmd_pvalue_small_for_different_and_not_for_same_distributions():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 5))
    assert mmd_test(x, rng.normal(0.8, 1.0, size=(60, 5)), seed=0)["pvalue"] < 0.01
    assert mmd_test(x, rng.normal(size=(60, 5)), seed=0)["pvalue"] > 0.05


def test_c2st_separates_marginals_from_correlated_data_on_correlations():
    real, other_real = correlated_images(40, 8), correlated_images(40, 9)
    shuffled = make_generator("marginals").fit(correlated_images(40, 10), 0).sample(40, 0)[0]
    upper = np.triu_indices(3, k=1)
    corr = lambda x: channel_correlations(x)[:, upper[0], upper[1]]  # noqa: E731
    assert c2st_auc(corr(shuffled), corr(real), repeats=3)["auc"] > 0.9
    assert c2st_auc(corr(other_real), corr(real), repeats=3)["auc"] < 0.75


def test_gaussian_tc_matches_the_closed_form():
    x = correlated_images(4000, 11, rho=0.5, shape=(3, 2))
    corr = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    truth = -0.5 * 2 * np.linalg.slogdet(corr)[1]  # two independent time points
    assert gaussian_tc(x)["tc"] == pytest.approx(truth, abs=0.05)


@pytest.fixture(scope="module")
def reference_table():
    """evaluate() of the three references on correlated Gaussian images, with the Gaussian TC stub.

    (n = 200 test images of 12 pixels keep the stub's finite-sample bias, ≈ d²/4n, near 0.2 nats.)
    """
    train, test = correlated_images(200, 12, shape=(3, 4)), correlated_images(200, 13, shape=(3, 4))
    table = {}
    for key in ("copy", "interpolate", "marginals"):
        generated, _ = make_generator(key).fit(train, 0).sample(200, 1)
        table[key] = evaluate(generated, test, train, seed=0, settings=FAST, tc_estimator=gaussian_tc)
    return table


def test_evaluate_returns_json_numbers_for_every_metric(reference_table):
    row = reference_table["interpolate"]
    assert json.loads(json.dumps(row)) == row
    for key in ("kl_dv_gen_real", "kl_knn_real_gen", "entropy_gap", "cluster_divergence_gap", "dcr_ratio_features",
                "c2st_auc_combined", "spectrum_error", "autocorrelation_error", "correlation_error",
                "mmd_pvalue_features", "tc_gap", "kl_dv_gen_real_features", "entropy_gap_features",
                "cluster_divergence_gap_features"):
        assert isinstance(row[key], float), key


def test_copy_is_flagged_as_memorised(reference_table):
    copy = reference_table["copy"]
    assert copy["dcr_ratio"] == 0 and copy["near_copy_fraction"] == 1 and copy["memorised"]
    assert copy["n_duplicates"] > 0  # drawn with replacement; kNN metrics ran on the unique images
    assert not reference_table["marginals"]["memorised"]


def test_marginals_look_unrealistic_and_have_no_total_correlation(reference_table):
    copy, marginals = reference_table["copy"], reference_table["marginals"]
    assert marginals["c2st_auc_correlation"] > 0.9 and marginals["c2st_auc_features"] > 0.9
    assert copy["c2st_auc_correlation"] < 0.75
    assert abs(marginals["tc_generated"]) < 0.4 < 4 < copy["tc_generated"]  # truth: 0 and 4.5 nats
    assert marginals["tc_gap"] > copy["tc_gap"]
    assert marginals["correlation_error"] > copy["correlation_error"]


def test_reliability_marks_metrics_that_rank_the_references(reference_table):
    verdicts = reliability(reference_table)
    for key in ("dcr_ratio", "near_copy_fraction", "tc_gap", "c2st_auc_correlation", "correlation_error"):
        assert verdicts[key]["reliable"], (key, verdicts[key])
    # a metric that ranks copy below marginals is marked unreliable
    flipped = {k: dict(v) for k, v in reference_table.items()}
    flipped["copy"]["correlation_error"] = flipped["marginals"]["correlation_error"] + 1
    verdict = reliability(flipped)["correlation_error"]
    assert verdict["reliable"] is False and not verdict["detects_lost_dependence"]


def test_evaluate_without_tc_estimator_says_not_available():
    train, test = correlated_images(30, 14), correlated_images(10, 15)
    row = evaluate(train[:12] + 0.1, test, train, settings=FAST)
    assert row["tc_gap"] is None and row["tc_note"].startswith("not available")
    with pytest.raises(InputError):
        reliability({"copy": row})


def test_evaluate_rejects_mismatched_shapes_and_bad_images():
    with pytest.raises(InputError, match="shapes differ"):
        evaluate(correlated_images(10, 0, shape=(2, 8)), correlated_images(10, 1), correlated_images(10, 2))
    with pytest.raises(InputError, match=r"^test: expected \(n, H, W\) images with n ≥ 4, got shape \(3, 3, 8\)$"):
        evaluate(correlated_images(10, 0), correlated_images(3, 1), correlated_images(10, 2))
    generated = correlated_images(10, 0)
    generated[2, 1, 3] = np.inf
    with pytest.raises(InputError, match="^generated: images contain NaN or infinite values$"):
        evaluate(generated, correlated_images(10, 1), correlated_images(10, 2))


def test_independent_critics_are_opt_in_and_leave_the_other_metrics_unchanged():
    pytest.importorskip("sktime")
    from dataclasses import replace

    from dualdiv.core.errors import ConfigError

    train, test = correlated_images(80, 21, shape=(3, 16)), correlated_images(80, 22, shape=(3, 16))
    rng = np.random.default_rng(5)  # each channel shuffled across images: its marginals kept, channels independent
    scrambled = np.stack([test[rng.permutation(80), c] for c in range(3)], axis=1)
    plain = evaluate(scrambled, test, train, seed=0, settings=FAST)
    settings = replace(FAST, critics=("minirocket", "gru", "marginals"), critic_kernels=84)
    with_critics = evaluate(scrambled, test, train, seed=0, settings=settings)
    new = {"c2st_auc_minirocket", "c2st_auc_minirocket_std", "gru_discriminative_score", "gru_accuracy", "gru_auc",
           "gru_auc_std", "marginal_w1", "marginal_ks"}
    assert new.isdisjoint(plain) and new <= set(with_critics)
    assert {k: v for k, v in with_critics.items() if k not in new | {"settings"}} == \
        {k: v for k, v in plain.items() if k != "settings"}
    assert with_critics["marginal_ks"] < 0.3  # the one-pixel distributions are those of real images
    copy = evaluate(correlated_images(80, 23, shape=(3, 16)), test, train, seed=0, settings=settings)
    assert copy["c2st_auc_minirocket"] < 0.75 and 0.0 <= copy["gru_discriminative_score"] <= 0.5
    # lost dependence between channels: both critics see it (measured 0.95 and 0.99 vs 0.53 and 0.63)
    assert with_critics["c2st_auc_minirocket"] > 0.85 and with_critics["gru_auc"] > 0.85
    with pytest.raises(ConfigError, match="^evaluate.critics: unknown 'rocket'"):
        EvalSettings(critics=("rocket",))
