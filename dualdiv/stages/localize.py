"""Stage localize on files: clusters of the training images along F (``dual.h5``) → ``clusters.json``."""

from __future__ import annotations

import os

import h5py

from dualdiv.core.errors import InputError
from dualdiv.core.io import provenance, sha256_file, write_json
from dualdiv.data.tiles import load_tiles
from dualdiv.estimators.clusters import ClusterSettings, assign, find_clusters


def write_clusters(dual_path: str | os.PathLike, tiles_path: str | os.PathLike, out: str | os.PathLike,
                   settings: ClusterSettings = ClusterSettings(), seed: int = 0) -> dict:
    """Entry of rule ``localize``: clusters of the training images in F; membership of every image."""
    tiles = load_tiles(tiles_path)
    try:
        with h5py.File(dual_path, "r") as handle:
            F = handle["F"][()]
    except (OSError, KeyError) as exc:
        raise InputError(f"{dual_path}: cannot read F ({exc}); rerun the dual stage") from None
    if len(F) != len(tiles.images):
        raise InputError(f"{dual_path}: {len(F)} dual values but {tiles_path} has {len(tiles.images)} images")
    train = tiles.split == "train"
    result = find_clusters(F[train], tiles.images[train], settings, seed)
    result["membership_train"] = result.pop("membership")
    result["membership"] = assign(F, result["boundaries"]).tolist()  # every image of tiles.h5, in its order
    result["sample_id"] = tiles.sample_id.tolist()
    result["split"] = tiles.split.tolist()
    result["provenance"] = provenance("localize", result["settings"],
                                      {str(p): sha256_file(p) for p in (dual_path, tiles_path)})
    write_json(out, result)
    return result
