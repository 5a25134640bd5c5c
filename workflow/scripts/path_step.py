"""Rule path_step: tiles.h5 + plan.json → path/step_{k}.pt + step_{k}.json + step_{k}.values.h5."""
import json

import torch

from dualdiv.estimators.path import StepSettings
from dualdiv.stages.path import write_step
from dualdiv.stages.runner import run_script


def main(smk):
    torch.set_num_threads(smk.threads)
    write_step(smk.input.tiles, smk.input.plan, int(smk.wildcards.step), smk.output.critic, smk.output.record,
               StepSettings(**json.loads(smk.params.training)), smk.params.seed, smk.params.device,
               out_values=smk.output.values, n_reference=smk.params.n_reference)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
