"""Rule ingest: snakemake.input (raw files) → snakemake.output[0] (raw.nc)."""
import json

from dualdiv.data.ingest import IngestSettings
from dualdiv.stages.ingest import ingest
from dualdiv.stages.runner import run_script


def main(smk):
    settings = json.loads(smk.params.settings)
    if settings.get("channel_names") is not None:
        settings["channel_names"] = tuple(settings["channel_names"])
    ingest(list(smk.input), smk.output[0], IngestSettings(**settings))


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
