"""Rules sample and baseline: tiles.h5 (+ the dual space and clusters for walks) → samples/{method}.h5."""
import json

from dualdiv.generators import WALKS, resolve_method
from dualdiv.stages.runner import run_script
from dualdiv.stages.sample import walk_inputs, write_samples


def main(smk):
    # no torch import here: the references and bases need none; write_samples pins torch's threads
    # (to one, for determinism) once a generator that needs it has imported it
    sample = json.loads(smk.params.sample)
    key, _ = resolve_method(smk.wildcards.method, sample)
    walk = None
    if key in WALKS:
        walk = walk_inputs(smk.input.tiles, smk.input.space, smk.input.clusters, smk.params.device)
    # a baseline that cannot fit these data writes a samples file saying why, and the pipeline goes on
    # (evaluate and summary report it); the dual-space variants are the product: their failure stops it
    write_samples(smk.input.tiles, smk.wildcards.method, smk.output[0], sample["n_samples"], sample["seed"],
                  sample, walk, record_failure=smk.rule == "baseline")


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
