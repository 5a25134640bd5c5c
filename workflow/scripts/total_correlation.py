"""Rule total_correlation: tiles.h5 (+ samples/{method}.h5) → eval/tc/{method}.json."""
import json

import torch

from dualdiv.stages.evaluate import write_tc
from dualdiv.stages.runner import run_script


def main(smk):
    torch.set_num_threads(smk.threads)
    settings = json.loads(smk.params.evaluate)
    # evaluate.tc's keys (n_blocks, order, reference, training) are write_tc's parameters; absent ones default there
    write_tc(smk.input.tiles, smk.input.samples[0] if smk.input.samples else None, smk.output[0], **settings["tc"],
             seed=settings["seed"], device=smk.params.device)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
