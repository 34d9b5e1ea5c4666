# Training stage: one job per (experiment, method, seed) writes the model, the epoch log and the test-split
# embedding dump of that seed, so adding a seed trains only that seed.


rule train:
    input:
        unpack(lambda wildcards: matched_temperature_run(wildcards.experiment, wildcards.method, wildcards.seed)),
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("train.py"),
    output:
        model=model_path("{experiment}", "{method}", "{seed}"),
        log=train_log_path("{experiment}", "{method}", "{seed}"),
        embeddings=embeddings_path("{experiment}", "{method}", "{seed}"),
    params:
        # what the run's results depend on, keys sorted: editing anything else, or reordering keys, retrains nothing
        run=lambda wildcards: result_defining_run(study, wildcards.experiment, wildcards.method),
        # progress and checkpoint_every change no result: a function of `input` makes a derived param, which
        # Snakemake leaves out of its rerun check (tests/test_workflow.py edits both and plans no training)
        neutral=lambda wildcards, input: neutral_train_options(study, wildcards.experiment),
        # for the message of a batch larger than the prepared training split, checked before training (derived:
        # no rerun trigger). Not a job of its own: an `ancient` input whose producer must run hides every other
        # change of the training jobs from Snakemake in that call (its DAG skips their own rerun checks)
        batch_size_key=lambda wildcards, input: batch_size_key(study, wildcards.experiment),
    log:
        "results/logs/train/{experiment}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train/{experiment}/{method}/seed{seed}.tsv"
    wildcard_constraints:
        experiment=one_of(TRAINED),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=lambda wildcards: wants_gpu(wildcards.experiment),
    conda:
        TRAIN_ENV
    script:
        "../scripts/train.py"
