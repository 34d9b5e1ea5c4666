# Verdict stage: the runs table and the aggregated tables, the claims check (text and data), the trained
# dose-response's table, the regime map and the regime calibration (modgap.verdict).


rule tables:
    input:
        metrics=metrics_files(),
        code=code("tables.py", data=("reference/paper_table.csv",)),
    output:
        runs_csv=RUNS_TABLE,
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
        references=REFERENCES,
        seeds=study["seeds"],
        definitions=definition_digests(study),
        provenance=PROVENANCE,
        labels=DISPLAY_NAMES,
    log:
        "results/logs/tables.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/tables.py"


rule claims:
    input:
        runs=rules.tables.output.runs_csv,
        data=trained_datasets(),  # what the verdict must say about them (modgap.data.format.data_notes)
        code=code("claims.py", data=("reference/paper_table.csv",)),
    output:
        text=report("results/claims.txt", caption="../report/claims.rst", category="Claims"),
        table=VERDICT_TABLE,
    params:
        claims=canonical(study["claims"]),
        expected=evaluated_runs(study),
        ladders=ladders(study),
        references=REFERENCES,
        provenance=PROVENANCE,
        labels=LABELS,
        design=canonical(study["decide"]),
        comparisons=DECIDED_COMPARISONS,
        finals={e: final_evaluation(e) for e, _, _ in DECIDED_COMPARISONS},
    log:
        "results/logs/claims.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/claims.py"


rule dose_response_table:
    input:
        metrics=dose_response_files(),
        code=code("dose_response_table.py"),
    output:
        csv=report(
            "results/tables/dose_response.csv",
            caption="../report/dose_response_table.rst",
            category="Tables",
            labels={"table": "dose-response"},
        ),
        md="results/tables/dose_response.md",
    params:
        strengths=dose_response_methods(study),
        seeds=study["seeds"],
    log:
        "results/logs/dose_response_table.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/dose_response_table.py"


rule dose_response:
    """The trained dose-response: its table and figure (snakemake --cores all dose_response)."""
    input:
        dose_response_targets(),


rule factorial_table:
    input:
        metrics=factorial_files(),
        code=code("factorial_table.py", data=("reference/paper_table.csv",)),
    output:
        csv=report(
            "results/tables/factorial.csv",
            caption="../report/factorial.rst",
            category="Factorial",
            labels={"table": "factorial cells"},
        ),
        readings="results/tables/factorial_readings.csv",
        text=report("results/factorial.txt", caption="../report/factorial.rst", category="Factorial"),
    params:
        experiments=FACTORIAL["experiments"],
        cells=[[arm, temperature] for arm, temperature in FACTORIAL_CELLS],
        seeds=study["seeds"],
        baseline=FACTORIAL["baseline"],
        method=FACTORIAL["method"],
        references={e: REFERENCES.get(final_evaluation(e)) for e in FACTORIAL["experiments"]},
        claims={key: study["claims"][key] for key in ("confidence", "margin_fraction")},
    log:
        "results/logs/factorial_table.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/factorial_table.py"


rule factorial:
    """The factorial: its table, readings and figure (snakemake --cores all factorial)."""
    input:
        factorial_targets(),


rule decide_metrics:
    input:
        embeddings=lambda wildcards: embeddings_path(wildcards.experiment, wildcards.method, wildcards.seed),
        code=code("decide_metrics.py"),
    output:
        "results/decide/metrics/{experiment}/{method}/seed{seed}.json",
    params:
        retrieval=lambda wildcards: experiment_by_name(study, wildcards.experiment)["retrieval"],
        options=canonical(study["evaluate"]),
        epochs=lambda wildcards: trained_epochs(final_evaluation(wildcards.experiment)),
    wildcard_constraints:
        experiment=one_of(TRAINED),
    log:
        "results/logs/decide/metrics/{experiment}/{method}/seed{seed}.log",
    benchmark:
        "results/benchmarks/decide/metrics/{experiment}/{method}/seed{seed}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/decide_metrics.py"


checkpoint decide_round:
    input:
        unpack(decide_round_inputs),
        code=code("decide_round.py", data=("reference/paper_table.csv",)),
    output:
        "results/decide/round{round}.json",
    params:
        design=canonical(study["decide"]),
        comparisons=DECIDED_COMPARISONS,
        claims=canonical(study["claims"]),
        references={e: REFERENCES.get(final_evaluation(e)) for e, _, _ in DECIDED_COMPARISONS},
    wildcard_constraints:
        round=r"\d+",
    log:
        "results/logs/decide/round{round}.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/decide_round.py"


rule decide_report:
    input:
        last=decide_last_round,
        code=code("decide_report.py"),
    output:
        text=report(DECIDE_REPORT, caption="../report/decide.rst", category="Claims"),
        table=DECIDE_TABLE,
    params:
        design=canonical(study["decide"]),
        claims=canonical(study["claims"]),
        labels=LABELS,
    log:
        "results/logs/decide/report.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/decide_report.py"


rule decide:
    """Seeds planned to decide: rounds of seeds until every check is decided or the cap (snakemake --cores all
    decide)."""
    input:
        DECIDE_REPORT,


rule regime_map_outputs:
    input:
        verdict=VERDICT_TABLE,
        code=code("regime_map.py"),
    output:
        csv=report("results/tables/regime_map.csv", caption="../report/regime_map.rst", category="Regime map"),
        md="results/tables/regime_map.md",
        pdf="results/figures/regime_map.pdf",
        png=report("results/figures/regime_map.png", caption="../report/regime_map.rst", category="Regime map"),
    params:
        baseline=study["claims"]["baseline"],
        knobs={e["name"]: resolve_model(e["name"])["towers"]["image"].get("patch_size") for e in study["experiments"]},
        modality_counts=MODALITY_COUNTS,
        labels=DISPLAY_NAMES,
    log:
        "results/logs/regime_map.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/regime_map.py"


rule regime_map:
    """The regime map's table and figure (snakemake --cores all --configfile presets/regime_map.yaml regime_map)."""
    input:
        rules.regime_map_outputs.output,


rule calibration_outputs:
    input:
        runs=rules.tables.output.runs_csv,
        code=code("calibration.py", data=("reference/paper_table.csv",)),
    output:
        csv=report("results/tables/calibration.csv", caption="../report/calibration.rst", category="Calibration"),
        md="results/tables/calibration.md",
    params:
        ladders=ladders(study),
        settings=CALIBRATION_SETTINGS,
        learnable=[m for m in CALIBRATION_SETTINGS if study["methods"][m]["temperature"]["learnable"]],
        knobs={e["name"]: resolve_model(e["name"])["towers"]["image"].get("patch_size") for e in study["experiments"]},
        modality_counts={e["name"]: len(e["modalities"]) for e in study["experiments"]},
        references={e["name"]: e["paper_reference"] for e in study["experiments"]},
        margins={
            e["name"]: cell_margins(e["paper_reference"], study["claims"], study["calibration"])
            for e in study["experiments"]
        },
        rule=study["calibration"],
        alpha=1.0 - study["claims"]["confidence"],
        labels=DISPLAY_NAMES,
    log:
        "results/logs/calibration.log",
    conda:
        ANALYSIS_ENV
    script:
        "../scripts/calibration.py"


rule calibration:
    """The regime calibration's table and choice (snakemake --cores all calibration --configfile
    presets/regime_calibration.yaml)."""
    input:
        rules.calibration_outputs.output,
