"""The low-variance evaluation (leave-one-out kNN, k-means over random states), the gap's cost and pair
alignment, against brute force, scikit-learn and hand-built encoders."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, v_measure_score

from modgap.metrics import low_variance, measures
from modgap.metrics.kmeans import kmeans
from modgap.metrics.per_run import labelled_metrics
from modgap.study.schema import section_defaults
from modgap.verdict.factorial import readings

OPTIONS = {**section_defaults("evaluate"), "kmeans_states": 4, "kmeans_n_init": 3}


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n=240, classes=6, noise=1.0, offset=0.0, dim=16, seed=0):
    """Two modalities sharing class structure; the text modality moved by ``offset`` along one axis."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * 2
    shift = np.zeros(dim)
    shift[0] = offset
    image = unit(centres[labels] + noise * rng.normal(size=(n, dim)))
    text = unit(centres[labels] + noise * rng.normal(size=(n, dim)) + shift)
    return {"image": image, "text": text}, labels


def brute_force_loo(embeddings, labels, k, split):
    """Every stacked point against every other by a plain sort: ties by point order, votes by smallest label."""
    points = np.concatenate(list(embeddings.values())).astype(np.float64)
    n_items = len(labels)
    stacked = np.tile(labels, len(embeddings))
    right = []
    for i in range(len(points)):
        scores = points @ points[i]
        out = [i] if split == "point" else [i % n_items + m * n_items for m in range(len(embeddings))]
        scores[out] = -np.inf
        nearest = np.lexsort((np.arange(len(points)), -scores))[:k]
        right.append(np.argmax(np.bincount(stacked[nearest], minlength=stacked.max() + 1)) == stacked[i])
    return 100.0 * np.mean(right)


@pytest.mark.parametrize("split", ["point", "item"])
def test_leave_one_out_knn_matches_brute_force(split):
    embeddings, labels = clustered(n=150, noise=1.5)
    found = low_variance.leave_one_out_knn(embeddings, labels, k=5, split=split, chunk_size=64)
    assert found.accuracy == pytest.approx(brute_force_loo(embeddings, labels, 5, split))
    assert found.sd == 0.0 and found.n_queries == 300
    # per modality: the mean of the two is the whole, each half the queries
    assert np.mean(list(found.by_modality.values())) == pytest.approx(found.accuracy)


def test_leave_one_out_knn_breaks_ties_by_point_order():
    # duplicated points (a caption shared by many items) tie; the tie is broken the same way as brute force
    embeddings, labels = clustered(n=90, noise=1.0)
    embeddings["text"] = unit(np.repeat(embeddings["text"][:9], 10, axis=0))
    labels = np.repeat(labels[:9], 10)
    embeddings["image"] = embeddings["image"][: len(labels)]
    found = low_variance.leave_one_out_knn(embeddings, labels, k=5)
    assert found.accuracy == pytest.approx(brute_force_loo(embeddings, labels, 5, "point"))


@pytest.mark.parametrize("cols", [2559, 2560, 2561, 5000, 6399])
@pytest.mark.parametrize("k", [1, 5])
def test_k_highest_matches_a_full_sort(cols, k):
    """Each row's k highest columns, ties broken towards the lowest column, as a full sort finds them: on rows
    tied at the k-th place, rows tied everywhere (read whole), rows with -inf (a query left out) and a best
    score among the columns past the last whole block."""
    rng = np.random.default_rng(cols + k)
    scores = rng.normal(size=(40, cols)).astype(np.float32)
    scores[:10] = np.round(scores[:10])
    scores[10:15] = 0.5
    scores[15:20, ::3] = -np.inf
    scores[20, -1] = 9.0
    scores[21, [0, cols - 1]] = 9.0
    columns = np.broadcast_to(np.arange(cols), scores.shape)
    expected = np.sort(np.lexsort((columns, -scores), axis=1)[:, :k], axis=1)
    np.testing.assert_array_equal(np.sort(low_variance.k_highest(scores, k), axis=1), expected)


def test_k_highest_refuses_scores_it_cannot_negate():
    with pytest.raises(TypeError, match="floating-point scores, got uint8"):
        low_variance.k_highest(np.arange(12, dtype=np.uint8).reshape(2, 6), 2)
    with pytest.raises(ValueError, match="1 <= k <= 6 columns, got k=7"):
        low_variance.k_highest(np.zeros((2, 6)), 7)


def test_leave_one_out_knn_on_enough_points_for_blocks_matches_brute_force():
    # 3,000 stacked points: the neighbour search reads blocks of columns (fewer points fall back to a partition)
    embeddings, labels = clustered(n=1500, noise=1.5, seed=4)
    embeddings["text"][700:760] = embeddings["text"][700]  # one caption shared by many items: ties
    found = low_variance.leave_one_out_knn(embeddings, labels, k=5)
    assert found.accuracy == pytest.approx(brute_force_loo(embeddings, labels, 5, "point"))


def test_leave_one_out_knn_degenerate_and_perfect_encoders():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    same = unit(np.ones((200, 8)))
    identical = low_variance.leave_one_out_knn({"image": same, "text": same}, labels, k=5)
    # every point's neighbours are the first points: nearly one vote for all, about one class's share
    assert identical.accuracy == pytest.approx(brute_force_loo({"image": same, "text": same}, labels, 5, "point"))
    assert identical.accuracy <= 100.0 * np.bincount(labels).max() / len(labels) + 2.0
    perfect = unit(np.eye(8)[labels])
    assert low_variance.leave_one_out_knn({"image": perfect, "text": perfect}, labels, k=5).accuracy == 100.0


def test_leave_one_out_knn_samples_queries_and_reports_their_error():
    embeddings, labels = clustered(n=200, noise=2.0)
    full = low_variance.leave_one_out_knn(embeddings, labels, k=5)
    sampled = low_variance.leave_one_out_knn(embeddings, labels, k=5, max_queries=100, seed=3)
    assert sampled.n_queries == 100
    p = sampled.accuracy / 100
    assert sampled.sd == pytest.approx(100 * np.sqrt(p * (1 - p) / 100 * (400 - 100) / 399))
    assert abs(sampled.accuracy - full.accuracy) < 4 * sampled.sd + 1e-9
    with pytest.raises(ValueError, match="'point' or 'item'"):
        low_variance.leave_one_out_knn(embeddings, labels, split="rows")


def test_leave_one_out_knn_refuses_what_it_cannot_score():
    """k = 0 used to score the vote of no neighbour (everything the smallest label), a negative chunk size
    an uninitialised array, NaN embeddings whatever their sort order gave: each is refused, named."""
    embeddings, labels = clustered(n=40)
    for bad, match in (
        (dict(k=0), "k=0"),
        (dict(k=-1), "k=-1"),
        (dict(chunk_size=-1), "chunk_size=-1"),
        (dict(chunk_size=0), "chunk_size=0"),
        (dict(max_queries=0), "max_queries=0"),
    ):
        with pytest.raises(ValueError, match=match):
            low_variance.leave_one_out_knn(embeddings, labels, **bad)
    broken = {**embeddings, "text": embeddings["text"].copy()}
    broken["text"][3, 0] = np.nan
    with pytest.raises(ValueError, match="labelled text embeddings contain NaN"):
        low_variance.leave_one_out_knn(broken, labels)
    unlabelled = labels.copy()
    unlabelled[3] = -1  # an unlabelled row takes no part, NaN or not
    kept = np.arange(40) != 3
    assert low_variance.leave_one_out_knn(broken, unlabelled).accuracy == pytest.approx(
        brute_force_loo({m: z[kept] for m, z in embeddings.items()}, labels[kept], 5, "point")
    )
    with pytest.raises(ValueError, match="39 image embeddings for 40 labels"):
        low_variance.leave_one_out_knn({**embeddings, "image": embeddings["image"][:39]}, labels)
    with pytest.raises(ValueError, match="at least one modality"):
        low_variance.leave_one_out_knn({}, labels)


def test_clustering_over_states_against_scikit_learn():
    embeddings, labels = clustered(n=120, noise=2.0)
    points, stacked = measures.stacked(embeddings, labels)
    first, spread = low_variance.clustering_over_states(points, stacked, 6, first_state=7, n_states=3, n_init=2)
    runs = [kmeans(points, 6, n_init=2, random_state=7 + i).labels for i in range(3)]
    assert first["v_measure"] == pytest.approx(100 * v_measure_score(stacked, runs[0]))
    for name, score in (
        ("v_measure", v_measure_score),
        ("nmi", normalized_mutual_info_score),
        ("ari", adjusted_rand_score),
    ):
        values = [100 * score(stacked, run) for run in runs]
        assert spread[name] == pytest.approx(np.mean(values))
        assert spread[f"{name}_sd"] == pytest.approx(np.std(values, ddof=1))


def test_an_offset_alone_costs_clustering_and_centring_recovers_it():
    aligned, labels = clustered(n=300, noise=0.6, offset=0.0)
    offset, _ = clustered(n=300, noise=0.6, offset=10.0)
    _, as_aligned, _ = labelled_metrics(aligned, labels, "class", OPTIONS)
    _, as_offset, _ = labelled_metrics(offset, labels, "class", OPTIONS)
    # the offset splits every class by modality: clustering falls, and centring gives it back
    assert as_offset["v_measure"] < as_aligned["v_measure"] - 10
    assert as_offset["gap_cost_v_measure"] > 10
    assert as_offset["centred_v_measure"] == pytest.approx(as_aligned["v_measure"], abs=5)
    assert abs(as_aligned["gap_cost_v_measure"]) < 3
    assert as_offset["centred_gap"] < measures.gap(offset["image"], offset["text"]) / 3
    assert {"knn_acc_image", "knn_acc_text", "v_measure_sd", "knn_acc_sd"} <= set(as_offset)


def test_uniform_unaligned_modalities_are_not_read_as_aligned():
    rng = np.random.default_rng(0)
    a, b = unit(rng.normal(size=(4000, 32))), unit(rng.normal(size=(4000, 32)))
    found = measures.gap_metrics({"image": a, "text": b})
    assert found["gap"] < 0.05  # centroids both near the origin: no centroid gap
    assert abs(found["pair_alignment"]) < 0.03 and abs(found["cos_true_pairs"]) < 0.03
    assert found["true_pair_distance"] == pytest.approx(np.sqrt(2), abs=0.02)
    assert measures.pair_alignment(a, a) == pytest.approx(1.0)
    same = unit(np.ones((10, 4)))
    assert np.isnan(measures.pair_alignment(same, same))  # every cross-modal pair coincides: nothing to tell


def factorial_runs(effect, slope, seeds=range(6), temperatures=(0.01, 0.02, 0.04, 0.08)):
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        seed_level = rng.normal()
        for temperature in temperatures:
            for arm, gain in (("clip_lt", 0.0), ("ours", effect)):
                value = 50 + seed_level + slope * np.log2(temperature) + gain + 0.1 * rng.normal()
                rows.append(
                    {
                        "arm": arm,
                        "temperature": temperature,
                        "seed": seed,
                        "v_measure": value,
                        "knn_acc": value,
                        "gap_cost_v_measure": 2.0 + 0.1 * rng.normal(),
                        "gap_cost_knn": 0.1 * rng.normal(),
                    }
                )
    return pd.DataFrame(rows)


def test_factorial_readings_recover_the_planted_effects():
    margins = {"v_measure": 1.0, "knn_acc": 1.0}
    found = readings(factorial_runs(effect=0.0, slope=3.0), "clip_lt", "ours", margins, 0.95)
    gap_terms = found[found["reading"] == "gap terms"]
    assert (gap_terms["holm"] == "equivalent").all()  # no effect at any temperature, shown as equivalence
    slope = found[found["reading"].str.startswith("temperature")]
    assert slope["estimate"].to_numpy() == pytest.approx(3.0, abs=0.1)
    assert (slope["holm"] == "higher").all()
    centring = found[found["reading"] == "centring"]
    assert (centring[centring["score"] == "V-Measure"]["holm"] == "higher").all()
    with_effect = readings(factorial_runs(effect=4.0, slope=0.0), "clip_lt", "ours", margins, 0.95)
    assert (with_effect[with_effect["reading"] == "gap terms"]["holm"] == "higher").all()


def test_centring_that_leaves_rows_at_the_origin_skips_the_gap_cost_with_a_note():
    # each modality collapsed to one point, the two points opposite: centring puts every row at the origin
    point = np.zeros(8, dtype=np.float32)
    point[0] = 1.0
    labels = np.repeat(np.arange(3), 20)
    embeddings = {"image": np.tile(-point, (60, 1)), "text": np.tile(point, (60, 1))}
    _, found, notes = labelled_metrics(embeddings, labels, "class", OPTIONS)
    assert np.isnan(found["gap_cost_v_measure"]) and np.isnan(found["centred_knn_acc"])
    assert any("gap's cost skipped: centring leaves rows at the origin" in note for note in notes)


def test_an_item_split_too_small_for_its_neighbours_is_skipped_not_a_crash():
    embeddings, labels = clustered(n=6, classes=2)
    _, found, notes = labelled_metrics(embeddings, labels, "class", {**OPTIONS, "knn_split": "item", "knn_k": 9})
    assert np.isnan(found["knn_acc"]) and np.isnan(found["knn_acc_released"])
    assert any(note.startswith("kNN skipped: 12 labelled points cannot hold 9 neighbours") for note in notes)


def test_an_all_identical_float32_encoder_has_no_pair_alignment():
    same = unit(np.ones((50, 8)))
    assert same.dtype == np.float32 and np.isnan(measures.pair_alignment(same, same))


def test_factorial_cells_carry_their_grid_temperature_not_the_runs_float32(tmp_path):
    import json

    from modgap.verdict.factorial import factorial_runs

    record = {"experiment": "pair@2", "method": "clip_lt_fixed0.02", "seed": 0, "retrieval": "class", "gap": 0.2,
              "cos_true_pairs": 0.5, "r1_mean": 80.0, "r1_chance": 10.0, "epochs": 2, "v_measure": 60.0,
              "knn_acc": 70.0, "collapsed": False, "notes": [], "temperature": 0.019999997690320015}  # fmt: skip
    path = tmp_path / "clip.json"
    path.write_text(json.dumps([record]))
    runs = factorial_runs({("clip_lt", 0.02): path}, [0])
    assert runs["temperature"].tolist() == [0.02] and runs["arm"].tolist() == ["clip_lt"]
