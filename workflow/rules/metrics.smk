# Metrics stage: every metric of every seed of a method (modgap.metrics), and the post-hoc sweep.


rule metrics:
    input:
        embeddings=lambda wildcards: method_dumps(wildcards.experiment, wildcards.method),
        code=code("metrics.py"),
    output:
        "results/metrics/{experiment}/{method}.json",
    params:
        seeds=study["seeds"],
        retrieval=lambda wildcards: experiment_by_name(study, wildcards.experiment)["retrieval"],
        options=canonical(study["evaluate"]),
        shift=lambda wildcards: study["evaluate"]["posthoc_strength"] if wildcards.method == POSTHOC_METHOD else None,
        budget=lambda wildcards: evaluated_budget(wildcards.experiment),
        epochs=lambda wildcards: trained_epochs(wildcards.experiment),
        external=lambda wildcards: external_contents(wildcards.experiment, wildcards.method),
    wildcard_constraints:
        method=one_of([*METHOD_NAMES, POSTHOC_METHOD]),
        experiment=one_of(EVALUATIONS),
    log:
        "results/logs/metrics/{experiment}/{method}.log",
    benchmark:
        "results/benchmarks/metrics/{experiment}/{method}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/metrics.py"


rule gap_sweep:
    input:
        embeddings=lambda wildcards: method_dumps(wildcards.experiment, POSTHOC_METHOD),
        code=code("gap_sweep.py"),
    output:
        "results/sweeps/{experiment}.csv",
    params:
        seeds=study["seeds"],
        strengths=study["evaluate"]["sweep_strengths"],
        retrieval=lambda wildcards: experiment_by_name(study, wildcards.experiment)["retrieval"],
        options=canonical(study["evaluate"]),
    log:
        "results/logs/sweeps/{experiment}.log",
    benchmark:
        "results/benchmarks/sweeps/{experiment}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/gap_sweep.py"
