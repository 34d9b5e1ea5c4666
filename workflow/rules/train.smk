# Training stage: one job per (experiment, method) trains every seed in turn (the interpreter and torch
# start once) and writes, per seed, the model, the epoch log and the test-split embedding dump.


rule train:
    input:
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("train.py", "models.py", "losses.py", "methods.py", "batches.py", "embed.py", "metrics.py", "similarity.py"),
    output:
        models=seed_paths(run_path("models", "model.pt")),
        logs=seed_paths(run_path("models", "train_log.csv")),
        embeddings=seed_paths(embeddings_path("{experiment}", "{method}", "{seed}")),
    params:
        run=lambda wildcards: resolve_run(study, wildcards.experiment, wildcards.method),
        seeds=study["seeds"],
    log:
        "results/logs/train/{experiment}/{method}.log",
    benchmark:
        "results/benchmarks/train/{experiment}/{method}.tsv"
    wildcard_constraints:
        experiment=one_of(TRAINED),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=lambda wildcards: 120 * len(study["seeds"]),
        gpu=lambda wildcards: wants_gpu(wildcards.experiment),
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"


# Embeddings made elsewhere (a dumps data set): each seed's file, checked and in this project's dump format,
# takes the place of a training run.
rule import_dumps:
    input:
        dump=lambda wildcards: imported_dump(study, wildcards.experiment, wildcards.method, int(wildcards.seed)),
        code=code("external.py"),
    output:
        embeddings_path("{experiment}", "{method}", "{seed}"),
    params:
        modalities=lambda wildcards: experiment_by_name(study, wildcards.experiment)["modalities"],
    wildcard_constraints:
        experiment=one_of(IMPORTED),
        method=one_of(sorted(imported_methods(study))),
    log:
        "results/logs/import_dumps/{experiment}/{method}/seed{seed}.log",
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        TRAIN_ENV  # .pt and .safetensors files are read with torch
    script:
        "../scripts/import_dumps.py"
