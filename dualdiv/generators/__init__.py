"""Every generator behind one interface (:class:`~dualdiv.generators.base.Generator`).

Modules: ``base`` (interface and registry), ``references`` (copy, interpolate,
marginals), ``bases`` (spectral, VAR, Ledoit–Wolf Gaussians), ``correction``
(the dual correction p ∝ q·e^g, the default ``dualdiv``), ``walks`` (the paper's
gap walks along ∇F), ``baselines/`` (VAE, WGAN-GP, DDPM, Schrödinger-bridge
Langevin), ``peers`` (TSGM and SDV, each in its own environment). Importing this
package imports none of them.
"""

from dualdiv.generators.base import (
    DEFAULT_VARIANT,
    PEERS,
    REGISTRY,
    WALKS,
    Generator,
    generator_class,
    known_keys,
    make_generator,
    resolve_key,
    resolve_method,
)

__all__ = ["DEFAULT_VARIANT", "PEERS", "REGISTRY", "WALKS", "Generator", "generator_class", "known_keys",
           "make_generator", "resolve_key", "resolve_method"]
