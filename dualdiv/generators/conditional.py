"""Class-conditional generation through the one generator interface: one generator per class.

:class:`ClassConditional` wraps any registered generator (``key``): ``fit(images, seed,
labels=...)`` fits one generator of ``key`` on the training images of each class, and
``sample(n, seed, labels=None)`` draws images of the classes asked for, each record carrying
its ``"label"``. The sample stage uses it when ``sample.conditional`` is on (by default when
the tiles carry labels of two or more classes); without labels it is not used at all, so
unlabelled data give exactly the unconditional generator's samples.

**Small classes.** A class with fewer than ``min_class_size`` (default 16) training images
gets no generator of its own. Its samples come from the *shared* generator — the one fitted on
all training images, with the unconditional fit's seed, so it is the unconditional generator —
shifted by the class's mean image minus the mean image of all training images (``(H, W)``):
the class's first moment exactly, its covariance and spectrum the pooled ones. Why 16: every
fit needs a handful of images for its own parts, and a class generator fitted on fewer would
be worse than the pooled one moved to the class mean —

- the correction's residual critic holds out a quarter of its images (at least 2) for early
  stopping and its AUC test against 256 base samples: on 8 images it keeps 2, and its z-test
  against 0.5 (``min_auc_z`` = 2) passes only at a held-out AUC ≥ 0.91; 16 images keep 4 (AUC ≥ 0.79);
- the spectral base's cross-spectral density per frequency is a sum of n rank-one matrices: with
  fewer images than channels (14 EEG electrodes, 16 in FingerMovements) every sample's spectrum
  lies in a subspace of the channel space;
- the VAR base's order selection needs ``folds`` (5) images, the path estimator of a walk's dual
  space 4 for its train/validation split.

**Walks** (``dualdiv_walk``, ``dualdiv_basewalk``) take ``space=``, ``boundaries=`` and
``novelty_threshold=`` in ``fit``. Each class's walk gets the shared fitted dual space (its F
and dual window [lo, hi] are those of all training images) and the shared novelty threshold,
and walks within that class's images: its starts, targets and near-copy distances are the
class's. ``boundaries`` (cluster cuts of all training images, clusters.json) go to the shared
walk only; a class's cuts are found by ``space.localize`` on the class's images (the default
:class:`~dualdiv.estimators.clusters.ClusterSettings`).

**Seeds.** Each class's fit and sample seeds are drawn from ``np.random.SeedSequence(seed)``
keyed by a hash of the class name, so results are reproducible and do not depend on the order
in which classes appear, on which other classes exist, or on the order of a ``per_class`` mapping.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dualdiv.core.checks import check_images
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.generators.base import WALKS, Generator, make_generator, resolve_key

__all__ = ["DEFAULT_MIN_CLASS_SIZE", "ClassConditional", "check_per_class", "class_seed", "proportional_counts"]

DEFAULT_MIN_CLASS_SIZE = 16  # why 16: the module docstring
PER_CLASS = "per_class"  # a record's ``class_generator``: the class's own generator
SHARED_SHIFTED = "shared_shifted"  # ... or the shared one, shifted to the class mean (a small class)


def class_seed(seed: int, purpose: str, label: str) -> int:
    """A seed in [0, 2³¹) for ``purpose`` ("fit", "sample") of class ``label``, derived from ``seed``.

    np.random.SeedSequence keyed by a SHA-256 of the purpose and the class name: the same for a
    class whichever other classes exist and in whatever order they come.
    """
    digest = hashlib.sha256(f"{purpose}\0{label}".encode()).digest()
    key = tuple(int(word) for word in np.frombuffer(digest[:16], dtype="<u4"))
    return int(np.random.SeedSequence(int(seed), spawn_key=key).generate_state(1)[0] >> 1)


def proportional_counts(n: int, weights: Mapping[str, int]) -> dict[str, int]:
    """``n`` split over the classes in proportion to ``weights`` (e.g. training counts); sums to ``n``.

    Largest remainders: each class gets ⌊n·w/Σw⌋ and the rest go one each to the largest fractional
    parts, ties to the class first in sorted order (deterministic, independent of the mapping's order).
    """
    classes = sorted(weights)
    total = sum(weights[c] for c in classes)
    quotas = np.array([n * weights[c] / total for c in classes])
    counts = np.floor(quotas).astype(int)
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[:n - int(counts.sum())]] += 1
    return {c: int(k) for c, k in zip(classes, counts, strict=True)}


def check_per_class(per_class: Any) -> int | dict[str, int] | None:
    """``per_class`` as None, an int ≥ 1 or a {class name: count ≥ 0} dict (names as str); ConfigError else."""
    if per_class is None:
        return None
    if isinstance(per_class, bool) or not isinstance(per_class, int | Mapping):
        raise ConfigError(f"per_class: null, an image count per class or a mapping {{class: count}}, "
                          f"got {per_class!r}")
    if isinstance(per_class, int):
        if per_class < 1:
            raise ConfigError(f"per_class: must be ≥ 1 images per class, got {per_class}")
        return int(per_class)
    counts = {str(label): count for label, count in per_class.items()}
    bad = [label for label, count in counts.items()
           if isinstance(count, bool) or not isinstance(count, int) or count < 0]
    if bad:
        raise ConfigError(f"per_class: counts must be integers ≥ 0; class {bad[0]!r} has {counts[bad[0]]!r}")
    if not sum(counts.values()):
        raise ConfigError("per_class: the counts add up to 0 images")
    return counts


def _remap_train_index(value: Any, rows: np.ndarray) -> Any:
    """A record's ``train_index`` (an int or a list of them, into one class's images) → rows of all images."""
    if isinstance(value, list):
        return [int(rows[i]) for i in value]
    return int(rows[value])


class ClassConditional(Generator):
    """One generator of ``key`` per class of the training labels (see the module docstring).

    key: registry key of the generator (``dualdiv`` = the default variant); settings: its
        constructor settings (stored as ``generator_settings``: ``settings`` names the method).
    min_class_size: a class with fewer training images is sampled from the shared generator
        shifted to its mean image (≥ 2: a fit needs two images).
    per_class: how many images :meth:`sample` draws when not given labels — None: ``n`` in the
        proportions of the training labels; an int: that many of every class; a mapping
        {class: count}: those counts (classes not named: none).

    Fitted: ``classes_`` (sorted class names), ``class_counts_`` {class: training images},
    ``generators_`` {class: its fitted generator, for classes of ≥ ``min_class_size`` images},
    ``shared_`` (the generator fitted on all images; None when every class has its own),
    ``class_shift_`` {small class: (H, W) float32 mean-image shift}, ``class_rows_`` {class: its
    rows among the training images}.
    """

    def __init__(self, key: str, settings: Mapping | None = None, min_class_size: int = DEFAULT_MIN_CLASS_SIZE,
                 per_class: int | Mapping[str, int] | None = None):
        self.key = resolve_key(key)
        self.generator_settings = dict(settings or {})
        if isinstance(min_class_size, bool) or not isinstance(min_class_size, int) or min_class_size < 2:
            raise ConfigError(f"min_class_size: must be an integer ≥ 2, got {min_class_size!r}")
        self.min_class_size = int(min_class_size)
        self.per_class = check_per_class(per_class)
        # built now: bad settings fail before any fit, and settings() reports the generator's full settings
        self._template = make_generator(self.key, **self.generator_settings)

    def _new_generator(self) -> Generator:
        return make_generator(self.key, **self.generator_settings)

    def fit(self, images, seed: int = 0, *, labels, **fit_kwargs) -> ClassConditional:
        """Fit a generator per class on ``images`` ``(n, H, W)`` with ``labels`` ``(n,)`` (class names).

        fit_kwargs: what the generator's own ``fit`` takes beside images and seed (the walks:
        ``space``, ``boundaries``, ``novelty_threshold``; see the module docstring).
        """
        images = check_images(images, self.key, dtype=np.float32)
        if labels is None:
            raise InputError(f"{self.key}: conditional fit needs the images' labels; these images have none")
        labels = np.asarray(labels).astype(str)
        if labels.shape != (len(images),):
            raise InputError(f"{self.key}: {labels.shape} labels for {len(images)} images; expected one per image")
        self.classes_ = tuple(np.unique(labels).tolist())
        self.class_rows_ = {c: np.flatnonzero(labels == c) for c in self.classes_}
        self.class_counts_ = {c: len(rows) for c, rows in self.class_rows_.items()}
        if isinstance(self.per_class, dict):
            self._check_names(self.per_class, "per_class")
        walk = self.key in WALKS
        if walk and fit_kwargs.get("space") is None:
            raise ConfigError(f"{self.key}: fit needs space=, the fitted DualSpace of these images")
        own_kwargs = {k: v for k, v in fit_kwargs.items() if k != "boundaries"} if walk else fit_kwargs
        self.generators_ = {c: self._new_generator().fit(images[rows], class_seed(seed, "fit", c), **own_kwargs)
                            for c, rows in self.class_rows_.items() if len(rows) >= self.min_class_size}
        small = [c for c in self.classes_ if c not in self.generators_]
        self.shared_ = self._new_generator().fit(images, seed, **fit_kwargs) if small else None
        overall = images.mean(axis=0, dtype=np.float64)
        self.class_shift_ = {c: (images[self.class_rows_[c]].mean(axis=0, dtype=np.float64) - overall
                                 ).astype(np.float32) for c in small}
        return self

    def _check_names(self, names: Sequence[str] | Mapping[str, Any], field: str) -> None:
        unknown = sorted(set(names) - set(self.classes_))
        if unknown:
            raise ConfigError(f"{field}: unknown class {unknown[0]!r}; the training labels have "
                              f"{', '.join(map(repr, self.classes_))}")

    def class_counts(self, n: int | None = None) -> dict[str, int]:
        """Images per class that :meth:`sample` draws without labels: from ``per_class``, or ``n`` in the
        training proportions (``per_class`` None). ``n`` must be None or agree when ``per_class`` fixes them."""
        if self.per_class is None:
            if n is None:
                raise ConfigError(f"{self.key}: number of samples missing (per_class is null)")
            return proportional_counts(n, self.class_counts_)
        counts = ({c: self.per_class for c in self.classes_} if isinstance(self.per_class, int)
                  else {c: self.per_class.get(c, 0) for c in self.classes_})
        if n is not None and n != sum(counts.values()):
            raise ConfigError(f"per_class: gives {sum(counts.values())} images, but {n} were asked for; "
                              "pass n=None")
        return counts

    def sample(self, n: int | None, seed: int, labels: str | Sequence[str] | None = None
               ) -> tuple[np.ndarray, list[dict]]:
        """New images ``(m, H, W)`` float32 and one record per image, each with its ``"label"``.

        labels: None — the classes as :meth:`class_counts` (``per_class``, or ``n`` in the training
        proportions), grouped by class in sorted class order; a class name — ``n`` images of it; a
        list of class names — one image of each, in that order (``n``: None or its length).
        Each class's images are drawn in one batch with its own seed (:func:`class_seed`), so they
        do not depend on the other classes asked for or their order.
        """
        if n is not None and n < 1:
            raise ConfigError(f"{self.key}: number of samples must be ≥ 1, got {n}")
        if labels is None:
            wanted = [c for c, k in self.class_counts(n).items() for _ in range(k)]
        elif isinstance(labels, str):
            if n is None:
                raise ConfigError(f"{self.key}: number of samples missing for class {labels!r}")
            wanted = [labels] * n
        else:
            wanted = [str(label) for label in labels]
            if n is not None and n != len(wanted):
                raise ConfigError(f"labels: {len(wanted)} class names for {n} samples; give one per sample")
        if not wanted:
            raise ConfigError(f"{self.key}: number of samples must be ≥ 1, got 0")
        self._check_names(wanted, "labels")
        wanted = np.array(wanted)
        images: np.ndarray | None = None
        records: list[dict | None] = [None] * len(wanted)
        for label in sorted(set(wanted.tolist())):
            positions = np.flatnonzero(wanted == label)
            batch, batch_records = self._sample_class(label, len(positions), class_seed(seed, "sample", label))
            if images is None:
                images = np.empty((len(wanted), *batch.shape[1:]), dtype=np.float32)
            images[positions] = batch
            for position, record in zip(positions, batch_records, strict=True):
                records[position] = record
        return images, records

    def _sample_class(self, label: str, n: int, seed: int) -> tuple[np.ndarray, list[dict]]:
        """``n`` images of class ``label`` (its generator, or the shared one shifted) and their records."""
        if label in self.generators_:
            images, records = self.generators_[label].sample(n, seed)
            rows = self.class_rows_[label]  # the class generator's train_index counts the class's images
            records = [{**r, **({"train_index": _remap_train_index(r["train_index"], rows)}
                                if "train_index" in r else {}), "label": label, "class_generator": PER_CLASS}
                       for r in records]
            return images, records
        images, records = self.shared_.sample(n, seed)
        return images + self.class_shift_[label], [{**r, "label": label, "class_generator": SHARED_SHIFTED}
                                                   for r in records]

    def settings(self) -> dict:
        """The wrapper's settings: the generator's key and full settings, ``min_class_size``, ``per_class``."""
        return {"key": self.key, "settings": self._template.settings(), "min_class_size": self.min_class_size,
                "per_class": self.per_class}
