# Embeddings stage: dumps that take the place of training runs, imported from files made elsewhere or
# embedded with pretrained models.


# Embeddings made elsewhere (a dumps data set): each seed's file, checked and in this project's dump format,
# takes the place of a training run.
rule import_dumps:
    input:
        dump=lambda wildcards: imported_dump(study, wildcards.experiment, wildcards.method, int(wildcards.seed)),
        code=code("import_dumps.py"),
    output:
        embeddings_path("{experiment}", "{method}", "{seed}"),
    params:
        modalities=lambda wildcards: experiment_by_name(study, wildcards.experiment)["modalities"],
        # the file's content, not its modification time: a file replaced by an older one is imported again
        content=lambda wildcards: content_digest(
            imported_dump(study, wildcards.experiment, wildcards.method, int(wildcards.seed))
        ),
        max_array_gib=lambda wildcards: study["datasets"][experiment_dataset(wildcards.experiment)]["max_array_gib"],
    wildcard_constraints:
        experiment=one_of(DUMPED),
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


# Pretrained models embedding a prepared data set (a models data set): each model's dump of the data set's split
# takes the place of a training run.
rule embed_with_model:
    input:
        data=lambda wildcards: prepared(embedded_data(wildcards.experiment)),
        code=code("embed_with_model.py", "modgap.embeddings.pretrained"),
    output:
        embeddings_path("{experiment}", "{method}", "{seed}"),
    params:
        model=lambda wildcards: embedding_model(study, wildcards.experiment, wildcards.method),
        options=lambda wildcards: embedding_options(study, wildcards.experiment),
        # for the message of a missing GPU (derived from the input: no rerun trigger)
        device_key=lambda wildcards, input: f"datasets.{experiment_dataset(wildcards.experiment)}.device",
    wildcard_constraints:
        experiment=one_of(EMBEDDED),
        method=one_of(sorted(imported_methods(study))),
    log:
        "results/logs/embed_with_model/{experiment}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/embed_with_model/{experiment}/{method}/seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=lambda wildcards: embedding_gpu(wildcards.experiment),
    conda:
        TRAIN_ENV
    script:
        "../scripts/embed_with_model.py"
