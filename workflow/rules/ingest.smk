rule ingest:
    """Raw files of a data set → results/{dataset}/raw.nc (checked, concatenated)."""
    input:
        dataset_files,
    output:
        f"{RESULTS}/{{dataset}}/raw.nc",
    params:
        settings=settings("ingest"),
        code=script_code("ingest", "dualdiv.data.readers.*"),
    log:
        "logs/{dataset}/ingest.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/ingest.tsv"
    conda:
        "../../environment.yml"
    resources:
        mem_mb=memory("ingest"),
        runtime=10,
    script:
        "../scripts/ingest.py"
