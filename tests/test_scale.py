"""Large N and P (issue #19): F by batches of images, window-only critic inputs, PCA of a subset."""

import numpy as np
import pytest
import torch

import dualdiv.estimators.path as path_module
from dualdiv.estimators import clusters
from dualdiv.estimators.clusters import pca_projection
from dualdiv.estimators.critics import pixel_crops
from dualdiv.estimators.path import (
    make_plan,
    pixel_rank,
    step_values,
    substep_bounds,
    summed_substep_values,
    train_step,
)
from dualdiv.estimators.settings import StepSettings

TINY = StepSettings(max_iterations=20, eval_every=10, eval_substeps=4)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4, 10)).astype(np.float32)
    x[:, 1] += x[:, 0]
    plan = make_plan((4, 10), 2)
    state, _ = train_step(x, plan, 1, TINY, seed=0, device="cpu")
    return x, plan, state


def test_F_by_batches_of_images_equals_F_at_once(trained, monkeypatch):
    x, plan, state = trained
    whole = step_values(state, plan, 1, x, "cpu")
    critic = path_module.load_critic(state, "cpu")
    flat = torch.as_tensor(x.reshape(len(x), -1))
    rank, bounds = pixel_rank(plan), substep_bounds(plan, 1)
    _, whole_grad = summed_substep_values(critic, flat, rank, bounds, (4, 10), gradient=True)
    # a pass of 7 images: 40 images in 6 batches
    monkeypatch.setattr(path_module, "_MAX_ELEMENTS", 7 * critic.row_elements((4, 10)))
    batched = step_values(state, plan, 1, x, "cpu")
    # the critic's float32 arithmetic may round differently in passes of another size
    np.testing.assert_allclose(batched, whole, rtol=1e-6)
    values, grad = summed_substep_values(critic, flat, rank, bounds, (4, 10), gradient=True)
    np.testing.assert_allclose(values.numpy(), whole, rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), whole_grad.numpy(), rtol=1e-6, atol=1e-7)


def test_a_window_with_its_tested_pixel_replaced_is_the_window_of_the_swapped_image():
    rng = np.random.default_rng(1)
    shape, radius = (5, 7), (1, 1)
    x = torch.as_tensor(rng.normal(size=(3, 35)).astype(np.float32))
    rank = pixel_rank(make_plan(shape, 1))
    position = torch.tensor([0, 17, 34, 6])
    rows = torch.tensor([2, 0, 1, 1])
    donor = torch.as_tensor(rng.normal(size=4).astype(np.float32))
    swapped = x[rows].clone()
    order = torch.empty_like(rank)
    order[rank] = torch.arange(len(rank))
    swapped[torch.arange(4), order[position]] = donor
    expected = pixel_crops(swapped, rank, position, shape, radius)
    got = pixel_crops(x, rank, position, shape, radius, rows=rows, center=donor)
    for a, b in zip(expected, got, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert expected[0].shape == (4, 4, 5, 5)
    assert float(expected[1][0, 0, 0, 0]) == 0.0  # the corner pixel's window reaches outside the image


def test_pca_of_many_images_uses_a_subset_and_projects_all(monkeypatch):
    rng = np.random.default_rng(2)
    signal = rng.normal(size=(300, 1)) * np.array([[3.0, -2.0, 1.0, 0.5]])
    images = (signal + 0.1 * rng.normal(size=(300, 4))).reshape(300, 2, 2)
    exact = pca_projection(images, 1)
    monkeypatch.setattr(clusters, "PCA_FIT_ELEMENTS", 4 * 50)  # fit on 50 of the 300 images
    sub = pca_projection(images, 1, seed=0)
    assert sub.shape == exact.shape == (300, 1)
    assert abs(np.corrcoef(sub[:, 0], exact[:, 0])[0, 1]) > 0.999  # the same leading axis
    np.testing.assert_array_equal(sub, pca_projection(images, 1, seed=0))  # seeded


def test_closest_distances_by_blocks_are_exact(monkeypatch):
    from dualdiv.estimators import knn

    rng = np.random.default_rng(3)
    images, train = rng.normal(size=(23, 2, 3)), rng.normal(size=(40, 2, 3))
    whole = knn.closest_distances(images, train)
    monkeypatch.setattr(knn, "_DISTANCE_BLOCK", 100)  # 2 queries a block
    np.testing.assert_array_equal(knn.closest_distances(images, train), whole)


def test_two_sample_subset_keeps_small_test_splits_whole():
    from dualdiv.evaluation.metrics import two_sample_subset

    np.testing.assert_array_equal(two_sample_subset(84), np.arange(84))
    picked = two_sample_subset(10_000, seed=1, max_rows=50)
    assert len(set(picked)) == 50 and (np.diff(picked) > 0).all()


def test_job_memory_grows_with_tiles_and_is_bounded_by_the_budget(tmp_path):
    import h5py

    from dualdiv.stages.workflow import job_memory_mb

    def tiles(n, shape):
        path = tmp_path / f"t{n}_{shape[0]}.h5"
        with h5py.File(path, "w") as handle:
            handle.create_dataset("images", shape=(n, *shape), dtype="f4")  # declared, never written
        return path

    small = job_memory_mb("path_step", [tiles(100, (14, 128))])
    large = job_memory_mb("path_step", [tiles(10**5, (14, 128))])
    assert 900 <= small < large and large > 5000
    assert job_memory_mb("path_step", [tiles(100, (168, 168))]) > small
    assert job_memory_mb("path_step", [tmp_path / "missing.h5"]) == 4000  # a dry run, before the tiles exist
    raw = tmp_path / "raw.npy"
    np.save(raw, np.zeros((4, 2, 8)))
    assert job_memory_mb("ingest", [raw], {"memory_mb": 512}) == 700
    with open(raw, "r+b") as handle:  # a 3 GB .npy is streamed: the budget bounds it
        handle.truncate(3 * 2**30)
    assert job_memory_mb("ingest", [raw], {"memory_mb": 512}) <= 600 + 1.25 * 512 + 100
    # a VAR baseline's dense loading grows as P²: its job asks for it (2.45 GiB measured at 561 × 6 × 896)
    scp = tiles(561, (6, 896))
    var_mb = job_memory_mb("baseline", [scp], None, "var", {})
    assert var_mb > job_memory_mb("baseline", [scp], None, "spectral", {}) + 2000 and var_mb > 2450
    assert job_memory_mb("baseline", [scp], None, "var", {"order": 2}) < var_mb  # a smaller state matrix
