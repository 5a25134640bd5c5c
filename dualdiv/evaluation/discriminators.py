"""Realism critics independent of the generator's own features: MiniRocket C2ST, GRU score, marginal errors.

The feature C2ST (:func:`dualdiv.evaluation.metrics.c2st_auc` on :class:`~dualdiv.estimators.features.FeatureSpace`)
classifies Welch log spectra and channel correlations — the statistics the default generator is built to
reproduce. The critics here look at the **raw series** instead, through features no generator of the package
targets. Images are ``(n, H, W)`` float32 in the normalised units of ``tiles.h5`` (H = channels, W = time);
``real`` is the held-out real split, ``generated`` a generated set. 0.5 (AUC, accuracy) = indistinguishable.

- **MiniRocket C2ST** (:func:`minirocket_c2st`): classifier two-sample test with the MiniRocket transform
  (Dempster, Schmidt & Webb 2021; ~10 000 random dilated convolution kernels over the raw series, the
  proportion of positive values of each; aeon or sktime, :class:`~dualdiv.evaluation.utility.MiniRocketFeatures`)
  → standardised → ``RidgeClassifierCV`` (alphas 10⁻³…10³, leave-one-out choice on the training fold), the
  pipeline aeon and sktime document. Per repeat the larger set is subsampled to the size of the smaller one,
  and out-of-fold ridge decision values over stratified k folds give one ROC AUC; the transform's biases are
  fitted on the training fold only. Mean and std over repeats — the protocol of ``c2st_auc``.
- **GRU discriminative score** (:func:`gru_discriminative_score`): the post-hoc discriminative score of
  TimeGAN (Yoon, Jarrett & van der Schaar 2019): a small recurrent classifier over time steps (channels as
  its inputs) trained on 80 % of a balanced real/generated mix and scored on the other 20 %; held-out
  accuracy, the discriminative score |accuracy − 0.5| and the ROC AUC, averaged over random splits.
- **Marginal errors** (:func:`marginal_errors`): per pixel (channel, time point) the 1-D Wasserstein-1
  distance and the two-sample Kolmogorov–Smirnov statistic between the real and the generated values,
  averaged over pixels (W1 in the normalised units; KS in [0, 1]). Blind to dependence between pixels:
  it checks the one-pixel distributions that a C2ST can miss when it keys on the joint structure.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import RidgeClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.evaluation import utility
from dualdiv.evaluation.utility import MINIROCKET_KERNEL_LENGTH, MiniRocketFeatures

__all__ = ["gru_discriminative_score", "marginal_errors", "minirocket_c2st"]

RIDGE_ALPHAS = np.logspace(-3, 3, 10)


def _two_sets(real, generated, min_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Both sets checked as (n, H, W) float32 of one (H, W), with ≥ ``min_images`` each."""
    real = check_images(real, "real", min_images=min_images)
    generated = check_images(generated, "generated", min_images=min_images)
    if real.shape[1:] != generated.shape[1:]:
        raise InputError(f"image shapes differ: real {real.shape[1:]}, generated {generated.shape[1:]}")
    return real, generated


def _balanced(real: np.ndarray, generated: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(2m, H, W) images and (2m,) labels (1 = generated) of m = min(n_real, n_generated) of each, subsampled."""
    m = min(len(real), len(generated))
    pick = [x[rng.choice(len(x), size=m, replace=False)] if len(x) > m else x for x in (real, generated)]
    return np.concatenate(pick), np.r_[np.zeros(m), np.ones(m)]


# ----------------------------------------------------------------------------- MiniRocket C2ST

def minirocket_c2st(real, generated, seed: int = 0, repeats: int = 5, folds: int = 5,
                    kernels: int = 10_000) -> dict:
    """Classifier two-sample test on the raw series: AUC of MiniRocket + ridge telling generated from real.

    real (m, H, W), generated (n, H, W): images, W ≥ 9 (MiniRocket's kernel length). Each of ``repeats``
    repeats subsamples both to min(m, n) images, collects out-of-fold ridge decision values over ``folds``
    stratified folds (the transform, its ``kernels`` kernels and biases, the scaler and the ridge fitted on
    the training folds only) and scores one ROC AUC. Returns {"auc": mean, "auc_std": std over repeats,
    "n": images per side}. ConfigError when neither aeon nor sktime is installed.
    """
    if utility.minirocket_backend() is None:  # looked up on the module: MiniRocketFeatures asks it the same way
        raise ConfigError("minirocket_c2st needs aeon or sktime (pip install 'dualdiv[utility]')")
    real, generated = _two_sets(real, generated, min_images=2)
    if real.shape[2] < MINIROCKET_KERNEL_LENGTH:
        raise ConfigError(f"minirocket_c2st needs ≥ {MINIROCKET_KERNEL_LENGTH} time points (its kernel length), "
                          f"the images have {real.shape[2]}")
    m = min(len(real), len(generated))
    folds = min(folds, m)
    rng = np.random.default_rng(seed)
    aucs = []
    with threadpool_limits(limits=1):  # small BLAS calls: threads only add overhead
        for _ in range(repeats):
            images, labels = _balanced(real, generated, rng)
            scores = np.empty(len(labels))
            split = StratifiedKFold(folds, shuffle=True, random_state=int(rng.integers(2**31)))
            for fit, held in split.split(images, labels):
                transform = MiniRocketFeatures(kernels, random_state=int(rng.integers(2**31))).fit(images[fit])
                features_fit = transform.transform(images[fit])
                scaler = StandardScaler().fit(features_fit)
                z_fit, z_held = scaler.transform(features_fit), scaler.transform(transform.transform(images[held]))
                ridge = RidgeClassifierCV(alphas=RIDGE_ALPHAS).fit(z_fit, labels[fit])
                scores[held] = ridge.decision_function(z_held)
            aucs.append(roc_auc_score(labels, scores))
    return {"auc": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "n": m}


# ----------------------------------------------------------------------------- GRU discriminative score

def _gru_classifier(channels: int, hidden: int, layers: int):
    """(B, W, H) series → (B,) logits: a ``layers``-layer GRU, its top layer's last state → a linear unit."""
    from torch import nn  # torch only when the critic runs: `import dualdiv` stays torch-free

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(channels, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, 1)

        def forward(self, x):
            _, last = self.gru(x)  # last: (layers, B, hidden)
            return self.head(last[-1]).squeeze(-1)

    return GRUClassifier()


def gru_discriminative_score(real, generated, seed: int = 0, splits: int = 3, hidden: int | None = None,
                             layers: int = 2, iterations: int = 80, batch_size: int = 128, lr: float = 1e-2,
                             test_fraction: float = 0.2, max_seconds: float | None = None) -> dict:
    """TimeGAN's post-hoc discriminative score: a GRU classifier of real vs generated series, scored held out.

    real (m, H, W), generated (n, H, W): images, read as sequences of W time steps of H features. Each of
    ``splits`` splits subsamples both to min(m, n) images, holds out a stratified ``test_fraction`` of the mix,
    standardises each channel by its mean and std on the training part (one affine map for both classes, so
    a scale difference stays visible; it only keeps the GRU's tanh out of saturation), and trains a fresh
    ``layers``-layer GRU (``hidden`` units, default max(16, H // 2): TimeGAN's H/2, with a floor because 16
    units separated AR(1) series of φ = 0.5 vs 0.7 far better than 8 at about the same cost — held-out AUC
    0.88 vs 0.70) + linear read-out of its last state with binary cross-entropy: Adam (``lr``), ``iterations``
    steps on random minibatches of ``batch_size`` through :func:`dualdiv.core.training.train` (``max_seconds``:
    an optional wall-time cap, which makes the result machine-dependent). Held-out logits > 0 read
    "generated". TimeGAN trains a 1-layer GRU of H/2 units 2000 steps of batch 128; the budget here is cut
    to 3 × 80 steps, ~20 s for 100 vs 100 images of 14 × 128 on one (shared) core: the cost is the GRU's
    W sequential steps, nearly independent of the batch. The GRU is the weaker critic: on that AR(1) pair it
    reads AUC 0.87 where the MiniRocket C2ST reads 1.0.

    Returns {"accuracy", "discriminative_score" (mean over splits of |accuracy − 0.5|; ≥ 0 and biased up
    under the null by the held-out sampling noise: E|acc − 0.5| ≈ 0.4 / √n_test, 0.06 for 40 test series),
    "auc", "auc_std" (over splits), "n" (images per side), "n_test" (held-out series per split)}. CPU,
    one thread; deterministic for a seed.
    """
    import torch

    from dualdiv.core.training import LoopSettings, descend, seeded, torch_threads, train

    real, generated = _two_sets(real, generated, min_images=3)  # ≥ 1 held out and ≥ 2 trained on, per side
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    hidden = hidden or max(16, real.shape[1] // 2)
    rng = np.random.default_rng(seed)
    accuracies, aucs, n_test = [], [], 0
    with threadpool_limits(limits=1), torch_threads(1), seeded(seed) as generator:  # one thread: deterministic
        for _ in range(splits):
            images, labels = _balanced(real, generated, rng)
            fit, held = train_test_split(np.arange(len(labels)), test_size=test_fraction, stratify=labels,
                                         random_state=int(rng.integers(2**31)))
            mean = images[fit].mean(axis=(0, 2), keepdims=True)
            std = images[fit].std(axis=(0, 2), keepdims=True)
            series = torch.as_tensor(((images - mean) / np.where(std > 1e-12, std, 1.0)).transpose(0, 2, 1),
                                     dtype=torch.float32)  # (2m, W, H)
            x_fit, y_fit = series[fit], torch.as_tensor(labels[fit], dtype=torch.float32)
            model = _gru_classifier(real.shape[1], hidden, layers)
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            size = min(batch_size, len(fit))

            def step(model=model, optimizer=optimizer, x_fit=x_fit, y_fit=y_fit, size=size) -> torch.Tensor:
                batch = torch.randperm(len(x_fit), generator=generator)[:size]
                logits = model(x_fit[batch])
                return descend(optimizer, torch.nn.functional.binary_cross_entropy_with_logits(logits, y_fit[batch]))

            train(step, LoopSettings(iterations, max_seconds, log_every_s=None, description="GRU discriminator"),
                  model=model)
            with torch.no_grad():
                logits = model(series[held]).double().numpy()
            accuracies.append(float(np.mean((logits > 0) == (labels[held] == 1))))
            aucs.append(float(roc_auc_score(labels[held], logits)))
            n_test = len(held)
    accuracies = np.asarray(accuracies)
    return {"accuracy": float(accuracies.mean()), "discriminative_score": float(np.abs(accuracies - 0.5).mean()),
            "auc": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "n": min(len(real), len(generated)),
            "n_test": n_test}


# ----------------------------------------------------------------------------- marginal errors

def marginal_errors(real, generated) -> dict:
    """Per-pixel Wasserstein-1 distance and KS statistic of real (m, H, W) vs generated (n, H, W), over pixels.

    For each pixel (channel, time point) the m real and n generated values are two 1-D samples with empirical
    CDFs F and G: W1 = ∫ |F − G| (in the normalised units of the images), KS = sup |F − G| (in [0, 1]). Both
    exact, from one sort of the pooled values per pixel (ties handled: the CDFs are compared only after the
    last of equal values, as count data need). Returns {"w1", "ks": means over the H·W pixels, "w1_max",
    "ks_max": the worst pixel's}.
    """
    real, generated = _two_sets(real, generated, min_images=1)
    m, n = len(real), len(generated)
    pooled = np.concatenate([real, generated]).reshape(m + n, -1).astype(np.float64)  # (m + n, P)
    order = np.argsort(pooled, axis=0, kind="stable")
    values = np.take_along_axis(pooled, order, axis=0)
    is_real = order < m
    cdf_gap = np.cumsum(is_real, axis=0) / m - np.cumsum(~is_real, axis=0) / n  # F − G after each sorted value
    widths = np.diff(values, axis=0)  # (m + n − 1, P): the CDFs are constant between consecutive values
    w1 = np.sum(np.abs(cdf_gap[:-1]) * widths, axis=0)
    last_of_ties = np.vstack([widths > 0, np.ones((1, values.shape[1]), bool)])  # gaps within ties are partial
    ks = np.max(np.where(last_of_ties, np.abs(cdf_gap), 0.0), axis=0)
    return {"w1": float(w1.mean()), "ks": float(ks.mean()), "w1_max": float(w1.max()), "ks_max": float(ks.max())}
