"""Downstream utility of labelled generated images: does a classifier trained on them work on real data?

Images are ``(n, H, W)`` in the normalised units of ``tiles.h5`` (H = channels, W = time);
labels ``(n,)`` class names. Three training sets, one classifier, the same held-out real
test split:

- **TRTR** (train on real, test on real): the real training split — the yardstick;
- **TSTR** (train on synthetic, test on real): generated images only, a seeded subsample
  with the real training split's class counts (fewer where fewer were generated), so
  TSTR and TRTR train on sets of the same size;
- **augmentation** ``k``: the real training split plus k × its class counts of generated
  images (all of a class's generated images where fewer exist; ``augmentation_k{k}_n_synthetic``
  says how many were used).

Classifiers (maintained libraries; the optional ones need ``pip install dualdiv[utility]``):

- ``tangent_space`` (pyRiemann): per-image channel covariance (``Covariances(estimator="oas")``,
  Oracle Approximating Shrinkage) → Riemannian tangent space at the training mean
  (``TangentSpace(metric="riemann")``) → scikit-learn ``LogisticRegression``; the standard
  EEG/MEG pipeline (Barachant et al. 2013), milliseconds per fit.
- ``minirocket``: the MiniRocket transform (Dempster et al. 2021; aeon's ``MiniRocket`` if aeon is
  installed, else sktime's ``MiniRocketMultivariateCython`` when sktime-cython is, else sktime's
  numba ``MiniRocketMultivariate``) → ``StandardScaler(with_mean=False)`` → ``RidgeClassifierCV``
  (alphas 10⁻³…10³), the pipeline aeon and sktime document; ``utility_kernels`` kernels.
- ``logistic_features`` (scikit-learn only, always available): per-channel log Welch spectra and
  the channel correlations (:func:`dualdiv.estimators.features.feature_blocks`), standardised,
  L2 logistic regression (C = 1).

``auto`` (:func:`resolve_classifier`): ``tangent_space`` for EEG/MEG-like data when pyRiemann is
installed, else ``minirocket`` when aeon or sktime is (and W ≥ 9, the kernel length), else
``logistic_features``. EEG/MEG-like: H ≥ 4 channels and either MNE's channel types (where the data
came through MNE) are mostly brain channels (eeg, mag, grad, seeg, ecog, dbs, hbo, hbr), or, with
no types, at least half of the channel names are 10–20/10–10 electrode names (Fz, C3, AF4, ...).
The channel covariance carries what such data are classified by (band power per channel and
coupling between channels); it drops each channel's mean, which e.g. a weather set's months differ
by, hence not the default elsewhere.

Repeats and intervals. Each arm is fitted ``utility_seeds`` times (repeat r: its own classifier seed
and its own generated subsample; a deterministic classifier on the same training set is fitted
once). The value reported is the mean over repeats of the metric on the whole test split. Its 95 %
interval is a **stratified percentile bootstrap over the test images** (``utility_bootstrap``
resamples; each class's test images resampled within the class, so every resample has every
class): with ~20 test images the test sample, not the seed, dominates the uncertainty, and a
t-interval over 3 seeds of a deterministic classifier would have zero width. The **gain** of an arm
over TRTR (``_gain``) is a paired bootstrap: the same resampled test images score both arms, so the
shared test-set luck cancels. The interval covers test-set sampling (and the averaged repeats), not
a new draw of the real training split.
Accuracy = share of test images classified right; balanced accuracy = mean over the test split's
classes of the per-class recall (0.5 = chance with two classes).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.estimators.features import feature_blocks

__all__ = ["CLASSIFIERS", "MiniRocketFeatures", "check_utility_settings", "correct_by_arm", "eeg_like",
           "make_classifier", "resolve_classifier", "summarise", "utility_keys", "utility_metrics"]

CLASSIFIERS = ("tangent_space", "minirocket", "logistic_features")
METRICS = ("accuracy", "balanced_accuracy")
BRAIN_CHANNEL_TYPES = {"eeg", "mag", "grad", "seeg", "ecog", "dbs", "hbo", "hbr"}
# 10–20 / 10–10 / 10–5 electrode names: a site prefix, then z or a number, optionally "h" (10–5)
ELECTRODE_NAME = re.compile(r"^(n|nz|fp|afp|af|aff|f|ffc|ft|ftt|fc|fcc|c|ccp|t|tt|tp|ttp|tpp|cp|cpp|p|ppo|po|poo"
                            r"|o|oi|i|a|m)(z|\d{1,2})h?$", re.IGNORECASE)
MINIROCKET_KERNEL_LENGTH = 9


# ------------------------------------------------------------------------ settings and classifier choice

def check_utility_settings(utility, classifier: str, seeds: int, ks: Sequence[int], kernels: int,
                           bootstrap: int) -> None:
    """ConfigError (one line, naming the field) for a bad ``evaluate.metrics.utility*`` setting."""
    if not (utility == "auto" or isinstance(utility, bool)):
        raise ConfigError(f"evaluate.metrics.utility: 'auto', true or false, got {utility!r}")
    if classifier not in ("auto", *CLASSIFIERS):
        raise ConfigError(f"evaluate.metrics.utility_classifier: one of auto, {', '.join(CLASSIFIERS)}, "
                          f"got {classifier!r}")
    if seeds < 1:
        raise ConfigError(f"evaluate.metrics.utility_seeds: must be ≥ 1, got {seeds}")
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks) or len(set(ks)) < len(ks):
        raise ConfigError(f"evaluate.metrics.utility_k: distinct integers ≥ 1, got {list(ks)}")
    if kernels < 84:
        raise ConfigError(f"evaluate.metrics.utility_kernels: must be ≥ 84 (MiniRocket's kernel set), got {kernels}")
    if bootstrap < 100:
        raise ConfigError(f"evaluate.metrics.utility_bootstrap: must be ≥ 100 resamples, got {bootstrap}")


def eeg_like(n_channels: int, channel_types: Sequence[str] | None = None,
             channel_names: Sequence[str] | None = None) -> bool:
    """Whether data of ``n_channels`` channels look like EEG/MEG: ≥ 4 channels, and mostly brain channels by
    MNE's ``channel_types`` where known, else at least half of ``channel_names`` 10–20/10–10 electrode names."""
    if n_channels < 4:
        return False
    if channel_types:
        return sum(t in BRAIN_CHANNEL_TYPES for t in channel_types) * 2 > len(channel_types)
    if channel_names:
        return sum(bool(ELECTRODE_NAME.match(str(name).strip())) for name in channel_names) * 2 >= len(channel_names)
    return False


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def minirocket_backend() -> str | None:
    """Which MiniRocket implementation is installed: "aeon", "sktime_cython", "sktime", or None."""
    if _installed("aeon"):
        return "aeon"
    if _installed("sktime"):
        return "sktime_cython" if _installed("sktime_cython") else "sktime"
    return None


def resolve_classifier(choice: str, n_channels: int, n_times: int, channel_types: Sequence[str] | None = None,
                       channel_names: Sequence[str] | None = None) -> tuple[str, str]:
    """The classifier ``choice`` ("auto" or one of :data:`CLASSIFIERS`) stands for, and why.

    ``auto``: ``tangent_space`` for EEG/MEG-like data (:func:`eeg_like`) with pyRiemann installed, else
    ``minirocket`` with aeon or sktime installed and ``n_times`` ≥ 9, else ``logistic_features``. A named
    classifier whose library is missing is a ConfigError.
    """
    if choice not in ("auto", *CLASSIFIERS):
        raise ConfigError(f"evaluate.metrics.utility_classifier: one of auto, {', '.join(CLASSIFIERS)}, "
                          f"got {choice!r}")
    if choice == "tangent_space" and not _installed("pyriemann"):
        raise ConfigError("evaluate.metrics.utility_classifier: tangent_space needs pyRiemann "
                          "(pip install 'dualdiv[utility]')")
    if choice == "minirocket" and minirocket_backend() is None:
        raise ConfigError("evaluate.metrics.utility_classifier: minirocket needs aeon or sktime "
                          "(pip install 'dualdiv[utility]')")
    if choice == "minirocket" and n_times < MINIROCKET_KERNEL_LENGTH:
        raise ConfigError(f"evaluate.metrics.utility_classifier: minirocket needs ≥ {MINIROCKET_KERNEL_LENGTH} "
                          f"time points, the images have {n_times}")
    if choice != "auto":
        return choice, "as configured"
    brain = eeg_like(n_channels, channel_types, channel_names)
    if brain and _installed("pyriemann"):
        return "tangent_space", "auto: EEG/MEG-like channels, pyRiemann installed"
    if minirocket_backend() is not None and n_times >= MINIROCKET_KERNEL_LENGTH:
        return "minirocket", "auto: " + ("EEG/MEG-like but pyRiemann not installed; " if brain else
                                         "not EEG/MEG-like; ") + f"MiniRocket ({minirocket_backend()}) installed"
    return "logistic_features", "auto: fallback (" + ("pyRiemann not installed" if brain else
                                                      "not EEG/MEG-like, no aeon/sktime for MiniRocket") + ")"


class MiniRocketFeatures(TransformerMixin, BaseEstimator):
    """The MiniRocket transform as a scikit-learn transformer: (n, H, W) images → (n, ~kernels) features.

    Wraps aeon's ``MiniRocket`` or sktime's ``MiniRocketMultivariate(Cython)`` (:func:`minirocket_backend`);
    the kernels' biases are fitted on the images given to ``fit``.
    """

    def __init__(self, n_kernels: int = 10_000, random_state: int | None = None):
        self.n_kernels = n_kernels
        self.random_state = random_state

    def fit(self, X, y=None):
        backend = minirocket_backend()
        if backend == "aeon":
            from aeon.transformations.collection.convolution_based import MiniRocket

            self.transform_ = MiniRocket(n_kernels=self.n_kernels, random_state=self.random_state)
        elif backend in ("sktime", "sktime_cython"):
            from sktime.transformations.rocket import MiniRocketMultivariate, MiniRocketMultivariateCython

            cls = MiniRocketMultivariateCython if backend == "sktime_cython" else MiniRocketMultivariate
            self.transform_ = cls(num_kernels=self.n_kernels, random_state=self.random_state)
        else:
            raise ConfigError("evaluate.metrics.utility_classifier: minirocket needs aeon or sktime "
                              "(pip install 'dualdiv[utility]')")
        self.transform_.fit(np.asarray(X, dtype=np.float64))
        return self

    def transform(self, X):
        return np.asarray(self.transform_.transform(np.asarray(X, dtype=np.float64)), dtype=np.float64)


def _spectra_and_correlations(images: np.ndarray, nperseg: int) -> np.ndarray:
    """(n, H·F + H(H−1)/2) log Welch spectra and channel correlations of images (n, H, W)."""
    blocks = feature_blocks(images, nperseg)
    return np.concatenate([blocks["spectra"], blocks["correlation"]], axis=1)


def make_classifier(name: str, seed: int, kernels: int = 2016, welch_nperseg: int = 64):
    """An unfitted scikit-learn classifier of images (n, H, W) → labels: one of :data:`CLASSIFIERS`."""
    if name == "tangent_space":
        from pyriemann.estimation import Covariances
        from pyriemann.tangentspace import TangentSpace

        return make_pipeline(Covariances(estimator="oas"), TangentSpace(metric="riemann"),
                             LogisticRegression(C=1.0, max_iter=1000))
    if name == "minirocket":
        return make_pipeline(MiniRocketFeatures(kernels, random_state=seed), StandardScaler(with_mean=False),
                             RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    if name == "logistic_features":
        return make_pipeline(FunctionTransformer(_spectra_and_correlations, kw_args={"nperseg": welch_nperseg}),
                             StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    raise ConfigError(f"evaluate.metrics.utility_classifier: one of {', '.join(CLASSIFIERS)}, got {name!r}")


DETERMINISTIC = {"tangent_space", "logistic_features"}  # the same training set gives the same fit
# ... and their first step is a fixed per-image map (covariances; spectra + correlations): computed once per image
STATELESS_FIRST_STEP = {"tangent_space", "logistic_features"}


# ------------------------------------------------------------------------------------------- the metrics

def utility_keys(ks: Sequence[int]) -> list[str]:
    """Every numeric key :func:`utility_metrics` returns (each None where undefined)."""
    keys = []
    for arm in ("trtr", "tstr", *(f"augmentation_k{k}" for k in ks)):
        for metric in METRICS:
            keys += [f"{arm}_{metric}", f"{arm}_{metric}_lo", f"{arm}_{metric}_hi"]
            if arm != "trtr":
                keys += [f"{arm}_{metric}_gain", f"{arm}_{metric}_gain_lo", f"{arm}_{metric}_gain_hi"]
        keys.append(f"{arm}_n_train" if arm in ("trtr", "tstr") else f"{arm}_n_synthetic")
    return keys


def _labels(labels, n: int, name: str) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels).astype(str)
    if labels.shape != (n,):
        raise InputError(f"{name}: expected ({n},) labels, one per image, got shape {labels.shape}")
    return labels


def utility_metrics(generated, generated_labels, train, train_labels, test, test_labels, seed: int, settings, *,
                    channel_types: Sequence[str] | None = None, channel_names: Sequence[str] | None = None) -> dict:
    """TRTR, TSTR and augmentation accuracy and balanced accuracy of labelled generated images (module docstring).

    generated (n, H, W) with generated_labels (n,); train (m, H, W) with train_labels (m,): the real training
    split; test (m', H, W) with test_labels (m',): the held-out split (labels: class names, any type, compared
    as strings). settings: an :class:`dualdiv.evaluation.metrics.EvalSettings` (its ``utility_*`` fields and
    ``welch_nperseg``). channel_types, channel_names: the data's, for the ``auto`` classifier choice.

    Returns a flat dict: :func:`utility_keys` (fractions in [0, 1]; ``_lo``/``_hi`` the 95 % bootstrap interval;
    ``_gain`` the difference to TRTR with its paired interval; ``_n_train``/``_n_synthetic`` image counts), plus
    ``utility_classifier`` (the classifier used, and why), ``utility_interval`` (how the intervals are made) and
    ``utility_note`` (what is undefined or capped, else None). Where undefined — no labels, fewer than 2 classes,
    a class missing from the generated images — the values are None and ``utility_note`` says why (TRTR is still
    given where the real labels allow it).
    """
    ks = tuple(settings.utility_k)
    out: dict = dict.fromkeys(utility_keys(ks))
    gen = check_images(generated, "generated", min_images=1, dtype=np.float64)
    train = check_images(train, "train", dtype=np.float64)
    test = check_images(test, "test", dtype=np.float64)
    if not gen.shape[1:] == train.shape[1:] == test.shape[1:]:
        raise InputError(f"image shapes differ: generated {gen.shape[1:]}, train {train.shape[1:]}, "
                         f"test {test.shape[1:]}")
    gen_labels = _labels(generated_labels, len(gen), "generated labels")
    train_labels, test_labels = _labels(train_labels, len(train), "train labels"), _labels(
        test_labels, len(test), "test labels")
    name, reason = resolve_classifier(settings.utility_classifier, gen.shape[1], gen.shape[2], channel_types,
                                      channel_names)
    out["utility_classifier"] = f"{name} ({reason})"
    out["utility_interval"] = (f"95 % stratified percentile bootstrap over the {len(test)} test images "
                               f"({settings.utility_bootstrap} resamples) of the metric averaged over "
                               f"{settings.utility_seeds} repeats; gains: paired bootstrap")
    if train_labels is None or test_labels is None:
        return out | {"utility_note": "undefined: the real images have no labels"}
    classes = np.unique(train_labels)
    if len(classes) < 2:
        return out | {"utility_note": f"undefined: the training split has {len(classes)} class (needs ≥ 2)"}
    unseen = sorted(set(test_labels) - set(classes))
    if unseen:
        return out | {"utility_note": f"undefined: test classes {', '.join(unseen)} are not in the training split"}
    with threadpool_limits(limits=1):  # small BLAS calls: threads only add overhead (and the job has one core)
        correct, counts, notes = correct_by_arm(gen, gen_labels, train, train_labels, test, test_labels, name, seed,
                                                settings)
        summary = summarise(correct, test_labels, settings.utility_bootstrap, seed)
    return out | counts | summary | {"utility_note": "; ".join(notes) or None}


def correct_by_arm(gen, gen_labels, train, train_labels, test, test_labels, name: str, seed: int, settings
                   ) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    """Which test images each arm's classifier gets right, averaged over ``settings.utility_seeds`` repeats.

    Arguments as :func:`utility_metrics` takes them once checked (float64 images, str labels, ≥ 2 training
    classes covering the test classes); name: one of :data:`CLASSIFIERS`. Returns {arm: (m',) share of
    repeats right on each test image} (arms: ``trtr``, and ``tstr``, ``augmentation_k{k}`` where the
    generated images have every class), the image counts ({``trtr_n_train``, ...}) and notes.
    """
    out: dict = {}
    notes = []
    classes = np.unique(train_labels)
    ks = tuple(settings.utility_k)
    streams = np.random.SeedSequence(seed).generate_state(settings.utility_seeds)
    repeats = [np.random.default_rng(s) for s in streams]
    classifier_seeds = [int(rng.integers(2**31)) for rng in repeats]
    per_class = {c: int(np.sum(train_labels == c)) for c in classes}

    def model(r):
        return make_classifier(name, classifier_seeds[r], settings.utility_kernels, settings.welch_nperseg)

    if name in STATELESS_FIRST_STEP:  # the per-image first step once per image, then only the rest is fitted
        first = model(0)[:1]
        gen, train, test = (first.fit_transform(images) for images in (gen, train, test))

    def fitted_correct(images, labels, r) -> np.ndarray:
        fitted = (model(r)[1:] if name in STATELESS_FIRST_STEP else model(r)).fit(images, labels)
        return (fitted.predict(test).astype(str) == test_labels).astype(np.float64)  # (m',)

    correct: dict[str, np.ndarray] = {}  # arm → (m',) right/wrong averaged over repeats
    trtr = [fitted_correct(train, train_labels, r) for r in range(1 if name in DETERMINISTIC else len(repeats))]
    correct["trtr"] = np.mean(trtr, axis=0)
    out["trtr_n_train"] = len(train)

    missing = [] if gen_labels is None else [c for c in classes if not np.any(gen_labels == c)]
    if gen_labels is None:
        notes.append("TSTR and augmentation undefined: the generated images carry no labels "
                     "(generation was not class-conditional)")
    elif missing:
        notes.append(f"TSTR and augmentation undefined: class {', '.join(map(str, missing))} missing from the "
                     "generated images")
    else:
        extra = sorted(set(gen_labels) - set(classes))
        if extra:
            notes.append(f"generated images of classes not in the training split ignored: {', '.join(extra)}")
        pools = {c: np.flatnonzero(gen_labels == c) for c in classes}
        for arm, factor, with_real in [("tstr", 1, False), *((f"augmentation_k{k}", k, True) for k in ks)]:
            wanted = {c: factor * per_class[c] for c in classes}
            short = {c: len(pools[c]) for c in classes if len(pools[c]) < wanted[c]}
            if short:
                notes.append(f"{arm}: all generated images of class " + ", ".join(
                    f"{c} ({n} of {wanted[c]} wanted)" for c, n in short.items()))
            rows = []
            for r, rng in enumerate(repeats):
                pick = np.concatenate([rng.choice(pools[c], min(wanted[c], len(pools[c])), replace=False)
                                       for c in classes])
                images, labels = gen[pick], gen_labels[pick]
                if with_real:
                    images, labels = np.concatenate([train, images]), np.concatenate([train_labels, labels])
                rows.append(fitted_correct(images, labels, r))
            correct[arm] = np.mean(rows, axis=0)
            out[f"{arm}_n_train" if arm == "tstr" else f"{arm}_n_synthetic"] = len(pick)

    return correct, out, notes


def summarise(correct: dict[str, np.ndarray], test_labels: np.ndarray, resamples: int, seed: int) -> dict:
    """Mean, 95 % interval and (for arms other than TRTR) paired gain of accuracy and balanced accuracy.

    correct: arm → (m',) share of repeats that classified each test image right (:func:`correct_by_arm`;
    averaging it over more repeats, e.g. generator seeds, is averaging the metric). Stratified percentile
    bootstrap of ``resamples`` (seeded by ``seed``): each test class resampled within itself, the same
    resampled images for every arm (so the gains are paired).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))  # apart from the repeats' streams
    members = [np.flatnonzero(test_labels == c) for c in np.unique(test_labels)]
    draws = [group[rng.integers(len(group), size=(resamples, len(group)))] for group in members]  # (B, m_c)

    def scores(values: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
        """values (m',) → {metric: (on the test split, (B,) on the resamples)}."""
        recall = [values[group].mean() for group in members]
        boot_recall = np.stack([values[d].mean(axis=1) for d in draws])  # (classes, B)
        sizes = np.array([len(group) for group in members])[:, None]
        return {"accuracy": (float(values.mean()), (boot_recall * sizes).sum(0) / sizes.sum()),
                "balanced_accuracy": (float(np.mean(recall)), boot_recall.mean(0))}

    def clean(x) -> float:  # means of shares leave rounding dust (−5e−18 for a zero gain): 12 digits are plenty
        return float(round(float(x), 12)) + 0.0  # + 0.0: no −0.0

    out = {}
    for arm, values in correct.items():
        for metric, (value, boot) in scores(values).items():
            lo, hi = np.percentile(boot, [2.5, 97.5])
            out |= {f"{arm}_{metric}": clean(value), f"{arm}_{metric}_lo": clean(lo), f"{arm}_{metric}_hi": clean(hi)}
        if arm == "trtr":
            continue
        for metric, (value, boot) in scores(values - correct["trtr"]).items():
            lo, hi = np.percentile(boot, [2.5, 97.5])
            out |= {f"{arm}_{metric}_gain": clean(value), f"{arm}_{metric}_gain_lo": clean(lo),
                    f"{arm}_{metric}_gain_hi": clean(hi)}
    return out
