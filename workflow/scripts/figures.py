"""Rule figures: tiles, dual.h5, clusters.json, samples/*.h5 → figures/*.png."""
from pathlib import Path

from dualdiv.stages.figures import write_figures
from dualdiv.stages.runner import run_script


def main(smk):
    samples = dict(zip(smk.params.methods, smk.input.samples, strict=True))
    write_figures(smk.input.tiles, smk.input.dual, smk.input.clusters, samples, Path(smk.output[0]).parent)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
