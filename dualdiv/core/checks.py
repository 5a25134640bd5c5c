"""The one check of the image arrays handed to a fit, an estimator or a metric.

Images are ``(n, H, W)`` = (samples, channels, time) arrays of finite values. Every
user-facing entry point that takes them (generator fits, path steps, metrics) checks
them here, so a bad input gives the same one-line :class:`~dualdiv.core.errors.InputError`
naming the argument and what was expected, wherever it is passed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dualdiv.core.errors import InputError

__all__ = ["check_images"]


def check_images(images, name: str, *, min_images: int = 2, shape: Sequence[int] | None = None,
                 dtype: type = np.float32) -> np.ndarray:
    """``images`` as an ``(n, H, W)`` array of ``dtype``, else InputError.

    name: what the message calls them (a generator key, "test", "images", …).
    min_images: the least n accepted. shape: the (H, W) they must have (None: any).
    dtype: np.float32 or np.float64. The memory layout is kept as ``np.asarray`` leaves it
    (a copy only when the dtype changes), so sums over the result are those of the input.
    """
    wanted = f"(n, H, W) images with n ≥ {min_images}" + ("" if shape is None else f" and (H, W) = {tuple(shape)}")
    try:
        x = np.asarray(images, dtype=dtype)
    except (TypeError, ValueError) as err:  # ragged lists, strings, objects
        raise InputError(f"{name}: expected {wanted} of numbers, got {type(images).__name__} ({err})") from None
    if x.ndim != 3 or len(x) < min_images or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        raise InputError(f"{name}: expected {wanted}, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{name}: images contain NaN or infinite values")
    return x
