"""Fitted base distributions q for the dual correction p ∝ q·e^g.

Three bases, each a registered generator (:mod:`dualdiv.generators`):

- ``spectral`` (default for time series): each image x (C, T) is split into its
  per-channel means m = mean_t x (C,) and the residual r = x − m. The means are a
  Gaussian of their own (Ledoit–Wolf covariance); the residual is a stationary
  multichannel Gaussian whose cross-spectral density S_k (C×C per frequency k) is
  the Hann-tapered cross-periodogram averaged over the training images
  (Hermitian, eigenvalues clipped at 0, no smoothing). Samples are drawn as
  complex Fourier coefficients per frequency (real at Nyquist; the DC
  coefficient is the mean model's) and an inverse real FFT. With
  ``local_mixture`` every sample's spectrum is w·S_k + (1 − w)·mean of the
  per-image periodograms of ``n_mix`` random training images.
- ``var``: a VAR(p) over channels fitted by least squares to the residuals r
  (same mean model as ``spectral``), p chosen by held-out one-step likelihood
  over 1..``max_order`` (default T // 4), sampled exactly from its stationary law
  (initial p lags from the companion-form stationary covariance, a discrete
  Lyapunov equation, then the recursion), then re-centred and given new means.
- ``gaussian_lw``: a Ledoit–Wolf Gaussian on flattened images.

What the correction needs (:mod:`dualdiv.generators.correction`). Every base is a linear
push-forward of a standard normal latent, possibly mixed over a finite set of
components (the ``local_mixture`` pairs):

    z ~ N(0, I_D),  c ~ uniform,  x = decode(z, c) = μ + A_c z        (A_c: (H·W, D), never stored for ``spectral``)

so in latent coordinates log q = −|z|²/2 + const, and MALA run on z is MALA on x
preconditioned by the base covariance A Aᵀ (the base drift is exactly −z). For
``spectral`` the latent is the whitened Fourier coordinates (no dense covariance
matrix); for ``var`` and ``gaussian_lw`` A is a dense (H·W, D) loading.
:meth:`Base.draw` samples (z, c) and :meth:`Base.decode` maps them to images (torch,
differentiable).

Normalisation of the spectral base (checked by tests/test_bases.py): with the
periodic Hann taper w_t and V_k = Σ_t w_t r_t e^{−2πikt/T} / √(Σ_t w_t²), the
estimate S_k = mean over images of V_k V_kᴴ is a spectral density in the sense
Var(r_t) = (1/T)·Σ_{k=0}^{T−1} S_k. Drawing X_k = √(T/2)·L_k(a + ib) with
L_k L_kᴴ = S_k, a, b ~ N(0, I) (X_k = √T·L_k a at Nyquist) and x = irfft(X)
gives E X_k X_kᴴ = T·S_k and so the same variance, power and coherence.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.signal
import torch
from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.core.io import available_memory
from dualdiv.generators.base import Generator, register

__all__ = ["Base", "DenseGaussianBase", "FixedGaussian", "GaussianLW", "SpectralGaussian", "VARGaussian",
           "channel_means", "cross_periodogram", "fit_var", "select_var_order", "var_loading",
           "var_autocovariance"]


# --------------------------------------------------------------------------- the base interface

class Base(Generator):
    """A generator that is a linear push-forward of N(0, I_D), mixed over components.

    Subclasses set ``shape_`` (H, W), ``latent_dim_`` (D) and implement
    :meth:`decode`; mixtures also override :meth:`draw_component` and
    :meth:`component_record`.
    """

    shape_: tuple[int, int]
    latent_dim_: int
    fits_periodogram: bool = False  # True when the base reproduces the mean periodogram by construction

    @property
    def is_mixture(self) -> bool:
        """True when samples come from more than one Gaussian component."""
        return False

    def draw_component(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Mixture components ``(n, ...)`` int64 drawn from their prior (one component: zeros)."""
        return np.zeros(n, dtype=np.int64)

    def component_record(self, component: np.ndarray) -> dict:
        """Provenance of one sample's component (empty for a single Gaussian)."""
        return {}

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Latent normals ``z (n, D)`` float64 and components ``(n, ...)``."""
        component = self.draw_component(n, rng)
        return rng.standard_normal((n, self.latent_dim_)), component

    def decode(self, z: torch.Tensor, component: np.ndarray) -> torch.Tensor:
        """Images ``(n, H, W)`` (dtype of ``z``) for latents ``z (n, D)``; linear in z, differentiable."""
        raise NotImplementedError

    def _sample(self, n, rng):
        z, component = self.draw(n, rng)
        with torch.no_grad():
            images = self.decode(torch.from_numpy(z), component).numpy()
        return images, [self.component_record(c) for c in component]


# --------------------------------------------------------------------------- per-sample channel means

def channel_means(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split images ``(n, C, T)`` into per-sample channel means ``(n, C)`` and residuals ``(n, C, T)``."""
    means = images.mean(axis=2)
    return means, images - means[:, :, None]


def _ledoit_wolf_factor(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and a square root L ``(d, d)`` of the Ledoit–Wolf covariance of rows of ``data``."""
    model = LedoitWolf(store_precision=False).fit(data)
    values, vectors = np.linalg.eigh(model.covariance_)
    return model.location_, vectors * np.sqrt(np.clip(values, 0, None))


# --------------------------------------------------------------------------- spectral Gaussian

def cross_periodogram(residuals: np.ndarray) -> np.ndarray:
    """Normalised Hann-tapered Fourier coefficients V ``(n, K, C)`` complex, K = T // 2 + 1.

    The per-image cross-periodogram is ``V[i, k] V[i, k]ᴴ``; its mean over images
    estimates the cross-spectral density S_k with Var = (1/T)·Σ_{k=0}^{T−1} S_k.
    """
    n_time = residuals.shape[-1]
    taper = scipy.signal.windows.hann(n_time, sym=False)
    coefficients = np.fft.rfft(residuals * taper, axis=-1) / np.sqrt((taper ** 2).sum())  # (n, C, K)
    return coefficients.transpose(0, 2, 1)  # (n, K, C)


def _hermitian_sqrt(matrices: np.ndarray) -> np.ndarray:
    """L with L Lᴴ = M for a stack of Hermitian ``(…, C, C)`` matrices, eigenvalues clipped at 0."""
    matrices = 0.5 * (matrices + np.conj(np.swapaxes(matrices, -1, -2)))
    values, vectors = np.linalg.eigh(matrices)
    return vectors * np.sqrt(np.clip(values, 0, None))[..., None, :]


@register("spectral")
class SpectralGaussian(Base):
    """Channel-mean Gaussian + stationary multichannel Gaussian with the averaged Hann cross-periodogram.

    local_mixture: each sample's spectrum is ``global_weight``·S + (1 − ``global_weight``)·mean of the
        periodograms of ``n_mix`` distinct random training images (recorded as ``train_index``).

    Latent layout (D = C·T for the plain base, T even): the channel-mean normals (C), then for each
    interior frequency k = 1..⌈T/2⌉−1 the real and imaginary normals (2C), then Nyquist (C). The local
    mixture appends, per frequency from 1 to T // 2, one complex normal per mixed training image.
    """

    fits_periodogram = True

    def __init__(self, local_mixture: bool = False, global_weight: float = 0.25, n_mix: int = 2):
        if not 0 <= global_weight <= 1:
            raise ConfigError(f"spectral.global_weight: must be in [0, 1], got {global_weight}")
        if n_mix < 1:
            raise ConfigError(f"spectral.n_mix: must be ≥ 1, got {n_mix}")
        self.local_mixture = bool(local_mixture)
        self.global_weight = float(global_weight)
        self.n_mix = int(n_mix)

    def fit(self, images, seed=0):
        images = check_images(images, self.key, dtype=np.float64)
        n, n_channels, n_time = images.shape
        if n_time < 4:
            raise InputError(f"{self.key}: needs series of ≥ 4 time points, got {n_time}")
        if self.local_mixture and n < self.n_mix:
            raise InputError(f"{self.key}: local_mixture mixes {self.n_mix} images, only {n} given")
        means, residuals = channel_means(images)
        self.shape_ = (n_channels, n_time)
        self.mean_location_, self.mean_factor_ = _ledoit_wolf_factor(means)  # (C,), (C, C)
        coefficients = cross_periodogram(residuals)  # (n, K, C)
        self.spectrum_ = np.einsum("nkc,nkd->kcd", coefficients, coefficients.conj()) / n  # (K, C, C)
        factor = _hermitian_sqrt(self.spectrum_)  # (K, C, C)
        self.n_interior_ = (n_time - 1) // 2  # frequencies with complex coefficients
        self.has_nyquist_ = n_time % 2 == 0
        self.interior_factor_ = factor[1:1 + self.n_interior_]  # (K_int, C, C) complex
        self.nyquist_factor_ = _hermitian_sqrt(self.spectrum_[-1].real) if self.has_nyquist_ else None
        self.train_coefficients_ = coefficients if self.local_mixture else None  # (n, K, C)
        extra = self.n_mix * (2 * self.n_interior_ + self.has_nyquist_) if self.local_mixture else 0
        self.latent_dim_ = n_channels * (1 + 2 * self.n_interior_ + self.has_nyquist_) + extra
        return self

    @property
    def is_mixture(self):
        return self.local_mixture

    def draw_component(self, n, rng):
        if not self.local_mixture:
            return np.zeros(n, dtype=np.int64)
        n_train = len(self.train_coefficients_)
        return rng.random((n, n_train)).argsort(axis=1)[:, :self.n_mix]  # (n, n_mix) distinct training images

    def component_record(self, component):
        return {"train_index": [int(i) for i in component]} if self.local_mixture else {}

    def decode(self, z, component):
        n_channels, n_time = self.shape_
        n, k_int, dtype = z.shape[0], self.n_interior_, z.dtype
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        sizes = [n_channels, 2 * n_channels * k_int, n_channels * self.has_nyquist_]
        z_mean, z_int, z_nyq = torch.split(z[:, :sum(sizes)], sizes, dim=1)
        z_int = z_int.reshape(n, k_int, 2, n_channels)
        white = torch.complex(z_int[:, :, 0], z_int[:, :, 1])  # (n, K_int, C), E|.|² = 2
        scale = self.global_weight ** 0.5 if self.local_mixture else 1.0
        interior = torch.as_tensor(self.interior_factor_, dtype=cdtype)
        coef_int = scale * (n_time / 2) ** 0.5 * torch.einsum("kcd,nkd->nkc", interior, white)  # (n, K_int, C)
        coef_nyq = torch.zeros(n, 0, dtype=dtype)
        if self.has_nyquist_:
            coef_nyq = scale * n_time ** 0.5 * z_nyq @ torch.as_tensor(self.nyquist_factor_, dtype=dtype).T  # (n, C)
        if self.local_mixture:
            mix_int, mix_nyq = self._decode_mixture(z[:, sum(sizes):], component, cdtype)
            coef_int, coef_nyq = coef_int + mix_int, coef_nyq + mix_nyq
        dc = torch.zeros(n, 1, n_channels, dtype=cdtype)  # the residual has zero mean
        coefficients = torch.cat([dc, coef_int, coef_nyq.to(cdtype).reshape(n, -1, n_channels)], dim=1)  # (n, K, C)
        residual = torch.fft.irfft(coefficients.transpose(1, 2), n=n_time, dim=-1)  # (n, C, T)
        mean_factor = torch.as_tensor(self.mean_factor_, dtype=dtype)
        means = torch.as_tensor(self.mean_location_, dtype=dtype) + z_mean @ mean_factor.T  # (n, C)
        return means[:, :, None] + residual

    def _decode_mixture(self, z_mix, component, cdtype):
        """Fourier coefficients of the mixed training periodograms: Σ_j √((1−w)/n_mix)·V_j ζ_j."""
        n, k_int, n_time = z_mix.shape[0], self.n_interior_, self.shape_[1]
        scale = ((1 - self.global_weight) / self.n_mix) ** 0.5
        picked = torch.as_tensor(self.train_coefficients_[np.asarray(component)], dtype=cdtype)  # (n, n_mix, K, C)
        z_int = z_mix[:, :2 * self.n_mix * k_int].reshape(n, self.n_mix, k_int, 2)
        zeta = torch.complex(z_int[..., 0], z_int[..., 1])  # (n, n_mix, K_int)
        coef_int = scale * (n_time / 2) ** 0.5 * (picked[:, :, 1:1 + k_int] * zeta[..., None]).sum(1)
        coef_nyq = torch.zeros(n, 0, dtype=z_mix.dtype)
        if self.has_nyquist_:
            zeta_nyq = z_mix[:, 2 * self.n_mix * k_int:]  # (n, n_mix)
            coef_nyq = scale * n_time ** 0.5 * (picked[:, :, -1].real * zeta_nyq[..., None]).sum(1)  # (n, C)
        return coef_int, coef_nyq


# --------------------------------------------------------------------------- dense linear Gaussians

class DenseGaussianBase(Base):
    """x = μ + A z with a dense loading A ``(H·W, D)``: ``location_`` ``(H·W,)``, ``loading_``."""

    location_: np.ndarray
    loading_: np.ndarray

    def decode(self, z, component):
        loading = torch.as_tensor(self.loading_, dtype=z.dtype)
        flat = torch.as_tensor(self.location_, dtype=z.dtype) + z @ loading.T  # (n, H·W)
        return flat.reshape(z.shape[0], *self.shape_)

    def covariance(self) -> np.ndarray:
        """The base covariance A Aᵀ ``(H·W, H·W)`` (dense; for checks on small images)."""
        return self.loading_ @ self.loading_.T


class FixedGaussian(DenseGaussianBase):
    """A Gaussian base with given mean ``(H, W)`` and covariance ``(H·W, H·W)`` (tests, known targets).

    ``fit`` ignores its images. Not registered: its settings are arrays.
    """

    def __init__(self, mean: np.ndarray, covariance: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.covariance_matrix = np.asarray(covariance, dtype=np.float64)
        self.shape_ = self.mean.shape
        self.location_ = self.mean.ravel()
        self.loading_ = np.linalg.cholesky(self.covariance_matrix)
        self.latent_dim_ = self.loading_.shape[1]

    def fit(self, images=None, seed=0):
        return self

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) ``(n,)`` for images ``(n, H, W)`` (exact, with its constant)."""
        loading = torch.as_tensor(self.loading_, dtype=x.dtype)
        centred = x.reshape(x.shape[0], -1) - torch.as_tensor(self.location_, dtype=x.dtype)
        white = torch.linalg.solve_triangular(loading, centred.T, upper=False).T
        log_det = np.log(np.diag(self.loading_)).sum()
        return -0.5 * (white ** 2).sum(1) - log_det - 0.5 * white.shape[1] * np.log(2 * np.pi)


@register("gaussian_lw")
class GaussianLW(Base):
    """A Gaussian on flattened images with the Ledoit–Wolf shrunk covariance.

    The covariance (1 − s)·S + s·μ·I (S the empirical covariance of the n training
    images, μ = tr S / d) is sampled without a dense factor: x = mean + √((1 − s)/n)·Σ_i ξ_i (x_i − mean)
    + √(s·μ)·ε, latent z = (ξ (n), ε (d)).
    """

    def fit(self, images, seed=0):
        images = check_images(images, self.key, dtype=np.float64)
        flat = images.reshape(len(images), -1)
        self.shape_ = images.shape[1:]
        self.location_ = flat.mean(axis=0)
        centred = flat - self.location_
        # scikit-learn's Ledoit–Wolf shrinkage, by blocks of features: O(n·d) memory, never the dense
        # (d, d) covariance that LedoitWolf.fit stores (6.4 GB at 168 × 168 pixels); the same value
        self.shrinkage_ = float(ledoit_wolf_shrinkage(centred, assume_centered=True)) if flat.shape[1] > 1 else 0.0
        self.centred_ = centred  # (n, d)
        self.identity_scale_ = float(np.sqrt(self.shrinkage_ * (centred ** 2).sum() / centred.size))
        self.latent_dim_ = len(flat) + flat.shape[1]
        return self

    def decode(self, z, component):
        n_train = len(self.centred_)
        centred = torch.as_tensor(self.centred_, dtype=z.dtype)
        low_rank = ((1 - self.shrinkage_) / n_train) ** 0.5 * z[:, :n_train] @ centred  # (n, d)
        flat = torch.as_tensor(self.location_, dtype=z.dtype) + low_rank + self.identity_scale_ * z[:, n_train:]
        return flat.reshape(z.shape[0], *self.shape_)

    def covariance(self) -> np.ndarray:
        """The Ledoit–Wolf covariance ``(H·W, H·W)`` (dense; for checks)."""
        d = self.centred_.shape[1]
        return ((1 - self.shrinkage_) * self.centred_.T @ self.centred_ / len(self.centred_)
                + self.identity_scale_ ** 2 * np.eye(d))


# --------------------------------------------------------------------------- VAR(p)

def _lagged(residuals: np.ndarray, order: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Targets y_t ``(m, C)`` and regressors [y_{t−1}, …, y_{t−order}] ``(m, C·order)`` for t ≥ start."""
    n, n_channels, n_time = residuals.shape
    series = residuals.transpose(0, 2, 1)  # (n, T, C)
    targets = series[:, start:].reshape(-1, n_channels)
    lags = [series[:, start - i:n_time - i] for i in range(1, order + 1)]
    return targets, np.concatenate(lags, axis=2).reshape(-1, n_channels * order)


def _solve_var(gram: np.ndarray, cross: np.ndarray, ridge: float) -> np.ndarray:
    """Least-squares coefficients B ``(C·p, C)`` from XᵀX and XᵀY, with a relative ridge."""
    size = len(gram)
    penalty = ridge * np.trace(gram) / size
    return scipy.linalg.solve(gram + penalty * np.eye(size), cross, assume_a="pos")


def fit_var(residuals: np.ndarray, order: int, ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares VAR(order) without intercept on series ``(n, C, T)``.

    Returns coefficients ``(order, C, C)`` (y_t = Σ_i A_i y_{t−i} + e_t) and the innovation
    covariance ``(C, C)``.
    """
    n_channels = residuals.shape[1]
    targets, regressors = _lagged(residuals, order, order)
    coef = _solve_var(regressors.T @ regressors, regressors.T @ targets, ridge)  # (C·p, C)
    errors = targets - regressors @ coef
    noise = errors.T @ errors / len(errors)
    return coef.T.reshape(n_channels, order, n_channels).transpose(1, 0, 2), noise


def select_var_order(residuals: np.ndarray, max_order: int, folds: int, rng: np.random.Generator,
                     ridge: float = 1e-6) -> tuple[int, np.ndarray]:
    """VAR order in 1..max_order with the best held-out one-step Gaussian log-likelihood.

    Images are split into ``folds`` groups; every order is fitted on the other groups
    and scored on t ≥ max_order of the held-out group (one range for all orders).
    Returns the order and the mean held-out log-likelihood per time point ``(max_order,)``.
    """
    n, n_channels, _ = residuals.shape
    groups = np.array_split(rng.permutation(n), min(folds, n))
    stats = []  # per group: Gram of [regressors, targets], row count
    for group in groups:
        targets, regressors = _lagged(residuals[group], max_order, max_order)
        joined = np.concatenate([regressors, targets], axis=1)
        stats.append((joined.T @ joined, len(joined)))
    total = sum(g for g, _ in stats)
    size = n_channels * max_order
    scores = np.zeros(max_order)
    for group_gram, rows in stats:
        fit_gram, fit_rows = total - group_gram, sum(r for _, r in stats) - rows
        for order in range(1, max_order + 1):
            k = n_channels * order
            xx, xy, yy = fit_gram[:k, :k], fit_gram[:k, size:], fit_gram[size:, size:]
            coef = _solve_var(xx, xy, ridge)
            noise = (yy - xy.T @ coef - coef.T @ xy + coef.T @ xx @ coef) / fit_rows
            vxx, vxy, vyy = group_gram[:k, :k], group_gram[:k, size:], group_gram[size:, size:]
            scatter = (vyy - vxy.T @ coef - coef.T @ vxy + coef.T @ vxx @ coef) / rows
            _, log_det = np.linalg.slogdet(noise)
            scores[order - 1] += rows * -0.5 * (log_det + np.trace(np.linalg.solve(noise, scatter))
                                                + n_channels * np.log(2 * np.pi))
    scores /= sum(r for _, r in stats)
    return int(np.argmax(scores)) + 1, scores


def _companion(coefs: np.ndarray) -> np.ndarray:
    order, n_channels, _ = coefs.shape
    size = order * n_channels
    matrix = np.zeros((size, size))
    matrix[:n_channels] = np.concatenate(list(coefs), axis=1)
    matrix[n_channels:, :-n_channels] = np.eye(size - n_channels)
    return matrix


def var_loading(coefs: np.ndarray, noise: np.ndarray, length: int) -> np.ndarray:
    """Loading M ``(C·length, C·length)``: y = M z, z ~ N(0, I), is a stationary VAR path, flattened (C, T).

    The first ``order`` time points come from the stationary covariance of the
    companion state (discrete Lyapunov equation Σ = F Σ Fᵀ + Q), the rest from the
    recursion with innovations N(0, ``noise``).
    """
    order, n_channels, _ = coefs.shape
    if length < order:
        raise ConfigError(f"var: order {order} exceeds the series length {length}")
    companion = _companion(coefs)
    q = np.zeros_like(companion)
    q[:n_channels, :n_channels] = noise
    state_cov = scipy.linalg.solve_discrete_lyapunov(companion, q)  # state (y_t, y_{t−1}, …, y_{t−p+1})
    state_factor = _hermitian_sqrt(state_cov).real  # (C·p, C·p)
    noise_factor = np.linalg.cholesky(noise + 1e-12 * np.trace(noise) * np.eye(n_channels))
    latent = n_channels * length
    stacked = np.concatenate(list(coefs), axis=1)  # (C, C·p) = [A_1, …, A_p]
    path = np.zeros((length, n_channels, latent))  # y_t as a linear map of z, t = 0..T−1
    state = state_factor  # rows: y_{p−1}, …, y_0
    for lag in range(order):
        path[order - 1 - lag, :, :order * n_channels] = state[lag * n_channels:(lag + 1) * n_channels]
    for t in range(order, length):
        innovation = np.zeros((n_channels, latent))
        column = order * n_channels + (t - order) * n_channels
        innovation[:, column:column + n_channels] = noise_factor
        recent = path[t - order:t][::-1].reshape(order * n_channels, latent)  # y_{t−1}, …, y_{t−p}
        path[t] = stacked @ recent + innovation
    return path.transpose(1, 0, 2).reshape(n_channels * length, latent)


def var_autocovariance(coefs: np.ndarray, noise: np.ndarray, max_lag: int, terms: int = 2000) -> np.ndarray:
    """Autocovariances Γ(h) = E y_{t+h} y_tᵀ ``(max_lag + 1, C, C)`` from the MA(∞) sum (independent check)."""
    order, n_channels, _ = coefs.shape
    psi = [np.eye(n_channels)]
    for j in range(1, terms + max_lag):
        psi.append(sum(coefs[i] @ psi[j - 1 - i] for i in range(min(order, j))))
    return np.stack([sum(psi[j + h] @ noise @ psi[j].T for j in range(terms)) for h in range(max_lag + 1)])


VAR_MAX_FLOPS = 2e13  # var_loading beyond this takes hours on one core (~1e10 flop/s in its loop of small matmuls)


def var_max_order(n_time: int, order: int | None = None, max_order: int | None = None) -> int:
    """The largest VAR order a fit on series of ``n_time`` points considers: ``order`` when fixed, else
    ``max_order`` (None: T // 4), at most T − 2."""
    return order or min(max_order or max(1, n_time // 4), n_time - 2)


def var_memory_bytes(n_channels: int, n_time: int, max_order: int) -> int:
    """Peak bytes of :meth:`VARGaussian.fit` and sampling beyond the images: the dense loading of the
    P = C·T pixels ((P, C + P) float64: the (T, C, P) path, its transposed copy, the concatenated loading, the
    sampler's tensors and products; 8 copies measured — 2.45 GiB peak RSS at 6 × 896, benchmarks/SCALING.md)
    and the order search's and Lyapunov solve's (C·p)² matrices (~8 of them)."""
    n_pixels, state = n_channels * n_time, n_channels * max_order
    return 8 * (8 * n_pixels * (n_channels + n_pixels) + 8 * (state + n_channels) ** 2)


def _check_var_fits(n_channels: int, n_time: int, max_order: int) -> None:
    """ConfigError when the dense VAR base would not fit in the memory available now (never a killed job)."""
    need, available = var_memory_bytes(n_channels, n_time, max_order), available_memory()
    if need > available:
        raise ConfigError(
            f"var: images of {n_channels} × {n_time} = {n_channels * n_time} pixels need ≈ {need / 2**30:.1f} GiB "
            f"for the dense VAR loading (order ≤ {max_order}), more than the {available / 2**30:.1f} GiB available; "
            "use the spectral base or dualdiv (O(C³·T log T)), or shorter windows (tile.window)")


@register("var")
class VARGaussian(DenseGaussianBase):
    """Channel-mean Gaussian + stationary VAR(p) residual (re-centred), p by held-out likelihood.

    order: a fixed order, or None to choose it in 1..``max_order`` (None: T // 4).
    folds: image groups for the held-out order selection.
    ridge: relative ridge added to the least-squares normal equations (numerical guard).
    """

    def __init__(self, order: int | None = None, max_order: int | None = None, folds: int = 5,
                 ridge: float = 1e-6):
        if order is not None and order < 1:
            raise ConfigError(f"var.order: must be ≥ 1, got {order}")
        if max_order is not None and max_order < 1:
            raise ConfigError(f"var.max_order: must be ≥ 1, got {max_order}")
        if folds < 2:
            raise ConfigError(f"var.folds: must be ≥ 2, got {folds}")
        self.order, self.max_order, self.folds, self.ridge = order, max_order, int(folds), float(ridge)

    def fit(self, images, seed=0):
        images = check_images(images, self.key, min_images=self.folds if self.order is None else 2,
                              dtype=np.float64)
        n, n_channels, n_time = images.shape
        if self.order is not None and self.order > n_time - 2:
            raise ConfigError(f"var.order: {self.order} needs series of ≥ order + 2 time points, got {n_time}")
        max_order = var_max_order(n_time, self.order, self.max_order)
        _check_var_fits(n_channels, n_time, max_order)
        means, residuals = channel_means(images)
        self.shape_ = (n_channels, n_time)
        if self.order is None:
            self.order_, self.order_scores_ = select_var_order(residuals, max_order, self.folds,
                                                               np.random.default_rng(seed), self.ridge)
        else:
            self.order_, self.order_scores_ = self.order, None
        flops = n_channels ** 3 * self.order_ * n_time ** 2  # var_loading's recursion: T steps of (C, C·p) @ (C·p, P)
        if flops > VAR_MAX_FLOPS:
            raise ConfigError(f"var: order {self.order_} on images of {n_channels} × {n_time} needs ≈ {flops:.1e} "
                              "floating-point operations for the dense VAR loading (C³·p·T²; hours on a core); use "
                              "the spectral base or dualdiv, a lower var.max_order, or shorter windows (tile.window)")
        coefs, self.noise_cov_ = fit_var(residuals, self.order_, self.ridge)
        radius = np.abs(np.linalg.eigvals(_companion(coefs))).max()
        self.shrink_ = min(1.0, 0.995 / radius)  # scales every companion eigenvalue; 1 when stable
        self.coefs_ = coefs * self.shrink_ ** np.arange(1, self.order_ + 1)[:, None, None]
        path = var_loading(self.coefs_, self.noise_cov_, n_time).reshape(n_channels, n_time, -1)
        path -= path.mean(axis=1, keepdims=True)  # re-centre: the means come from their own Gaussian
        mean_location, mean_factor = _ledoit_wolf_factor(means)
        mean_part = np.repeat(mean_factor[:, None, :], n_time, axis=1)  # (C, T, C)
        self.loading_ = np.concatenate([mean_part, path], axis=2).reshape(n_channels * n_time, -1)
        self.location_ = np.repeat(mean_location, n_time)
        self.latent_dim_ = self.loading_.shape[1]
        return self
