"""The neural and optimal-transport baselines: VAE, WGAN-GP, DDPM, Schrödinger-bridge Langevin.

``common`` holds their shared networks, budget and seeding; each baseline is its own
module, imported only when its key is looked up (:data:`dualdiv.generators.REGISTRY`).
"""
