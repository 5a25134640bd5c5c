"""Stage figures on files: every figure of one data set (:mod:`dualdiv.evaluation.figures`) into a folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dualdiv.data.samples import load_samples
from dualdiv.data.tiles import load_tiles
from dualdiv.evaluation.figures import FIGURES, plot_dual_histogram, plot_grid, plot_spectra, plot_walks


def write_figures(tiles_path, dual_path, clusters_path, sample_paths: Mapping[str, str],
                  out_dir: str | os.PathLike) -> list[Path]:
    """Entry of rule ``figures``: every figure of one data set into ``out_dir`` (methods that failed left out)."""
    out_dir = Path(out_dir)
    tiles = load_tiles(tiles_path)
    samples = {name: load_samples(path) for name, path in sample_paths.items()}
    samples = {name: s for name, s in samples.items() if s.failed is None}  # a failed method has nothing to draw
    paths = [out_dir / name for name in FIGURES]
    plot_dual_histogram(dual_path, clusters_path, paths[0])
    plot_grid(tiles, samples, paths[1])
    plot_spectra(tiles, {k: v for k, v in samples.items() if k not in ("copy", "marginals")}, paths[2])
    plot_walks(samples, paths[3])
    return paths
