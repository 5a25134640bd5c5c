"""Rule evaluate: samples/{method}.h5 + tiles.h5 (+ eval/tc files) → eval/{method}.json."""
from dualdiv.stages.evaluate import write_evaluation
from dualdiv.stages.workflow import run_script


def main(smk):
    write_evaluation(smk.input.samples, smk.input.tiles, smk.output[0], smk.params.seed,
                     tc_paths=tuple(smk.input.tc) or None)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
