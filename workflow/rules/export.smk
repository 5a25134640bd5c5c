# Export for MNE-Python users: each samples/{method}.h5 also as MNE epochs (-epo.fif) or EDF/BDF,
# for the formats of sample.export (all_targets asks for them; `auto`: -epo.fif for EEG/MEG data sets).


rule export:
    """samples/{method}.h5 → samples/{method}-epo.fif (MNE epochs, SI units) or samples/{method}.edf/.bdf."""
    input:
        f"{RESULTS}/{{dataset}}/samples/{{method}}.h5",
    output:
        f"{RESULTS}/{{dataset}}/samples/{{method}}{{suffix}}",
    wildcard_constraints:
        suffix=r"-epo\.fif|\.edf|\.bdf",
    params:
        code=script_code("export"),
    log:
        "logs/{dataset}/export_{method}{suffix}.log",
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/export.py"
