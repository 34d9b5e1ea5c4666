# Data stage: download of the original files (real data sets) and preparation into the common format.


rule download:
    output:
        "results/downloads/{dataset}/{filename}",
    params:
        # plain data: a job unpickles its params before its first line, so package objects here would
        # import whatever modgap is installed instead of this checkout's
        remote=lambda wildcards: dataclasses.asdict(remote_file(wildcards.dataset, wildcards.filename)[0]),
        mirror=lambda wildcards: remote_file(wildcards.dataset, wildcards.filename)[1],
    log:
        "results/logs/download/{dataset}/{filename}.log",
    benchmark:
        "results/benchmarks/download/{dataset}/{filename}.tsv"
    retries: 2
    resources:
        runtime=600,
        downloads=1,
    conda:
        TRAIN_ENV
    script:
        "../scripts/download.py"


rule prepare_dataset:
    input:
        downloads=lambda wildcards: downloads_of(wildcards.dataset),
        code=lambda wildcards: code("prepare_dataset.py", preparation_module(dataset_source(wildcards.dataset))),
    output:
        directory(prepared("{dataset}")),
    params:
        dataset=lambda wildcards: canonical(study["datasets"][wildcards.dataset]),
        # what a local copy holds: a recording added to or damaged in an `extracted` folder re-prepares
        local_copies=lambda wildcards: local_copy_digests(wildcards.dataset),
    log:
        "results/logs/prepare/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=lambda wildcards: SOURCES[dataset_source(wildcards.dataset)].mem_mb,
        runtime=lambda wildcards: SOURCES[dataset_source(wildcards.dataset)].runtime,
    conda:
        TRAIN_ENV
    script:
        "../scripts/prepare_dataset.py"
