"""Rule localize: dual.h5 + tiles.h5 → clusters.json."""
import json

from dualdiv.estimators.clusters import ClusterSettings
from dualdiv.stages.localize import write_clusters
from dualdiv.stages.runner import run_script


def main(smk):
    settings = json.loads(smk.params.settings)
    seed = settings.pop("seed")
    settings["scales"] = tuple(settings["scales"])
    write_clusters(smk.input.dual, smk.input.tiles, smk.output[0], ClusterSettings(**settings), seed)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
