"""Rule path_plan: tiles.h5 → path/plan.json."""
from dualdiv.stages.path import write_plan
from dualdiv.stages.runner import run_script


def main(smk):
    write_plan(smk.input[0], smk.output[0], **smk.params.plan)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
