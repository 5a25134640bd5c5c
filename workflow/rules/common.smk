# Helpers shared by the rules: which data sets run, their merged settings, code hashes.
import json
import re
from pathlib import Path

from dualdiv.core.io import code_hash
from dualdiv.evaluation.figures import FIGURES
from dualdiv.generators import REGISTRY, WALKS, resolve_method
from dualdiv.stages.export import EXPORT_SUFFIXES, export_formats
from dualdiv.stages.workflow import (
    dataset_settings,
    job_memory_mb,
    selected_datasets,
    step_settings,
    workflow_seed,
    workflow_units,
)

DATASETS = selected_datasets(config)
UNITS = workflow_units(config)  # every pipeline → its data set (itself, or its fold units: evaluate.folds)
RESULTS = config["results"]



def memory(rule):
    """Resource function: the job's mem_mb from the size of its inputs (N tiles × P pixels for the rules on
    tiles.h5; the raw files or raw.nc and the memory budget for ingest and tile), dualdiv.stages.workflow.job_memory_mb.
    Evaluated when the job is scheduled, once its inputs exist."""

    def mem_mb(wildcards, input):
        files = [input.tiles] if hasattr(input, "tiles") else list(input)
        stage = rule if rule in ("ingest", "tile") else None
        generator, generator_settings = (resolve_method(wildcards.method, dataset_settings(config, wildcards.dataset,
                                                                                           "sample"))
                                         if rule == "baseline" else (None, None))
        return job_memory_mb(rule, files, dataset_settings(config, wildcards.dataset, stage) if stage else None,
                             generator, generator_settings)

    return mem_mb


def script_code(script, *registries):
    """Hash of every dualdiv module workflow/scripts/{script}.py imports (a param: editing one reruns the rule),
    plus the modules of ``registries`` (packages whose modules are imported by name, e.g. the readers)."""
    return code_hash(str(Path(workflow.basedir) / "workflow" / "scripts" / f"{script}.py"), *registries)


def generator_code(wildcards):
    """The sample script's code hash plus the module of the wildcard's generator (imported by key)."""
    key, _ = resolve_method(wildcards.method, dataset_settings(config, wildcards.dataset, "sample"))
    generator_module = f"dualdiv.generators.{REGISTRY[key].split(':')[0]}"
    return code_hash(str(Path(workflow.basedir) / "workflow" / "scripts" / "sample.py"), generator_module)


def settings(stage):
    """Input function: the merged `stage` settings of a data set, as canonical JSON (a param). Not the
    evaluate section's `folds`/`seeds`: they choose which pipelines run, not what one computes."""

    def for_dataset(wildcards):
        merged = dataset_settings(config, wildcards.dataset, stage)
        if stage == "evaluate":
            merged.pop("folds", None), merged.pop("seeds", None)
        return json.dumps(merged, sort_keys=True)

    return for_dataset


def dataset_files(wildcards):
    return DATASETS[wildcards.dataset]["files"]


def raw_file(wildcards):
    """raw.nc of a pipeline's data set (fold units share their data set's ingest)."""
    return f"{RESULTS}/{UNITS[wildcards.dataset]}/raw.nc"


def pipeline_seed(wildcards):
    """A pipeline's seed (a param): its fold unit's workflow seed, else the top-level seed."""
    return workflow_seed(config, wildcards.dataset)


def plan_settings(dataset):
    """The path-plan part of a data set's estimate settings (a param: changing it reruns the plan)."""
    estimate = dataset_settings(config, dataset, "estimate")
    return {key: estimate[key] for key in ("n_blocks", "order", "substeps", "seed")}


def path_files(dataset, suffix):
    """step_1..step_K files of a data set's path, in step order."""
    n_blocks = dataset_settings(config, dataset, "estimate")["n_blocks"]
    return [f"{RESULTS}/{dataset}/path/step_{k}.{suffix}" for k in range(1, n_blocks + 1)]


def sample_settings(wildcards):
    """The sample rules' settings param: the data set's sample section without `export` (a change of the
    export formats writes other files, it does not redraw the samples)."""
    sample = dataset_settings(config, wildcards.dataset, "sample")
    sample.pop("export", None)
    return json.dumps(sample, sort_keys=True)


def export_targets(dataset):
    """samples/{method}-epo.fif (and .edf/.bdf) of the dual-space methods (dualdiv, dualdiv_*), for the formats
    of `sample.export`. Not the baselines': a baseline that cannot fit the data writes a samples file with no
    images (the pipeline goes on), which no EEG format can hold; `dualdiv export` writes any other method's."""
    export = dataset_settings(config, dataset, "sample")["export"]
    files = DATASETS[UNITS[dataset]]["files"]
    formats = export_formats(export, files, dataset_settings(config, dataset, "ingest")["format"])
    return [f"{RESULTS}/{dataset}/samples/{method}{EXPORT_SUFFIXES[fmt]}" for method in methods(dataset)
            if method == "dualdiv" or method.startswith("dualdiv_") for fmt in formats]


def sample_inputs(wildcards):
    """Inputs of the sample rule — the tiles, plus the fitted dual space and clusters for the walks (they use F)."""
    base = f"{RESULTS}/{wildcards.dataset}"
    key, _ = resolve_method(wildcards.method, dataset_settings(config, wildcards.dataset, "sample"))
    if key not in WALKS:
        return {"tiles": f"{base}/tiles.h5"}
    return {"tiles": f"{base}/tiles.h5", "space": f"{base}/dualspace", "clusters": f"{base}/clusters.json"}


def tc_inputs(wildcards):
    """The TC files an evaluation merges (its method's and the real images'), when evaluate.tc is set."""
    if dataset_settings(config, wildcards.dataset, "evaluate")["tc"] is None:
        return []
    base = f"{RESULTS}/{wildcards.dataset}/eval/tc"
    return [f"{base}/{wildcards.method}.json", f"{base}/real.json"]


def methods(dataset):
    return dataset_settings(config, dataset, "sample")["methods"]


def first_unit(dataset):
    """The pipeline of a data set that draws its figures: the data set's own, or its first fold unit."""
    return next(unit for unit, of in UNITS.items() if of == dataset)


def all_targets():
    """Figures and exports of each data set's pipeline (of its first fold unit when cross-fitted), and the
    summary (which needs every pipeline's evaluations)."""
    targets = []
    for dataset in DATASETS:
        first = first_unit(dataset)
        targets += [f"{RESULTS}/{first}/figures/{name}" for name in FIGURES]
        targets += export_targets(first)
    return targets + [f"{RESULTS}/summary.csv"]
