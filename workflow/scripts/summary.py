"""Rule summary: every eval/*.json → summary.csv (other data sets' rows kept) and summary.md (headline tables)."""
from pathlib import Path

from dualdiv.stages.evaluate import write_summary
from dualdiv.stages.runner import run_script


def main(smk):
    by_dataset = {}
    for path in smk.input:  # results/{dataset}/eval/{method}.json, in the config's method order
        by_dataset.setdefault(Path(path).parent.parent.name, {})[Path(path).stem] = path
    write_summary(by_dataset, smk.output.csv, headline=smk.output.md)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
