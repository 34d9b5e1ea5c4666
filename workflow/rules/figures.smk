# Figures (docs/workflow.md): one rule per figure, each rebuilt alone when its code or data change.


rule figure_gap_sweep:
    input:
        sweep="results/sweeps/{experiment}.csv",
        code=code("figure_gap_sweep.py"),
    output:
        **figure_outputs("gap_sweep", "gap_sweep", "gap sweep"),
    params:
        source=lambda wildcards: POSTHOC_SOURCE,
        labels=DISPLAY_NAMES,
    log:
        "results/logs/figures/{experiment}/gap_sweep.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_gap_sweep.py"


rule figure_latent:
    input:
        embeddings=lambda wildcards: figure_embeddings(wildcards.experiment, LATENT_METHODS),
        # the class names (embeddings made elsewhere carry their own)
        data=lambda wildcards: [] if wildcards.experiment in IMPORTED else prepared(experiment_dataset(wildcards.experiment)),
        code=code("figure_latent.py"),
    params:
        methods=lambda wildcards: figure_methods(wildcards.experiment, LATENT_METHODS),
        shifts=lambda wildcards: figure_shifts(wildcards.experiment, LATENT_METHODS),
        seed=FIGURE_SEED,
        labels=DISPLAY_NAMES,
    output:
        **figure_outputs("latent_{dimensions}d", "latent", "latent space {dimensions}-D"),
    wildcard_constraints:
        dimensions="2|3",
    log:
        "results/logs/figures/{experiment}/latent_{dimensions}d.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_latent.py"


rule figure_cosine:
    input:
        embeddings=lambda wildcards: figure_embeddings(wildcards.experiment),
        code=code("figure_cosine.py"),
    params:
        methods=lambda wildcards: figure_methods(wildcards.experiment),
        shifts=lambda wildcards: figure_shifts(wildcards.experiment),
        seed=FIGURE_SEED,
        labels=DISPLAY_NAMES,
    output:
        **figure_outputs("cosine_histograms", "cosine", "cosine histograms"),
    log:
        "results/logs/figures/{experiment}/cosine_histograms.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_cosine.py"


rule figure_training_curves:
    input:
        logs=lambda wildcards: [
            train_log_path(wildcards.experiment, m, s)
            for m in experiment_by_name(study, wildcards.experiment)["methods"]
            for s in study["seeds"]
        ],
        code=code("figure_training_curves.py"),
    output:
        **figure_outputs("training_curves", "training_curves", "training curves"),
    params:
        runs=lambda wildcards: [
            (m, s) for m in experiment_by_name(study, wildcards.experiment)["methods"] for s in study["seeds"]
        ],
        labels=DISPLAY_NAMES,
    log:
        "results/logs/figures/{experiment}/training_curves.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_training_curves.py"


rule figure_dose_response:
    input:
        table=rules.dose_response_table.output.csv,
        sweep="results/sweeps/{experiment}.csv",
        code=code("figure_dose_response.py"),
    output:
        **figure_outputs("dose_response", "dose_response", "dose-response"),
    params:
        source=lambda wildcards: POSTHOC_SOURCE,
        labels=DISPLAY_NAMES,
    log:
        "results/logs/figures/{experiment}/dose_response.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_dose_response.py"


rule figure_budget:
    input:
        verdict=VERDICT_TABLE,
        code=code("figure_budget.py"),
    output:
        pdf="results/figures/budget.pdf",
        png=report(
            "results/figures/budget.png",
            caption="../report/budget.rst",
            category="Figures",
            labels={"figure": "budget ladder"},
        ),
    params:
        baseline=study["claims"]["baseline"],
        labels=DISPLAY_NAMES,
    log:
        "results/logs/figures/budget.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_budget.py"


rule figure_factorial:
    input:
        table=rules.factorial_table.output.csv,
        code=code("figure_factorial.py", data=("reference/paper_table.csv",)),
    output:
        pdf="results/figures/factorial.pdf",
        png=report("results/figures/factorial.png", caption="../report/factorial.rst", category="Factorial"),
    params:
        labels=LABELS,
    log:
        "results/logs/figures/factorial.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_factorial.py"
