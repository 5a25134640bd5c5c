"""Class-conditional generation: counts, per-class generators, small-class fallback, seeds, the stage."""

import h5py
import numpy as np
import pytest

from dualdiv.cli import main
from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.samples import Samples, load_samples, write_samples_file
from dualdiv.data.tiles import load_tiles
from dualdiv.generators import make_generator
from dualdiv.generators.conditional import SHARED_SHIFTED, ClassConditional, class_seed, proportional_counts
from dualdiv.stages.ingest import ingest
from dualdiv.stages.sample import write_samples
from dualdiv.stages.settings import SampleSettings
from dualdiv.stages.tile import tile

SHAPE = (2, 8)  # (channels, time) of the synthetic images


def two_classes(n_a=30, n_b=20, offset=3.0, seed=0):
    """Images (n_a + n_b, 2, 8) float32: class "a" around +offset, class "b" around −offset; and labels."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n_a + n_b, *SHAPE)).astype(np.float32)
    images[:n_a] += offset
    images[n_a:] -= offset
    return images, np.array(["a"] * n_a + ["b"] * n_b)


# ------------------------------------------------------------------ counts

def test_proportional_counts_sum_to_n_deterministically():
    assert proportional_counts(10, {"a": 30, "b": 20}) == {"a": 6, "b": 4}
    assert proportional_counts(7, {"b": 1, "a": 1}) == {"a": 4, "b": 3}  # tie: the class first in sorted order
    assert proportional_counts(100, {"0": 43, "1": 35}) == {"0": 55, "1": 45}  # EEG's training labels
    for n in (1, 2, 5, 33):
        counts = proportional_counts(n, {"x": 5, "y": 7, "z": 1})
        assert sum(counts.values()) == n and counts == proportional_counts(n, {"z": 1, "y": 7, "x": 5})


@pytest.mark.parametrize(("per_class", "n", "expected"), [(None, 10, {"a": 6, "b": 4}), (3, None, {"a": 3, "b": 3}),
                                                          ({"b": 2, "a": 1}, None, {"a": 1, "b": 2}),
                                                          ({"b": 4}, None, {"b": 4})])
def test_sample_counts_from_proportions_an_int_or_a_mapping(per_class, n, expected):
    images, labels = two_classes()
    generator = ClassConditional("copy", per_class=per_class).fit(images, 0, labels=labels)
    out, records = generator.sample(n, seed=1)
    got = [r["label"] for r in records]
    assert {c: got.count(c) for c in set(got)} == expected and len(out) == sum(expected.values())
    assert got == sorted(got)  # grouped by class, in sorted class order


def test_a_class_name_or_a_list_of_names_chooses_the_classes():
    images, labels = two_classes()
    generator = ClassConditional("copy").fit(images, 0, labels=labels)
    out, records = generator.sample(5, seed=1, labels="b")
    assert [r["label"] for r in records] == ["b"] * 5 and (out < 0).all()  # class b lies around −3
    out, records = generator.sample(None, seed=1, labels=["b", "a", "b"])
    assert [r["label"] for r in records] == ["b", "a", "b"]
    assert (out[[0, 2]] < 0).all() and (out[1] > 0).all()
    # a copy's train_index counts all training images, not the class's
    assert all(labels[r["train_index"]] == r["label"] for r in records)


# ------------------------------------------------------------------ per-class generators and the fallback

@pytest.mark.parametrize("key", ["gaussian_lw", "spectral"])
def test_each_class_is_sampled_from_its_own_generator(key):
    images, labels = two_classes(offset=4.0)
    generator = ClassConditional(key).fit(images, 0, labels=labels)
    assert sorted(generator.generators_) == ["a", "b"] and generator.shared_ is None
    for label, mean in (("a", 4.0), ("b", -4.0)):
        out, records = generator.sample(200, seed=2, labels=label)
        assert abs(out.mean() - mean) < 0.3, (label, out.mean())
        assert {r["class_generator"] for r in records} == {"per_class"}
    own = make_generator(key).fit(images[labels == "a"], class_seed(0, "fit", "a"))  # fitted on class a alone
    attribute = "location_" if key == "gaussian_lw" else "spectrum_"
    np.testing.assert_array_equal(getattr(generator.generators_["a"], attribute), getattr(own, attribute))


def test_a_small_class_is_the_shared_generator_shifted_to_its_mean():
    images, labels = two_classes(n_a=30, n_b=4, offset=4.0)
    generator = ClassConditional("gaussian_lw", min_class_size=5).fit(images, 7, labels=labels)
    assert sorted(generator.generators_) == ["a"] and sorted(generator.class_shift_) == ["b"]
    shared = make_generator("gaussian_lw").fit(images, 7)  # the unconditional fit: same seed, all images
    np.testing.assert_array_equal(generator.shared_.location_, shared.location_)
    out, records = generator.sample(400, seed=3, labels="b")
    assert {r["class_generator"] for r in records} == {SHARED_SHIFTED}
    class_mean = images[labels == "b"].mean(axis=0)
    assert np.abs(out.mean(axis=0) - class_mean).mean() < 0.5  # the pooled spread, the class's mean
    expected = shared.sample(400, class_seed(3, "sample", "b"))[0] + generator.class_shift_["b"]
    np.testing.assert_array_equal(out, expected)


def test_walks_get_the_shared_space_and_find_cuts_on_each_class():
    class Space:  # a fitted dual space in all but the path: F = the sum of the pixels
        plan_ = {"known": True}

        def __init__(self, train):
            self.fit_F_ = self.transform(train)
            self.lo_, self.hi_ = float(self.fit_F_.min()) - 1, float(self.fit_F_.max())
            self.localized = []

        def dual_function(self):
            return lambda x: x.flatten(1).sum(1)

        def transform(self, images):
            return np.asarray(images, dtype=np.float64).reshape(len(images), -1).sum(1)

        def localize(self, images, F=None):
            self.localized.append(len(images))
            return {"boundaries": []}

    images, labels = two_classes(n_a=20, n_b=18, offset=1.0)
    space = Space(images)
    generator = ClassConditional("dualdiv_walk", {"max_steps": 2, "max_rounds": 1}).fit(
        images, 0, labels=labels, space=space, boundaries=[0.5], novelty_threshold=0.0)
    assert sorted(space.localized) == [18, 20]  # each class's own cuts; the shared [0.5] is not theirs
    assert all(g.novelty_threshold_ == 0.0 for g in generator.generators_.values())
    out, records = generator.sample(6, seed=0)
    assert out.shape == (6, *SHAPE) and all(labels[np.ravel(r["train_index"])].tolist() == [r["label"]] *
                                            len(np.ravel(r["train_index"])) for r in records)


# ------------------------------------------------------------------ seeds

def test_same_seed_same_images_and_class_order_is_irrelevant():
    images, labels = two_classes(n_a=20, n_b=20)
    first = ClassConditional("spectral").fit(images, 5, labels=labels)
    out, records = first.sample(10, seed=9)
    again, _ = ClassConditional("spectral").fit(images, 5, labels=labels).sample(10, seed=9)
    np.testing.assert_array_equal(out, again)
    # the other class first in the training data: the same images of each class
    order = np.r_[np.flatnonzero(labels == "b"), np.flatnonzero(labels == "a")]
    swapped, swapped_records = ClassConditional("spectral").fit(images[order], 5, labels=labels[order]).sample(
        10, seed=9)
    np.testing.assert_array_equal(out, swapped)
    # a mapping's order and the order of asked-for labels do not change a class's images
    forward = ClassConditional("spectral", per_class={"a": 3, "b": 2}).fit(images, 5, labels=labels)
    backward = ClassConditional("spectral", per_class={"b": 2, "a": 3}).fit(images, 5, labels=labels)
    np.testing.assert_array_equal(forward.sample(None, 1)[0], backward.sample(None, 1)[0])
    mixed, _ = forward.sample(None, 1, labels=["b", "a", "a", "b", "a"])
    np.testing.assert_array_equal(mixed[[1, 2, 4]], forward.sample(3, 1, labels="a")[0])
    assert not np.array_equal(out, ClassConditional("spectral").fit(images, 5, labels=labels).sample(10, seed=8)[0])


def test_class_seeds_differ_by_class_and_purpose_and_fit_in_31_bits():
    seeds = {class_seed(0, purpose, label) for purpose in ("fit", "sample") for label in ("0", "1", "open")}
    assert len(seeds) == 6 and all(0 <= s < 2 ** 31 for s in seeds)
    assert class_seed(1, "fit", "0") != class_seed(0, "fit", "0") and class_seed(0, "fit", "0") == class_seed(
        0, "fit", "0")


# ------------------------------------------------------------------ errors

def test_one_line_errors_name_the_field():
    images, labels = two_classes()
    generator = ClassConditional("copy").fit(images, 0, labels=labels)
    with pytest.raises(ConfigError, match="labels: unknown class 'c'; the training labels have 'a', 'b'"):
        generator.sample(None, 0, labels=["a", "c"])
    with pytest.raises(ConfigError, match="per_class: unknown class 'c'"):
        ClassConditional("copy", per_class={"c": 2}).fit(images, 0, labels=labels)
    with pytest.raises(ConfigError, match="per_class: gives 6 images, but 10 were asked for"):
        ClassConditional("copy", per_class=3).fit(images, 0, labels=labels).sample(10, 0)
    with pytest.raises(ConfigError, match="per_class: counts must be integers ≥ 0"):
        ClassConditional("copy", per_class={"a": -1})
    with pytest.raises(ConfigError, match="min_class_size: must be an integer ≥ 2"):
        ClassConditional("copy", min_class_size=1)
    with pytest.raises(InputError, match="labels for 50 images"):
        ClassConditional("copy").fit(images, 0, labels=labels[:3])
    with pytest.raises(ConfigError, match="unknown generator 'nope'"):
        ClassConditional("nope")
    with pytest.raises(ConfigError, match="sample.per_class: must be ≥ 1"):
        SampleSettings(per_class=0)
    with pytest.raises(ConfigError, match="sample.conditional: true, false or 'auto'"):
        SampleSettings(conditional="yes")
    with pytest.raises(ConfigError, match="number of samples must be ≥ 1, got 0"):
        generator.sample(0, 0)


def test_config_keys_are_checked_by_the_schema_and_class_names_become_strings():
    from conftest import ROOT

    from dualdiv.stages.workflow import check_config

    schema = ROOT / "workflow/schemas/config.schema.yaml"
    check_config({"sample": {"conditional": True, "per_class": {"0": 30, "1": 20}, "min_class_size": 8}}, schema)
    check_config({"sample": {"conditional": "auto", "per_class": 50}}, schema)
    for bad in ({"conditional": "yes"}, {"per_class": 0}, {"per_class": {"0": -1}}, {"min_class_size": 1}):
        with pytest.raises(ConfigError, match="config: sample"):
            check_config({"sample": bad}, schema)
    assert SampleSettings(per_class={0: 3, 1: 2}).per_class == {"0": 3, "1": 2}  # YAML reads 0: as an int


# ------------------------------------------------------------------ the stage, the file, the CLI

def tiles_file(folder, labels=None, n=40, seed=0):
    """tiles.h5 of (n, 2, 16) series: class "open" offset up, the others down (labels None: unlabelled)."""
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(16) / 2)[None, None, :] + 0.3 * rng.normal(size=(n, 2, 16))
    if labels is not None:
        x += np.where(np.asarray(labels) == "open", 1.0, -1.0)[:, None, None]
        np.savez(folder / "x.npz", data=x, labels=np.asarray(labels))
    else:
        np.savez(folder / "x.npz", data=x)
    ingest([folder / "x.npz"], folder / "raw.nc")
    tile(folder / "raw.nc", folder / "tiles.h5")
    return folder / "tiles.h5"


@pytest.fixture(scope="module")
def labelled_tiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labelled")
    return tiles_file(folder, ["open" if i % 3 else "shut" for i in range(60)], n=60)


@pytest.mark.parametrize("method", ["spectral", "copy"])
@pytest.mark.parametrize("case", ["unlabelled", "conditional false", "one class"])
def test_unlabelled_or_off_is_bit_identical_to_the_unconditional_generator(tmp_path, labelled_tiles, method, case):
    tiles_path = {"unlabelled": lambda: tiles_file(tmp_path), "conditional false": lambda: labelled_tiles,
                  "one class": lambda: tiles_file(tmp_path, ["open"] * 40)}[case]()
    config = {"conditional": False} if case == "conditional false" else {}
    samples = write_samples(tiles_path, method, tmp_path / "s.h5", 12, 4, config)
    train = load_tiles(tiles_path).subset("train")
    expected, records = make_generator(method).fit(train, 4).sample(12, 4)
    np.testing.assert_array_equal(samples.images, expected)
    assert samples.records == records and samples.labels is None and load_samples(tmp_path / "s.h5").labels is None
    assert samples.settings == make_generator(method).settings()


def test_labelled_tiles_are_sampled_per_class_and_labels_round_trip(tmp_path, labelled_tiles):
    tiles = load_tiles(labelled_tiles)
    train_labels = tiles.labels[tiles.split == "train"]
    samples = write_samples(labelled_tiles, "spectral", tmp_path / "s.h5", 30, 0, {})
    back = load_samples(tmp_path / "s.h5")
    expected = proportional_counts(30, {c: int((train_labels == c).sum()) for c in set(train_labels)})
    assert {c: int((back.labels == c).sum()) for c in expected} == expected
    assert back.labels.dtype.kind == "U" and back.labels.tolist() == [r["label"] for r in back.records]
    np.testing.assert_array_equal(back.labels, samples.labels)
    np.testing.assert_array_equal(back.images, samples.images)
    assert back.provenance["settings"]["class_counts"] == expected and back.settings["key"] == "spectral"
    # each class's samples lie on its side (class "open" is offset up)
    means = {c: back.images[back.labels == c].mean() for c in expected}
    assert means["open"] > 0.5 > -0.5 > means["shut"]
    per_class = write_samples(labelled_tiles, "copy", tmp_path / "p.h5", 30, 0, {"per_class": {"shut": 3}})
    assert per_class.labels.tolist() == ["shut"] * 3
    assert write_samples(labelled_tiles, "copy", tmp_path / "i.h5", 30, 0, {"per_class": 2}).labels.tolist() == [
        "open", "open", "shut", "shut"]


def test_samples_file_labels_are_utf8_and_optional(tmp_path):
    images = np.zeros((3, *SHAPE), dtype=np.float32)
    labels = np.array(["Augen offen", "geschloßen", "Augen offen"])
    samples = Samples(images=images, images_physical=images, records=[{}] * 3, method="m", generator="copy",
                      settings={}, seed=0, labels=labels)
    write_samples_file(tmp_path / "s.h5", samples, ["a", "b"], "uV", {})
    np.testing.assert_array_equal(load_samples(tmp_path / "s.h5").labels, labels)
    with h5py.File(tmp_path / "s.h5", "a") as handle:
        del handle["labels"]
    assert load_samples(tmp_path / "s.h5").labels is None  # files written before labels
    with pytest.raises(InputError, match="labels for 3 images"):
        write_samples_file(tmp_path / "t.h5", Samples(**{**vars(samples), "labels": labels[:2]}), ["a", "b"], "uV",
                           {})


def test_stage_errors_for_per_class_or_conditional_without_labels(tmp_path, labelled_tiles):
    unlabelled = tiles_file(tmp_path)
    with pytest.raises(ConfigError, match=r"sample.per_class: set, but sampling is not conditional \(the tiles have "
                                          r"no labels\)"):
        write_samples(unlabelled, "copy", tmp_path / "s.h5", 4, 0, {"per_class": 2})
    with pytest.raises(ConfigError, match="sample.conditional: true, but the tiles have no labels"):
        write_samples(unlabelled, "copy", tmp_path / "s.h5", 4, 0, {"conditional": True})
    with pytest.raises(ConfigError, match="sample.conditional is false"):
        write_samples(labelled_tiles, "copy", tmp_path / "s.h5", 4, 0, {"conditional": False, "per_class": 2})
    with pytest.raises(ConfigError, match="per_class: unknown class 'closed'"):
        write_samples(labelled_tiles, "copy", tmp_path / "s.h5", 4, 0, {"per_class": {"closed": 2}})
    assert not (tmp_path / "s.h5").exists()


def test_cli_conditional_flag_and_config_give_the_pipeline_images(tmp_path, labelled_tiles, capsys):
    expected = write_samples(labelled_tiles, "spectral", tmp_path / "pipeline.h5", 8, 0, {})
    assert main(["sample", str(labelled_tiles), "-o", str(tmp_path / "cli.h5"), "--method", "spectral", "-n", "8"]) == 0
    assert "per class (open: " in capsys.readouterr().out
    written = load_samples(tmp_path / "cli.h5")
    np.testing.assert_array_equal(written.images, expected.images)
    np.testing.assert_array_equal(written.labels, expected.labels)
    assert main(["sample", str(labelled_tiles), "-o", str(tmp_path / "off.h5"), "--method", "spectral", "-n", "8",
                 "--no-conditional"]) == 0
    off = load_samples(tmp_path / "off.h5")
    unconditional = write_samples(labelled_tiles, "spectral", tmp_path / "u.h5", 8, 0, {"conditional": False})
    assert off.labels is None
    np.testing.assert_array_equal(off.images, unconditional.images)
    (tmp_path / "c.yaml").write_text("sample: {per_class: {open: 2, shut: 1}}\n")
    assert main(["sample", str(labelled_tiles), "-o", str(tmp_path / "m.h5"), "--method", "copy",
                 "--config", str(tmp_path / "c.yaml")]) == 0
    assert load_samples(tmp_path / "m.h5").labels.tolist() == ["open", "open", "shut"]
