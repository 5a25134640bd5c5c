rule figures:
    """Dual-axis histogram with cuts, real vs generated grid, spectra, walk trajectories (PNG)."""
    input:
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
        dual=f"{RESULTS}/{{dataset}}/dual.h5",
        clusters=f"{RESULTS}/{{dataset}}/clusters.json",
        samples=lambda wc: [f"{RESULTS}/{wc.dataset}/samples/{m}.h5" for m in methods(wc.dataset)],
    output:
        [
            report(
                f"{RESULTS}/{{dataset}}/figures/{name}",
                caption=f"../report/figure_{name.removesuffix('.png')}.rst",  # one caption per figure
                category="{dataset}",
            )
            for name in FIGURES
        ],
    params:
        methods=lambda wc: methods(wc.dataset),
        code=script_code("figures"),
    log:
        "logs/{dataset}/figures.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/figures.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/figures.py"


rule evaluate:
    """samples/{method}.h5 vs the held-out split → eval/{method}.json (every metric of dualdiv.evaluation.metrics)."""
    input:
        samples=f"{RESULTS}/{{dataset}}/samples/{{method}}.h5",
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
        tc=tc_inputs,
    output:
        f"{RESULTS}/{{dataset}}/eval/{{method}}.json",
    params:
        evaluate=settings("evaluate"),
        code=script_code("evaluate"),
    log:
        "logs/{dataset}/evaluate_{method}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/evaluate_{{method}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=memory("evaluate"),
        runtime=30,
    script:
        "../scripts/evaluate.py"


rule total_correlation:
    """Real training images (method "real") or a method's samples → eval/tc/{method}.json (path estimator)."""
    input:
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
        samples=lambda wc: [] if wc.method == "real" else [f"{RESULTS}/{wc.dataset}/samples/{wc.method}.h5"],
    output:
        f"{RESULTS}/{{dataset}}/eval/tc/{{method}}.json",
    params:
        evaluate=settings("evaluate"),
        device=config["device"],
        code=script_code("total_correlation"),
    log:
        "logs/{dataset}/total_correlation_{method}.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/total_correlation_{{method}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=memory("total_correlation"),
        runtime=60,
    script:
        "../scripts/total_correlation.py"


rule summary:
    """Every eval/*.json → results/summary.csv (dataset × method × metric, with reliability and, for cross-fitted
    data sets, the interval over folds × seeds; the rows of the results folder's other data sets are kept),
    results/paired.csv (dualdiv − every method, paired by fit) and results/summary.md (headline tables)."""
    input:
        evaluations=[f"{RESULTS}/{unit}/eval/{method}.json" for unit in UNITS for method in methods(unit)],
        # summary.md shows the TC of the real images from divergence.json: the figures' pipeline always has one
        # (other fold units only with a walk, which their evaluations already wait for), so wait for it too
        divergences=[f"{RESULTS}/{first_unit(dataset)}/divergence.json" for dataset in DATASETS],
    output:
        # update(): Snakemake must not delete the CSV before the job, which reads back other data sets' rows
        csv=report(
            update(f"{RESULTS}/summary.csv"),
            caption="../report/summary.rst",
            category="Summary",  # capitalised: sorts before the data sets' lower-case categories
            labels={"table": "2 · every metric of every method (summary.csv)"},
        ),
        paired=report(
            update(f"{RESULTS}/paired.csv"),
            caption="../report/paired.rst",
            category="Summary",
            labels={"table": "3 · dualdiv vs every method, paired by fold (paired.csv)"},
        ),
        md=report(
            f"{RESULTS}/summary.md",
            caption="../report/summary_headline.rst",
            category="Summary",
            labels={"table": "1 · headline per data set (summary.md)"},  # the labels order the category: first
        ),
    params:
        code=script_code("summary"),
    log:
        "logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/summary.py"
