"""The path's plan: the pixel order and its K contiguous blocks (nested sets S_1 ⊂ … ⊂ S_K).

Torch-free, so the plan stage and the Snakefile import it in a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from dualdiv.core.errors import ConfigError, InputError

ORDERS = ("time", "random", "channel", "patch")
SUBSTEPS = ("pixel", "block")


# ---------------------------------------------------------------------------- plan


def make_plan(shape, n_blocks: int, order: str = "time", seed: int = 0, substeps: str = "pixel",
              patch: tuple[int, int] = (4, 4)) -> dict:
    """The nested pixel sets S_1 ⊂ … ⊂ S_K as a JSON-serialisable dict.

    shape: (H, W) = (channels, time). n_blocks: K, 1 ≤ K ≤ H·W.
    order: "time" (column strips in time order, channels within a column: a locality
        order; the default), "channel" (row by row), "patch" (patch[0] × patch[1]
        tiles in time order, columns within a tile), "random" (seeded permutation).
    substeps: "pixel" (each step telescopes over its block's single pixels) or "block".
    Returns {"shape", "order", "seed", "substeps", "n_blocks", "pixel_order" (H·W flat
    indices h·W + t), "blocks" ([start, stop) positions in pixel_order, one per step)}.
    """
    height, width = (int(v) for v in shape)
    n_pixels = height * width
    if order not in ORDERS:
        raise ConfigError(f"path.order: must be one of {ORDERS}, got {order!r}")
    if substeps not in SUBSTEPS:
        raise ConfigError(f"path.substeps: must be one of {SUBSTEPS}, got {substeps!r}")
    if not 1 <= n_blocks <= n_pixels:
        raise ConfigError(f"path.n_blocks: must be in [1, {n_pixels}] for a {height}×{width} image, "
                          f"got {n_blocks}")
    rows, cols = np.divmod(np.arange(n_pixels), width)
    if order == "time":
        pixel_order = np.lexsort((rows, cols))
    elif order == "channel":
        pixel_order = np.arange(n_pixels)
    elif order == "patch":
        patch_h, patch_w = min(patch[0], height), min(patch[1], width)
        pixel_order = np.lexsort((rows, cols, rows // patch_h, cols // patch_w))
    else:
        pixel_order = np.random.default_rng(seed).permutation(n_pixels)
    edges = np.linspace(0, n_pixels, n_blocks + 1).round().astype(int)
    return {"shape": [height, width], "order": order, "seed": int(seed), "substeps": substeps,
            "n_blocks": int(n_blocks), "pixel_order": pixel_order.tolist(),
            "blocks": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:], strict=True)]}


def check_plan(plan: dict, step: int) -> None:
    """InputError if ``plan`` is not a plan of :func:`make_plan` (pixels permuted once, contiguous blocks);
    ConfigError if ``step`` is not one of its steps."""
    try:
        n_pixels = plan["shape"][0] * plan["shape"][1]
        order_ok = sorted(plan["pixel_order"]) == list(range(n_pixels))
        edges = [a for a, _ in plan["blocks"]] + [plan["blocks"][-1][1]]
        blocks_ok = edges[0] == 0 and edges[-1] == n_pixels and all(np.diff(edges) > 0)
        substeps_ok = plan["substeps"] in SUBSTEPS
    except (KeyError, IndexError, TypeError) as err:
        raise InputError(f"path plan is malformed ({err!r})") from err
    if not (order_ok and blocks_ok and substeps_ok):
        raise InputError("path plan is malformed: pixel_order must permute all pixels and blocks must "
                         "tile it contiguously")
    if not 1 <= step <= len(plan["blocks"]):
        raise ConfigError(f"path step must be in [1, {len(plan['blocks'])}], got {step}")
