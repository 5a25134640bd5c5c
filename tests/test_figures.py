"""The figures explain themselves: every channel named, one legend per figure, a stated colour scale."""

import json

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest

from dualdiv.data.samples import Samples
from dualdiv.data.tiles import Tiles
from dualdiv.evaluation.figures import (
    COLOUR_QUANTILE,
    dual_histogram_figure,
    grid_figure,
    plot_grid,
    plot_spectra,
    plot_walks,
    spectra_figure,
    walks_figure,
)


def make_tiles(n_channels=14, n_time=32, sampling_rate=128.0, n=12, seed=0) -> Tiles:
    """(n, n_channels, n_time) Gaussian images, the last third the test split, channels named ch0, ch1..."""
    images = np.random.default_rng(seed).normal(size=(n, n_channels, n_time)).astype(np.float32)
    return Tiles(images=images, split=np.array(["train"] * (n - n // 3) + ["test"] * (n // 3)),
                 sample_id=np.arange(n), window_start=np.zeros(n, dtype=np.int64),
                 channel_mean=np.zeros(n_channels), channel_std=np.ones(n_channels),
                 channel_names=[f"ch{i}" for i in range(n_channels)], sampling_rate=sampling_rate, units="uV")


def make_samples(method, shape=(6, 14, 32), records=None, scale=1.0, seed=1) -> Samples:
    images = (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)
    return Samples(images=images, images_physical=images, records=records or [{} for _ in range(shape[0])],
                   method=method, generator=method, settings={}, seed=0)


def walk_record(accepted, start=0.0, target=3.0, reason=None):
    return {"trajectory": list(np.linspace(start, target, 4)), "target": target, "accepted": accepted,
            "rejected_because": reason}


def legends(figure) -> list:
    """Every legend of a figure: figure-level and those of its axes."""
    return list(figure.legends) + [axis.get_legend() for axis in figure.axes if axis.get_legend() is not None]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_spectra_show_every_channel_by_name_with_one_legend():
    tiles = make_tiles(n_channels=14)
    samples = {"dualdiv": make_samples("dualdiv"), "var": make_samples("var", seed=2)}
    figure = spectra_figure(tiles, samples)
    panels = [axis for axis in figure.axes if axis.axison]
    assert [axis.get_title() for axis in panels] == tiles.channel_names  # all 14, not the first 6
    (legend,) = legends(figure)  # one legend, at figure level, outside the panels
    assert legend in figure.legends
    assert [text.get_text() for text in legend.get_texts()] == ["real (test)", "dualdiv", "var"]
    assert "all 14 channels" in figure.get_suptitle()


def test_spectra_of_many_channels_show_a_named_subset_and_say_so():
    tiles = make_tiles(n_channels=40)
    figure = spectra_figure(tiles, {"dualdiv": make_samples("dualdiv", shape=(6, 40, 32))})
    titles = [axis.get_title() for axis in figure.axes if axis.axison]
    assert len(titles) == 16 and titles[0] == "ch0" and titles[-1] == "ch39"
    assert "16 of 40 shown" in figure.get_suptitle()
    assert len(legends(figure)) == 1


def test_grid_has_a_symmetric_clipped_colour_scale_channel_names_and_seconds():
    tiles = make_tiles(n_channels=5, n_time=64, sampling_rate=32.0)
    samples = {"dualdiv": make_samples("dualdiv", shape=(6, 5, 64)),
               "wild": make_samples("wild", shape=(6, 5, 64), scale=50.0)}  # would saturate a fixed ±3 scale
    figure = grid_figure(tiles, samples, n_columns=4)
    images = [image for axis in figure.axes for image in axis.get_images()]
    assert len(images) == 3 * 4
    shown = np.concatenate([tiles.subset("test")[:4].ravel(), samples["dualdiv"].images[:4].ravel(),
                            samples["wild"].images[:4].ravel()])
    limit = np.quantile(np.abs(shown), COLOUR_QUANTILE)
    assert all(image.get_clim() == pytest.approx((-limit, limit)) for image in images)
    bars = [axis for axis in figure.axes if "quantile" in axis.get_ylabel()]
    assert len(bars) == 1 and f"{COLOUR_QUANTILE:.0%}" in bars[0].get_ylabel()  # the colour bar says its clip
    first = figure.axes[0]
    assert [label.get_text() for label in first.get_yticklabels()] == tiles.channel_names
    assert images[0].get_extent()[:2] == [0, 2.0]  # 64 samples at 32 Hz: 2 s
    assert {axis.get_xlabel() for axis in figure.axes} - {""} == {"time (s; 32 Hz)"}


def test_grid_without_sampling_rate_is_in_samples_and_says_so():
    tiles = make_tiles(n_channels=3, n_time=16, sampling_rate=None)
    figure = grid_figure(tiles, {"dualdiv": make_samples("dualdiv", shape=(6, 3, 16))})
    labels = {axis.get_xlabel() for axis in figure.axes} - {""}
    assert labels == {"time (samples; sampling rate unknown)"}


def test_grid_of_labelled_samples_groups_the_columns_by_class():
    tiles = make_tiles(n_channels=3, n_time=16, n=24)
    tiles.labels = np.array(["open", "shut"] * 12)
    conditional = make_samples("dualdiv", shape=(6, 3, 16))
    conditional.labels = np.array(["open"] * 3 + ["shut"] * 3)
    unconditional = make_samples("var", shape=(6, 3, 16), seed=2)
    figure = grid_figure(tiles, {"dualdiv": conditional, "var": unconditional}, n_columns=4)
    axes = np.array(figure.axes[:12]).reshape(3, 4)  # the panels (the colour bar comes last)
    assert [axis.get_title(loc="left") for axis in axes[0]] == ["class open", "", "class shut", ""]
    test, test_labels = tiles.subset("test"), tiles.labels[tiles.split == "test"]
    expected = [test[test_labels == "open"][0], test[test_labels == "open"][1], test[test_labels == "shut"][0],
                test[test_labels == "shut"][1]]
    for axis, image in zip(axes[0], expected, strict=True):  # each column holds its class's held-out images
        np.testing.assert_array_equal(axis.get_images()[0].get_array(), image)
    np.testing.assert_array_equal(axes[1, 2].get_images()[0].get_array(), conditional.images[3])  # first "shut"
    assert axes[2, 0].get_ylabel() == "var\n(any class)"  # unconditional samples are said to be so
    assert "of each class per set (2 classes, sampled per class)" in figure.get_suptitle()


def test_grid_of_many_classes_shows_the_first_ones_and_says_so():
    tiles = make_tiles(n_channels=2, n_time=8, n=60, sampling_rate=None)
    tiles.labels = np.array([f"{i % 12 + 1:02d}" for i in range(60)])
    samples = make_samples("dualdiv", shape=(24, 2, 8))
    samples.labels = np.array([f"{i % 12 + 1:02d}" for i in range(24)])
    figure = grid_figure(tiles, {"dualdiv": samples})
    titles = [axis.get_title(loc="left") for axis in figure.axes if axis.get_title(loc="left")]
    assert titles == [f"class {m:02d}" for m in range(1, 9)]
    assert "first image of each class per set (the first 8 of 12 classes" in figure.get_suptitle()
    assert figure.get_supxlabel() == "time (samples; sampling rate unknown)"  # one label under narrow panels


def test_walks_have_one_legend_entry_per_kind():
    records = [walk_record(True, start=i) for i in range(8)] + [walk_record(False, reason="too close")] * 3
    samples = {"dualdiv": make_samples("dualdiv"), "dualdiv_walk": make_samples("dualdiv_walk", records=records)}
    figure = walks_figure(samples)
    (legend,) = legends(figure)
    entries = [text.get_text() for text in legend.get_texts()]
    assert entries == ["dualdiv_walk (accepted)", "dualdiv_walk (rejected: too close)",
                       "target F of a walk (dashed, the walk's colour)"]
    assert len(figure.axes[0].get_lines()) == 2 * 11  # a trajectory and a target line per walk


def test_walks_without_walk_variant_say_so_without_legend():
    figure = walks_figure({"dualdiv": make_samples("dualdiv")})
    assert legends(figure) == []
    assert "no walk variant" in figure.axes[0].texts[0].get_text()


@pytest.mark.parametrize("boundaries", [[], [0.5, 1.5]])
def test_dual_histogram_names_black_cut_lines_only_when_drawn(tmp_path, boundaries):
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "dual.h5", "w") as handle:
        handle["F"], handle["F_reference"] = rng.normal(2, 1, 40), rng.normal(-2, 1, 50)
        handle["split"] = np.array([b"train"] * 30 + [b"test"] * 10)
        handle.attrs["lo"], handle.attrs["hi"] = 0.0, 4.0
    (tmp_path / "clusters.json").write_text(json.dumps({"boundaries": boundaries}))
    figure = dual_histogram_figure(tmp_path / "dual.h5", tmp_path / "clusters.json")
    axis = figure.axes[0]
    black = [line for line in axis.get_lines() if line.get_color() == "k"]
    assert len(black) == len(boundaries)
    assert ("black" in axis.get_title()) == bool(boundaries)


def test_plot_functions_write_pngs(tmp_path):
    tiles = make_tiles(n_channels=4, n_time=16)
    samples = {"dualdiv_walk": make_samples("dualdiv_walk", shape=(3, 4, 16), records=[walk_record(True)] * 3)}
    for plot, out in ((plot_grid, "grid.png"), (plot_spectra, "spectra.png")):
        plot(tiles, samples, tmp_path / out)
    plot_walks(samples, tmp_path / "walks.png")
    for out in ("grid.png", "spectra.png", "walks.png"):
        assert (tmp_path / out).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == []  # written figures are closed
