# Training stage: one job per (experiment, method, seed), then the test-split embedding dump.


rule train:
    input:
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("train.py", "models.py", "losses.py", "methods.py", "batches.py"),
    output:
        model=run_path("models", "model.pt"),
        log_csv=run_path("models", "train_log.csv"),
    params:
        run=lambda wildcards: resolve_run(study, wildcards.experiment, wildcards.method),
    log:
        "results/logs/train/{experiment}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{experiment}/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=lambda wildcards: wants_gpu(wildcards.experiment),
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"


rule embed:
    input:
        model=rules.train.output.model,
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("embed.py", "train.py", "models.py", "batches.py"),
    output:
        "results/embeddings/{experiment}/{method}/seed{seed}.npz",
    log:
        "results/logs/embed/{experiment}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/embed/{experiment}/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=lambda wildcards: wants_gpu(wildcards.experiment),
    conda:
        TRAIN_ENV
    script:
        "../scripts/embed.py"
