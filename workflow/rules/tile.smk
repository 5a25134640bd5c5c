rule tile:
    """raw.nc → results/{dataset}/tiles.h5: images (n, channels, time), train/test split, z-scores."""
    input:
        raw_file,
    output:
        f"{RESULTS}/{{dataset}}/tiles.h5",
    params:
        settings=settings("tile"),
        code=script_code("tile"),
    log:
        "logs/{dataset}/tile.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/tile.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=memory("tile"),
        runtime=10,
    script:
        "../scripts/tile.py"
