"""One interface for every generator: dual-space variants, fitted bases, baselines, references.

Shaped like a scikit-learn estimator: settings only in the constructor, learned
state in attributes with a trailing underscore, ``fit(images, seed)`` returns
``self``, then ``sample(n, seed)`` returns new images and a per-sample
provenance record. Images are ``(n, H, W)`` float32 in the normalised units of
``tiles.h5`` (H = channels, W = time). The ``sample``, ``baseline`` and
``evaluate`` rules look generators up by key in :data:`REGISTRY`, so they treat
all of them alike.

Keys: ``dualdiv`` (the chosen default variant), ``dualdiv_<variant>``,
``vae``, ``wgan_gp``, ``ddpm``, ``sb_langevin``, ``spectral``, ``var``,
``gaussian_lw``, the peers run in their own environments ``tsgm_vae``, ``tsgm_timegan``,
``sdv_par``, the references ``copy``, ``interpolate``, ``marginals``, and the simple
augmentations of a training image ``jitter``, ``scaling``, ``time_warp``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from dualdiv.core.errors import ConfigError

# Key → "module:Class" under dualdiv.generators. Looking a key up imports only its module
# (torch only for the neural ones), so listing or choosing generators costs nothing.
REGISTRY: dict[str, str] = {
    "dualdiv_corrected": "correction:DualCorrected",
    "dualdiv_walk": "walks:GapWalk",
    "dualdiv_basewalk": "walks:BaseWalk",
    "spectral": "bases:SpectralGaussian",
    "var": "bases:VARGaussian",
    "gaussian_lw": "bases:GaussianLW",
    "vae": "baselines.vae:VAE",
    "wgan_gp": "baselines.wgan_gp:WGANGP",
    "ddpm": "baselines.ddpm:DDPM",
    "sb_langevin": "baselines.sb_langevin:SBLangevin",
    "tsgm_vae": "peers:TSGMVAE",
    "tsgm_timegan": "peers:TSGMTimeGAN",
    "sdv_par": "peers:SDVPAR",
    "copy": "references:Copy",
    "interpolate": "references:Interpolate",
    "marginals": "references:Marginals",
    "jitter": "augmentations:Jitter",
    "scaling": "augmentations:Scaling",
    "time_warp": "augmentations:TimeWarp",
}
# ``dualdiv`` names the default variant: the one written as samples/dualdiv.h5.
DEFAULT_VARIANT = "dualdiv_corrected"
WALKS = ("dualdiv_walk", "dualdiv_basewalk")
# External packages run in environments of their own (dualdiv.generators.peers): their `python` setting
PEERS = tuple(key for key, target in REGISTRY.items() if target.startswith("peers:"))


def register(key: str) -> Callable[[type], type]:
    """Class decorator naming a generator class's registry key (it must be listed in :data:`REGISTRY`)."""

    def add(cls: type) -> type:
        if REGISTRY.get(key, "").split(":")[-1] != cls.__name__:
            raise ValueError(f"generator key {key!r} is not listed in REGISTRY as {cls.__name__}")
        cls.key = key
        return cls

    return add


def known_keys() -> list[str]:
    """Every key :func:`make_generator` accepts, ``dualdiv`` first."""
    return ["dualdiv", *sorted(REGISTRY)]


def resolve_key(key: str) -> str:
    """The registry key of ``key`` (``dualdiv`` → :data:`DEFAULT_VARIANT`); ConfigError if unknown."""
    resolved = DEFAULT_VARIANT if key == "dualdiv" else key
    if resolved not in REGISTRY:
        raise ConfigError(f"unknown generator {key!r}; known: {', '.join(known_keys())}")
    return resolved


def resolve_method(method: str, sample_config: dict) -> tuple[str, dict]:
    """Registry key and constructor settings of ``method`` in a config's ``sample`` section
    (``dualdiv`` → ``sample.default``, else :data:`DEFAULT_VARIANT`; settings from ``sample.settings[key]``)."""
    key = sample_config.get("default", DEFAULT_VARIANT) if method == "dualdiv" else method
    try:
        key = resolve_key(key)
    except ConfigError:
        raise ConfigError(f"sample: unknown method {method!r}; known: {', '.join(known_keys())}") from None
    settings = dict((sample_config.get("settings") or {}).get(key) or {})
    return key, settings


def generator_class(key: str) -> type[Generator]:
    """The class of generator ``key``, importing its module now."""
    module, name = REGISTRY[resolve_key(key)].split(":")
    return getattr(importlib.import_module(f"dualdiv.generators.{module}"), name)


def make_generator(key: str, **settings: Any) -> Generator:
    """A generator by its key (``dualdiv`` = the default variant) with ``settings`` passed to its constructor."""
    return generator_class(key)(**settings)


class Generator:
    """Base class: subclasses implement :meth:`fit` and :meth:`_sample`."""

    key: str = ""

    def fit(self, images: np.ndarray, seed: int = 0) -> Generator:
        """Learn from training images ``(n, H, W)`` float32; returns ``self``."""
        raise NotImplementedError

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, list[dict]]:
        """``n`` new images ``(n, H, W)`` float32 and one provenance dict per image.

        The same fitted generator and seed give identical output.
        """
        if n < 1:
            raise ConfigError(f"{self.key}: number of samples must be ≥ 1, got {n}")
        images, records = self._sample(n, np.random.default_rng(seed))
        return np.asarray(images, dtype=np.float32), records

    def _sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
        raise NotImplementedError

    def settings(self) -> dict:
        """Constructor settings (JSON-serialisable), stored with the samples."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}
