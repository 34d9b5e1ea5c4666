# Evaluation stage: per-run metrics, the post-hoc shift row and sweep, tables, claims check.


rule posthoc_embeddings:
    input:
        source=lambda wildcards: embeddings_path(wildcards.experiment, POSTHOC_SOURCE, wildcards.seed),
        code=code("metrics.py", "evaluate.py"),
    output:
        "results/embeddings/{experiment}/posthoc/seed{seed}.npz",
    params:
        strength=study["evaluate"]["posthoc_strength"],
    log:
        "results/logs/posthoc/{experiment}/seed{seed}.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/posthoc_embeddings.py"


rule metrics:
    input:
        embeddings="results/embeddings/{experiment}/{method}/seed{seed}.npz",
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("metrics.py", "evaluate.py"),
    output:
        "results/metrics/{experiment}/{method}/seed{seed}.json",
    params:
        retrieval=lambda wildcards: experiment_by_name(study, wildcards.experiment)["retrieval"],
        options=study["evaluate"],
    wildcard_constraints:
        method="|".join([*study["methods"], POSTHOC_METHOD]),
    log:
        "results/logs/metrics/{experiment}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/metrics/{experiment}/{method}/seed{seed}.tsv"
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
        embeddings=lambda wildcards: [
            embeddings_path(wildcards.experiment, POSTHOC_SOURCE, seed) for seed in study["seeds"]
        ],
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("metrics.py", "evaluate.py"),
    output:
        "results/sweeps/{experiment}.csv",
    params:
        seeds=study["seeds"],
        strengths=study["evaluate"]["sweep_strengths"],
        retrieval=lambda wildcards: experiment_by_name(study, wildcards.experiment)["retrieval"],
        options=study["evaluate"],
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


rule tables:
    input:
        metrics=metrics_files(),
        code=code("tables.py", "reference/paper_table.csv"),
    output:
        main_csv=report(
            "results/tables/main.csv",
            caption="../report/main_table.rst",
            category="Tables",
            labels={"table": "main"},
        ),
        main_md="results/tables/main.md",
        main_tex="results/tables/main.tex",
        comparison_csv=report(
            "results/tables/paper_comparison.csv",
            caption="../report/paper_comparison.rst",
            category="Tables",
            labels={"table": "paper comparison"},
        ),
        comparison_md="results/tables/paper_comparison.md",
        ablation_csv=report(
            "results/tables/ablation.csv",
            caption="../report/ablation.rst",
            category="Tables",
            labels={"table": "ablation"},
        ),
        ablation_md="results/tables/ablation.md",
    params:
        references={e["name"]: e["paper_reference"] for e in study["experiments"]},
    log:
        "results/logs/tables.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/tables.py"


rule claims:
    input:
        table=rules.tables.output.main_csv,
        code=code("claims.py"),
    output:
        report("results/claims.txt", caption="../report/claims.rst", category="Claims"),
    params:
        thresholds=study["claims"],
        modality_counts={e["name"]: len(e["modalities"]) for e in study["experiments"]},
    log:
        "results/logs/claims.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/claims.py"
