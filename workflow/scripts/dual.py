"""Rule dual: every path step → dualspace/ (the fitted DualSpace) + dual.h5 + divergence.json."""
import json

import torch

from dualdiv.stages.path import write_dual
from dualdiv.stages.runner import run_script


def main(smk):
    torch.set_num_threads(smk.threads)
    write_dual(smk.input.tiles, smk.input.plan, list(smk.input.critics), list(smk.input.records),
               smk.output.dual, smk.output.divergence, smk.output.space, json.loads(smk.params.estimate),
               smk.params.seed, smk.params.device, list(smk.input.values))


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
