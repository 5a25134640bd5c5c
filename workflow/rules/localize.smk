rule localize:
    """dual.h5 + tiles.h5 → clusters.json: cut points in F, local divergences, p-values, cluster tree."""
    input:
        dual=f"{RESULTS}/{{dataset}}/dual.h5",
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
    output:
        f"{RESULTS}/{{dataset}}/clusters.json",
    params:
        settings=settings("localize"),
        code=script_code("localize"),
    log:
        "logs/{dataset}/localize.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/localize.tsv"
    priority: 20
    conda:
        "../../environment.yml"
    resources:
        mem_mb=memory("localize"),
        runtime=10,
    script:
        "../scripts/localize.py"
