"""Rule evaluate: samples/{method}.h5 + tiles.h5 (+ eval/tc files) → eval/{method}.json."""
import json

from dualdiv.evaluation.metrics import EvalSettings
from dualdiv.stages.evaluate import write_evaluation
from dualdiv.stages.runner import run_script


def main(smk):
    settings = json.loads(smk.params.evaluate)
    write_evaluation(smk.input.samples, smk.input.tiles, smk.output[0], settings["seed"],
                     EvalSettings(**settings["metrics"]), tc_paths=tuple(smk.input.tc) or None)


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
