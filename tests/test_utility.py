"""Downstream utility (TRTR, TSTR, augmentation) and the simple augmentation generators."""

import json
from dataclasses import replace

import numpy as np
import pytest

from dualdiv.core.errors import ConfigError, InputError
from dualdiv.data.samples import Samples, write_samples_file
from dualdiv.data.tiles import Tiles, write_tiles
from dualdiv.evaluation import utility
from dualdiv.evaluation.metrics import EvalSettings
from dualdiv.evaluation.utility import eeg_like, resolve_classifier, utility_keys, utility_metrics
from dualdiv.generators import make_generator
from dualdiv.generators.augmentations import warp_map
from dualdiv.stages.evaluate import write_evaluation

FAST = EvalSettings(utility_seeds=2, utility_k=(1, 3), utility_bootstrap=200, utility_kernels=84, welch_nperseg=16)
ARMS = ("trtr", "tstr", "augmentation_k1", "augmentation_k3")


def two_classes(n_per_class: int, seed: int, shape=(4, 32)) -> tuple[np.ndarray, np.ndarray]:
    """(2n, H, W) float32 Gaussian images of two well-separated classes and their labels (n "a", n "b").

    Class "a": channels 0 and 1 correlated +0.9 and of variance 1; class "b": correlated −0.9 and channel 0
    of variance 4 — different covariances, spectra and correlations, so every classifier separates them.
    """
    h, w = shape
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, rho, scale in (("a", 0.9, 1.0), ("b", -0.9, 2.0)):
        cov = np.eye(h)
        cov[0, 1] = cov[1, 0] = rho
        x = rng.multivariate_normal(np.zeros(h), cov, size=(n_per_class, w)).transpose(0, 2, 1)  # (n, H, W)
        x[:, 0] *= scale
        images.append(x)
        labels += [label] * n_per_class
    return np.concatenate(images).astype(np.float32), np.array(labels)


@pytest.fixture(scope="module")
def data():
    train, train_labels = two_classes(20, 0)
    test, test_labels = two_classes(10, 1)
    generated, generated_labels = two_classes(40, 2)  # new draws of the same two classes
    return generated, generated_labels, train, train_labels, test, test_labels


def available(name: str) -> bool:
    return {"tangent_space": utility._installed("pyriemann"),
            "minirocket": utility.minirocket_backend() is not None}.get(name, True)


@pytest.mark.parametrize("name", utility.CLASSIFIERS)
def test_separable_classes_train_well_and_swapped_labels_train_badly(data, name):
    if not available(name):
        pytest.skip(f"{name}: its library is not installed (dualdiv[utility])")
    generated, generated_labels, train, train_labels, test, test_labels = data
    settings = replace(FAST, utility_classifier=name)
    right = utility_metrics(generated, generated_labels, train, train_labels, test, test_labels, 0, settings)
    assert right["utility_classifier"].startswith(name)
    assert right["trtr_accuracy"] >= 0.9 and right["tstr_accuracy"] >= 0.9
    swapped = np.where(generated_labels == "a", "b", "a")  # every generated image under the other class's name
    wrong = utility_metrics(generated, swapped, train, train_labels, test, test_labels, 0, settings)
    assert wrong["trtr_accuracy"] == right["trtr_accuracy"]  # the real arm does not see the generated labels
    assert wrong["tstr_accuracy"] <= 0.1 and wrong["tstr_balanced_accuracy"] <= 0.1
    assert wrong["tstr_accuracy_gain_hi"] < 0  # the interval says TSTR is worse than TRTR


def test_every_key_is_there_with_intervals_around_the_value(data):
    out = utility_metrics(*data, 0, replace(FAST, utility_classifier="logistic_features"))
    assert set(utility_keys(FAST.utility_k)) <= set(out)
    assert json.loads(json.dumps(out)) == out
    assert out["trtr_n_train"] == out["tstr_n_train"] == 40
    assert out["augmentation_k1_n_synthetic"] == 40 and out["augmentation_k3_n_synthetic"] == 80  # capped: 40/class
    assert "augmentation_k3: all generated images of class a (40 of 60 wanted)" in out["utility_note"]
    for arm in ARMS:
        for metric in ("accuracy", "balanced_accuracy"):
            value = out[f"{arm}_{metric}"]
            assert 0 <= out[f"{arm}_{metric}_lo"] <= value <= out[f"{arm}_{metric}_hi"] <= 1, (arm, metric)
            if arm != "trtr":
                gain = out[f"{arm}_{metric}_gain"]
                assert gain == pytest.approx(value - out[f"trtr_{metric}"])
                assert out[f"{arm}_{metric}_gain_lo"] <= gain <= out[f"{arm}_{metric}_gain_hi"], (arm, metric)


def test_utility_is_deterministic_given_the_seed(data):
    settings = replace(FAST, utility_classifier="logistic_features")
    first = utility_metrics(*data, 3, settings)
    assert utility_metrics(*data, 3, settings) == first


def test_undefined_cases_give_none_and_a_note(data):
    generated, generated_labels, train, train_labels, test, test_labels = data
    settings = replace(FAST, utility_classifier="logistic_features")
    unlabelled = utility_metrics(generated, None, train, train_labels, test, test_labels, 0, settings)
    assert unlabelled["trtr_accuracy"] >= 0.9  # TRTR needs only the real labels
    assert all(unlabelled[k] is None for k in utility_keys(FAST.utility_k) if not k.startswith("trtr"))
    assert "carry no labels" in unlabelled["utility_note"]

    only_a = generated_labels == "a"
    missing = utility_metrics(generated[only_a], generated_labels[only_a], train, train_labels, test, test_labels,
                              0, settings)
    assert missing["tstr_accuracy"] is None and missing["augmentation_k1_accuracy_gain"] is None
    assert "class b missing" in missing["utility_note"]

    no_real = utility_metrics(generated, generated_labels, train, None, test, None, 0, settings)
    assert all(no_real[k] is None for k in utility_keys(FAST.utility_k))
    assert "real images have no labels" in no_real["utility_note"]

    one_class = utility_metrics(generated, generated_labels, train, np.full(len(train), "a"), test,
                                np.full(len(test), "a"), 0, settings)
    assert one_class["trtr_accuracy"] is None and "1 class" in one_class["utility_note"]

    with pytest.raises(InputError, match="generated labels: expected"):
        utility_metrics(generated, generated_labels[:3], train, train_labels, test, test_labels, 0, settings)


def test_auto_chooses_by_channels_and_installed_libraries(monkeypatch):
    eeg_names = ["Fp1", "AF3", "F7", "Cz", "O2", "T7"]
    assert eeg_like(6, channel_names=eeg_names) and eeg_like(4, channel_types=["eeg", "eeg", "mag", "eog"])
    assert not eeg_like(3, channel_names=eeg_names[:3])  # too few channels for a covariance pipeline
    assert not eeg_like(9, channel_names=["GHI", "DNI", "DHI", "temp_air", "ch0", "ch1", "ch2", "x", "y"])
    assert not eeg_like(4, channel_types=["misc", "misc", "eeg", "stim"])
    monkeypatch.setattr(utility, "_installed", lambda module: module == "pyriemann")
    assert resolve_classifier("auto", 6, 128, channel_names=eeg_names)[0] == "tangent_space"
    assert resolve_classifier("auto", 6, 128, channel_names=["x"] * 6)[0] == "logistic_features"
    monkeypatch.setattr(utility, "_installed", lambda module: module == "sktime")
    assert resolve_classifier("auto", 6, 128, channel_names=eeg_names)[0] == "minirocket"
    assert resolve_classifier("auto", 6, 8)[0] == "logistic_features"  # shorter than MiniRocket's kernels
    monkeypatch.setattr(utility, "_installed", lambda module: False)
    assert resolve_classifier("auto", 6, 128, channel_names=eeg_names)[0] == "logistic_features"
    with pytest.raises(ConfigError, match="tangent_space needs pyRiemann"):
        resolve_classifier("tangent_space", 6, 128)
    with pytest.raises(ConfigError, match="minirocket needs aeon or sktime"):
        resolve_classifier("minirocket", 6, 128)


def test_eval_settings_check_the_utility_fields():
    defaults = EvalSettings()
    assert (defaults.utility, defaults.utility_classifier, defaults.utility_seeds, defaults.utility_k) == \
        ("auto", "auto", 3, (1, 2, 5))
    assert EvalSettings(utility_k=[2, 4]).utility_k == (2, 4)  # from YAML/JSON
    for field, bad in (("utility", "yes"), ("utility_classifier", "svm"), ("utility_seeds", 0),
                       ("utility_k", [0]), ("utility_k", [2, 2]), ("utility_kernels", 10),
                       ("utility_bootstrap", 5)):
        with pytest.raises(ConfigError, match=f"^evaluate.metrics.{field}: "):
            EvalSettings(**{field: bad})


def test_write_evaluation_merges_the_utility_of_labelled_samples(tmp_path, one_torch_thread):
    train, train_labels = two_classes(12, 0, shape=(3, 16))
    test, test_labels = two_classes(5, 1, shape=(3, 16))
    images, labels = np.concatenate([train, test]), np.concatenate([train_labels, test_labels])
    n = len(images)
    write_tiles(tmp_path / "tiles.h5", Tiles(images=images, split=np.array(["train"] * 24 + ["test"] * 10),
                                             sample_id=np.arange(n), window_start=np.zeros(n, dtype=np.int64),
                                             channel_mean=np.zeros(3), channel_std=np.ones(3),
                                             channel_names=["x", "y", "z"], labels=labels))
    generated, generated_labels = two_classes(10, 2, shape=(3, 16))
    samples = Samples(images=generated, images_physical=generated, records=[{}] * 20, method="m", generator="copy",
                      settings={}, seed=0, labels=generated_labels)
    write_samples_file(tmp_path / "m.h5", samples, ["x", "y", "z"], "a.u.", {})
    settings = replace(FAST, repeats=2, dv_iterations=20, dv_components=4, n_components=4, mmd_permutations=20,
                       welch_nperseg=8)
    result = write_evaluation(tmp_path / "m.h5", tmp_path / "tiles.h5", tmp_path / "m.json", 0, settings)
    stored = json.loads((tmp_path / "m.json").read_text())
    assert stored["tstr_accuracy"] == result["tstr_accuracy"] >= 0.8
    assert stored["utility_classifier"].split()[0] in ("minirocket", "logistic_features")  # x, y, z: not EEG-like
    off = write_evaluation(tmp_path / "m.h5", tmp_path / "tiles.h5", tmp_path / "off.json", 0,
                           replace(settings, utility=False))
    assert "tstr_accuracy" not in off


# ------------------------------------------------------------------------------ augmentation generators

@pytest.fixture(scope="module")
def train_images():
    """(12, 3, 40) smooth series (a slow sine of random phase per image and channel, plus noise), channel scales
    1, 3 and 0.5."""
    rng = np.random.default_rng(5)
    phase = rng.uniform(0, 2 * np.pi, size=(12, 3, 1))
    scale = np.array([1.0, 3.0, 0.5])[None, :, None]
    return ((np.sin(np.arange(40) / 4 + phase) + 0.1 * rng.normal(size=(12, 3, 40))) * scale).astype(np.float32)


@pytest.mark.parametrize("key", ["jitter", "scaling", "time_warp"])
def test_augmentations_are_seeded_float32_images_from_training_images(key, train_images):
    generator = make_generator(key).fit(train_images, 0)
    images, records = generator.sample(30, seed=4)
    assert images.shape == (30, 3, 40) and images.dtype == np.float32 and np.isfinite(images).all()
    assert len(records) == 30 and all(0 <= r["train_index"] < 12 for r in records)
    again, _ = generator.sample(30, seed=4)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, generator.sample(30, seed=5)[0])
    source = train_images[[r["train_index"] for r in records]]
    assert 0 < np.abs(images - source).mean() < 0.5 * np.abs(source).mean()  # perturbed, not replaced


def test_jitter_noise_is_sigma_times_each_channels_std(train_images):
    generator = make_generator("jitter", sigma=0.1).fit(train_images, 0)
    images, records = generator.sample(400, seed=1)
    noise = images - train_images[[r["train_index"] for r in records]]
    np.testing.assert_allclose(noise.std(axis=(0, 2)), 0.1 * train_images.std(axis=(0, 2)), rtol=0.05)
    with pytest.raises(ConfigError, match="^jitter.sigma"):
        make_generator("jitter", sigma=-1)


def test_scaling_multiplies_each_channel_by_one_gain(train_images):
    images, records = make_generator("scaling", sigma=0.1).fit(train_images, 0).sample(200, seed=2)
    ratio = images / train_images[[r["train_index"] for r in records]]  # (n, H, W): constant over time
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :, :1], ratio.shape), rtol=1e-4)
    assert np.std(ratio[:, :, 0]) == pytest.approx(0.1, rel=0.2) and np.mean(ratio[:, :, 0]) == pytest.approx(1,
                                                                                                             abs=0.03)


def test_time_warp_map_is_monotone_with_fixed_ends_and_identity_at_zero_strength(train_images):
    rng = np.random.default_rng(0)
    for _ in range(50):
        tau = warp_map(40, 0.5, 4, rng)
        assert tau[0] == 0 and tau[-1] == pytest.approx(39) and np.all(np.diff(tau) > 0)
    assert np.abs(warp_map(40, 0.2, 4, rng) - np.arange(40)).max() > 0.1  # it does warp
    np.testing.assert_allclose(warp_map(40, 0.0, 4, rng), np.arange(40), atol=1e-9)
    images, records = make_generator("time_warp", strength=0.0).fit(train_images, 0).sample(10, seed=0)
    np.testing.assert_allclose(images, train_images[[r["train_index"] for r in records]], atol=1e-5)
    assert all(r["max_shift"] < 1e-6 for r in records)
