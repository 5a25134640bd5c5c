"""Why the entropy gap misranks `copy`: the whitened PCA of the feature space is fitted on the training
images, so images that helped fit it (copy's samples are training images) look more spread out than held-out
ones. For each fold unit of a cross-fitted run, the gap H(generated) − H(real test) with the metric's
projection (fitted on train) and with a projection fitted on the pooled generated subset ∪ test images (as a
two-sample statistic would be), whitened or not; mean and 95 % normal interval over the fits.

    python benchmarks/entropy_projection.py /tmp/bench/results/eeg_eyes copy interpolate marginals dualdiv
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dualdiv.data.samples import load_samples  # noqa: E402
from dualdiv.data.tiles import load_tiles  # noqa: E402
from dualdiv.estimators.features import FeatureSpace  # noqa: E402
from dualdiv.estimators.knn import distinct_rows, fit_projection, knn_entropy  # noqa: E402

COMPONENTS, K, REPEATS, NPERSEG = 8, 1, 10, 64  # the evaluation's defaults (EvalSettings)


def gaps(unit: Path, method: str) -> dict[str, float]:
    tiles = load_tiles(unit / "tiles.h5")
    train = tiles.images[tiles.split == "train"].astype(float)
    test = tiles.images[tiles.split == "test"].astype(float)
    features = FeatureSpace(train, NPERSEG)
    f_train, f_test = features.transform(train), features.transform(test)
    generated = load_samples(unit / "samples" / f"{method}.h5").images.astype(float)
    f_gen = features.transform(generated)[distinct_rows(generated)[0]]
    rng = np.random.default_rng(0)
    m = min(len(f_gen), len(f_test))
    subsets = [rng.choice(len(f_gen), m, replace=False) for _ in range(REPEATS)]
    on_train = fit_projection(f_train, COMPONENTS, 0)
    out = {"projection on train": np.mean([knn_entropy(on_train.transform(f_gen[s]), K) for s in subsets])
           - knn_entropy(on_train.transform(f_test), K)}
    for name, whiten in (("pooled, whitened", True), ("pooled, not whitened", False)):
        values = []
        for s in subsets:
            pooled = PCA(COMPONENTS, whiten=whiten, random_state=0).fit(np.concatenate([f_gen[s], f_test]))
            values.append(knn_entropy(pooled.transform(f_gen[s]), K) - knn_entropy(pooled.transform(f_test), K))
        out[name] = float(np.mean(values))
    return out


def main(folder: str, *methods: str) -> None:
    units = sorted(p for p in (Path(folder) / "folds").glob("seed*_fold*") if p.is_dir())
    print(f"{len(units)} fits of {folder}; H(generated) − H(real test), nats, mean ± 95 % half-width, mean |gap|")
    for method in methods:
        rows = [gaps(unit, method) for unit in units]
        for name in rows[0]:
            d = np.array([r[name] for r in rows])
            print(f"{method:12s} {name:22s} {d.mean():6.2f} ± {1.96 * d.std(ddof=1) / np.sqrt(len(d)):4.2f}"
                  f"   |gap| {np.abs(d).mean():5.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
