"""Rule summary: every eval/*.json → summary.csv (other data sets' rows kept), paired.csv and summary.md."""
from pathlib import Path

from dualdiv.stages.evaluate import write_summary
from dualdiv.stages.runner import run_script


def main(smk):
    by_dataset = {}
    results = Path(smk.output.csv).parent
    for path in smk.input.evaluations:  # results/{dataset or fold unit}/eval/{method}.json, in the methods' order
        unit = Path(path).parent.parent.relative_to(results).as_posix()
        by_dataset.setdefault(unit, {})[Path(path).stem] = path
    write_summary(by_dataset, smk.output.csv, headline=smk.output.md, paired=smk.output.paired)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
