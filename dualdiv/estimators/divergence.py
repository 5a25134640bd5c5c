"""The Donsker–Varadhan (DV) bound and the product-of-marginals reference.

For distributions A and B and any critic f,

    D(A‖B) = sup_f  E_A[f] − log E_B[e^f]  ≥  E_A[f] − log E_B[e^f],

with equality at f = log dA/dB + const. With critic values ``f_a`` on n_a
samples of A and ``f_b`` on n_b samples of B the plug-in bound (nats) is

    D̂ = mean(f_a) − logsumexp(f_b) + log n_b                 ("exact")
    D̂ = mean(f_a) − max(f_b)       + log n_b                 ("max", the authors' cut-search form)

Samples of Q, the product of P's marginals, come from permuting every pixel's
values independently across the n images: the marginals are kept exactly,
every dependence between pixels is destroyed. The partial version permutes only
a pixel set S and keeps the other pixels jointly from one image (the path's
intermediate distributions Q_k, :mod:`dualdiv.estimators.path`).

Every function takes numpy arrays or torch tensors and answers in kind; the
arithmetic is written once, in torch (so the bound stays differentiable for
training).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dualdiv.core.errors import ConfigError, InputError

VARIANTS = ("exact", "max")


def _as_tensor(values) -> tuple[torch.Tensor, bool]:
    """(tensor, was_tensor); numpy input becomes float64 for exact reductions."""
    if isinstance(values, torch.Tensor):
        return values, True
    return torch.as_tensor(np.asarray(values, dtype=np.float64)), False


def _in_kind(value: torch.Tensor, as_tensor: bool):
    """Hand a result back as a tensor, or as a float / numpy array for numpy callers."""
    if as_tensor:
        return value
    value = value.detach().cpu().numpy()
    return float(value) if value.ndim == 0 else value


def dv_bound(f_a, f_b, variant: str = "exact", dim: int = -1):
    """DV lower bound on D(A‖B) in nats from critic values.

    f_a: (..., n_a) critic on samples of A; f_b: (..., n_b) critic on samples of B;
    leading dimensions broadcast (one bound per row, e.g. one per path sub-step).
    variant: "exact" (logsumexp) or "max" (logsumexp → max; max ≤ logsumexp, so the
    "max" value is never below the exact one and is no longer a lower bound).
    Returns (...,): a tensor (differentiable) for tensor input, else float / ndarray.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"DV variant must be one of {VARIANTS}, got {variant!r}")
    (a, a_is_tensor), (b, _) = _as_tensor(f_a), _as_tensor(f_b)
    if a.shape[dim] == 0 or b.shape[dim] == 0:
        raise InputError("DV bound needs at least one critic value on each side")
    log_sum = torch.logsumexp(b, dim=dim) if variant == "exact" else b.amax(dim=dim)
    return _in_kind(a.mean(dim=dim) - log_sum + math.log(b.shape[dim]), a_is_tensor)


def dv_influence(f_a, f_b):
    """Per-sample first-order contributions to the exact DV bound (delta method).

    f_a: (n_a,), f_b: (n_b,). Returns (infl_a (n_a,), infl_b (n_b,)), each mean zero, with
    D̂ ≈ D + mean(infl_a) + mean(infl_b) to first order:
    infl_a = f_a − mean(f_a) and infl_b = 1 − e^{f_b} / mean(e^{f_b})
    (linearising log mean(e^{f_b}) around its expectation). Summing the two over
    paired samples (a sample of A and the B samples built from it) gives the
    influence of one data unit, which :mod:`dualdiv.estimators.path` clusters by image.
    """
    (a, a_is_tensor), (b, _) = _as_tensor(f_a), _as_tensor(f_b)
    log_mean = torch.logsumexp(b, dim=-1) - math.log(b.shape[-1])
    return _in_kind(a - a.mean(), a_is_tensor), _in_kind(1 - torch.exp(b - log_mean), a_is_tensor)


def dv_stderr(f_a, f_b) -> float:
    """Delta-method standard error (nats) of the exact DV bound for independent samples.

    f_a: (n_a,), f_b: (n_b,), n_a, n_b ≥ 2. se² = var(infl_a)/n_a + var(infl_b)/n_b,
    see :func:`dv_influence`; the critic is held fixed (evaluate on held-out data).
    """
    infl_a, infl_b = (_as_tensor(v)[0].double() for v in dv_influence(f_a, f_b))
    if infl_a.numel() < 2 or infl_b.numel() < 2:
        raise InputError("DV standard error needs at least two critic values on each side")
    return math.sqrt(float(infl_a.var() / infl_a.numel() + infl_b.var() / infl_b.numel()))


def dv_ess(f_b) -> float:
    """Kish effective sample size of the reference weights e^{f_b}, as a fraction of n_b.

    Near 1/n_b the log-mean term rests on one sample: the B samples never reach where
    the critic is large, and the bound is unreliable (it can read 10²–10⁵ nats).
    """
    b, _ = _as_tensor(f_b)
    log_w = b.double() - torch.logsumexp(b.double(), dim=-1)
    return float(1.0 / (torch.exp(2 * log_w).sum() * b.shape[-1]))


def permutation_indices(n: int, m: int, n_columns: int, generator: torch.Generator) -> torch.Tensor:
    """Source rows for m resampled rows, drawn independently for each of n_columns columns.

    Each column is a stack of independent permutations of range(n), cut to m rows,
    so each source row appears ⌊m/n⌋ or ⌈m/n⌉ times (exactly once when m = n).
    Returns (m, n_columns) int64.
    """
    n_perms = -(-m // n)
    keys = torch.rand((n_perms, n, n_columns), generator=generator)
    return keys.argsort(dim=1).reshape(n_perms * n, n_columns)[:m]


def swap_pixels(images: torch.Tensor, base_rows: torch.Tensor, donors: torch.Tensor, mask) -> torch.Tensor:
    """Rows of ``images`` whose masked pixels come from other rows.

    images: (n, P); base_rows: (m,) row each output row is taken from; donors: (m, P)
    row each pixel is taken from where ``mask`` (P,) or (m, P) bool is true.
    Returns (m, P): pixel p of row i = images[donors[i, p], p] if mask else images[base_rows[i], p].
    """
    return torch.where(mask, images.gather(0, donors), images[base_rows])


def sample_marginals(images, m: int, generator: torch.Generator | int = 0, mask=None):
    """m samples of the product of marginals (or of the partial product over ``mask``).

    images: (n, H, W) or (n, d); m ≥ 1 samples to draw.
    mask: bool of one image's shape, the pixel set S to permute; None permutes every pixel.
    Pixels in S are each drawn by an independent permutation across the n images;
    the other pixels come jointly from one image (rows also drawn by permutation).
    With m a multiple of n every pixel's marginal is kept exactly.
    generator: a torch.Generator or an int seed. Returns (m, ...) like ``images``, in kind.
    """
    is_tensor = isinstance(images, torch.Tensor)
    x = images if is_tensor else torch.as_tensor(np.asarray(images))  # keeps the dtype
    if x.ndim < 2 or x.shape[0] == 0:
        raise InputError(f"images must be (n, ...) with n ≥ 1, got shape {tuple(x.shape)}")
    if m < 1:
        raise ConfigError(f"number of samples must be ≥ 1, got {m}")
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    n, shape = x.shape[0], x.shape[1:]
    flat = x.reshape(n, -1)
    if mask is None:
        mask = torch.ones(flat.shape[1], dtype=torch.bool)
    else:
        mask = torch.as_tensor(np.asarray(mask)) if not isinstance(mask, torch.Tensor) else mask
        if tuple(mask.shape) != tuple(shape):
            raise InputError(f"mask shape {tuple(mask.shape)} differs from image shape {tuple(shape)}")
        mask = mask.reshape(-1).to(torch.bool)
    base_rows = permutation_indices(n, m, 1, generator)[:, 0]
    donors = permutation_indices(n, m, flat.shape[1], generator)
    mixed = swap_pixels(flat, base_rows.to(flat.device), donors.to(flat.device), mask.to(flat.device))
    return _in_kind(mixed.reshape(m, *shape), is_tensor)
