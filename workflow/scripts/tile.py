"""Rule tile: snakemake.input[0] (raw.nc) → snakemake.output[0] (tiles.h5)."""
import json

from dualdiv.data.tiles import TileSettings
from dualdiv.stages.runner import run_script
from dualdiv.stages.tile import tile


def main(smk):
    tile(smk.input[0], smk.output[0], TileSettings(**json.loads(smk.params.settings)))


run_script(snakemake, main)  # noqa: F821 (injected by Snakemake)
