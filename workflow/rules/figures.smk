# Figures (docs/workflow.md): one rule per figure, each rebuilt alone when its code or data change.


rule figure_gap_sweep:
    input:
        sweep="results/sweeps/{experiment}.csv",
        code=code("figures/gap_sweep.py", "figures/style.py"),
    output:
        pdf="results/figures/{experiment}/gap_sweep.pdf",
        png=report(
            "results/figures/{experiment}/gap_sweep.png",
            caption="../report/gap_sweep.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={"figure": "gap sweep", "experiment": "{experiment}"},
        ),
    params:
        source=lambda wildcards: POSTHOC_SOURCE,
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
        code=code("figures/latent.py", "figures/style.py"),
    params:
        methods=lambda wildcards: figure_methods(wildcards.experiment, LATENT_METHODS),
        shifts=lambda wildcards: figure_shifts(wildcards.experiment, LATENT_METHODS),
        seed=FIGURE_SEED,
    output:
        pdf="results/figures/{experiment}/latent_{dimensions}d.pdf",
        png=report(
            "results/figures/{experiment}/latent_{dimensions}d.png",
            caption="../report/latent.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={"figure": "latent space {dimensions}-D", "experiment": "{experiment}"},
        ),
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
        code=code("figures/cosine.py", "figures/style.py"),
    params:
        methods=lambda wildcards: figure_methods(wildcards.experiment),
        shifts=lambda wildcards: figure_shifts(wildcards.experiment),
        seed=FIGURE_SEED,
    output:
        pdf="results/figures/{experiment}/cosine_histograms.pdf",
        png=report(
            "results/figures/{experiment}/cosine_histograms.png",
            caption="../report/cosine.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={"figure": "cosine histograms", "experiment": "{experiment}"},
        ),
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
        code=code("figures/curves.py", "figures/style.py"),
    output:
        pdf="results/figures/{experiment}/training_curves.pdf",
        png=report(
            "results/figures/{experiment}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={"figure": "training curves", "experiment": "{experiment}"},
        ),
    params:
        runs=lambda wildcards: [
            (m, s) for m in experiment_by_name(study, wildcards.experiment)["methods"] for s in study["seeds"]
        ],
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
        code=code("figures/dose_response.py", "figures/style.py"),
    output:
        pdf="results/figures/{experiment}/dose_response.pdf",
        png=report(
            "results/figures/{experiment}/dose_response.png",
            caption="../report/dose_response.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={"figure": "dose-response", "experiment": "{experiment}"},
        ),
    params:
        source=lambda wildcards: POSTHOC_SOURCE,
    log:
        "results/logs/figures/{experiment}/dose_response.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_dose_response.py"


rule figure_budget:
    input:
        runs=rules.tables.output.runs_csv,
        code=code("figures/budget.py", "regime.py", "claims.py", "stats.py", "figures/style.py"),
    output:
        pdf="results/figures/budget.pdf",
        png=report(
            "results/figures/budget.png",
            caption="../report/budget.rst",
            category="Figures",
            labels={"figure": "budget ladder"},
        ),
    params:
        ladders=ladders(study),
        claims=study["claims"],
    log:
        "results/logs/figures/budget.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_budget.py"
