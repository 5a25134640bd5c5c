"""Figures of one data set (PNG, matplotlib): the dual axis, real vs generated images, spectra, walks.

- ``dual_histogram.png``: F of training, test and product-of-marginals reference
  samples, with the kept cluster cuts and the dual window [lo, hi].
- ``grid.png``: real held-out images next to the first images of every method.
- ``spectra.png``: per-channel mean log power spectrum (Hann periodogram) of the
  held-out real images and of each method's samples.
- ``walks.png``: F along the walks (target as a dashed line) of the walk variants.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dualdiv.core.io import atomic_output  # noqa: E402
from dualdiv.data.samples import Samples  # noqa: E402
from dualdiv.data.tiles import Tiles  # noqa: E402
from dualdiv.estimators.features import log_spectra  # noqa: E402

FIGURES = ("dual_histogram.png", "grid.png", "spectra.png", "walks.png")


def _save(figure, path: Path) -> None:
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def plot_dual_histogram(dual_path, clusters_path, out: Path) -> None:
    with h5py.File(dual_path, "r") as handle:
        F, reference = handle["F"][()], handle["F_reference"][()]
        split = handle["split"][()].astype(str)
        lo, hi = float(handle.attrs["lo"]), float(handle.attrs["hi"])
    boundaries = json.loads(Path(clusters_path).read_text())["boundaries"]
    figure, axis = plt.subplots(figsize=(8, 3.5))
    values = np.concatenate([F, reference])
    bins = np.linspace(np.percentile(values, 0.5), values.max(), 50)
    for data, label, colour in ((reference, "reference (product of marginals)", "0.6"),
                                (F[split == "train"], "train", "C0"), (F[split == "test"], "test", "C1")):
        axis.hist(np.clip(data, bins[0], None), bins=bins, alpha=0.6, label=label, color=colour, density=True)
    for cut in boundaries:
        axis.axvline(cut, color="k", lw=1.5)
    axis.axvline(lo, color="C3", ls="--", label=f"lo (0.99 quantile of reference) = {lo:.3g}")
    axis.axvline(hi, color="C2", ls="--", label=f"hi (max train) = {hi:.3g}")
    axis.set_xlabel("dual value F(x) = Σ_k f_k(x)  [log p/q + const]")
    axis.set_ylabel("density")
    axis.set_title(f"dual axis: {len(boundaries)} kept cut(s)" + (" (black lines)" if boundaries else ""))
    axis.legend(fontsize=7)
    _save(figure, out)


def plot_grid(tiles: Tiles, samples: Mapping[str, Samples], out: Path, n_columns: int = 4) -> None:
    rows = [("real (test)", tiles.subset("test"))] + [(name, s.images) for name, s in samples.items()]
    figure, axes = plt.subplots(len(rows), n_columns, figsize=(2.6 * n_columns, 1.3 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(n_columns):
            axis = axes[r, c]
            axis.set_xticks([]), axis.set_yticks([])
            if c < len(images):
                axis.imshow(images[c], aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle("images: channels (rows) × time (columns), z-scored; colour range ±3", fontsize=9)
    _save(figure, out)


def plot_spectra(tiles: Tiles, samples: Mapping[str, Samples], out: Path, max_channels: int = 6) -> None:
    real = log_spectra(tiles.subset("test"), nperseg=None).mean(axis=0)  # one Hann segment: the periodogram
    frequency = np.fft.rfftfreq(tiles.images.shape[-1], 1 / tiles.sampling_rate if tiles.sampling_rate else 1)
    channels = range(min(max_channels, real.shape[0]))
    figure, axes = plt.subplots(1, len(channels), figsize=(3 * len(channels), 3), squeeze=False, sharey=True)
    for axis, channel in zip(axes[0], channels, strict=False):
        axis.plot(frequency[1:], real[channel, 1:], "k", lw=2, label="real (test)")
        for name, s in samples.items():
            axis.plot(frequency[1:], log_spectra(s.images, nperseg=None).mean(axis=0)[channel, 1:], lw=1, label=name)
        axis.set_title(tiles.channel_names[channel], fontsize=9)
        axis.set_xlabel("Hz" if tiles.sampling_rate else "cycles / step")
    axes[0, 0].set_ylabel("mean log power")
    axes[0, -1].legend(fontsize=6)
    _save(figure, out)


def plot_walks(samples: Mapping[str, Samples], out: Path, max_walks: int = 12) -> None:
    figure, axis = plt.subplots(figsize=(6, 3.5))
    shown = 0
    for name, s in samples.items():
        for record in s.records:
            if "trajectory" in record and shown < max_walks:
                line, = axis.plot(record["trajectory"], marker=".", lw=1,
                                  label=f"{name} ({'accepted' if record['accepted'] else record['rejected_because']})")
                axis.axhline(record["target"], color=line.get_color(), ls="--", lw=0.8)
                shown += 1
    if shown == 0:
        axis.text(0.5, 0.5, "no walk variant in this run", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlabel("walk step")
    axis.set_ylabel("F(x)")
    axis.set_title("walk trajectories (dashed: target)")
    if shown:
        axis.legend(fontsize=6)
    _save(figure, out)
