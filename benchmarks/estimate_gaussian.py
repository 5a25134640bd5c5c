"""Accuracy of total-correlation estimators on Gaussians with closed-form TC.

For x ~ N(0, R) with unit variances, TC(x) = −½ log det R (nats). Families:
equicorrelated (R_ij = ρ, no spatial order) and AR(1) (R_ij = φ^|i−j|, local), with
ρ or φ solved for the requested TC; separable (equicorrelated channels ⊗ AR(1) time, uneven channel
scales); warped (the separable images through monotone per-channel maps, exp, cube and tanh in turn:
skewed, heavy-tailed and bounded marginals with the same TC, since TC is invariant to such maps).
Methods (``--methods``):

  path-{critic}-K{K}-{order}[-F{k}]  the path estimator (critic mlp, conv, hybrid or bilinear; k cross-fitting folds)
                                  (dualdiv.estimators.dualspace.estimate_tc), K blocks of
                                 single-pixel sub-steps; mlp on (n, d), conv on (n, 1, d)
  single-{mlp|conv}              one critic, no path: plain DV between P and the product of
                                 marginals (K = 1, block sub-steps), same critic family;
                                 reported guarded, min(D̂, log n_ref) — no distribution-free
                                 bound from n_ref reference samples certifies more — and unguarded
  knn                            Kozachenko–Leonenko entropies, TC = Σ_i H(x_i) − H(x)
  default                        exactly `dualdiv estimate x.npy --seed S` (estimate_tc's defaults, every core)
  default-nogauss                the same without the critic's fitted Gaussian term
  default-ranks                  the same on normal scores (`dualdiv estimate --marginals ranks`)
  exact                          the path's held-out score with the true log-ratio critic of every
                                 sub-step (K = 1, time order): no training, so what remains is the
                                 noise of the validation split — the floor for the trained critics

Writes a markdown table (truth, estimate ± stderr, relative error, wall time) after
every estimate, so an interrupted run keeps what it measured. Example (the key cell):

  python benchmarks/estimate_gaussian.py --key --seeds 0 1 2 --out benchmarks/ESTIMATE_GAUSSIAN.md
"""

from __future__ import annotations

import argparse
import math
import platform
import re
import sys
import time
from dataclasses import replace

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from dualdiv.estimators.critics import Critic
from dualdiv.estimators.dualspace import estimate_tc
from dualdiv.estimators.path import StepSettings, make_plan, score_step, standardise_pixels
from dualdiv.estimators.settings import THOROUGH_TRAINING

# The budget every table of ESTIMATE_GAUSSIAN.md was measured with (the defaults of StepSettings
# before they became the pipeline's smaller budget: 600 iterations, 32 rows, validation every 50).
BENCHMARK_TRAINING = StepSettings(max_iterations=3000, rows_per_substep=64, eval_every=100, patience=5,
                                  eval_resamplings=4, final_resamplings=20, checkpoint_every=100)
# --budget annealed: `dualdiv estimate`'s default settings (THOROUGH_TRAINING: 1500 iterations, learning rate
# annealed to 5 %, channel-relative global inputs, 5 cross-fitted folds), with the method's critic kind
# (and its -F<k> folds when given)
ANNEALED_TRAINING = THOROUGH_TRAINING


def equicorrelated(d: int, tc: float) -> np.ndarray:
    """(d, d) correlation matrix with one common ρ and total correlation tc nats."""
    def tc_of(rho):
        return -0.5 * ((d - 1) * math.log1p(-rho) + math.log1p((d - 1) * rho))
    rho = brentq(lambda r: tc_of(r) - tc, 0.0, 1 - 1e-12)
    return np.full((d, d), rho) + (1 - rho) * np.eye(d)


def ar1(d: int, tc: float) -> np.ndarray:
    """(d, d) AR(1) correlation φ^|i−j| with total correlation −½(d−1)log(1−φ²) = tc nats."""
    phi = math.sqrt(-math.expm1(-2 * tc / (d - 1)))
    lags = np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    return phi ** lags


def separable(shape: tuple[int, int], tc: float, channel_share: float = 0.5) -> np.ndarray:
    """(H·W, H·W) correlation C ⊗ A of (H, W) images (flat index h·W + t): C equicorrelated across the
    H channels, A AR(1) along the W time points, so log det = W log det C + H log det A and
    ``channel_share`` of the tc nats comes from the channels (global), the rest from time (local)."""
    height, width = shape
    channels = equicorrelated(height, channel_share * tc / width) if height > 1 else np.ones((1, 1))
    time = ar1(width, (1 - channel_share if height > 1 else 1) * tc / height)
    return np.kron(channels, time)


FAMILIES = {"equicorrelated": equicorrelated, "ar1": ar1, "separable": separable, "warped": separable}
# the warped family's per-channel monotone maps (channel h gets WARPS[h % 3]); TC is unchanged by them
WARPS = (np.exp, lambda z: z**3, lambda z: np.tanh(2 * z))
# per-channel scales 10^-1 … 10^1: TC does not change, the estimator must not care (it z-scores pixels)
UNEVEN_SCALES = (-1.0, 1.0)


def correlation(family: str, shape: tuple[int, int], tc: float) -> np.ndarray:
    """The family's (P, P) correlation of images of ``shape`` (flat, row-major) with total correlation tc."""
    if family in ("separable", "warped"):
        return separable(shape, tc)
    return FAMILIES[family](shape[0] * shape[1], tc)


def sample(family: str, shape: tuple[int, int], tc: float, n: int, seed: int, warp: bool = True
           ) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, H, W) float64 with uneven channel scales for the separable family, its correlation (P, P)).

    warped: the separable images through the channels' WARPS (warp=False: the Gaussian images beneath)."""
    corr = correlation(family, shape, tc)
    x = np.random.default_rng(seed).multivariate_normal(np.zeros(len(corr)), corr, n)
    x = x.reshape(n, *shape)
    if family == "warped" and warp:
        x = np.stack([WARPS[h % len(WARPS)](x[:, h]) for h in range(shape[0])], axis=1)
    if family in ("separable", "warped"):
        x = x * np.logspace(*UNEVEN_SCALES, shape[0])[None, :, None]
    return x, corr


def kl_entropy(x: np.ndarray, k: int = 3) -> float:
    """Kozachenko–Leonenko differential entropy (nats) of x (n, d), Euclidean k-NN distances."""
    n, d = x.shape
    dist = cKDTree(x).query(x, k=k + 1)[0][:, k]
    log_unit_ball = (d / 2) * math.log(math.pi) - gammaln(d / 2 + 1)
    return float(digamma(n) - digamma(k) + log_unit_ball + d * np.mean(np.log(dist)))


def knn_tc(x: np.ndarray, k: int = 3) -> float:
    """TC = Σ_i H(x_i) − H(x) from Kozachenko–Leonenko entropies (nats)."""
    return sum(kl_entropy(x[:, [i]], k) for i in range(x.shape[1])) - kl_entropy(x, k)


class GaussianLogRatio(Critic):
    """Exact sub-step critic for x ~ N(0, corr) on (B, 4, H, W) planes (corr over the flat H·W pixels):
    log p(x_b | x_rest) − log p(x_b).

    "rest" = pixels neither masked as permuted (m_prev) nor tested (m_blk); one tested pixel b per row.
    """

    def __init__(self, corr: np.ndarray):
        super().__init__()
        self.corr = corr

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        context, block, prev, tested = (planes[:, i].flatten(1).double() for i in range(4))
        pixel = tested.argmax(dim=1)
        out = torch.zeros(len(planes), dtype=torch.float64)
        for b in pixel.unique().tolist():
            rows = pixel == b
            rest = ((prev[rows][0] == 0) & (tested[rows][0] == 0)).nonzero()[:, 0].numpy()
            weights = np.linalg.solve(self.corr[np.ix_(rest, rest)], self.corr[rest, b]) if len(rest) else np.zeros(0)
            var = 1 - self.corr[b, rest] @ weights
            mean = context[rows][:, rest] @ torch.from_numpy(weights)
            x_b = block[rows, b]
            out[rows] = -0.5 * (x_b - mean) ** 2 / var - 0.5 * math.log(var) + 0.5 * x_b**2
        return out.float()


METHOD = re.compile(r"^(?:path-(?P<critic>mlp|conv|hybrid|bilinear)-K(?P<k>\d+)-(?P<order>time|random|channel|patch)"
                    r"(?:-F(?P<folds>\d+))?|single-(?P<single>mlp|conv)|knn|exact(?:-F(?P<exact_folds>\d+))?|default(?:-nogauss|-ranks)?)$")


def estimate(method: str, x: np.ndarray, corr: np.ndarray, seed: int, settings: StepSettings,
             gaussian: np.ndarray | None = None) -> list[tuple[str, float, float]]:
    """[(label, estimate, stderr)] in nats for one method name (see the module docstring); x (n, H, W).

    gaussian: the Gaussian images beneath warped x (the exact critic scores those: the same TC, and the
    DV bound of the true critic is invariant to the per-pixel maps); None: x itself."""
    match = METHOD.match(method)
    if match is None:
        raise SystemExit(f"unknown method {method!r}")
    if method == "knn":
        return [(method, knn_tc(x.reshape(len(x), -1)), math.nan)]
    if method == "default":  # exactly `dualdiv estimate x.npy --seed S`: estimate_tc's defaults (every core)
        result = estimate_tc(x.astype(np.float32), seed=seed)
        return [(method, result["tc"], result["stderr"])]
    if method == "default-ranks":
        result = estimate_tc(x.astype(np.float32), seed=seed, marginals="ranks")
        return [(method, result["tc"], result["stderr"])]
    if method == "default-nogauss":
        no_term = replace(THOROUGH_TRAINING, critic=replace(THOROUGH_TRAINING.critic, gaussian_term=False))
        result = estimate_tc(x.astype(np.float32), n_blocks=1, seed=seed, settings=no_term, n_jobs=-1)
        return [(method, result["tc"], result["stderr"])]
    if method.startswith("exact"):
        images = standardise_pixels(x if gaussian is None else gaussian)
        folds = int(match["exact_folds"] or 1)
        score = score_step(GaussianLogRatio(corr), images, make_plan(images.shape[1:], 1), 1,
                           replace(settings, folds=folds), seed)
        return [(method, score["D"], score["stderr"])]
    critic = match["critic"] or match["single"]
    settings = replace(settings, critic=replace(settings.critic, kind=critic))
    if match["folds"]:
        settings = replace(settings, folds=int(match["folds"]))
    if match["single"]:
        result = estimate_tc(x, n_blocks=1, seed=seed, settings=settings, substeps="block")
        cap = math.log(result["steps"][0]["n_reference"])
        return [(method, min(result["tc"], cap), result["stderr"]),
                (f"{method} unguarded", result["tc"], result["stderr"])]
    result = estimate_tc(x, n_blocks=int(match["k"]), order=match["order"], seed=seed, settings=settings)
    return [(method, result["tc"], result["stderr"])]


def write_table(path: str, rows: list[dict], command: str, total_s: float) -> None:
    header = ("| family | d | TC | N | method | seed | estimate ± se | rel. error | wall s |\n"
              "|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['family']} | {r['d']} | {r['tc']:g} | {r['n']} | {r['method']} | {r['seed']} | "
             f"{r['estimate']:.2f}" + ("" if math.isnan(r["stderr"]) else f" ± {r['stderr']:.2f}")
             + f" | {100 * (r['estimate'] / r['tc'] - 1):+.1f} % | {r['wall_s']:.0f} |" for r in rows]
    summary = _summary(rows)
    with open(path, "w") as out:
        out.write("# Total-correlation estimators on Gaussians with known TC\n\n"
                  f"Command: `{command}`\n\n"
                  f"Machine: {platform.machine()}, 2 CPU cores shared with other work, one torch thread "
                  f"per estimate, torch {torch.__version__}. Total wall time {total_s / 60:.1f} min.\n\n"
                  "Truth: TC = −½ log det R (nats). Relative error = estimate / truth − 1.\n\n")
        if summary:
            out.write("## Mean over seeds\n\n" + summary + "\n")
        out.write("## Every estimate\n\n" + header + "\n".join(lines) + "\n")


def _summary(rows: list[dict]) -> str:
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["family"], r["d"], r["tc"], r["n"], r["method"]), []).append(r)
    if all(len(v) == 1 for v in cells.values()):
        return ""
    lines = ["| family | d | TC | N | method | seeds | mean estimate | mean rel. error (sd) | mean wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (family, d, tc, n, method), group in cells.items():
        errors = np.array([100 * (r["estimate"] / tc - 1) for r in group])
        lines.append(f"| {family} | {d} | {tc:g} | {n} | {method} | {len(group)} | "
                     f"{np.mean([r['estimate'] for r in group]):.2f} | {errors.mean():+.1f} % "
                     f"({errors.std(ddof=1) if len(group) > 1 else 0:.1f}) | "
                     f"{np.mean([r['wall_s'] for r in group]):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--d", nargs="+", type=int, default=[16, 64, 256], help="vector lengths (1 × d images)")
    parser.add_argument("--shapes", nargs="+", metavar="HxW", help="image shapes instead of --d, e.g. 8x8 16x16 4x64")
    parser.add_argument("--tc", nargs="+", type=float, default=[2, 10, 20, 30])
    parser.add_argument("--n", nargs="+", type=int, default=[100, 300, 1000])
    parser.add_argument("--methods", nargs="+", default=["exact", "path-mlp-K1-time", "path-mlp-K4-time",
                                                         "path-conv-K1-time", "single-mlp", "knn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--quick", action="store_true", help="d 16, 64; TC 2, 20; N 300")
    parser.add_argument("--key", action="store_true", help="only the key cell: d 64, TC 20, N 500")
    parser.add_argument("--budget", choices=("benchmark", "default", "annealed"), default="benchmark",
                        help="benchmark: the budget of the tables here (3000 iterations, 64 rows, ...); "
                             "default: StepSettings() = DualSpace()'s, the pipeline's (600 iterations, 32 rows, ...); "
                             "annealed: `dualdiv estimate`'s THOROUGH_TRAINING (1500 iterations annealed to 5 %, "
                             "5 cross-fitted folds)")
    parser.add_argument("--max-iterations", type=int, help="override the budget's iteration limit")
    parser.add_argument("--out", default="benchmarks/ESTIMATE_GAUSSIAN.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.d, args.tc, args.n = [16, 64], [2, 20], [300]
    if args.key:
        args.d, args.tc, args.n = [64], [20], [500]
    torch.set_num_threads(1)
    settings = {"benchmark": BENCHMARK_TRAINING, "default": StepSettings(), "annealed": ANNEALED_TRAINING}[args.budget]
    if args.max_iterations is not None:
        settings = replace(settings, max_iterations=args.max_iterations)
    command = "python " + " ".join(["benchmarks/estimate_gaussian.py", *(argv if argv is not None else sys.argv[1:])])
    rows, started = [], time.perf_counter()
    shapes = ([tuple(int(v) for v in shape.lower().split("x")) for shape in args.shapes] if args.shapes
              else [(1, d) for d in args.d])
    for family in args.families:
        for shape in shapes:
            d = shape[1] if shape[0] == 1 else f"{shape[0]}×{shape[1]}"
            for tc in args.tc:
                for n in args.n:
                    for seed in args.seeds:
                        x, corr = sample(family, shape, tc, n, seed)
                        gaussian = sample(family, shape, tc, n, seed, warp=False)[0] if family == "warped" else None
                        for method in args.methods:
                            t0 = time.perf_counter()
                            for label, value, stderr in estimate(method, x, corr, seed, settings, gaussian):
                                rows.append({"family": family, "d": d, "tc": tc, "n": n, "method": label,
                                             "seed": seed, "estimate": value, "stderr": stderr,
                                             "wall_s": time.perf_counter() - t0})
                                print(rows[-1], flush=True)
                            write_table(args.out, rows, command, time.perf_counter() - started)


if __name__ == "__main__":
    main()
