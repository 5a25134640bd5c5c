"""Physical units in, physical units out: any generator on an in-memory array, no files.

:class:`Synthesizer` z-scores each channel with the statistics of the array it is
fitted on — exactly as the tile stage does with the training split
(:func:`dualdiv.data.tiles.channel_stats`, :func:`~dualdiv.data.tiles.normalise`) — fits
the generator on the normalised images, and maps its samples back with
:func:`~dualdiv.data.tiles.to_physical`. The walks also get a
:class:`~dualdiv.estimators.dualspace.DualSpace` fitted on the same images.

>>> synth = Synthesizer("dualdiv", seed=0).fit(x)   # x: (n, channels, time), e.g. µV
>>> new = synth.sample(50)                          # (50, channels, time), µV
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from dualdiv.core.checks import check_images
from dualdiv.data.tiles import channel_stats, normalise, to_physical
from dualdiv.generators.base import WALKS, make_generator, resolve_key
from dualdiv.generators.constraints import Constrained


class Synthesizer:
    """A generator by key, fitted on physical-unit series and sampling in the same units.

    method: a generator key (``dualdiv`` = the default variant, see :func:`dualdiv.make_generator`).
    seed: seeds the fit (and the dual space of the walks). settings: the generator's
    constructor settings (its defaults are the pipeline's). space: the DualSpace
    settings for the walks (:meth:`dualdiv.DualSpace.from_config` keys). constraints: keep what
    the array obeys in the samples, as the pipeline does (:mod:`dualdiv.generators.constraints`:
    constant channels and pixels, integer and non-negative channels; with ``units`` as the tiles
    write them, also % and circular channels); channel_names: for the provenance.

    Fitted attributes: ``generator_`` (the fitted generator), ``channel_mean_``,
    ``channel_std_`` (H,), ``constant_channels_`` (indices), ``space_`` (walks only),
    ``records_`` (provenance of the last :meth:`sample`).
    """

    def __init__(self, method: str = "dualdiv", seed: int = 0, space: Mapping | None = None,
                 constraints: bool = True, channel_names: list[str] | None = None, units: str | None = None,
                 **settings):
        self.method, self.seed, self.space, self.settings = method, seed, space, settings
        self.constraints, self.channel_names, self.units = constraints, channel_names, units

    def fit(self, x) -> Synthesizer:
        """x: (n, channels, time) or (n, time) in physical units, n ≥ 2, finite; returns self."""
        x = np.asarray(x, dtype=np.float64)
        x = check_images(x[:, None, :] if x.ndim == 2 else x, "x", dtype=np.float64)
        self.channel_mean_, self.channel_std_, self.constant_channels_ = channel_stats(x)
        images = normalise(x, self.channel_mean_, self.channel_std_)
        key = resolve_key(self.method)
        walk = {}
        if key in WALKS:
            from dualdiv.estimators.dualspace import DualSpace

            self.space_ = DualSpace.from_config(dict(self.space or {}), seed=self.seed).fit(images)
            walk = {"space": self.space_}
        self.generator_ = make_generator(key, **self.settings)
        if self.constraints:  # as the sample stage does: constant channels fitted around, constraints kept
            names = self.channel_names or [f"ch{c}" for c in range(images.shape[1])]
            self.generator_ = Constrained(self.generator_, self.channel_mean_, self.channel_std_, names, self.units,
                                          fit_constant_channels=key in WALKS)
        self.generator_.fit(images, self.seed, **walk)
        return self

    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """n new series (n, channels, time) float64 in the units of the fitted array."""
        images, self.records_ = self.generator_.sample(n, self.seed if seed is None else seed)
        return to_physical(images, self.channel_mean_, self.channel_std_)
