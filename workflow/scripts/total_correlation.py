"""Rule total_correlation: tiles.h5 (+ samples/{method}.h5) → eval/tc/{method}.json."""
import json

import torch

from dualdiv.evaluation import write_tc
from dualdiv.workflow import run_script


def main(smk):
    torch.set_num_threads(smk.threads)
    settings = json.loads(smk.params.evaluate)
    tc = settings["tc"]
    write_tc(smk.input.tiles, smk.input.samples[0] if smk.input.samples else None, smk.output[0],
             tc.get("n_blocks", 1), tc.get("order", "time"), tc.get("reference", "train"), tc.get("training"),
             settings["seed"], smk.params.device)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
