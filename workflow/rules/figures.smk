# Figures (SPEC section 6): one rule per figure, each rebuilt alone when its code or data change.


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
    log:
        "results/logs/figures/{experiment}/gap_sweep.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_gap_sweep.py"


rule figure_latent:
    input:
        embeddings=lambda wildcards: figure_embeddings(wildcards.experiment, LATENT_METHODS),
        data=lambda wildcards: prepared(experiment_dataset(wildcards.experiment)),
        code=code("figures/latent.py", "figures/style.py"),
    params:
        methods=lambda wildcards: figure_methods(wildcards.experiment, LATENT_METHODS),
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
            f"results/models/{wildcards.experiment}/{m}/seed{s}/train_log.csv"
            for _, m, s in runs_of(wildcards.experiment)
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
        runs=lambda wildcards: [(m, s) for _, m, s in runs_of(wildcards.experiment)],
    log:
        "results/logs/figures/{experiment}/training_curves.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/figure_training_curves.py"
