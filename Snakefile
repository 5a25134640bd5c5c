# dualdiv: generative sampling in the dual divergence space — the workflow's table of contents.
# Stages in order; each rule file holds one stage, scripts only translate snakemake.* into
# a dualdiv entry function. Run: `snakemake --cores all` (default config, embedded EEG).
from snakemake.utils import min_version, validate

from dualdiv.stages.workflow import check_config

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


check_config(config, workflow.source_path("workflow/schemas/config.schema.yaml"))
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(map(re.escape, {**DATASETS, **UNITS})) if DATASETS else "NO_DATASET",
    step=r"[1-9][0-9]*",
    method=r"[A-Za-z0-9_.-]+",


include: "workflow/rules/ingest.smk"
include: "workflow/rules/tile.smk"
include: "workflow/rules/path.smk"
include: "workflow/rules/localize.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    path_plan,
    summary,


rule all:
    default_target: True
    input:
        all_targets(),
