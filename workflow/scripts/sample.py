"""Rules sample and baseline: tiles.h5 (+ the dual context for walks) → samples/{method}.h5."""
import json

import torch

from dualdiv.stages.sample import WALKS, dual_context, resolve_method, write_samples
from dualdiv.stages.workflow import run_script


def main(smk):
    torch.set_num_threads(smk.threads)
    sample = json.loads(smk.params.sample)
    key, _ = resolve_method(smk.wildcards.method, sample)
    context = None
    if key in WALKS:
        context = dual_context(smk.input.tiles, smk.input.dual, smk.input.clusters, smk.input.plan,
                               list(smk.input.critics), smk.params.device)
    write_samples(smk.input.tiles, smk.wildcards.method, smk.output[0], sample["n_samples"], sample["seed"],
                  sample, context)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
