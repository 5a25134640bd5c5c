# Total correlation along the dependency-diffusion path: plan → one job per step → dual coordinate.


rule path_plan:
    """tiles.h5 → path/plan.json: nested pixel sets S_1 ⊂ … ⊂ S_K."""
    input:
        f"{RESULTS}/{{dataset}}/tiles.h5",
    output:
        f"{RESULTS}/{{dataset}}/path/plan.json",
    params:
        plan=lambda wc: plan_settings(wc.dataset),
        code=script_code("path_plan"),
    log:
        "logs/{dataset}/path_plan.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/path_plan.tsv"
    priority: 30
    conda:
        "../../environment.yml"
    script:
        "../scripts/path_plan.py"


rule path_step:
    """One path step k: critic f_k on Q_{k-1} vs Q_k → path/step_{k}.pt + .json (D_k, stderr)."""
    input:
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
        plan=f"{RESULTS}/{{dataset}}/path/plan.json",
    output:
        critic=f"{RESULTS}/{{dataset}}/path/step_{{step}}.pt",
        record=f"{RESULTS}/{{dataset}}/path/step_{{step}}.json",
        values=f"{RESULTS}/{{dataset}}/path/step_{{step}}.values.h5",
    params:
        training=lambda wc: json.dumps(step_settings(config, wc.dataset, int(wc.step)), sort_keys=True),
        n_reference=lambda wc: dataset_settings(config, wc.dataset, "estimate")["n_reference"],
        seed=pipeline_seed,
        device=config["device"],
        code=script_code("path_step"),
    log:
        "logs/{dataset}/path_step_{step}.log",
    priority: 30
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/path_step_{{step}}.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=memory("path_step"),
        runtime=120,
        gpu=config["gpus"],
    script:
        "../scripts/path_step.py"


rule dual:
    """All steps → the fitted DualSpace (dualspace/), dual.h5 (F = Σ_k f_k of every image and reference
    sample) and divergence.json."""
    input:
        tiles=f"{RESULTS}/{{dataset}}/tiles.h5",
        plan=f"{RESULTS}/{{dataset}}/path/plan.json",
        critics=lambda wc: path_files(wc.dataset, "pt"),
        records=lambda wc: path_files(wc.dataset, "json"),
        values=lambda wc: path_files(wc.dataset, "values.h5"),
    output:
        dual=f"{RESULTS}/{{dataset}}/dual.h5",
        divergence=f"{RESULTS}/{{dataset}}/divergence.json",
        space=directory(f"{RESULTS}/{{dataset}}/dualspace"),
    params:
        estimate=settings("estimate"),
        seed=pipeline_seed,
        device=config["device"],
        code=script_code("dual"),
    log:
        "logs/{dataset}/dual.log",
    benchmark:
        f"{RESULTS}/{{dataset}}/benchmarks/dual.tsv"
    priority: 20
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=memory("dual"),
        runtime=30,
    script:
        "../scripts/dual.py"
