# Data stage: download (real data sets) and preparation into the common format.


rule prepare_dataset:
    input:
        code=lambda wildcards: code(*preparation_code(study["datasets"][wildcards.dataset]["source"])),
    output:
        directory(prepared("{dataset}")),
    params:
        dataset=lambda wildcards: study["datasets"][wildcards.dataset],
    log:
        "results/logs/prepare/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        TRAIN_ENV
    script:
        "../scripts/prepare_dataset.py"
