"""Tables: per-run metrics aggregated over seeds, the paper's numbers beside ours, the ablation, and
the trained dose-response.

``runs.csv`` holds one row per (experiment, method, seed): every metric and
whether the run collapsed. ``main.csv`` holds one row per (experiment, method)
with ``n_seeds``, ``n_collapsed`` and, for
every metric, ``<metric>`` (mean over seeds) and ``<metric>_std`` (sample standard
deviation; 0 for a single seed).

Paired R@1 columns, one naming rule (``paired_r1_column``): the R@1 of two modalities a and b is
the mean of both retrieval directions (``r1_<a>_<b>``, ``r1_<b>_<a>``); text with image and text with
audio keep the paper's names, ``tv_r1`` and ``ta_r1``; any other pair is ``pair_r1_<a>_<b>``, a the
modality whose retrieval column comes first (the retrieval anchor). The claims check compares every
paired R@1 column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from modgap.embeddings.fingerprints import ItemSet, one_test_set
from modgap.errors import corrupt
from modgap.io import write_text
from modgap.study.display import method_label
from modgap.verdict.evidence import value_problem

# The paper's names of paired R@1 columns: modalities -> (column, label).
PAPER_PAIRS = {frozenset(("text", "image")): ("tv_r1", "TV R@1"), frozenset(("text", "audio")): ("ta_r1", "TA R@1")}
_PAIR_PREFIX = "pair_r1_"
# The paper's headline columns: key, label, whether lower is better.
PAPER_COLUMNS = [
    ("gap", "Gap", True),
    ("tv_r1", "TV R@1", False),
    ("ta_r1", "TA R@1", False),
    ("v_measure_released", "V-Measure", False),
    ("knn_acc_released", "kNN", False),
]
# The paper's tables hold the released protocol's figures (one k-means random state, one kNN split); the
# claims read the low-variance ones under the plain names (modgap.metrics.per_run.low_variance_scores).
PAPER_PROTOCOL = {"v_measure": "v_measure_released", "knn_acc": "knn_acc_released"}
ABLATION_METHODS = ("clip_lt", "ours_atp", "ours_cu", "ours", "ours_schedule", "ours_released")
_IDENTITY = ("experiment", "method", "seed", "retrieval", "notes", "collapsed")
COLLAPSED = "‡"
FLAG_NOTES = f"{COLLAPSED} some runs collapsed (the encoder cannot tell inputs apart; evaluate.collapse)."


# Keys every per-seed metrics record holds; the first group is always finite, the second may be NaN
# only where the record's notes say why (too few labels for clustering or kNN).
ALWAYS_FINITE = ("gap", "cos_true_pairs", "r1_mean", "r1_chance", "epochs")
FINITE_UNLESS_NOTED = ("v_measure", "knn_acc")
FLAGS = ("collapsed",)


def _record_problem(record: Mapping, index: int) -> str | None:
    """Why one per-seed record cannot enter a table (None: it can)."""
    missing = [k for k in (*ALWAYS_FINITE, *FINITE_UNLESS_NOTED, *FLAGS) if k not in record]
    if missing:
        return f"record {index} (seed {record.get('seed')}) lacks {', '.join(missing)}"
    for key in (*ALWAYS_FINITE, *FINITE_UNLESS_NOTED):
        if key == "epochs" and record[key] is None:
            continue  # trained elsewhere: the budget is not known
        problem = value_problem(key, record[key], key in FINITE_UNLESS_NOTED and bool(record.get("notes")))
        if problem:
            return f"record {index} (seed {record['seed']}): {problem}"
    return None


def read_metrics(path: str | Path, seeds: Iterable[int] | None = None) -> list[dict]:
    """The per-seed records of one metrics file (modgap.metrics.per_run.evaluate_method), validated.

    Every record names one experiment and method, holds every metric key, and has finite values
    (group-wise ones may be NaN where its notes explain why). With ``seeds``, the file holds exactly
    one record per seed. Anything else is a damaged intermediate: the error names the file and the
    command that rebuilds it, so a short or truncated file never reaches a table or a verdict.
    """
    try:
        with open(path) as handle:
            records = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise corrupt(path, "metrics file", error) from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "method" in r for r in records):
        raise corrupt(path, "metrics file", "not a list of per-seed metric records")
    if len({(r.get("experiment"), r.get("method")) for r in records}) > 1:
        raise corrupt(path, "metrics file", "records of more than one experiment or method")
    found = [r.get("seed") for r in records]
    # compared as the same text on both sides: seed 10 sorts before 2 there, and "1" is not 1
    if seeds is not None and sorted(found, key=repr) != sorted(seeds, key=repr):
        raise corrupt(path, "metrics file", f"seeds {found}, the study has {sorted(seeds)}")
    for index, record in enumerate(records):
        problem = _record_problem(record, index)
        if problem:
            raise corrupt(path, "metrics file", problem)
    return records


def load_runs(paths: Iterable[str | Path], seeds: Iterable[int] | None = None) -> pd.DataFrame:
    """One row per run of every metrics file (each validated, with ``seeds`` the study's seeds), with the
    derived paper columns tv_r1 and ta_r1. The runs of one experiment must share one test set (their records'
    fingerprints, modgap.verdict.evidence): a run measured on other items is refused, never compared."""
    seeds = None if seeds is None else list(seeds)
    return load_runs_of([(path, seeds) for path in paths])


def load_runs_of(files: Iterable[tuple[str | Path, Sequence[int] | None]]) -> pd.DataFrame:
    """``load_runs`` of (metrics file, the seeds it must hold) pairs: one seed's file each, for instance."""
    read = [(path, record) for path, seeds in files for record in read_metrics(path, seeds)]
    for experiment in dict.fromkeys(record["experiment"] for _, record in read):
        one_test_set(
            (f"{path} (seed {record['seed']})", ItemSet.recorded(record))
            for path, record in read
            if record["experiment"] == experiment
        )
    return runs_frame([record for _, record in read])


def paired_r1_column(a: str, b: str) -> str:
    """The column of the paired R@1 of modalities ``a`` and ``b`` (the module's naming rule)."""
    return PAPER_PAIRS.get(frozenset((a, b)), (f"{_PAIR_PREFIX}{a}_{b}",))[0]


def paired_r1_columns(columns: Iterable[str]) -> dict[str, str]:
    """The paired R@1 columns among ``columns``, with their labels: the paper's first."""
    columns = list(columns)
    paper = {column: label for column, label in PAPER_PAIRS.values() if column in columns}
    others = {c: f"R@1 {c.removeprefix(_PAIR_PREFIX)}" for c in columns if c.startswith(_PAIR_PREFIX)}
    return paper | others


def _measured_both_ways(columns: Iterable[str]) -> list[tuple[str, str]]:
    """(a, b) of every two modalities with R@1 columns both ways, ``r1_<a>_<b>`` first: the paper's pairs
    first, then in the order of the columns."""
    columns, pairs = list(columns), []
    for column in (c for c in columns if c.startswith("r1_")):
        name = column.removeprefix("r1_")
        for a, b in ((name[:i], name[i + 1 :]) for i, letter in enumerate(name) if letter == "_"):
            if a != b and f"r1_{b}_{a}" in columns and {a, b} not in map(set, pairs):
                pairs.append((a, b))
    paper = list(PAPER_PAIRS)
    return sorted(pairs, key=lambda pair: paper.index(frozenset(pair)) if frozenset(pair) in paper else len(paper))


def runs_frame(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per per-seed record, notes joined into one string, with a paired R@1 column for every two
    modalities measured both ways (``paired_r1_column``)."""
    frame = pd.DataFrame(list(records))
    if "notes" in frame:
        frame["notes"] = frame["notes"].map(lambda notes: "; ".join(notes) if isinstance(notes, list) else notes)
    for a, b in _measured_both_ways(frame.columns):
        frame[paired_r1_column(a, b)] = frame[[f"r1_{a}_{b}", f"r1_{b}_{a}"]].mean(axis=1)
    return frame


def aggregate(runs: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Mean and sample standard deviation over seeds of every numeric metric, with the number of seeds, of
    collapsed runs, the runs' notes and each method's display ``label`` (``labels``: the study's display
    names, modgap.study.display). Rows in the order the runs come, which the workflow lists in the configuration's
    order."""
    metrics = [c for c in runs.columns if c not in _IDENTITY and pd.api.types.is_numeric_dtype(runs[c])]
    grouped = runs.groupby(["experiment", "method"], sort=False)
    means = grouped[metrics].mean()
    stds = grouped[metrics].std(ddof=1).fillna(0.0).add_suffix("_std")
    counts = [grouped.size().rename("n_seeds")]
    if "collapsed" in runs:
        counts.append(grouped["collapsed"].agg(lambda v: int(v.astype(bool).sum())).rename("n_collapsed"))
    if "notes" in runs:
        counts.append(grouped["notes"].agg(lambda n: "; ".join(sorted({x for x in n.dropna() if x}))).rename("notes"))
    table = pd.concat([*counts, means, stds], axis=1)
    leading = [c.name for c in counts]
    table = table[leading + [c for m in metrics for c in (m, f"{m}_std")]].reset_index()
    table.insert(2, "label", [method_label(m, labels) for m in table["method"]])
    return table


def flagged_label(row: pd.Series) -> str:
    """The method's label (the table's ``label`` column where it has one) with the mark for collapsed runs."""
    label = row["label"] if isinstance(row.get("label"), str) else method_label(row["method"])
    if "n_collapsed" in row and row["n_collapsed"] > 0:
        label += COLLAPSED
    return label


def _cell(mean: float, std: float, digits: int, bold: bool = False, latex: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return "–"
    text = f"{mean:.{digits}f} ± {std:.{digits}f}" if not latex else f"{mean:.{digits}f} $\\pm$ {std:.{digits}f}"
    if bold:
        text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
    return text


def _digits(column: str) -> int:
    """Decimals shown: distances and cosines in 3, percentages in 1."""
    return 3 if column == "gap" or column.startswith("cos") else 1


def _best(frame: pd.DataFrame, column: str, lower: bool) -> set[int]:
    """Row positions holding the best mean of a column (ties included)."""
    if column not in frame or frame[column].isna().all():
        return set()
    target = frame[column].min() if lower else frame[column].max()
    return set(np.flatnonzero(np.isclose(frame[column].to_numpy(dtype=float), target)))


def paper_layout_markdown(table: pd.DataFrame) -> str:
    """The headline table as Markdown, one block per experiment, best value in bold, flagged runs marked."""
    lines = []
    for experiment, block in table.groupby("experiment", sort=False):
        block = block.reset_index(drop=True)
        columns = [c for c in PAPER_COLUMNS if c[0] in block]
        lines += [f"### {experiment}", "", "| method | seeds | " + " | ".join(label for _, label, _ in columns) + " |"]
        lines.append("|---|---|" + "---|" * len(columns))
        best = {key: _best(block, key, lower) for key, _, lower in columns}
        for i, row in block.iterrows():
            cells = [_cell(row[key], row[f"{key}_std"], _digits(key), i in best[key]) for key, _, _ in columns]
            lines.append(f"| {flagged_label(row)} | {row['n_seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(FLAG_NOTES)
    lines += [
        f"Note ({row.experiment}, {row.method}): {row.notes}" for row in table.itertuples() if getattr(row, "notes", "")
    ]
    return "\n".join(lines) + "\n"


def paper_layout_latex(table: pd.DataFrame) -> str:
    """The headline table as a booktabs LaTeX tabular laid out like the paper's."""
    columns = [c for c in PAPER_COLUMNS if c[0] in table]
    arrows = {True: "$\\downarrow$", False: "$\\uparrow$"}
    header = " & ".join(["Method", "Data set"] + [f"{label} {arrows[lower]}" for _, label, lower in columns])
    lines = [
        "\\begin{tabular}{ll" + "c" * len(columns) + "}",
        "\\toprule",
        header + " \\\\",
        "\\midrule",
    ]
    for index, (experiment, block) in enumerate(table.groupby("experiment", sort=False)):
        block = block.reset_index(drop=True)
        best = {key: _best(block, key, lower) for key, _, lower in columns}
        if index:
            lines.append("\\midrule")
        for i, row in block.iterrows():
            cells = [
                _cell(row[key], row[f"{key}_std"], _digits(key), i in best[key], latex=True) for key, _, _ in columns
            ]
            name = experiment.replace("_", "\\_")
            lines.append(" & ".join([flagged_label(row), name] + cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def paper_reference() -> pd.DataFrame:
    """The paper's headline numbers (shipped with the package as data)."""
    with resources.files("modgap").joinpath("reference/paper_table.csv").open() as handle:
        return pd.read_csv(handle)


def paper_comparison(table: pd.DataFrame, references: Mapping[str, str | None]) -> pd.DataFrame:
    """Our numbers beside the paper's, for experiments that name a ``paper_reference``."""
    reference = paper_reference().rename(columns={"knn": "knn_acc"})
    metrics = ["gap", "tv_r1", "ta_r1", "v_measure", "knn_acc", "cos_true_pairs"]
    rows = []
    for _, row in table.iterrows():
        dataset = references.get(row["experiment"])
        match = reference[(reference["dataset"] == dataset) & (reference["method"] == row["method"])]
        if dataset is None or match.empty:
            continue
        entry = {
            "experiment": row["experiment"],
            "method": row["method"],
            "label": row.get("label"),
            "paper_dataset": dataset,
        }
        for metric in metrics:
            ours = PAPER_PROTOCOL.get(metric, metric)
            entry[f"{metric}_ours"] = row.get(ours, np.nan)
            entry[f"{metric}_ours_std"] = row.get(f"{ours}_std", np.nan)
            entry[f"{metric}_paper"] = match.iloc[0][metric]
        rows.append(entry)
    columns = ["experiment", "method", "label", "paper_dataset"] + [
        f"{metric}_{part}" for metric in metrics for part in ("ours", "ours_std", "paper")
    ]
    return pd.DataFrame(rows, columns=columns)  # the header even when no experiment names a reference


def paper_comparison_markdown(comparison: pd.DataFrame) -> str:
    if comparison.empty:
        return "No experiment names a `paper_reference`, so there is nothing to compare.\n"
    metrics = [
        ("gap", "Gap"),
        ("tv_r1", "TV R@1"),
        ("ta_r1", "TA R@1"),
        ("v_measure", "V-Measure"),
        ("knn_acc", "kNN"),
        ("cos_true_pairs", "CosTP"),
    ]
    lines = [
        "Ours = this replication (mean ± std over seeds); paper = the paper's reported value.",
        "",
        "| experiment | paper data set | method | "
        + " | ".join(f"{label} ours | {label} paper" for _, label in metrics)
        + " |",
        "|---|---|---|" + "---|---|" * len(metrics),
    ]
    for _, row in comparison.iterrows():
        cells = []
        for key, _ in metrics:
            cells.append(_cell(row[f"{key}_ours"], row[f"{key}_ours_std"], _digits(key)))
            paper = row[f"{key}_paper"]
            cells.append("–" if pd.isna(paper) else f"{paper:g}")  # as printed in the paper
        lines.append(
            f"| {row['experiment']} | {row['paper_dataset']} | {flagged_label(row)} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def ablation(table: pd.DataFrame) -> pd.DataFrame:
    """CLIP (LT) vs each of ours' terms alone vs both, per experiment."""
    keep = table[table["method"].isin(ABLATION_METHODS)].copy()
    keep["order"] = keep["method"].map({m: i for i, m in enumerate(ABLATION_METHODS)})
    leading = [c for c in ("experiment", "method", "label", "n_seeds", "n_collapsed") if c in keep]
    columns = leading + [c for key, _, _ in PAPER_COLUMNS if key in keep for c in (key, f"{key}_std")]
    return keep.sort_values(["experiment", "order"], kind="stable")[columns].reset_index(drop=True)


def dose_response(table: pd.DataFrame, strengths: Mapping[float, str]) -> pd.DataFrame:
    """The aggregated rows of the dose-response methods, one per strength, in strength order."""
    rows = table.set_index("method")
    frame = pd.DataFrame(
        [
            {"strength": float(strength), "method": method, **rows.loc[method].to_dict()}
            for strength, method in strengths.items()
        ]
    )
    return frame.sort_values("strength", kind="stable").reset_index(drop=True)


def dose_response_markdown(frame: pd.DataFrame) -> str:
    columns = [c for c in PAPER_COLUMNS if c[0] in frame]
    lines = [
        f"### {frame['experiment'].iloc[0]}: gap terms scaled by λ",
        "",
        "| λ | method | seeds | " + " | ".join(label for _, label, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for _, row in frame.iterrows():
        cells = [_cell(row[key], row[f"{key}_std"], _digits(key)) for key, _, _ in columns]
        lines.append(f"| {row['strength']:g} | {flagged_label(row)} | {row['n_seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", FLAG_NOTES]) + "\n"


def write_dose_response(
    metric_paths: Iterable[str | Path],
    strengths: Mapping[float, str],
    csv_path,
    md_path,
    seeds: Iterable[int] | None = None,
) -> pd.DataFrame:
    """Write the dose-response table (csv and Markdown) from the metrics of its methods."""
    frame = dose_response(aggregate(load_runs(metric_paths, seeds)), strengths)
    write_text(csv_path, frame.to_csv(index=False))
    write_text(md_path, dose_response_markdown(frame))
    return frame


def write_tables(
    metric_paths: Iterable[str | Path],
    outputs: Mapping[str, str | Path],
    references: Mapping[str, str | None],
    seeds: Iterable[int] | None = None,
    definitions: Mapping[str, str] | None = None,
    provenance: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Write runs.csv, main.{csv,md,tex}, paper_comparison.{csv,md} and ablation.{csv,md}; returns the main table.

    ``seeds``: the study's seeds, which every metrics file must hold (see read_metrics). ``definitions``:
    ``<evaluation>/<method>`` -> the digest of what its runs depend on (modgap.study.plan.definition_digest),
    kept in runs.csv's ``definition`` column. ``provenance``: a line naming the configuration, closing main.md.
    ``labels``: the configuration's display names of its methods."""
    runs = load_runs(metric_paths, seeds)
    if definitions is not None:
        keys = runs["experiment"] + "/" + runs["method"]
        runs.insert(3, "definition", keys.map(definitions))
    write_text(outputs["runs_csv"], runs.to_csv(index=False))
    table = aggregate(runs.drop(columns=["definition"], errors="ignore"), labels)
    write_text(outputs["main_csv"], table.to_csv(index=False))
    write_text(outputs["main_md"], paper_layout_markdown(table) + (f"\n{provenance}\n" if provenance else ""))
    write_text(outputs["main_tex"], paper_layout_latex(table))
    comparison = paper_comparison(table, references)
    write_text(outputs["comparison_csv"], comparison.to_csv(index=False))
    write_text(outputs["comparison_md"], paper_comparison_markdown(comparison))
    ablation_table = ablation(table)
    write_text(outputs["ablation_csv"], ablation_table.to_csv(index=False))
    ablation_md = (
        paper_layout_markdown(ablation_table)
        if len(ablation_table)
        else (
            f"No experiment runs the ablation's methods ({', '.join(ABLATION_METHODS)}), so there is nothing to compare.\n"
        )
    )
    write_text(outputs["ablation_md"], ablation_md)
    return table
