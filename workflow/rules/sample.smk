# Generation: the dual-space variants (rule sample) and every other generator (rule baseline)
# share one entry function and one output layout, samples/{method}.h5.


rule sample:
    """Fit a dual-space generator (dualdiv = the default variant) → samples/{method}.h5."""
    input:
        unpack(sample_inputs),
    output:
        f"{RESULTS}/{{dataset}}/samples/{{method}}.h5",
    wildcard_constraints:
        method=r"dualdiv(_[a-z]+)?",
    params:
        sample=sample_settings,
        device=config["device"],
        code=generator_code,
    log:
        "logs/{dataset}/sample_{method}.log",
    priority: 10
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/sample_{{method}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=memory("sample"),
        runtime=60,
    script:
        "../scripts/sample.py"


rule baseline:
    """Fit a baseline, base or reference generator → samples/{method}.h5."""
    input:
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
    output:
        f"{RESULTS}/{{dataset}}/samples/{{method}}.h5",
    wildcard_constraints:
        method=r"(?!dualdiv)[a-z_]+",
    params:
        sample=sample_settings,
        device=config["device"],
        code=generator_code,
    log:
        "logs/{dataset}/baseline_{method}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/baseline_{{method}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=memory("baseline"),
        runtime=60,
    script:
        "../scripts/sample.py"
