"""Estimators on arrays: DV divergences, critics, the dependency-diffusion path, the dual space
DualSpace, clusters in F, k-NN estimators and per-image features."""
