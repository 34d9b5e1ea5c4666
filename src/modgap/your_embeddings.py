"""Embeddings made elsewhere, measured: one set with the study's whole metric set (``evaluate``, ``markdown``:
``modgap evaluate``), and one model's per-seed sets against a baseline's, paired by file name, through the
claims check (``compare``: ``modgap compare``). Files are read and checked by modgap.embeddings.external_files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from modgap.embeddings.external_files import FORMATS, MAX_ARRAY_BYTES, EmbeddingFileError, Embeddings, load, refuse
from modgap.embeddings.fingerprints import distinct_runs, embeddings_digest, one_test_set
from modgap.metrics.per_run import is_collapsed, measure

# The metric options a result records beside its numbers.
REPORTED_OPTIONS = (
    "recall_at",
    "kmeans_k",
    "kmeans_n_init",
    "kmeans_random_state",
    "kmeans_states",
    "knn_k",
    "knn_test_fraction",
    "knn_seed",
    "knn_split",
    "knn_loo_queries",
)


def evaluate(
    embeddings: Embeddings, options, *, level: str = "instance", anchor: str | None = None, progress=lambda stage: None
) -> dict:
    """The whole metric set of checked embeddings (modgap.metrics.per_run.measure), with what was measured."""
    names = list(embeddings.modalities)
    anchor = anchor or ("text" if "text" in names else names[0])
    if anchor not in names:
        raise refuse(embeddings.source, f"no modality '{anchor}' to retrieve from (it has {', '.join(names)})")
    if level == "class" and embeddings.labels is None:
        raise refuse(embeddings.source, "class-level retrieval needs labels (an array 'labels', or --labels)")
    results = {
        "source": embeddings.source,
        "n_items": embeddings.n_items,
        "width": embeddings.width,
        "modalities": names,
        "anchor": anchor,
        "retrieval": level,
    }
    if embeddings.labels is not None:
        results["n_labelled"] = int((embeddings.labels >= 0).sum())
    measured = measure(
        embeddings.modalities,
        embeddings.labels,
        level,
        options,
        anchor=anchor,
        progress=progress,
        text_captions=embeddings.captions,
        text_caption_item=embeddings.caption_item,
    )
    notes = embeddings.notes + measured.pop("notes")
    results.update(measured)
    results["collapsed"] = is_collapsed(results, options["collapse"])
    results["notes"] = notes
    results["options"] = {key: options[key] for key in REPORTED_OPTIONS}
    return results


def _starts(n_init: int) -> str:
    return "one k-means++ start" if n_init == 1 else f"the best of {n_init} k-means++ starts"


def _number(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:{'+' if signed else ''}.{digits}f}"


def markdown(results: dict) -> str:
    """The results of ``evaluate`` as a Markdown report."""
    names = results["modalities"]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    lines = [
        f"# Embeddings of {results['source']}",
        "",
        f"{results['n_items']} items x {results['width']}-d, modalities {', '.join(names)}; retrieval at the "
        f"{results['retrieval']} level from '{results['anchor']}'.",
    ]
    if results["notes"]:
        lines += ["", *[f"- note: {note}" for note in results["notes"]]]
    if results["collapsed"]:
        lines += [
            "",
            "- **collapsed**: the encoder cannot tell inputs apart (retrieval below twice chance, or one "
            "modality's rows all one point)",
        ]
    lines += [
        "",
        "## Gap (per modality pair)",
        "",
        "| pair | centroid distance (L2M) | true-pair distance (L2I) | RMG | true-pair cosine | pair alignment |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    keys = ("gap", "true_pair_distance", "rmg", "cos_true_pairs", "pair_alignment")
    for a, b in pairs:
        lines.append(f"| {a}-{b} | " + " | ".join(_number(results[f"{key}_{a}_{b}"], 3) for key in keys) + " |")
    if len(pairs) > 1:
        lines.append("| mean | " + " | ".join(_number(results[key], 3) for key in keys) + " |")
    lines += [
        "",
        "A small centroid distance says the modalities share a centre, not that their pairs meet: pair alignment "
        "is 1 where every pair coincides and 0 where a pair is no closer than two unrelated items.",
    ]
    lines += [
        "",
        "## Spread (per modality)",
        "",
        "| modality | mean intra-modality cosine | uniformity (t = 2) |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {m} | {_number(results[f'intra_cos_{m}'], 3)} | {_number(results[f'uniformity_{m}'], 3)} |" for m in names
    ]
    ks = results["options"]["recall_at"]
    lines += [
        "",
        f"## Retrieval ({results['retrieval']} level, percent; chance R@1 {_number(results['r1_chance'])})",
        "",
        "| query -> target | " + " | ".join(f"R@{k}" for k in ks) + " |",
        "|---|" + "---:|" * len(ks),
    ]
    anchor = results["anchor"]
    for other in (m for m in names if m != anchor):
        for query, target in ((anchor, other), (other, anchor)):
            lines.append(
                f"| {query} -> {target} | "
                + " | ".join(_number(results.get(f"r{k}_{query}_{target}"), 1) for k in ks)
                + " |"
            )
    lines += ["", "## Group-wise (percent)", ""]
    if "n_labelled" not in results or not results["n_labelled"]:
        lines.append("Skipped: no labels.")
    else:
        k = int(results["kmeans_k"]) if not math.isnan(results.get("kmeans_k", math.nan)) else "-"
        options = results["options"]
        lines += [
            f"KMeans k = {k} on all modalities' labelled rows, each clustering {_starts(options['kmeans_n_init'])}: "
            f"the mean and SD over {options['kmeans_states']} random states, and "
            f"the first state alone (the released protocol). kNN ({options['knn_k']} neighbours): leave-one-out "
            f"over the stacked points ({options['knn_split']} left out), and on one {options['knn_split']} split "
            f"(seed {options['knn_seed']}, the released protocol). Centred: every modality moved onto the common "
            "centroid and re-normalised (the post-hoc shift at strength 1); the gap's cost is centred minus as is.",
            "",
            "| score | as is (mean ± evaluation SD) | centred | gap's cost | released protocol |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, key in (("V-Measure", "v_measure"), ("NMI", "nmi"), ("ARI", "ari")):
            cost = results[f"centred_{key}"] - results[key]
            released = _number(results["v_measure_released"], 1) if key == "v_measure" else "-"
            lines.append(
                f"| {label} | {_number(results[key], 1)} ± {_number(results[f'{key}_sd'], 1)} "
                f"| {_number(results[f'centred_{key}'], 1)} | {_number(cost, 1, signed=True)} | {released} |"
            )
        lines.append(
            f"| kNN | {_number(results['knn_acc'], 1)} ± {_number(results['knn_acc_sd'], 1)} "
            f"| {_number(results['centred_knn_acc'], 1)} | {_number(results['gap_cost_knn'], 1, signed=True)} "
            f"| {_number(results['knn_acc_released'], 1)} |"
        )
        per_modality = [m for m in names if f"knn_acc_{m}" in results]
        if per_modality:
            lines += [
                "",
                "Leave-one-out kNN by the query's modality: "
                + ", ".join(f"{m} {_number(results[f'knn_acc_{m}'], 1)}" for m in per_modality)
                + ".",
            ]
    return "\n".join(lines) + "\n"


def paired_files(baseline: str | Path, method: str | Path) -> list[tuple[str, Path, Path]]:
    """(run name, baseline file, method file) for every embedding file of two folders, paired by file name
    (one file per seed); a file without its partner is refused."""
    if Path(baseline).resolve() == Path(method).resolve():
        raise EmbeddingFileError(f"{method}: the baseline's folder too; a model compared with itself has no verdict")
    found = {}
    for folder in (Path(baseline), Path(method)):
        if not folder.is_dir():
            raise EmbeddingFileError(f"{folder}: not a folder of embedding files")
        found[folder] = {
            p.name: p
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in FORMATS and p.suffix.lower() != ".npy"
        }
        if not found[folder]:
            raise EmbeddingFileError(
                f"{folder}: no embedding file ({', '.join(f for f in FORMATS if f != '.npy')}; one per seed)"
            )
    (first, a), (second, b) = found.items()
    for folder, names, other in ((first, a, b), (second, b, a)):
        lonely = sorted(set(names) - set(other))
        if lonely:
            partner = second if folder == first else first
            raise EmbeddingFileError(
                f"{folder / lonely[0]}: no file of the same name in {partner} (runs pair by file name)"
            )
    return [(Path(name).stem, a[name], b[name]) for name in a]


def compare(
    baseline: str | Path,
    method: str | Path,
    options,
    claims,
    *,
    level: str = "instance",
    anchor: str | None = None,
    modalities: Sequence[str] | None = None,
    budget: int | None = None,
    experiment: str = "external",
    paper_reference: str | None = None,
    max_array_bytes: int = MAX_ARRAY_BYTES,
    progress=lambda stage: None,
):
    """The claims check of one method's per-seed embeddings against a baseline's: (verdicts report, runs
    table). ``claims``: the check's options (modgap.verdict.decision), whose ``baseline`` and ``methods`` name the
    two folders; ``paper_reference``: the paper's data set whose effects set the margins (modgap.verdict.paper). Every
    file must hold the first one's modalities and test set (modgap.verdict.evidence.one_test_set), and no two files of
    one folder the same embeddings (modgap.verdict.evidence.distinct_runs)."""
    records, first = [], None
    fingerprints: dict[str, list[tuple[str, str]]] = {claims["baseline"]: [], claims["methods"][0]: []}
    for run, *files in paired_files(baseline, method):
        for name, path in zip((claims["baseline"], claims["methods"][0]), files):
            progress(str(path))
            embeddings = load([path], modalities=modalities, budget=budget, max_array_bytes=max_array_bytes)
            found = list(embeddings.modalities)
            if first is None:
                first = path, found, embeddings.item_set
            elif found != first[1]:
                raise refuse(
                    path,
                    f"holds {', '.join(found)}, {first[0]} {', '.join(first[1])}: paired runs "
                    "must measure the same modalities",
                )
            one_test_set([(str(first[0]), first[2]), (str(path), embeddings.item_set)])
            fingerprints[name].append((str(path), embeddings_digest(embeddings.modalities)))
            distinct_runs(fingerprints[name])
            record = evaluate(embeddings, options, level=level, anchor=anchor)
            records.append({"experiment": experiment, "method": name, "seed": run, **record})
    # the verdict's modules (scipy.stats, pandas) load here, not at import: `modgap evaluate` starts 0.7 s sooner
    from modgap.verdict.decision import check_claims
    from modgap.verdict.report import format_report
    from modgap.verdict.tables import runs_frame

    frame = runs_frame(records).drop(columns=["options", "modalities"])
    families = check_claims(frame, claims, references={experiment: paper_reference})
    return format_report(families, claims), frame
