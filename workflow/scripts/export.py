"""Rule export: snakemake.input[0] (samples/{method}.h5) → snakemake.output[0] (-epo.fif, .edf or .bdf)."""
from dualdiv.stages.export import export_samples
from dualdiv.stages.runner import run_script


def main(smk):
    export_samples(smk.input[0], smk.output[0])


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
