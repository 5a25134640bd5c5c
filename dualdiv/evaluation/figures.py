"""Figures of one data set (PNG, matplotlib): the dual axis, real vs generated images, spectra, walks.

- ``dual_histogram.png``: F of training, test and product-of-marginals reference
  samples, with the kept cluster cuts and the dual window [lo, hi].
- ``grid.png``: real held-out images next to the first images of every method, on one
  symmetric colour scale (with a colour bar), channels named, time in seconds where the
  sampling rate is known. When the samples carry class labels (class-conditional sampling),
  the columns are grouped by class: the first held-out images of each class and, in each
  method's row, that method's first samples of the class.
- ``spectra.png``: per-channel mean log power spectrum (Hann periodogram) of the
  held-out real images and of each method's samples, one small panel per channel.
- ``walks.png``: F along the walks (each walk's target as a dashed line) of the walk variants.

Each ``*_figure`` function builds and returns the matplotlib figure (the tests inspect
it); each ``plot_*`` function builds it, writes it atomically and closes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from dualdiv.core.io import atomic_output  # noqa: E402
from dualdiv.data.samples import Samples  # noqa: E402
from dualdiv.data.tiles import Tiles  # noqa: E402
from dualdiv.estimators.features import log_spectra  # noqa: E402

FIGURES = ("dual_histogram.png", "grid.png", "spectra.png", "walks.png")
MAX_SPECTRA_CHANNELS = 16  # beyond this, spectra.png shows an evenly spaced, named subset
COLOUR_QUANTILE = 0.99  # grid.png clips its colour scale at this quantile of |value|
MAX_GRID_CLASSES = 8  # grid.png shows the first (sorted) classes, one column each at least


def _save(figure: Figure, path: Path) -> None:
    with atomic_output(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def _channel_names(tiles: Tiles) -> list[str]:
    """One name per channel (H,): the tiles' names, or "channel i" where they are missing."""
    n_channels = tiles.images.shape[1]
    names = list(tiles.channel_names or [])
    return names if len(names) == n_channels else [f"channel {i}" for i in range(n_channels)]


# ----------------------------------------------------------------------------- dual axis

def dual_histogram_figure(dual_path, clusters_path) -> Figure:
    """Histogram of F (train, test, reference), the kept cuts (black, only if any) and [lo, hi]."""
    with h5py.File(dual_path, "r") as handle:
        F, reference = handle["F"][()], handle["F_reference"][()]
        split = handle["split"][()].astype(str)
        lo, hi = float(handle.attrs["lo"]), float(handle.attrs["hi"])
    boundaries = json.loads(Path(clusters_path).read_text())["boundaries"]
    figure, axis = plt.subplots(figsize=(8, 3.5))
    values = np.concatenate([F, reference])
    if np.ptp(values) > 0:
        bins = np.linspace(np.percentile(values, 0.5), values.max(), 50)
        for data, label, colour in ((reference, "reference (product of marginals)", "0.6"),
                                    (F[split == "train"], "train", "C0"), (F[split == "test"], "test", "C1")):
            axis.hist(np.clip(data, bins[0], None), bins=bins, alpha=0.6, label=label, color=colour, density=True)
    else:  # e.g. critics that learnt nothing on a tiny budget: no histogram to draw
        axis.text(0.5, 0.5, f"F = {values[0]:.3g} on every image and reference sample", ha="center",
                  transform=axis.transAxes)
    for i, cut in enumerate(boundaries):
        axis.axvline(cut, color="k", lw=1.5, label="kept cluster cut" if i == 0 else None)
    axis.axvline(lo, color="C3", ls="--", label=f"lo (0.99 quantile of reference) = {lo:.3g}")
    axis.axvline(hi, color="C2", ls="--", label=f"hi (max train) = {hi:.3g}")
    axis.set_xlabel("dual value F(x) = Σ_k f_k(x)  [log p/q + const]")
    axis.set_ylabel("density")
    # the title names the black lines only when there are some to see
    n_cuts = len(boundaries)
    axis.set_title(f"dual axis: {n_cuts} kept cluster cut{'s' * (n_cuts > 1)} (black line{'s' * (n_cuts > 1)})"
                   if boundaries else "dual axis: no kept cluster cut")
    axis.legend(fontsize=7)
    return figure


def plot_dual_histogram(dual_path, clusters_path, out: Path) -> None:
    _save(dual_histogram_figure(dual_path, clusters_path), out)


# ----------------------------------------------------------------------------- real vs generated

def grid_figure(tiles: Tiles, samples: Mapping[str, Samples], n_columns: int = 4) -> Figure:
    """Rows: the first ``n_columns`` held-out real images, then each method's first samples.

    When the tiles and some samples carry class labels, the columns are grouped by class
    (:func:`grid_columns`): each class's first held-out images and each labelled method's first
    samples of that class (a method without labels: its first samples, marked "any class").
    One symmetric colour scale for every panel, ±(COLOUR_QUANTILE quantile of |value| over
    all shown images), so a few extreme pixels do not wash the others out; values beyond
    it saturate. Channels on the y axis (names on the first column), time on the x axis in
    seconds (samples where the sampling rate is unknown).
    """
    test = tiles.subset("test")
    test_labels = None if tiles.labels is None else tiles.labels[tiles.split == "test"]
    columns, n_classes = grid_columns(test_labels, [s.labels for s in samples.values()], n_columns)
    rows = [("real (test)", _grid_images(test, test_labels, columns, n_columns))]
    for name, s in samples.items():
        if columns is not None and s.labels is None:
            name = f"{name}\n(any class)"  # unconditional samples beside per-class columns
        rows.append((name, _grid_images(s.images, s.labels, columns, n_columns)))
    n_panels = len(columns) if columns is not None else n_columns
    shown = np.concatenate([image.ravel() for _, images in rows for image in images if image is not None] or
                           [np.zeros(0)])
    limit = float(np.quantile(np.abs(shown), COLOUR_QUANTILE)) if shown.size else 1.0
    limit = limit if limit > 0 else 1.0
    n_channels, n_time = tiles.images.shape[1:]
    if tiles.sampling_rate:
        time_extent, time_label = n_time / tiles.sampling_rate, f"time (s; {tiles.sampling_rate:g} Hz)"
    else:
        time_extent, time_label = n_time, "time (samples; sampling rate unknown)"
    names = _channel_names(tiles)
    every = max(1, math.ceil(n_channels / 16))  # at most ~16 channel labels per panel
    panel_width = 2.6 if n_panels <= 4 else max(1.5, 10.4 / n_panels)  # many classes: narrower panels
    figure, axes = plt.subplots(len(rows), n_panels, figsize=(panel_width * n_panels + 1.5, 1.5 * len(rows) + 0.6),
                                squeeze=False, sharex=True, sharey=True, layout="constrained")
    image = None
    for r, (name, images) in enumerate(rows):
        for c in range(n_panels):
            axis = axes[r, c]
            if images[c] is not None:  # extent: pixel edges, time from 0 to the window length, channel 0 on top
                image = axis.imshow(images[c], aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                                    interpolation="nearest", extent=(0, time_extent, n_channels - 0.5, -0.5))
            axis.tick_params(labelsize=6, length=2, left=c == 0)  # channel ticks on the first column only
        axes[r, 0].set_yticks(range(0, n_channels, every), names[::every])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if columns is not None:  # a class's name above its first column
        for c, (label, index) in enumerate(columns):
            if index == 0:
                axes[0, c].set_title(f"class {label}", loc="left", fontsize=9, fontweight="bold")
    has_image = [[images[c] is not None for c in range(n_panels)] for _, images in rows]
    for axis, filled in zip(axes.flat, sum(has_image, []), strict=True):
        if not filled:  # a method with fewer images than columns (or none of a class)
            axis.set_axis_off()
    lowest = _label_lowest_panels(axes, has_image)
    if n_panels <= 4:
        for axis in lowest:
            axis.set_xlabel(time_label, fontsize=7)
    else:  # narrow panels: one label for all, theirs would overlap
        figure.supxlabel(time_label, fontsize=7)
    if image is not None:  # two short lines: a label longer than the bar would widen the saved figure
        bar = figure.colorbar(image, ax=axes, shrink=0.6, aspect=30, extend="both")
        bar.set_label(f"z-score (per channel, training mean and std)\nclipped at ±{limit:.3g}: the "
                      f"{COLOUR_QUANTILE:.0%} quantile of |value| shown", fontsize=8)
    if columns is None:
        title = f"first {n_columns} images of each set: channels (rows) × time (columns)"
    else:
        per_class = sum(index == 0 for _, index in columns)
        classes = f"{n_classes} classes" if per_class == n_classes else \
            f"the first {per_class} of {n_classes} classes"
        first = "first image" if len(columns) == per_class else f"first {len(columns) // per_class} images"
        title = f"{first} of each class per set ({classes}, sampled per class): channels (rows) × time (columns)"
    figure.suptitle(title, fontsize=10)
    return figure


def grid_columns(test_labels: np.ndarray | None, sample_labels: list[np.ndarray | None], n_columns: int
                 ) -> tuple[list[tuple[str, int]] | None, int]:
    """The grid's columns as (class, k-th image of it), grouped by class, and the number of classes.

    None (plain columns) unless the tiles and at least one samples set carry labels. The classes
    are the sorted union of the held-out and generated labels; ``n_columns // classes`` columns
    each (at least one, for the first :data:`MAX_GRID_CLASSES` classes).
    """
    labelled = [labels for labels in sample_labels if labels is not None]
    if test_labels is None or not labelled:
        return None, 0
    classes = sorted(set(map(str, test_labels)).union(*(set(map(str, labels)) for labels in labelled)))
    shown = classes[:MAX_GRID_CLASSES]
    per_class = max(1, n_columns // len(shown))
    return [(label, k) for label in shown for k in range(per_class)], len(classes)


def _grid_images(images: np.ndarray, labels: np.ndarray | None, columns: list[tuple[str, int]] | None,
                 n_columns: int) -> list[np.ndarray | None]:
    """The image of each grid column (None where there is none): the first ones in order (plain columns,
    or unlabelled samples beside per-class columns), else the k-th image of each column's class."""
    if columns is None or labels is None:
        n_panels = n_columns if columns is None else len(columns)
        return [images[c] if c < len(images) else None for c in range(n_panels)]
    labels = np.asarray(labels).astype(str)
    chosen = []
    for label, k in columns:
        rows = np.flatnonzero(labels == label)
        chosen.append(images[rows[k]] if k < len(rows) else None)
    return chosen


def _label_lowest_panels(axes: np.ndarray, in_use: list[list[bool]]) -> list:
    """Show the x tick labels (hidden by sharex) on the lowest used panel of each column; returns those panels."""
    lowest = []
    for c in range(axes.shape[1]):
        rows = [r for r in range(axes.shape[0]) if in_use[r][c]]
        if rows:
            axes[rows[-1], c].xaxis.set_tick_params(labelbottom=True)
            lowest.append(axes[rows[-1], c])
    return lowest


def plot_grid(tiles: Tiles, samples: Mapping[str, Samples], out: Path, n_columns: int = 4) -> None:
    _save(grid_figure(tiles, samples, n_columns), out)


# ----------------------------------------------------------------------------- spectra

def spectra_channels(n_channels: int, max_channels: int = MAX_SPECTRA_CHANNELS) -> np.ndarray:
    """Indices of the channels shown: all, or ``max_channels`` evenly spaced ones (first and last included)."""
    if n_channels <= max_channels:
        return np.arange(n_channels)
    return np.unique(np.linspace(0, n_channels - 1, max_channels).round().astype(int))


def spectra_figure(tiles: Tiles, samples: Mapping[str, Samples], max_channels: int = MAX_SPECTRA_CHANNELS) -> Figure:
    """One panel per channel (up to ``max_channels``, else a named subset): mean log periodogram
    (one Hann segment over the whole window) of the held-out real images and of each method."""
    names = _channel_names(tiles)
    n_channels, n_time = tiles.images.shape[1:]
    channels = spectra_channels(n_channels, max_channels)
    frequency = np.fft.rfftfreq(n_time, 1 / tiles.sampling_rate if tiles.sampling_rate else 1)
    mean_spectra = {"real (test)": log_spectra(tiles.subset("test"), nperseg=None).mean(axis=0)}  # (H, F)
    mean_spectra |= {name: log_spectra(s.images, nperseg=None).mean(axis=0) for name, s in samples.items()}
    styles = {"real (test)": {"color": "k", "lw": 2}} | \
             {name: {"color": f"C{i % 10}", "lw": 1} for i, name in enumerate(samples)}
    n_columns = math.ceil(math.sqrt(len(channels)))
    n_rows = math.ceil(len(channels) / n_columns)
    width = max(2.6 * n_columns, 7.0)  # room for the title beside the legend when there are few channels
    figure, axes = plt.subplots(n_rows, n_columns, figsize=(width, 1.9 * n_rows + 1.0), squeeze=False,
                                sharex=True, sharey=True, layout="constrained")
    for axis, channel in zip(axes.flat, channels, strict=False):
        for name, spectrum in mean_spectra.items():
            axis.plot(frequency[1:], spectrum[channel, 1:], label=name, **styles[name])  # [1:]: no DC bin
        axis.set_title(names[channel], fontsize=8)
        axis.tick_params(labelsize=6)
    for axis in axes.flat[len(channels):]:  # the empty panels of the last row
        axis.set_axis_off()
    _label_lowest_panels(axes, [[axis.axison for axis in row] for row in axes])
    shown = f"all {n_channels} channels" if len(channels) == n_channels else \
        f"channels: {len(channels)} of {n_channels} shown (evenly spaced, named above the panels)"
    figure.suptitle(f"mean log power spectrum per channel (Hann periodogram)\nheld-out real images (black) and "
                    f"each method; {shown}", fontsize=9)
    figure.supxlabel("frequency (Hz)" if tiles.sampling_rate else "frequency (cycles per time step)", fontsize=8)
    figure.supylabel("mean log power (normalised units)", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", fontsize=7, frameon=False)
    return figure


def plot_spectra(tiles: Tiles, samples: Mapping[str, Samples], out: Path,
                 max_channels: int = MAX_SPECTRA_CHANNELS) -> None:
    _save(spectra_figure(tiles, samples, max_channels), out)


# ----------------------------------------------------------------------------- walks

def walks_figure(samples: Mapping[str, Samples], max_walks: int = 12) -> Figure:
    """F along the first ``max_walks`` walks; one colour per walk (its target: a dashed line of that colour).

    The legend has one entry per kind of walk (method × accepted or the rejection reason),
    drawn by marker (method) and line style (solid accepted, dotted rejected).
    """
    walks = [(name, record) for name, s in samples.items() for record in s.records if "trajectory" in record]
    n_walks, walks = len(walks), walks[:max_walks]
    walk_methods = list(dict.fromkeys(name for name, _ in walks))  # one marker per method, in order
    colours = [plt.get_cmap("tab20")(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]  # dark shades first
    markers = "osD^vP*X"
    figure, axis = plt.subplots(figsize=(7, 4), layout="constrained")
    kinds: dict[str, Line2D] = {}
    for i, (name, record) in enumerate(walks):
        outcome = "accepted" if record["accepted"] else f"rejected: {record['rejected_because']}"
        style = {"marker": markers[walk_methods.index(name) % len(markers)], "ls": "-" if record["accepted"] else ":"}
        axis.plot(record["trajectory"], color=colours[i % len(colours)], lw=1, ms=4, **style)
        axis.axhline(record["target"], color=colours[i % len(colours)], ls="--", lw=0.8)
        kinds.setdefault(f"{name} ({outcome})", Line2D([], [], color="0.3", lw=1, ms=4, **style))
    if walks:
        kinds["target F of a walk (dashed, the walk's colour)"] = Line2D([], [], color="0.3", ls="--", lw=0.8)
        axis.legend(kinds.values(), kinds.keys(), fontsize=7)
    else:
        axis.text(0.5, 0.5, "no walk variant in this run", ha="center", va="center", transform=axis.transAxes)
    axis.set_xlabel("walk step")
    axis.set_ylabel("F(x)")
    shown = f"all {n_walks}" if n_walks == len(walks) else f"first {len(walks)} of {n_walks}"
    axis.set_title(f"dual value F along the walks ({shown}; one colour per walk)" if walks else "walk trajectories")
    return figure


def plot_walks(samples: Mapping[str, Samples], out: Path, max_walks: int = 12) -> None:
    _save(walks_figure(samples, max_walks), out)
