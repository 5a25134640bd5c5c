"""dualdiv: generative sampling of multivariate time series in the dual divergence space.

The names below are imported on first use (PEP 562), so ``import dualdiv`` and
``from dualdiv import DualSpace`` do not import torch; it is imported when a model
is built. Layers, bottom to top (each imports only from those below it):
``core`` → ``data`` → ``estimators`` → ``generators`` → ``evaluation`` → ``stages`` → ``cli``.

>>> from dualdiv import DualSpace, Synthesizer
>>> space = DualSpace().fit(images)            # images: (n, channels, time), normalised
>>> F = space.transform(images)                # (n,) dual coordinate
>>> samples = Synthesizer().fit(x).sample(50)  # x and samples in physical units
"""

from __future__ import annotations

import importlib

from dualdiv.core.errors import ConfigError, DualdivError, InputError, OutputError

__version__ = "0.1.0"

# public name → "module:attribute"
_LAZY = {
    "ingest": "dualdiv.stages.ingest:ingest",
    "tile": "dualdiv.stages.tile:tile",
    "DualSpace": "dualdiv.estimators.dualspace:DualSpace",
    "estimate_tc": "dualdiv.estimators.dualspace:estimate_tc",
    "make_generator": "dualdiv.generators.base:make_generator",
    "Synthesizer": "dualdiv.generators.synthesizer:Synthesizer",
    "evaluate": "dualdiv.evaluation.metrics:evaluate",
    "DualCorrected": "dualdiv.generators.correction:DualCorrected",
    "GapWalk": "dualdiv.generators.walks:GapWalk",
    "BaseWalk": "dualdiv.generators.walks:BaseWalk",
    "SpectralGaussian": "dualdiv.generators.bases:SpectralGaussian",
    "VARGaussian": "dualdiv.generators.bases:VARGaussian",
    "GaussianLW": "dualdiv.generators.bases:GaussianLW",
    "VAE": "dualdiv.generators.baselines.vae:VAE",
    "WGANGP": "dualdiv.generators.baselines.wgan_gp:WGANGP",
    "DDPM": "dualdiv.generators.baselines.ddpm:DDPM",
    "SBLangevin": "dualdiv.generators.baselines.sb_langevin:SBLangevin",
    "Copy": "dualdiv.generators.references:Copy",
    "Interpolate": "dualdiv.generators.references:Interpolate",
    "Marginals": "dualdiv.generators.references:Marginals",
    "Jitter": "dualdiv.generators.augmentations:Jitter",
    "Scaling": "dualdiv.generators.augmentations:Scaling",
    "TimeWarp": "dualdiv.generators.augmentations:TimeWarp",
    "ClassConditional": "dualdiv.generators.conditional:ClassConditional",
    "utility_metrics": "dualdiv.evaluation.utility:utility_metrics",
}

__all__ = ["ConfigError", "DualdivError", "InputError", "OutputError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'dualdiv' has no attribute {name!r}")
    module, attribute = _LAZY[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
