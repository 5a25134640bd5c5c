"""Critic networks for the path steps.

A critic scores one image for one path sub-step. Its input is four planes of the
image's shape (H, W) = (channels, time):

    context  x · (1 − m_prev − m_blk)   pixels still joint with the tested ones
    block    x · m_blk                  the pixels whose dependence is tested
    m_prev   pixels already permuted (independent noise: masked out)
    m_blk    the tested pixels

so one network serves every sub-step of a step, conditioned on which pixels are
tested. Two families:

- ``conv`` (default for channels × time images): 2 conv layers of 16 channels,
  kernel 3×3, ELU, a 1×1 head summed over the positions within the receptive radius
  of the tested pixels — a locality prior; a single-pixel sub-step costs one small
  window around its pixel, not the whole image.
- ``mlp`` (vectors without spatial order): 2 × 256, ELU, dropout 0.1.

Regularisation: AdamW weight decay (applied by the trainer) and optional spectral
normalisation of every layer. Unregularised critics can read absurd bounds
(6e9 nats on EEG vs shuffled pixels); the path's early stopping on held-out data is
the main guard.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as functional
from sklearn.covariance import LedoitWolf
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from dualdiv.estimators.settings import KINDS, CriticSettings  # noqa: F401  (part of this module's API)

N_PLANES = 4
# The bilinear critic's Gaussian term keeps a P × P matrix a critic (64 MB at this size) and factors one per
# fit; larger images train without it (a warning says so).
GAUSSIAN_TERM_MAX_PIXELS = 4096
# ... and it is fitted only from at least this many training images a pixel: a full covariance from fewer is
# too noisy to help (separable Gaussians, N = 500, 400 training images: at 6.3 a pixel, 8 × 8, +2.5 nats at TC 60
# and ±0.05 at TC 5-20; at 1.6 a pixel, 16 × 16 and 4 × 64, −0.1 nats at every TC). 4 lies between the two
# ratios measured; it is not tuned further (benchmarks/ESTIMATE_GAUSSIAN.md).
GAUSSIAN_TERM_IMAGES_PER_PIXEL = 4

log = logging.getLogger(__name__)


def critic_input(x: torch.Tensor, m_prev: torch.Tensor, m_blk: torch.Tensor, shape) -> torch.Tensor:
    """The four input planes. x: (B, P) flat images; m_prev, m_blk: (B, P) bool, disjoint.

    Returns (B, 4, H, W) with (H, W) = shape and P = H·W.
    """
    prev, blk = m_prev.to(x.dtype), m_blk.to(x.dtype)
    planes = torch.stack([x * (1 - prev - blk), x * blk, prev, blk], dim=1)  # (B, 4, P)
    return planes.reshape(x.shape[0], N_PLANES, *shape)


def substep_input(rank: torch.Tensor, bounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m_prev, m_blk), each (B, P) bool, of sub-steps given as order positions.

    rank: (P,) position of every pixel in the path order; bounds: (B, 2) [start, stop):
    pixels before ``start`` are permuted already, those in [start, stop) are tested.
    """
    prev = rank[None, :] < bounds[:, :1]
    return prev, ~prev & (rank[None, :] < bounds[:, 1:])


def pixel_crops(x: torch.Tensor, rank: torch.Tensor, position: torch.Tensor, shape, radius,
                rows: torch.Tensor | None = None, center: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The four planes of single-pixel sub-steps, cut to a window around the tested pixel.

    x: (n, P) flat images; rank: (P,) order position of every pixel; position: (B,) order
    position of the pixel each output row tests (pixels before it are permuted); rows: (B,)
    the image of x each output row is cut from (None: row i from x[i], B = n). radius:
    (r_h, r_w), the critic's receptive radius. The window reaches 2·radius around the pixel:
    every input the outputs within ``radius`` of it see. center: (B,) values of the tested pixel
    to use instead of the image's (a resampled row of Q: only the tested pixel differs), or None.
    Returns planes (B, 4, 4r_h+1, 4r_w+1) (zero outside the image, like zero padding) and inside
    (B, 1, same) float, 1 on image pixels. Cost and memory are O(B · window), whatever P: the
    windows are gathered from x directly (no padded copy of x, no copy of whole rows).
    """
    height, width = shape
    pad_h, pad_w = 2 * radius[0], 2 * radius[1]
    order = torch.empty_like(rank)
    order[rank] = torch.arange(len(rank), device=rank.device)
    pixel = order[position].to(x.device)
    window = (2 * pad_h + 1, 2 * pad_w + 1)
    dh = torch.arange(-pad_h, pad_h + 1, device=x.device)[None, :, None]
    dt = torch.arange(-pad_w, pad_w + 1, device=x.device)[None, None, :]
    hh, tt = (pixel // width)[:, None, None] + dh, (pixel % width)[:, None, None] + dt  # (B, wh, 1), (B, 1, ww)
    inside = ((hh >= 0) & (hh < height) & (tt >= 0) & (tt < width)).reshape(len(pixel), -1)  # (B, S)
    index = (hh.clamp(0, height - 1) * width + tt.clamp(0, width - 1)).reshape(len(pixel), -1)
    if rows is None:
        values = x.gather(1, index)
    else:  # index the flat images: no copy of x per output row
        values = x.reshape(-1)[rows.to(x.device)[:, None] * x.shape[1] + index]
    values = torch.where(inside, values, torch.zeros((), dtype=x.dtype, device=x.device))
    if center is not None:
        values[:, pad_h * window[1] + pad_w] = center.to(values.dtype)
    crop_rank = torch.where(inside, rank.to(x.device)[index], -1)
    tested = crop_rank == position.to(x.device)[:, None]
    context = (crop_rank > position.to(x.device)[:, None]).to(x.dtype)
    prev = inside & ~tested & (crop_rank < position.to(x.device)[:, None])
    tested_f = tested.to(x.dtype)
    planes = torch.stack([values * context, values * tested_f, prev.to(x.dtype), tested_f], dim=1)
    return planes.reshape(len(index), N_PLANES, *window), inside.to(x.dtype).reshape(len(index), 1, *window)


def channel_strips(x: torch.Tensor, rank: torch.Tensor, position: torch.Tensor, shape, half_width: int,
                   rows: torch.Tensor | None = None, center: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """What the hybrid critic's global branch sees of single-pixel sub-steps.

    x, rank, position, rows, center: as in :func:`pixel_crops`. Returns
    strip (B, 4, H, 2·half_width + 1): the four planes of *every* channel at the time points
    within ``half_width`` of the tested pixel's (zero outside the image; channels at their own
    rows, so the branch knows which channel is which), and summary (B, 2, H): per channel, the
    sum of its unpermuted, untested values over all W time points divided by W, and the share
    of its time points that are unpermuted and untested. Cost O(B · P) for the summary.
    """
    height, width = shape
    order = torch.empty_like(rank)
    order[rank] = torch.arange(len(rank), device=rank.device)
    position = position.to(x.device)
    pixel = order[position].to(x.device)
    tt = (pixel % width)[:, None, None] + torch.arange(-half_width, half_width + 1, device=x.device)[None, None, :]
    inside = (tt >= 0) & (tt < width)  # (B, 1, S)
    index = torch.arange(height, device=x.device)[None, :, None] * width + tt.clamp(0, width - 1)  # (B, H, S)
    base = x if rows is None else x.reshape(-1)
    offset = 0 if rows is None else rows.to(x.device)[:, None, None] * x.shape[1]
    values = base.reshape(-1)[offset + index] if rows is not None else x.gather(1, index.reshape(len(x), -1)
                                                                               ).reshape(index.shape)
    inside = inside.expand_as(index)
    values = torch.where(inside, values, torch.zeros((), dtype=x.dtype, device=x.device))
    crop_rank = torch.where(inside, rank.to(x.device)[index], -1)
    tested = crop_rank == position[:, None, None]
    if center is not None:
        values = torch.where(tested, center.to(values.dtype)[:, None, None], values)
    context = (crop_rank > position[:, None, None]).to(x.dtype)
    prev = (inside & ~tested & (crop_rank < position[:, None, None])).to(x.dtype)
    tested_f = tested.to(x.dtype)
    strip = torch.stack([values * context, values * tested_f, prev, tested_f, context], dim=1)
    images = x if rows is None else x[rows.to(x.device)]  # (B, P); the tested pixel is not context
    keep = (rank.to(x.device)[None, :] > position[:, None]).to(x.dtype)
    summary = torch.stack([(images * keep).reshape(-1, height, width).sum(-1),
                           keep.reshape(-1, height, width).sum(-1)], dim=1) / width
    return strip, summary


def gaussian_conditionals(x: np.ndarray, rank: np.ndarray) -> dict[str, np.ndarray]:
    """The linear-Gaussian law of every pixel given the pixels after it in a path order.

    x: (n, P) training images; rank: (P,) position of every pixel in the order. The covariance is
    Ledoit–Wolf's (well conditioned for n < P); the conditionals are read off one Cholesky factor of the
    precision in path order, Λ = L Lᵀ: x_j | x_{>j} has mean μ_j − Σ_{k>j} (L_kj / L_jj)(x_k − μ_k) and
    variance 1 / L_jj² (the factorisation of the density into those conditionals, term by term).
    Returns, in pixel indices b: coef (P, P) with m_b(x) = coef[b] · x + offset[b] the conditional mean
    (zero weight on b and on the pixels before it), offset (P,), cond_var (P,), mean (P,), var (P,) the
    marginal variance, all float64.
    """
    fitted = LedoitWolf().fit(np.asarray(x, dtype=np.float64))
    covariance, mean = fitted.covariance_, fitted.location_
    order = np.argsort(rank)  # order[j]: the pixel at position j
    try:
        factor = np.linalg.cholesky(np.linalg.inv(covariance[np.ix_(order, order)]))  # lower, in path order
    except np.linalg.LinAlgError:  # singular (constant images, e.g.): a ridge of 1e-6 of the mean variance
        ridge = 1e-6 * (np.trace(covariance) / len(covariance) if np.trace(covariance) > 0 else 1.0)
        covariance = covariance + ridge * np.eye(len(covariance))
        factor = np.linalg.cholesky(np.linalg.inv(covariance[np.ix_(order, order)]))
    diagonal = np.diag(factor)
    in_order = -np.tril(factor, -1) / diagonal[None, :]  # [k, j]: weight of position k in position j's mean
    coef = np.zeros_like(covariance)
    coef[np.ix_(order, order)] = in_order.T
    return {"coef": coef, "offset": mean - coef @ mean, "cond_var": (1 / diagonal**2)[np.argsort(order)],
            "mean": mean, "var": np.diag(covariance).copy()}


def _gaussian_buffers(law: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The bilinear critic's Gaussian term from :func:`gaussian_conditionals`' law: the conditional mean
    (coef, offset), its precision 1/s², and the marginal's μ/v and the quadratic (1/v − 1/s²)/2."""
    precision = 1 / law["cond_var"]
    return {"gauss_coef": law["coef"], "gauss_offset": law["offset"], "gauss_precision": precision,
            "gauss_linear": law["mean"] / law["var"], "gauss_quadratic": (1 / law["var"] - precision) / 2}


def _term_context(mean, precision, linear, quadratic):
    """The Gaussian term's three context factors (of x_b, x_b² and 1) from the conditional mean and
    precision and the marginal's μ/v and (1/v − 1/s²)/2: numpy arrays or torch tensors, broadcasting."""
    return mean * precision - linear, quadratic, -mean**2 * precision / 2


class Critic(nn.Module):
    """A critic: forward (B, 4, H, W) planes → (B,). Subclasses may evaluate sub-steps faster."""

    def substep_values(self, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                       rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
        """Critic values (B,) at sub-steps bounds (B, 2) (see :func:`substep_input`) of flat images
        x (n, P): output row i is image rows[i] (None: x[i], B = n). center: (B,) values of the
        tested pixel of single-pixel sub-steps replacing the image's (a resampled Q row), or None."""
        x = x if rows is None else x[rows]
        if center is not None:
            x = x.clone() if rows is None else x  # x[rows] is a copy already
            order = torch.empty_like(rank)
            order[rank] = torch.arange(len(rank), device=rank.device)
            x[torch.arange(len(x), device=x.device), order[bounds[:, 0]].to(x.device)] = center.to(x.dtype)
        return self(critic_input(x, *substep_input(rank, bounds), shape))

    def row_elements(self, shape) -> int:
        """Input values per row of :meth:`substep_values` (sizes its batches)."""
        return N_PLANES * shape[0] * shape[1]


class ConvCritic(Critic):
    """(B, 4, H, W) → (B,): conv stack, ELU, 1×1 head summed over the positions near the tested pixels.

    Only the outputs within the receptive radius of a tested pixel see its value; the
    others are functions of the untested pixels alone, which cannot tell P from Q and
    would only add noise to the bound, so the head is summed over those near positions
    (the optimal sub-step critic, log p(x_b | rest)/p(x_b), is local in the same way).
    That makes a single-pixel sub-step cost a (4r+1)² window instead of the whole image
    (:meth:`substep_values`). The convs are same-padded in effect: unpadded convs on
    zero-padded input whose hidden values outside the image are zeroed.
    For a single row (H = 1) the kernel is 1 × kernel: the same function as a square kernel
    on zero padding, at a third of the cost.
    """

    def __init__(self, settings: CriticSettings, shape):
        super().__init__()
        kernel = (settings.kernel if shape[0] > 1 else 1, settings.kernel)
        self.trim = (kernel[0] // 2, kernel[1] // 2)
        self.radius = (settings.conv_layers * self.trim[0], settings.conv_layers * self.trim[1])
        widths = [N_PLANES] + [settings.channels] * settings.conv_layers
        self.convs = nn.ModuleList(_maybe_sn(nn.Conv2d(a, b, kernel), settings)
                                   for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.head = _maybe_sn(nn.Conv2d(settings.channels, 1, 1), settings)

    def _feature_map(self, planes: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """Head outputs (B, outputs, h − 2r_h, w − 2r_w) of padded planes (B, 4, h, w); inside (B or 1, 1, h, w)."""
        hidden, (trim_h, trim_w) = planes, self.trim
        for conv in self.convs:
            inside = inside[..., trim_h:inside.shape[-2] - trim_h, trim_w:inside.shape[-1] - trim_w]
            hidden = functional.elu(conv(hidden)) * inside
        return self.head(hidden) * inside

    def _output_map(self, planes: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        """The single head output (B, h − 2r_h, w − 2r_w) of :meth:`_feature_map`."""
        return self._feature_map(planes, inside)[:, 0]

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        pad = (self.radius[1], self.radius[1], self.radius[0], self.radius[0])
        inside = functional.pad(planes.new_ones((1, 1, *planes.shape[2:])), pad)
        near = functional.max_pool2d(planes[:, 3:4], (2 * self.radius[0] + 1, 2 * self.radius[1] + 1), stride=1,
                            padding=self.radius)[:, 0]
        return (self._output_map(functional.pad(planes, pad), inside) * near).sum(dim=(1, 2))

    def substep_values(self, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                       rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
        if not bool((bounds[:, 1] - bounds[:, 0] == 1).all()):
            return super().substep_values(x, rank, bounds, shape, rows, center)
        planes, inside = pixel_crops(x, rank, bounds[:, 0], shape, self.radius, rows, center)
        return self._output_map(planes, inside).sum(dim=(1, 2))

    def row_elements(self, shape) -> int:
        return N_PLANES * (4 * self.radius[0] + 1) * (4 * self.radius[1] + 1)


class HybridCritic(ConvCritic):
    """(B, 4, H, W) → (B,): the conv critic's local sum plus a global branch, for dependence both
    local (neighbouring time points) and global (every channel with every channel, slow trends).

    The global branch is an ELU MLP (``hidden`` × ``mlp_layers``, dropout) on the planes of all
    channels at the time points within ``strip`` of the tested pixel (with the context mask, so
    the image's edges are known) and on per-channel means of the unpermuted pixels over the
    whole time axis (:func:`channel_strips`). For a Gaussian the optimal single-pixel critic is
    a quadratic in the tested value and a linear summary of the rest; with a Markov structure
    in time (AR, VAR) that summary lies in the strip, with exchangeable or slowly varying
    dependence in the means. Two variants measured worse at equal budget (a quadratic head in
    the tested value with MLP coefficients; coefficients from the masks alone, linear in the
    values): benchmarks/ESTIMATE_GAUSSIAN.md. Meant for single-pixel sub-steps:
    on whole planes the strip is centred on the first tested pixel.
    """

    def __init__(self, settings: CriticSettings, shape):
        super().__init__(settings, shape)
        self.half_width, self.relative = settings.strip, settings.relative_channels
        height = shape[0]
        width = (N_PLANES + 1) * height * (2 * self.half_width + 1) + (3 if self.relative else 2) * height
        self.global_net = nn.Sequential(*_mlp_layers(width, settings))

    def _frame(self, strip: torch.Tensor, summary: torch.Tensor, channel: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """With ``relative_channels``: strip (B, 5, H, S) and summary (B, 2, H) rolled so that row r is
        channel (tested + r) mod H, plus a third summary row, the tested channel one-hot (B, 1, H)
        in absolute order. Channel-relative inputs let one set of weights serve every channel
        (what the conv branch gets from translation); the one-hot keeps channel identity."""
        if not self.relative:
            return strip, summary
        height = strip.shape[2]
        rows = (torch.arange(height, device=strip.device)[None, :] + channel[:, None]) % height  # (B, H)
        strip = strip.gather(2, rows[:, None, :, None].expand_as(strip))
        summary = summary.gather(2, rows[:, None, :].expand_as(summary))
        one_hot = functional.one_hot(channel, height).to(summary.dtype)[:, None, :]
        return strip, torch.cat([summary, one_hot], dim=1)

    def _strips(self, x: torch.Tensor, rank: torch.Tensor, position: torch.Tensor, shape,
                rows: torch.Tensor | None = None, center: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The global branch's inputs of single-pixel sub-steps: :func:`channel_strips`, in :meth:`_frame`."""
        strip, summary = channel_strips(x, rank, position, shape, self.half_width, rows, center)
        order = torch.empty_like(rank)
        order[rank] = torch.arange(len(rank), device=rank.device)
        return self._frame(strip, summary, order[position].to(x.device) // shape[1])

    def _global(self, strip: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        return self.global_net(torch.cat([strip.flatten(1), summary.flatten(1)], dim=1)).squeeze(-1)

    def _global_inputs(self, planes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(strip, summary) of :func:`channel_strips` from whole planes (B, 4, H, W), centred on the
        first tested pixel (row-major), in :meth:`_frame`."""
        batch, _, height, width = planes.shape
        first = planes[:, 3].reshape(batch, -1).argmax(dim=1)
        t0 = first % width
        tt = t0[:, None] + torch.arange(-self.half_width, self.half_width + 1, device=planes.device)[None, :]
        inside = ((tt >= 0) & (tt < width)).to(planes.dtype)  # (B, S)
        strip = planes.gather(3, tt.clamp(0, width - 1)[:, None, None, :].expand(batch, N_PLANES, height, -1))
        context = (1 - strip[:, 2] - strip[:, 3])[:, None]
        strip = torch.cat([strip, context], dim=1) * inside[:, None, None, :]
        context_share = (1 - planes[:, 2] - planes[:, 3]).sum(-1)
        summary = torch.stack([planes[:, 0].sum(-1), context_share], dim=1) / width
        return self._frame(strip, summary, first // width)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        return super().forward(planes) + self._global(*self._global_inputs(planes))

    def substep_values(self, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                       rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
        if not bool((bounds[:, 1] - bounds[:, 0] == 1).all()):
            return Critic.substep_values(self, x, rank, bounds, shape, rows, center)
        local = super().substep_values(x, rank, bounds, shape, rows, center)
        return local + self._global(*self._strips(x, rank, bounds[:, 0], shape, rows, center))

    def row_elements(self, shape) -> int:
        strip = (N_PLANES + 1) * shape[0] * (2 * self.half_width + 1)
        return super().row_elements(shape) + strip + 2 * shape[0] * shape[1] + self.relative * shape[0]


class BilinearCritic(HybridCritic):
    """(B, 4, H, W) → (B,): f(x) = g(x_b) · h(rest), a rank-``rank`` product of a function of the tested
    pixel's value and a function of everything else — single-pixel sub-steps only.

    h is the hybrid critic's two branches (the conv window, the channel strip and per-channel means)
    with ``rank`` outputs each, summed, on the planes with the tested value zeroed; g is a small
    ELU MLP of the value (``value_hidden`` wide). The optimal sub-step critic log p(x_b | rest)/p(x_b)
    has this form exactly for a Gaussian with rank 2 (g = (x_b, x_b²)), and any smooth log ratio
    is approached as the rank grows. What it buys is training: a batch of m images at one sub-step
    costs m context passes, and pairing every context with every other image's value gives
    m(m − 1) samples of that sub-step's Q (the tested pixel from an independent image) instead
    of a few resampled rows (:meth:`pair_features`; the path's training loss uses them all).

    With ``gaussian_term`` three more product terms hold w · the sub-step log ratio of a Gaussian fitted
    to the training images (:meth:`fit_gaussian`, called before training): with m_b(rest) and s_b² the
    fitted conditional mean and variance of the tested pixel and v_b its variance, log N(x_b; m_b, s_b²) −
    log N(x_b; μ_b, v_b) = x_b (m_b/s_b² − μ_b/v_b) + x_b² (1/v_b − 1/s_b²)/2 − m_b²/(2s_b²) + const.
    The network then fits what the linear-Gaussian dependence leaves, which it learns from few images
    far better than the whole of a strong dependence (benchmarks/ESTIMATE_GAUSSIAN.md).
    """

    pairs = True  # the path's training loss scores every context against every value of a batch

    def __init__(self, settings: CriticSettings, shape):
        super().__init__(settings, shape)
        n_pixels = shape[0] * shape[1]
        self.gaussian = settings.gaussian_term and n_pixels <= GAUSSIAN_TERM_MAX_PIXELS
        self.too_large_for_gaussian = settings.gaussian_term and not self.gaussian
        self.gaussian_inputs = self.gaussian and settings.gaussian_inputs
        self.head = _maybe_sn(nn.Conv2d(settings.channels, settings.rank, 1), settings)
        self.global_net = nn.Sequential(*_mlp_layers(self.global_net[0].in_features + 2 * self.gaussian_inputs,
                                                     settings, settings.rank))
        self.value_net = nn.Sequential(nn.Linear(1, settings.value_hidden), nn.ELU(),
                                       nn.Linear(settings.value_hidden, settings.value_hidden), nn.ELU(),
                                       nn.Linear(settings.value_hidden, settings.rank))
        if self.gaussian:
            # the fitted Gaussian (buffers: saved with the critic); until fit_gaussian, independent
            # unit-variance pixels: the term is 0
            self.register_buffer("gauss_coef", torch.zeros(n_pixels, n_pixels))
            for name in ("gauss_offset", "gauss_linear", "gauss_quadratic"):
                self.register_buffer(name, torch.zeros(n_pixels))
            self.register_buffer("gauss_precision", torch.ones(n_pixels))
            self.gauss_weight = nn.Parameter(torch.ones(()))

    def fit_gaussian(self, x: torch.Tensor, rank: torch.Tensor, inner_folds: int = 5) -> None:
        """Fit the Gaussian term to training images x (n, P) for the path order ``rank`` (P,) (no-op without one).

        The term scored on other images uses the Gaussian of all of x. Training on x itself uses, for each
        image, the Gaussian fitted without its ``inner_folds``-th part (a fixed split): in-sample, a fitted
        covariance explains its own noise too, which would make the term look better than it is and teach
        its weight and the network the wrong share (at weak dependence, N = 500, 8 × 8: 3.05 nats without the
        inner fits vs the network's 4.63 alone; benchmarks/ESTIMATE_GAUSSIAN.md). Those out-of-fold
        terms are kept as their context features of every image at every sub-step, (n, P, 3): O(n · P)
        memory instead of a P × P matrix a fold."""
        if self.too_large_for_gaussian:
            log.warning("critic.gaussian_term: images of %d pixels (more than %d) train without the Gaussian "
                        "term", x.shape[1], GAUSSIAN_TERM_MAX_PIXELS)
        if not self.gaussian:
            return
        x64, rank_np = x.detach().cpu().double().numpy(), rank.cpu().numpy()
        for name, value in _gaussian_buffers(gaussian_conditionals(x64, rank_np)).items():
            getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))
        folds = np.random.default_rng(0).permutation(np.arange(len(x64)) % inner_folds)
        context = np.empty((len(x64), x64.shape[1], 3))  # the term's context features, as _gaussian_features
        summary = np.empty((len(x64), x64.shape[1], 2))  # the conditional mean and log precision
        for k in range(inner_folds):
            law = _gaussian_buffers(gaussian_conditionals(x64[folds != k], rank_np))
            mean = x64[folds == k] @ law["gauss_coef"].T + law["gauss_offset"]  # (n_k, P)
            precision = law["gauss_precision"]
            linear, quadratic, constant = _term_context(mean, precision, law["gauss_linear"], law["gauss_quadratic"])
            context[folds == k] = np.stack([linear, np.broadcast_to(quadratic, mean.shape), constant], axis=-1)
            summary[folds == k] = np.stack([mean, np.broadcast_to(np.log(precision), mean.shape)], axis=-1)
        # not buffers: refitted (deterministically) before training or resuming, never needed after it
        self._training_context = torch.as_tensor(context, dtype=torch.float32, device=x.device)
        self._training_summary = torch.as_tensor(summary, dtype=torch.float32, device=x.device)

    def _gaussian_features(self, images: torch.Tensor, pixel: torch.Tensor, value: torch.Tensor,
                           image: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(context (B, 3), value (B, 3), summary (B, 2)) of the Gaussian term: images (B, P), the tested
        pixel (B,) and value (B,); the term's weight rides on the context side; summary: the conditional
        mean and log precision (``gaussian_inputs``). The tested and permuted pixels have zero weight in the
        conditional mean, so neither the tested value nor the noise enter the context.
        image: (B,) indices of the rows among the images :meth:`fit_gaussian` was given, to score them with
        the Gaussians fitted without them; None: the Gaussian of all of them."""
        if image is not None:
            context, summary = self._training_context[image, pixel], self._training_summary[image, pixel]
        else:
            mean = (images * self.gauss_coef[pixel]).sum(dim=1) + self.gauss_offset[pixel]
            precision = self.gauss_precision[pixel]
            context = torch.stack(_term_context(mean, precision, self.gauss_linear[pixel],
                                                self.gauss_quadratic[pixel]), dim=1)
            summary = torch.stack([mean, precision.log()], dim=1)
        return (self.gauss_weight * context, torch.stack([value, value**2, torch.ones_like(value)], dim=1),
                summary)

    def _context(self, local: torch.Tensor, strip: torch.Tensor, summary: torch.Tensor,
                 gauss_summary: torch.Tensor | None) -> torch.Tensor:
        """h (B, rank): the conv window's features plus the global MLP's (with ``gaussian_inputs``, the
        fitted conditional mean and log precision among its inputs)."""
        inputs = [strip.flatten(1), summary.flatten(1)] + ([gauss_summary] if self.gaussian_inputs else [])
        return local + self.global_net(torch.cat(inputs, dim=1))

    def pair_features(self, x: torch.Tensor, rank: torch.Tensor, position: torch.Tensor, shape,
                      rows: torch.Tensor | None = None, center: torch.Tensor | None = None,
                      training_images: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(h (B, rank), g (B, rank)) of single-pixel sub-steps at order positions ``position`` (B,):
        h of each row's context, g of its tested value (``center`` when given). x, rows, center: as in
        :func:`pixel_crops`. g_j · h_i is the critic on image i with image j's tested value (the Gaussian
        term adds 3 to the width). training_images: x is the images :meth:`fit_gaussian` was given (in that
        order), so the Gaussian term scores each with the Gaussian fitted without it."""
        n_out = len(position)
        blank = torch.zeros(n_out, dtype=x.dtype, device=x.device)  # h must not see the tested value
        planes, inside = pixel_crops(x, rank, position, shape, self.radius, rows, blank)
        local = self._feature_map(planes, inside).sum(dim=(2, 3))
        strip, summary = self._strips(x, rank, position, shape, rows, blank)
        order = torch.empty_like(rank)
        order[rank] = torch.arange(len(rank), device=rank.device)
        pixel = order[position].to(x.device)
        image = torch.arange(n_out, device=x.device) if rows is None else rows.to(x.device)
        center = x[image, pixel] if center is None else center.to(x.dtype)
        value = self.value_net(center[:, None])
        if not self.gaussian:
            return self._context(local, strip, summary, None), value
        gauss_context, gauss_value, gauss_summary = self._gaussian_features(x[image], pixel, center,
                                                                            image if training_images else None)
        return (torch.cat([self._context(local, strip, summary, gauss_summary), gauss_context], dim=1),
                torch.cat([value, gauss_value], dim=1))

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        tested = planes[:, 3]
        if bool((tested.flatten(1).sum(dim=1) != 1).any()):
            raise ValueError("the bilinear critic tests one pixel per row (path substeps 'pixel')")
        value = planes[:, 1].sum(dim=(1, 2))
        context_planes = torch.cat([planes[:, :1], torch.zeros_like(planes[:, 1:2]), planes[:, 2:]], dim=1)
        pad = (self.radius[1], self.radius[1], self.radius[0], self.radius[0])
        inside = functional.pad(planes.new_ones((1, 1, *planes.shape[2:])), pad)
        near = functional.max_pool2d(tested[:, None], (2 * self.radius[0] + 1, 2 * self.radius[1] + 1), stride=1,
                                     padding=self.radius)
        local = (self._feature_map(functional.pad(context_planes, pad), inside) * near).sum(dim=(2, 3))
        strip, summary = self._global_inputs(context_planes)
        # the context plane holds the untested, unpermuted pixels, the others are 0
        if not self.gaussian:
            return (self._context(local, strip, summary, None) * self.value_net(value[:, None])).sum(dim=1)
        gauss_context, gauss_value, gauss_summary = self._gaussian_features(
            planes[:, 0].flatten(1), tested.flatten(1).argmax(dim=1), value)
        return ((self._context(local, strip, summary, gauss_summary) * self.value_net(value[:, None])).sum(dim=1)
                + (gauss_context * gauss_value).sum(dim=1))

    def substep_values(self, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                       rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
        if not bool((bounds[:, 1] - bounds[:, 0] == 1).all()):
            raise ValueError("the bilinear critic tests one pixel per sub-step (path substeps 'pixel')")
        context, value = self.pair_features(x, rank, bounds[:, 0], shape, rows, center)
        return (context * value).sum(dim=1)


class MLPCritic(Critic):
    """(B, 4, H, W) → (B,): the flattened planes through an ELU MLP with dropout."""

    def __init__(self, settings: CriticSettings, shape):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *_mlp_layers(N_PLANES * shape[0] * shape[1], settings))

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        return self.net(planes).squeeze(-1)


class ConstantCritic(Critic):
    """f ≡ 0. Its DV bound is exactly 0 nats: the fallback of a path step whose trained
    critic scores below that on held-out data (it would only add noise, or worse, to F)."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a device

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        return planes.new_zeros(planes.shape[0]) + self.anchor

    def substep_values(self, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                       rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
        return x.new_zeros(len(bounds)) + self.anchor


class FoldEnsemble(Critic):
    """The mean of the critics of a cross-fitted path step (one per fold): an estimate of the same
    log ratio with the folds' noise averaged out."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(planes) for member in self.members]).mean(dim=0)

    def substep_values(self, x: torch.Tensor, rank: torch.Tensor, bounds: torch.Tensor, shape,
                       rows: torch.Tensor | None = None, center: torch.Tensor | None = None) -> torch.Tensor:
        return torch.stack([member.substep_values(x, rank, bounds, shape, rows, center)
                            for member in self.members]).mean(dim=0)

    def row_elements(self, shape) -> int:
        return max(member.row_elements(shape) for member in self.members)


def _mlp_layers(width: int, settings: CriticSettings, outputs: int = 1) -> list[nn.Module]:
    """``mlp_layers`` × (Linear to ``hidden``, ELU, dropout) from ``width`` inputs, then a Linear to ``outputs``."""
    layers = []
    for _ in range(settings.mlp_layers):
        layers += [_maybe_sn(nn.Linear(width, settings.hidden), settings), nn.ELU(), nn.Dropout(settings.dropout)]
        width = settings.hidden
    return [*layers, _maybe_sn(nn.Linear(width, outputs), settings)]


def _maybe_sn(layer: nn.Module, settings: CriticSettings) -> nn.Module:
    return spectral_norm(layer) if settings.spectral_norm else layer


def build_critic(settings: CriticSettings, shape) -> nn.Module:
    """A fresh critic for images of ``shape`` (H, W); "auto" means conv here."""
    if settings.kind == "mlp":
        return MLPCritic(settings, tuple(shape))
    if settings.kind == "hybrid":
        return HybridCritic(settings, tuple(shape))
    if settings.kind == "bilinear":
        return BilinearCritic(settings, tuple(shape))
    return ConvCritic(settings, tuple(shape))
