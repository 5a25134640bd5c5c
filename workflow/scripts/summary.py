"""Rule summary: every eval/*.json → summary.csv."""
from pathlib import Path

from dualdiv.stages.evaluate import write_summary
from dualdiv.stages.runner import run_script


def main(smk):
    by_dataset = {}
    for path in smk.input:
        by_dataset.setdefault(Path(path).parent.parent.name, {})[Path(path).stem] = path
    write_summary(by_dataset, smk.output[0])


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
