"""Reference generators: what the metrics must rank right (copies, mixtures, independent pixels)."""

from __future__ import annotations

import numpy as np

from dualdiv.core.checks import check_images
from dualdiv.generators.base import Generator, register


class _Reference(Generator):
    """A reference keeps its training images (``train_``, (n, H, W) float32) and draws from them."""

    def fit(self, images, seed=0):
        self.train_ = check_images(images, self.key, dtype=np.float32)
        return self


@register("copy")
class Copy(_Reference):
    """Reference: training images themselves, drawn with replacement (must be flagged as memorised)."""

    def _sample(self, n, rng):
        index = rng.integers(len(self.train_), size=n)
        return self.train_[index], [{"train_index": int(i)} for i in index]


@register("interpolate")
class Interpolate(_Reference):
    """Reference: convex combinations λ·a + (1−λ)·b of random training pairs, λ ~ U(0, 1)."""

    def _sample(self, n, rng):
        first = rng.integers(len(self.train_), size=n)
        second = (first + rng.integers(1, len(self.train_), size=n)) % len(self.train_)  # never the same image
        weight = rng.uniform(size=n).astype(np.float32)
        images = weight[:, None, None] * self.train_[first] + (1 - weight[:, None, None]) * self.train_[second]
        return images, [{"train_index": [int(a), int(b)], "weight": float(w)}
                        for a, b, w in zip(first, second, weight, strict=True)]


@register("marginals")
class Marginals(_Reference):
    """Reference: every pixel drawn independently from its training values (all dependence lost)."""

    def _sample(self, n, rng):
        flat = self.train_.reshape(len(self.train_), -1)  # (n_train, H*W)
        rows = rng.integers(len(flat), size=(n, flat.shape[1]))
        images = flat[rows, np.arange(flat.shape[1])]  # (n, H*W): pixel j from training image rows[:, j]
        return images.reshape(n, *self.train_.shape[1:]), [{} for _ in range(n)]

