"""Per-run evaluation: every metric of docs/workflow.md, "Metrics" from one embedding dump, plus whether the run
collapsed.

Retrieval, V-Measure and kNN are in percent, as in the paper. A metric that the
labels cannot support (too few labelled test items, a single class) is NaN, with
a warning in the job's log and a ``notes`` entry in the run's record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from modgap.embeddings.dumps import (
    CAPTION_ITEM,
    CAPTIONS,
    CLASS_NAMES,
    IDS,
    LABELS,
    load_method_dump,
    modality_embeddings,
    posthoc_shift,
    shift_dump,
)
from modgap.embeddings.fingerprints import ItemSet, distinct_runs, embeddings_digest
from modgap.io import write_json
from modgap.metrics import low_variance, measures
from modgap.metrics.measures import KnnProtocol

log = logging.getLogger(__name__)

# Fewer labelled test items per cluster than this and clustering scores are not computed.
MIN_ITEMS_PER_CLUSTER = 5
# Why group-wise metrics of labels of a single class are not computed.
ONE_CLASS = "the labelled test items hold one class, so there is nothing to tell apart"


def linear_probe_accuracy(points: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Logistic regression on a seeded 60/20/20 split; C chosen on the validation part (percent)."""
    # only with evaluate.linear_probe on: scikit-learn is not imported otherwise
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    train_x, rest_x, train_y, rest_y = train_test_split(points, labels, test_size=0.4, random_state=seed)
    val_x, test_x, val_y, test_y = train_test_split(rest_x, rest_y, test_size=0.5, random_state=seed)
    best = None
    for c in (0.01, 0.1, 1.0, 10.0, 100.0):
        model = LogisticRegression(C=c, max_iter=2000).fit(train_x, train_y)
        score = model.score(val_x, val_y)
        if best is None or score > best[0]:
            best = (score, c, model)
    return {"linear_probe_acc": 100.0 * best[2].score(test_x, test_y), "linear_probe_c": best[1]}


def chance_r1(labels: np.ndarray, level: str, n_items: int) -> float:
    """R@1 (percent) of a retrieval that ignores its query: 1/N for instances, sum of squared class
    shares among the labelled items for classes."""
    if level == "instance":
        return 100.0 / max(1, n_items)
    labelled = labels[labels >= 0]
    if labelled.size == 0:
        return float("nan")
    shares = np.bincount(labelled) / labelled.size
    return float(100.0 * np.sum(shares**2))


def knn_protocol(labels: np.ndarray, n_modalities: int, options: Mapping) -> tuple[KnnProtocol | None, str]:
    """The kNN protocol of ``options``, or None with the reason why the labelled test points cannot support
    it: a single class (nothing to tell apart), or too few points for its neighbours and a test part."""
    items = int((labels >= 0).sum())
    labelled = items * n_modalities
    if options["knn_split"] == "item":  # whole items are held out, every modality of each
        n_test = measures.test_size(items, options["knn_test_fraction"]) * n_modalities
    else:
        n_test = measures.test_size(labelled, options["knn_test_fraction"])
    if len(np.unique(labels[labels >= 0])) < 2:
        return None, f"kNN skipped: {ONE_CLASS}"
    if n_test < 1 or labelled - n_test < options["knn_k"]:
        return (
            None,
            f"kNN skipped: {labelled} labelled points cannot hold {options['knn_k']} neighbours and a test part",
        )
    protocol = KnnProtocol(options["knn_k"], options["knn_test_fraction"], options["knn_seed"], options["knn_split"])
    return protocol, ""


def labelled_metrics(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    retrieval: str,
    options: Mapping,
    ks: Sequence[int] | None = None,
    text_captions: np.ndarray | None = None,
    text_caption_item: np.ndarray | None = None,
    anchor: str = "text",
    progress: Callable[[str], None] = lambda stage: None,
    gap_cost: bool = True,
) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Retrieval R@k (``ks``, default ``options['recall_at']``) between the ``anchor`` modality and every
    other, KMeans scores, kNN and the optional probe of one set of embeddings: (recalls, group-wise results,
    notes on what the labels could not support). ``progress`` is told each stage as it starts. With
    ``gap_cost``, the low-variance scores are measured again after centring every modality on the common
    centroid (the post-hoc shift at strength 1), and what the gap costs is their difference.

    Retrieval and kNN share their similarity products. KMeans k is ``options['kmeans_k']`` or the number of
    classes present among the labelled test items.
    """
    knn, knn_skipped = knn_protocol(labels, len(embeddings), options)
    progress("retrieval" + (" and kNN (shared products)" if knn else ""))
    recalls, knn_acc = measures.retrieval_and_knn(
        embeddings,
        labels,
        levels=(retrieval,),
        ks=ks or options["recall_at"],
        knn=knn,
        text_captions=text_captions,
        text_caption_item=text_caption_item,
        text_modality=anchor,
    )
    points, stacked_labels = measures.stacked(embeddings, labels)
    present = len(np.unique(stacked_labels))
    k = options["kmeans_k"] or present
    results: dict[str, float] = {"kmeans_k": float(k), "n_classes_present": float(present)}
    notes = []
    if present < 2 or len(points) < MIN_ITEMS_PER_CLUSTER * k:
        cause = (
            ONE_CLASS
            if present < 2
            else (
                f"{len(points)} labelled points (items x modalities) cannot fill {k} clusters of "
                f"{MIN_ITEMS_PER_CLUSTER} points each"
            )
        )
        notes.append(f"clustering skipped: {cause}")
    clusters = not notes
    results["knn_acc_released"] = float("nan") if knn_acc is None else knn_acc
    if knn is None:
        notes.append(knn_skipped)
    results.update(low_variance_scores(embeddings, labels, options, k, clusters, knn is not None, progress))
    if gap_cost:
        results.update(_centred_scores(embeddings, labels, options, k, clusters, knn is not None, progress, notes))
        for name, cost in GAP_COSTS.items():
            results[cost] = results[f"centred_{name}"] - results[name]
    if options["linear_probe"]:
        if present < 2 or len(points) < 10 * present:
            notes.append("linear probe skipped: too few labelled points")
            results["linear_probe_acc"] = float("nan")
        else:
            progress("linear probe")
            results.update(linear_probe_accuracy(points, stacked_labels, options["knn_seed"]))
    for note in notes:
        log.warning(note)
    return recalls[retrieval], results, notes


def low_variance_scores(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    options: Mapping,
    k: int,
    clusters: bool,
    knn: bool,
    progress: Callable[[str], None] = lambda stage: None,
    released: bool = True,
) -> dict[str, float]:
    """The group-wise scores the claims read, each with the evaluation's own standard deviation
    (``<score>_sd``): V-Measure, homogeneity, completeness, NMI and ARI as means over
    ``options['kmeans_states']`` k-means random states, and leave-one-out kNN, overall and per query modality
    (``knn_acc_<modality>``); NaN where ``clusters`` or ``knn`` say the labels cannot support them. With
    ``released``, also the released protocol's single clustering's V-Measure (the first random state's:
    ``v_measure_released``)."""
    results: dict[str, float] = {}
    if clusters:
        points, stacked_labels = measures.stacked(embeddings, labels)
        starts = options["kmeans_n_init"]
        progress(
            f"KMeans (k={k}) from {options['kmeans_states']} random states, {starts} start"
            f"{'s' if starts > 1 else ''} each, on {len(points)} points"
        )
        first, spread = low_variance.clustering_over_states(
            points,
            stacked_labels,
            k,
            options["kmeans_random_state"],
            options["kmeans_states"],
            options["kmeans_n_init"],
        )
        results.update(spread)
        if released:
            results["v_measure_released"] = first["v_measure"]
    else:
        results.update({f"{score}{kind}": float("nan") for score in low_variance.STATE_SCORES for kind in ("", "_sd")})
        if released:
            results["v_measure_released"] = float("nan")
    if knn:
        progress("leave-one-out kNN")
        loo = low_variance.leave_one_out_knn(
            embeddings, labels, options["knn_k"], options["knn_split"], options["knn_loo_queries"], options["knn_seed"]
        )
        results |= {"knn_acc": loo.accuracy, "knn_acc_sd": loo.sd}
        results |= {f"knn_acc_{modality}": value for modality, value in loo.by_modality.items()}
    else:
        results |= {"knn_acc": float("nan"), "knn_acc_sd": float("nan")}
    return results


def _centred_scores(embeddings, labels, options, k, clusters, knn, progress, notes) -> dict[str, float]:
    """The low-variance scores and what is left of the gap after centring every modality on the common centroid
    (the post-hoc shift at strength 1); NaN, with a note, where centring leaves a row at the origin (a
    modality whose rows are all one point, opposite another's): no direction is left to measure."""
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = posthoc_shift(embeddings, 1.0)
    if not all(np.isfinite(z).all() for z in centred.values()):
        notes.append("gap's cost skipped: centring leaves rows at the origin (a modality collapsed to one point)")
        return {f"centred_{name}": float("nan") for name in (*CENTRED_SCORES, *CENTRED_GAP)}
    progress("the same after centring every modality (the gap's cost)")
    as_centred = low_variance_scores(centred, labels, options, k, clusters, knn, progress, released=False)
    pairs = measures.gap_metrics(centred, CENTRED_GAP)
    return {
        **{f"centred_{name}": as_centred[name] for name in CENTRED_SCORES},
        **{f"centred_{name}": pairs[name] for name in CENTRED_GAP},
    }


# The low-variance scores also measured after centring, and the gap's cost: centred minus as is.
CENTRED_SCORES = ("v_measure", "nmi", "ari", "knn_acc")
GAP_COSTS = {"v_measure": "gap_cost_v_measure", "knn_acc": "gap_cost_knn"}
# What is left of the gap after centring: the centroid distance (near 0 by construction) and the pairs' alignment.
CENTRED_GAP = ("gap", "cos_true_pairs")
GROUP_METRICS = (
    *(f"{score}{kind}" for score in low_variance.STATE_SCORES for kind in ("", "_sd")),
    "v_measure_released",
    "knn_acc",
    "knn_acc_sd",
    "knn_acc_released",
    *(f"centred_{name}" for name in (*CENTRED_SCORES, *CENTRED_GAP)),
    *GAP_COSTS.values(),
)


def measure(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray | None,
    retrieval: str,
    options: Mapping,
    *,
    text_captions: np.ndarray | None = None,
    text_caption_item: np.ndarray | None = None,
    anchor: str = "text",
    progress: Callable[[str], None] = lambda stage: None,
) -> dict:
    """Every metric of one set of unit-norm embeddings (row i of every modality is item i): the gap
    measures of every modality pair, each modality's spread, retrieval between ``anchor`` and every other
    modality, and, where ``labels`` (-1: unlabelled) support them, the group-wise scores. Without labels
    the group-wise scores are NaN and a note says so."""
    n_items = len(next(iter(embeddings.values())))
    progress(
        "gap measures, spread and uniformity"
        + (
            f" (a seeded sample of {measures.UNIFORMITY_ROWS} rows per modality)"
            if n_items > measures.UNIFORMITY_ROWS
            else ""
        )
    )
    results: dict = gap_and_spread(embeddings)
    if labels is None or not (np.asarray(labels) >= 0).any():
        if retrieval != "instance":
            raise ValueError(f"{retrieval}-level retrieval needs labels, and these embeddings have none")
        progress("retrieval")
        recalls = measures.retrieval_metrics(
            embeddings, np.full(n_items, -1), retrieval, options["recall_at"], text_captions, text_caption_item, anchor
        )
        group: dict = {name: float("nan") for name in GROUP_METRICS}
        notes = ["no labels: the group-wise metrics (V-Measure, NMI, ARI, kNN) are skipped"]
        labels = np.full(n_items, -1)
    else:
        recalls, group, notes = labelled_metrics(
            embeddings, np.asarray(labels), retrieval, options, None, text_captions, text_caption_item, anchor, progress
        )
    results.update(recalls)
    r1 = [v for key, v in recalls.items() if key.startswith("r1_")]
    results["r1_mean"] = float(np.mean(r1)) if r1 else float("nan")
    results["r1_chance"] = chance_r1(np.asarray(labels), retrieval, n_items)
    results.update(group)
    results["notes"] = notes
    return results


def gap_and_spread(embeddings: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The gap measures of every modality pair, then each modality's mean intra-modality cosine and effective
    rank, then its uniformity (``<key>_<modality>``).

    The effective rank's elementwise half (no BLAS) runs on a thread of its own beside the other measures; the
    thread count of every BLAS call stays the process's, so every value is the one a serial run gives (BLAS
    splits the sums of long products by thread count)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        centred = {modality: pool.submit(measures.centred_at_unit_scale, z) for modality, z in embeddings.items()}
        results: dict[str, float] = dict(measures.gap_metrics(embeddings))
        intra = {modality: measures.intra_modality_cosine(z) for modality, z in embeddings.items()}
        uniformity = {modality: measures.uniformity(z) for modality, z in embeddings.items()}
        for modality in embeddings:
            results[f"intra_cos_{modality}"] = intra[modality]
            results[f"effective_rank_{modality}"] = measures.effective_rank_of_centred(*centred[modality].result())
    for modality in embeddings:
        results[f"uniformity_{modality}"] = uniformity[modality]
    return results


def compute_metrics(dump: Mapping[str, np.ndarray], retrieval: str, options: Mapping) -> dict:
    """All metrics of one embedding dump (see modgap.metrics.measures for their definitions)."""
    labels = np.asarray(dump[LABELS])
    # the test set's fingerprint: the tables refuse to compare runs measured on different items
    results: dict = {**ItemSet.of(labels, dump.get(CLASS_NAMES), dump.get(IDS)).fields()}
    results["n_labelled"] = int((labels >= 0).sum())
    captions = {"text_captions": dump.get(CAPTIONS), "text_caption_item": dump.get(CAPTION_ITEM)}
    results.update(measure(modality_embeddings(dump), labels, retrieval, options, **captions))
    # the temperature the run ended (this budget) at, where its dump records one
    results["temperature"] = float(dump["temperature"]) if "temperature" in dump else float("nan")
    return results


def is_collapsed(results: Mapping, criterion: Mapping) -> bool:
    """The encoder cannot tell inputs apart: retrieval near chance (mean R@1 below ``r1_over_chance`` times
    chance), or one modality's embeddings spreading over fewer than ``min_effective_rank`` directions about
    their mean (every input maps to one point). A high intra-modality cosine alone is not a collapse: it is
    the cone a large gap leaves each modality in (Liang et al. 2022), with retrieval far above chance."""
    ranks = [value for key, value in results.items() if key.startswith("effective_rank_")]
    return bool(
        results["r1_mean"] < criterion["r1_over_chance"] * results["r1_chance"]
        or any(value < criterion["min_effective_rank"] for value in ranks)
    )


def evaluate_run(dump: Mapping[str, np.ndarray], *, retrieval: str, options: Mapping, epochs: int | None) -> dict:
    """Metrics and collapse of one run trained for ``epochs`` (None: trained elsewhere, not known)."""
    results = {"retrieval": retrieval, "epochs": epochs}
    results.update(compute_metrics(dump, retrieval, options))
    results["collapsed"] = is_collapsed(results, options["collapse"])
    return results


def evaluate_method(
    runs: Sequence[tuple[int, str | Path]],
    output_path: str | Path,
    *,
    experiment: str,
    method: str,
    retrieval: str,
    options: Mapping,
    shift: float | None = None,
    budget: int | None = None,
    epochs: int | None = None,
) -> list[dict]:
    """Evaluate every seed of one method and write them as a JSON list of flat records.

    ``runs``: (seed, embedding dump) per seed. With ``shift`` the dumps are first moved by the post-hoc shift
    of that strength (the training-free 'posthoc' row). With ``budget`` the runs are evaluated as they stood
    at that budget of their ladder: the dumps' arrays of that budget. ``epochs``: the training budget the
    records name (None for embeddings made elsewhere). Two seeds with the same embeddings are refused
    (modgap.verdict.evidence.distinct_runs).
    """
    records, fingerprints = [], []
    for seed, dump_path in runs:
        dump = load_method_dump(dump_path, shift, budget)
        fingerprints.append((str(dump_path), embeddings_digest(modality_embeddings(dump))))
        distinct_runs(fingerprints)
        record = {"experiment": experiment, "method": method, "seed": int(seed)}
        record.update(evaluate_run(dump, retrieval=retrieval, options=options, epochs=epochs))
        records.append(record)
    write_json(output_path, records)
    return records


def gap_sweep(
    dumps: Sequence[tuple[int, Mapping[str, np.ndarray]]],
    strengths: Sequence[float],
    retrieval: str,
    options: Mapping,
) -> list[dict]:
    """Figure 1's data: gap, V-Measure, kNN and R@1 of each seed's embeddings under a range of shifts (the
    low-variance scores: V-Measure averaged over k-means random states, leave-one-out kNN)."""
    rows = []
    for seed, dump in dumps:
        for strength in strengths:
            shifted = shift_dump(dump, strength)
            embeddings = modality_embeddings(shifted)
            recalls, group, _ = labelled_metrics(
                embeddings,
                np.asarray(shifted[LABELS]),
                retrieval,
                {**options, "linear_probe": False},
                ks=(1,),
                text_captions=shifted.get(CAPTIONS),
                text_caption_item=shifted.get(CAPTION_ITEM),
                gap_cost=False,
            )
            rows.append(
                {
                    "seed": seed,
                    "strength": float(strength),
                    "gap": measures.gap_metrics(embeddings, ["gap"])["gap"],
                    "r1": float(np.mean(list(recalls.values()))) if recalls else float("nan"),
                    "v_measure": group["v_measure"],
                    "knn_acc": group["knn_acc"],
                }
            )
    return rows
