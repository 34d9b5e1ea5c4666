"""Metrics against scikit-learn and brute-force loops (docs/workflow.md, "Metrics")."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import v_measure_score

from modgap.embeddings.dumps import posthoc_shift, shift_dump
from modgap.metrics import low_variance, measures, similarity
from modgap.metrics.measures import intra_modality_cosine
from modgap.metrics.per_run import compute_metrics, is_collapsed

OPTIONS = {
    "recall_at": [1, 5, 10], "kmeans_k": None, "kmeans_random_state": 0, "kmeans_n_init": 10,
    "knn_k": 5, "knn_test_fraction": 0.2, "knn_seed": 0, "knn_split": "point", "linear_probe": True,
    "kmeans_states": 3, "knn_loo_queries": 10000,
}  # fmt: skip


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float64)


def clustered(n=60, d=8, classes=4, modalities=("image", "audio", "text"), offset=0.0, seed=0):
    """Embeddings with class structure and a per-modality shift (a gap when offset > 0)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centers = rng.normal(size=(classes, d)) * 3
    out = {}
    for k, m in enumerate(modalities):
        shift = np.zeros(d)
        shift[k % d] = offset
        out[m] = unit(centers[labels] + rng.normal(size=(n, d)) + shift)
    return out, labels


def brute_force_counts(scores: np.ndarray, correct: list[set]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query row of ``scores``: wrong answers above its best correct score, wrong ones equal to it, and
    correct ones equal to it, counted one by one."""
    above, tied, best_correct = [], [], []
    for i, row in enumerate(scores):
        best = max(row[j] for j in correct[i])
        wrong = [s for j, s in enumerate(row) if j not in correct[i]]
        above.append(sum(s > best for s in wrong))
        tied.append(sum(s == best for s in wrong))
        best_correct.append(sum(row[j] == best for j in correct[i]))
    return np.array(above), np.array(tied), np.array(best_correct)


def brute_force_recall(queries, gallery, correct, k):
    """R@k in percent with ties broken uniformly at random, from the hypergeometric law: with a wrong answers
    above, t wrong and m correct tied, the first k - a tied places hold no correct one with probability
    C(t, k - a) / C(t + m, k - a)."""
    above, tied, best_correct = brute_force_counts(queries @ gallery.T, correct)
    hits = [0.0 if a >= k else 1.0 - math.comb(t, k - a) / math.comb(t + m, k - a) if k - a <= t + m else 1.0
            for a, t, m in zip(above, tied, best_correct)]  # fmt: skip
    return 100.0 * float(np.mean(hits))


def test_gap_and_true_pair_cosine_hand_computed():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert measures.gap(a, b) == pytest.approx(np.linalg.norm([0.5, 0.5] - np.array([0.0, 1.0])))
    assert measures.cos_true_pairs(a, b) == pytest.approx(0.5)


def test_gap_metrics_for_three_modalities_are_pairwise_and_averaged():
    z, _ = clustered(offset=2.0)
    result = measures.gap_metrics(z)
    pairs = list(itertools.combinations(z, 2))
    keys = ("gap", "true_pair_distance", "rmg", "cos_true_pairs", "pair_alignment")
    assert set(result) == {f"{key}_{a}_{b}" for key in keys for a, b in pairs} | set(keys)
    for key, measure in measures.PAIR_GAP_METRICS.items():
        assert result[key] == pytest.approx(np.mean([measure(z[a], z[b]) for a, b in pairs]))


def test_gap_metrics_of_chosen_measures_equal_those_of_all_and_refuse_unknown_ones():
    z, _ = clustered(offset=2.0)
    every = measures.gap_metrics(z)
    chosen = measures.gap_metrics(z, ["cos_true_pairs", "gap"])
    assert set(chosen) == {key for key in every if key.startswith(("gap", "cos_true_pairs"))}
    assert all(chosen[key] == every[key] for key in chosen)  # the same values, to the bit
    with pytest.raises(ValueError, match="unknown gap measure 'l2m'"):
        measures.gap_metrics(z, ["l2m"])
    assert measures.gap_metrics(z, (key for key in ["gap"])) == measures.gap_metrics(z, "gap")  # any iterable, one name


def test_effective_rank_refuses_a_nan_tolerance_and_a_flat_array():
    centred, scale = measures.centred_at_unit_scale(np.eye(4))
    with pytest.raises(ValueError, match="rounding floor"):
        measures.effective_rank_of_centred(centred, scale, float("nan"))
    with pytest.raises(ValueError, match=r"an \(N, d\) matrix"):
        measures.effective_rank_of_centred(centred[0], scale)
    assert measures.effective_rank_of_centred(centred, scale) == pytest.approx(
        3.0
    )  # 4 points of a simplex: 3 directions


# Four unit vectors in the plane, worked by hand: a = (e1, e2), b = (e1, -e2).
A = np.array([[1.0, 0.0], [0.0, 1.0]])
B = np.array([[1.0, 0.0], [0.0, -1.0]])


def test_centroid_distance_by_hand():
    # centroids (1/2, 1/2) and (1/2, -1/2): one apart
    assert measures.gap(A, B) == pytest.approx(1.0)


def test_true_pair_distance_by_hand():
    # pair 0 coincides, pair 1 is antipodal (distance 2): mean 1
    assert measures.true_pair_distance(A, B) == pytest.approx(1.0)
    assert measures.true_pair_distance(A, A) == 0.0


def test_relative_modality_gap_by_hand():
    # true-pair dissimilarities 1 - cos: 0 and 2, mean 1; within each modality the two rows are orthogonal,
    # dissimilarity 1; RMG = 1 / (1 + 1) = 1/2
    assert measures.relative_modality_gap(A, B) == pytest.approx(0.5)
    assert measures.relative_modality_gap(A, A) == 0.0  # pairs coincide
    # every row of a one point, every row of b its antipode: pairs as far apart as can be, no spread within
    assert measures.relative_modality_gap(np.tile([[1.0, 0.0]], (3, 1)), np.tile([[-1.0, 0.0]], (3, 1))) == 1.0


def test_relative_modality_gap_matches_its_definition_by_brute_force():
    rng = np.random.default_rng(3)
    a, b = unit(rng.normal(size=(9, 5))), unit(rng.normal(size=(9, 5)) + 1.0)
    d = lambda x, y: 1.0 - x @ y  # noqa: E731
    n = len(a)
    between = np.mean([d(a[i], b[i]) for i in range(n)])
    within = sum(d(x[i], x[j]) for x in (a, b) for i in range(n) for j in range(n) if i != j) / (2 * n * (n - 1))
    assert measures.relative_modality_gap(a, b) == pytest.approx(between / (within + between))


def test_uniformity_by_hand():
    # rows e1 and e2: ||e1 - e2||^2 = 2, so log exp(-2 * 2) = -4
    assert measures.uniformity(A) == pytest.approx(-4.0)
    # antipodes: ||2 e1||^2 = 4, t = 1: -4
    assert measures.uniformity(np.array([[1.0, 0.0], [-1.0, 0.0]]), t=1.0) == pytest.approx(-4.0)
    # one point repeated: every distance 0, uniformity 0 (the worst)
    assert measures.uniformity(np.tile([[0.6, 0.8]], (5, 1))) == pytest.approx(0.0)


def test_uniformity_matches_brute_force_across_tiles_and_its_sample_is_seeded():
    rng = np.random.default_rng(4)
    z = unit(rng.normal(size=(50, 6)))
    pairs = [np.exp(-2.0 * np.sum((z[i] - z[j]) ** 2)) for i in range(50) for j in range(50) if i != j]
    assert measures.uniformity(z, chunk_size=7) == pytest.approx(np.log(np.mean(pairs)), rel=1e-5)
    sampled = measures.uniformity(z, max_rows=20, seed=1)
    assert sampled == measures.uniformity(z, max_rows=20, seed=1) != measures.uniformity(z, max_rows=20, seed=2)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_instance_recall_matches_brute_force(k):
    rng = np.random.default_rng(1)
    q, g = unit(rng.normal(size=(40, 6))), unit(rng.normal(size=(40, 6)))
    g[:20] = unit(q[:20] + 0.3 * rng.normal(size=(20, 6)))
    text_ranks, item_ranks = measures.instance_ranks(q, g)
    assert measures.recall_at(text_ranks, [k])[k] == pytest.approx(
        brute_force_recall(q, g, [{i} for i in range(40)], k)
    )
    assert measures.recall_at(item_ranks, [k])[k] == pytest.approx(
        brute_force_recall(g, q, [{i} for i in range(40)], k)
    )


def test_instance_recall_with_several_captions_per_image():
    rng = np.random.default_rng(2)
    images = unit(rng.normal(size=(10, 5)))
    owner = np.repeat(np.arange(10), 3)  # three captions per image
    captions = unit(images[owner] + 0.8 * rng.normal(size=(30, 5)))
    caption_ranks, image_ranks = measures.instance_ranks(captions, images, owner)
    for k in (1, 5):
        correct = [set(np.flatnonzero(owner == i)) for i in range(10)]
        assert measures.recall_at(image_ranks, [k])[k] == pytest.approx(
            brute_force_recall(images, captions, correct, k)
        )
        correct = [{owner[c]} for c in range(30)]
        assert measures.recall_at(caption_ranks, [k])[k] == pytest.approx(
            brute_force_recall(captions, images, correct, k)
        )


def test_tied_answers_are_broken_at_random_hand_computed():
    captions = np.array([[1.0, 0.0], [0.0, 1.0]])
    items = np.array([[1.0, 0.0], [1.0, 0.0]])  # identical items: every caption ties its partner with the other
    caption_ranks, item_ranks = measures.instance_ranks(captions, items)
    assert caption_ranks.above.tolist() == [0, 0] and caption_ranks.tied.tolist() == [1, 1]
    assert measures.recall_at(caption_ranks, [1, 2]) == {1: 50.0, 2: 100.0}  # a coin flip, then certain
    # item 0: its caption scores 1, caption 1 scores 0; item 1: its caption (0) is beaten by caption 0 (1)
    assert item_ranks.above.tolist() == [0, 1] and item_ranks.tied.tolist() == [0, 0]
    assert measures.recall_at(item_ranks, [1, 2]) == {1: 50.0, 2: 100.0}


def test_tie_probabilities_hand_computed():
    ranks = similarity.Ranks(above=np.array([0, 0, 1, 2, -1]), tied=np.array([2, 2, 1, 0, 9]),
                             best_correct=np.array([1, 2, 1, 1, 1]))  # fmt: skip
    # a=0, t=2, m=1: the correct one is first with p 1/3, in the top 2 with p 2/3
    # a=0, t=2, m=2: first with p 2/4; top 2 misses both with p (2/4)(1/3), so 5/6
    # a=1, t=1, m=1: never first; in the top 2 with p 1/2; a=2, t=0: third for sure; the last is not ranked
    np.testing.assert_allclose(ranks.hit_probability(1), [1 / 3, 1 / 2, 0, 0])
    np.testing.assert_allclose(ranks.hit_probability(2), [2 / 3, 5 / 6, 1 / 2, 0])
    np.testing.assert_allclose(ranks.hit_probability(3), [1, 1, 1, 1])
    assert measures.recall_at(ranks, [1])[1] == pytest.approx(100 * (1 / 3 + 1 / 2) / 4)


@pytest.mark.parametrize("level", ["instance", "class"])
def test_an_encoder_that_maps_everything_to_one_point_scores_chance(level):
    n, classes = 60, 4
    labels = np.arange(n) % classes
    same = np.tile(unit(np.ones((1, 8))), (n, 1))  # every embedding identical: every score ties
    z = {"image": same, "audio": same.copy(), "text": same.copy()}
    recalls = measures.retrieval_metrics(z, labels, level, ks=(1, 5))
    correct = 1 if level == "instance" else n // classes
    for k in (1, 5):  # chance: k answers drawn at random hold a correct one
        chance = 100 * (1 - math.comb(n - correct, k) / math.comb(n, k))
        values = [v for key, v in recalls.items() if key.startswith(f"r{k}_")]
        assert len(values) == 4 and values == pytest.approx([chance] * 4)
    assert measures.retrieval_metrics(z, labels, level, ks=(1,))["r1_text_image"] == pytest.approx(
        100 / n if level == "instance" else 100 / classes
    )


def test_class_recall_matches_brute_force_with_duplicate_texts():
    z, labels = clustered(n=40, modalities=("image", "text"), seed=3)
    z["text"] = unit(np.eye(8)[labels] + 0.0)  # class names as text: identical rows per class
    text_ranks, image_ranks = measures.class_ranks(z["text"], z["image"], labels)
    correct = [set(np.flatnonzero(labels == labels[i])) for i in range(40)]
    for k in (1, 5):
        assert measures.recall_at(text_ranks, [k])[k] == pytest.approx(
            brute_force_recall(z["text"], z["image"], correct, k)
        )
        assert measures.recall_at(image_ranks, [k])[k] == pytest.approx(
            brute_force_recall(z["image"], z["text"], correct, k)
        )


def assert_counts(ranks, scores, correct):
    above, tied, best_correct = brute_force_counts(scores, correct)
    np.testing.assert_array_equal(ranks.above, above)
    np.testing.assert_array_equal(ranks.tied, tied)
    np.testing.assert_array_equal(ranks.best_correct, best_correct)


@pytest.mark.parametrize("chunk_size", [2048, 64, 37])
def test_ranks_equal_brute_force_counts_on_data_full_of_ties(chunk_size):
    """Embeddings quantised to a coarse grid, so many scores tie exactly: the counts above and tied must
    still be exact at both levels, whether the items fit one chunk or fill several, with classes split
    over chunks (chunk 64: a class of ~75 items is a group of two chunks) or packed several to a chunk."""
    rng = np.random.default_rng(5)
    n = 300
    labels = rng.integers(4, size=n)
    images = np.round(rng.normal(size=(n, 4)) * 2) / 2
    images[::7] = images[1::7][: len(images[::7])]  # duplicate items
    texts = images + np.round(rng.normal(size=(n, 4))) / 2
    texts[::5] = texts[0]  # duplicate captions
    images, texts = (x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-9) for x in (images, texts))
    images, texts = images.astype(np.float32), texts.astype(np.float32)
    ranks = measures.retrieval_ranks(texts, images, labels, ("instance", "class"), chunk_size=chunk_size)
    scores = texts @ images.T  # one product: the same float32 values the ranks compare (the grid is exact)
    assert len(np.unique(scores)) < scores.size / 5  # plenty of exact ties
    for level, correct in (("instance", [{i} for i in range(n)]),
                           ("class", [set(np.flatnonzero(labels == labels[i])) for i in range(n)])):  # fmt: skip
        text_ranks, image_ranks = ranks[level]
        assert text_ranks.tied.sum() > 0 and (level == "instance" or image_ranks.best_correct.max() > 1)
        assert_counts(text_ranks, scores, correct)
        assert_counts(image_ranks, scores.T, correct)
        for k in (1, 5):
            assert measures.recall_at(text_ranks, [k])[k] == pytest.approx(
                brute_force_recall(texts, images, correct, k)
            )


def test_item_ranks_on_continuous_data_across_chunk_remainders():
    """Several chunks with a remainder, 512-d float32: an item's own captions never count against it."""
    rng = np.random.default_rng(3)
    items = unit(rng.normal(size=(300, 512))).astype(np.float32)
    owner = np.repeat(np.arange(300), 2)[:-1]  # 599 captions: the last item has one
    captions = unit(items[owner] + 0.9 * rng.normal(size=(len(owner), 512))).astype(np.float32)
    _, item_ranks = measures.retrieval_ranks(captions, items, np.full(300, -1), ("instance",), owner, chunk_size=64)[
        "instance"
    ]
    scores = items.astype(np.float64) @ captions.astype(np.float64).T
    expected = [
        int((np.delete(row, np.flatnonzero(owner == j)) > row[owner == j].max()).sum()) for j, row in enumerate(scores)
    ]
    np.testing.assert_array_equal(item_ranks.above, expected)
    assert (item_ranks.tied == 0).all() and (item_ranks.best_correct == 1).all()


def test_unlabelled_items_have_instance_ranks_but_no_class_ranks():
    rng = np.random.default_rng(4)
    labels = rng.integers(3, size=90)
    labels[::4] = -1
    texts, items = (unit(rng.normal(size=(90, 6))).astype(np.float32) for _ in range(2))
    ranks = measures.retrieval_ranks(texts, items, labels, ("instance", "class"), chunk_size=16)
    scores = texts @ items.T
    assert_counts(ranks["instance"][0], scores, [{i} for i in range(90)])
    keep = labels >= 0
    kept, kept_labels = scores[np.ix_(keep, keep)], labels[keep]
    correct = [set(np.flatnonzero(kept_labels == label)) for label in kept_labels]
    text_ranks, item_ranks = ranks["class"]
    assert (text_ranks.above[~keep] == -1).all() and (item_ranks.above[~keep] == -1).all()
    np.testing.assert_array_equal(text_ranks.above[keep], brute_force_counts(kept, correct)[0])
    np.testing.assert_array_equal(item_ranks.above[keep], brute_force_counts(kept.T, correct)[0])


def test_retrieval_metrics_keys_for_three_modalities():
    z, labels = clustered()
    result = measures.retrieval_metrics(z, labels, "class", ks=(1, 5))
    assert set(result) == {f"r{k}_{a}_{b}" for k in (1, 5) for a, b in
                           (("text", "image"), ("image", "text"), ("text", "audio"), ("audio", "text"))}  # fmt: skip


def test_clustering_matches_scikit_learn():
    z, labels = clustered(offset=0.5)
    points, stacked_labels = measures.stacked(z, labels)
    assert points.shape == (180, 8) and stacked_labels.tolist() == labels.tolist() * 3
    clusters = KMeans(n_clusters=4, random_state=0, n_init=10).fit_predict(points)
    scores, _ = low_variance.clustering_over_states(points, stacked_labels, 4, n_states=1)
    assert scores["v_measure"] == pytest.approx(100 * v_measure_score(stacked_labels, clusters))
    assert 0 <= scores["ari"] <= 100 and scores["homogeneity"] <= 100


def test_unlabelled_items_are_left_out_of_clustering():
    z, labels = clustered(modalities=("image", "text"))
    labels = labels.copy()
    labels[:10] = -1
    points, stacked_labels = measures.stacked(z, labels)
    assert len(points) == 2 * 50 and (stacked_labels >= 0).all()


def brute_force_knn(points, labels, k=5, test_fraction=0.2, seed=0):
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(points, labels, test_size=test_fraction, random_state=seed)
    correct = 0
    for x, y in zip(test_x, test_y):
        nearest = np.argsort(np.linalg.norm(train_x - x, axis=1), kind="stable")[:k]
        votes = np.bincount(train_y[nearest], minlength=labels.max() + 1)
        correct += np.argmax(votes) == y
    return 100 * correct / len(test_y)


def test_knn_accuracy_matches_brute_force():
    z, labels = clustered(offset=0.5)
    points, stacked_labels = measures.stacked(z, labels)
    assert measures.knn_accuracy(z, labels) == pytest.approx(brute_force_knn(points, stacked_labels))


@pytest.mark.parametrize("chunk_size", [2048, 40, 7])
def test_knn_shared_with_retrieval_equals_knn_alone_and_scikit_learn(chunk_size):
    """kNN that takes its text-to-other neighbours from the retrieval passes finds the same neighbours as kNN
    in passes of its own and as scikit-learn, with unlabelled items left out and any chunking."""
    from sklearn.neighbors import KNeighborsClassifier

    z, labels = clustered(n=240, d=12, classes=5, offset=0.3, seed=8)
    labels = labels.copy()
    labels[::9] = -1
    z = {m: x.astype(np.float32) for m, x in z.items()}
    protocol = measures.KnnProtocol(k=5, test_fraction=0.25, seed=3)
    recalls, shared = measures.retrieval_and_knn(z, labels, levels=("class",), knn=protocol, chunk_size=chunk_size)
    _, alone = measures.retrieval_and_knn(z, labels, knn=protocol, chunk_size=chunk_size)
    points, stacked_labels = measures.stacked(z, labels)
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(points, stacked_labels, test_size=0.25, random_state=3)
    expected = 100 * np.mean(KNeighborsClassifier(5).fit(train_x, train_y).predict(test_x) == test_y)
    assert shared == alone == pytest.approx(expected)
    assert recalls["class"] == measures.retrieval_metrics(z, labels, "class")


def test_passes_give_the_same_bytes_with_one_thread_or_two(monkeypatch):
    from modgap.metrics import similarity

    z, labels = clustered(n=400, d=16, classes=6, offset=0.2, seed=9)
    z = {m: x.astype(np.float32) for m, x in z.items()}
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(similarity, "default_threads", lambda threads=threads: threads)
        results.append(measures.retrieval_and_knn(z, labels, levels=("instance", "class"), knn=measures.KnnProtocol(),
                                                 chunk_size=50))  # fmt: skip
    assert results[0] == results[1]


def test_posthoc_shift_removes_the_centroid_gap():
    z, _ = clustered(modalities=("image", "text"), offset=3.0)
    delta = z["image"].mean(0) - z["text"].mean(0)
    shifted = posthoc_shift(z, 1.0)
    # before re-normalisation the centroids coincide: check the post-hoc shift's formula directly
    moved_a, moved_b = z["image"] - delta / 2, z["text"] + delta / 2
    np.testing.assert_allclose(moved_a.mean(0), moved_b.mean(0), atol=1e-12)
    np.testing.assert_allclose(shifted["image"], unit(moved_a), atol=1e-12)
    before, after = measures.gap(z["image"], z["text"]), measures.gap(shifted["image"], shifted["text"])
    assert after < 0.1 * before
    assert measures.gap(*posthoc_shift(z, 0.0).values()) == pytest.approx(before)
    assert measures.gap(*posthoc_shift(z, -1.0).values()) > before


def test_shift_dump_moves_captions_with_the_text():
    z, labels = clustered(n=12, modalities=("image", "text"), offset=3.0)
    dump = {**z, "labels": labels, "text_captions": z["text"].copy(), "text_caption_item": np.arange(12)}
    shifted = shift_dump(dump, 1.0)
    np.testing.assert_allclose(shifted["text_captions"], shifted["text"], atol=1e-6)


def test_intra_modality_cosine_is_the_mean_off_diagonal_cosine():
    z, _ = clustered(n=15, modalities=("image",))
    gram = z["image"] @ z["image"].T
    assert intra_modality_cosine(z["image"]) == pytest.approx(gram[~np.eye(15, dtype=bool)].mean())


def test_compute_metrics_gives_flat_percent_keys():
    z, labels = clustered(offset=0.5, n=100)
    result = compute_metrics({**z, "labels": labels}, "class", OPTIONS)
    for key in ("gap", "gap_image_text", "cos_true_pairs", "r1_text_image", "r1_image_text", "r1_text_audio",
                "v_measure", "knn_acc", "linear_probe_acc", "kmeans_k", "intra_cos_audio", "r1_mean", "r1_chance"):  # fmt: skip
        assert key in result, key
    assert result["kmeans_k"] == 4 and 0 <= result["v_measure"] <= 100 and 0 <= result["knn_acc"] <= 100
    assert result["r1_chance"] == pytest.approx(25.0) and result["notes"] == []
    assert compute_metrics({**z, "labels": labels}, "class", {**OPTIONS, "kmeans_k": 10})["kmeans_k"] == 10


def test_sparse_labels_give_nan_with_a_note_not_a_crash(caplog):
    """As on real COCO files: few test images have a single category, most are labelled -1."""
    z, _ = clustered(n=40, modalities=("image", "text"))
    labels = np.full(40, -1)
    labels[[3, 9, 17]] = [5, 5, 71]  # three labelled items, two classes present
    with caplog.at_level("WARNING"):
        result = compute_metrics({**z, "labels": labels}, "instance", {**OPTIONS, "linear_probe": False})
    assert result["n_classes_present"] == 2 and result["kmeans_k"] == 2
    assert np.isnan(result["v_measure"]) and np.isnan(result["knn_acc"])
    assert any("clustering skipped" in note for note in result["notes"]) and "clustering skipped" in caplog.text
    assert 0 <= result["r1_text_image"] <= 100  # instance retrieval uses every item, labelled or not


def test_kmeans_k_is_the_number_of_classes_present():
    z, labels = clustered(n=80, classes=4)
    labels = np.where(labels == 3, -1, labels)  # one class has no labelled test item
    result = compute_metrics({**z, "labels": labels}, "class", {**OPTIONS, "linear_probe": False})
    assert result["kmeans_k"] == 3 and not np.isnan(result["v_measure"]) and result["notes"] == []


@pytest.mark.parametrize("case", ["random", "identical", "one cluster", "all singletons", "one class"])
def test_partition_scores_equal_scikit_learns(case):
    from sklearn import metrics as skm

    rng = np.random.default_rng(11)
    labels = rng.integers(5, size=200)
    clusters = {"random": rng.integers(7, size=200), "identical": labels * 3 + 1, "one cluster": np.zeros(200, int),
                "all singletons": np.arange(200), "one class": rng.integers(3, size=200)}[case]  # fmt: skip
    if case == "one class":
        labels = np.zeros(200, int)
    scores = measures.partition_scores(labels, clusters)
    homogeneity, completeness, v_measure = skm.homogeneity_completeness_v_measure(labels, clusters)
    expected = {"v_measure": v_measure, "homogeneity": homogeneity, "completeness": completeness,
                "nmi": skm.normalized_mutual_info_score(labels, clusters), "ari": skm.adjusted_rand_score(labels, clusters)}  # fmt: skip
    for name, value in expected.items():
        assert scores[name] == pytest.approx(100 * value, abs=1e-9), name


@pytest.mark.parametrize("n, fraction, seed", [(10, 0.2, 0), (101, 0.2, 3), (7, 0.5, 1), (1000, 0.33, 42)])
def test_split_indices_equal_train_test_split(n, fraction, seed):
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(n), test_size=fraction, random_state=seed)
    ours_train, ours_test = measures.split_indices(n, fraction, seed)
    np.testing.assert_array_equal(ours_train, train)
    np.testing.assert_array_equal(ours_test, test)


def test_knn_refuses_embeddings_that_are_not_unit_vectors():
    z, labels = clustered(n=40, modalities=("image", "text"))
    with pytest.raises(ValueError, match="text embeddings have norms 2.0000-2.0000"):
        measures.knn_accuracy({"image": z["image"], "text": 2 * z["text"]}, labels)


def test_knn_with_more_neighbours_than_a_block_holds_candidates():
    """k larger than a tile's columns (chunks of 16 items): each block offers fewer than k candidates, and the
    lists merged over the blocks stay the true top k."""
    z, labels = clustered(n=150, d=6, classes=3, modalities=("image", "text"), seed=12)
    z = {m: x.astype(np.float32) for m, x in z.items()}
    points, stacked_labels = measures.stacked(z, labels)
    for k in (3, 9, 40):
        _, accuracy = measures.retrieval_and_knn(z, labels, knn=measures.KnnProtocol(k=k), chunk_size=16)
        assert accuracy == pytest.approx(brute_force_knn(points, stacked_labels, k=k))


def test_a_dump_with_non_finite_embeddings_names_itself(tmp_path):
    from modgap.embeddings.dumps import load_embeddings
    from modgap.errors import CorruptIntermediateError

    z, labels = clustered(n=10, modalities=("image", "text"))
    z["text"][3, 0] = np.nan
    np.savez(tmp_path / "seed0.npz", **z, labels=labels)
    with pytest.raises(
        CorruptIntermediateError, match=r"seed0.npz: damaged embedding dump \(non-finite values in 'text'\)"
    ):
        load_embeddings(tmp_path / "seed0.npz")


def test_partition_scores_of_a_single_point():
    assert measures.partition_scores(np.array([3]), np.array([0])) == {
        "v_measure": 100.0, "homogeneity": 100.0, "completeness": 100.0, "nmi": 100.0, "ari": 100.0}  # fmt: skip


COLLAPSE = {"r1_over_chance": 2.0, "min_effective_rank": 1.0}


def test_effective_rank_by_hand():
    same = np.tile(unit(np.ones((1, 8))), (5, 1))
    assert measures.effective_rank(same) == 0.0  # every row one point: nothing about the mean
    assert measures.effective_rank(np.vstack([same, -same])) == pytest.approx(1.0)  # two points: one direction
    simplex = np.eye(6)  # six orthonormal rows: about their mean, five equal directions
    assert measures.effective_rank(simplex) == pytest.approx(5.0)
    # centred singular values 3 and 1 (rows +-(3, 0) and +-(0, 1)): shares 3/4 and 1/4
    two = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]]) / math.sqrt(2)
    assert measures.effective_rank(two) == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))
    cone = unit(np.hstack([np.ones((6, 1)) * 10, np.eye(6)]))  # a narrow cone: the axis centres away
    assert measures.effective_rank(cone) == pytest.approx(5.0)


def svd_effective_rank(z, tolerance=1e-6):
    """The definition read directly: the centred matrix's singular values by SVD."""
    singular = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    kept = singular[singular > tolerance * math.sqrt(float((z**2).sum()))]
    shares = kept / kept.sum()
    return float(np.exp(-(shares * np.log(shares)).sum())) if kept.size else 0.0


@pytest.mark.parametrize("shape", [(300, 16), (16, 300), (64, 64), (2, 8), (2000, 512)])
@pytest.mark.parametrize("rank", [1, 3, None])
@pytest.mark.parametrize("scale", [1e-170, 1.0, 1e150])
def test_effective_rank_matches_the_svd_definition(shape, rank, scale):
    rng = np.random.default_rng(sum(shape))
    z = rng.standard_normal(shape) * np.logspace(0, -7, shape[1])  # singular values over seven decades
    if rank is not None:
        z = rng.standard_normal((shape[0], rank)) @ rng.standard_normal((rank, shape[1]))
    assert measures.effective_rank(z * scale) == pytest.approx(svd_effective_rank(z), rel=1e-9)


def test_effective_rank_refuses_what_its_gram_route_cannot_measure():
    with pytest.raises(ValueError, match=r"an \(N, d\) matrix, got shape \(5,\)"):
        measures.effective_rank(np.ones(5))
    with pytest.raises(ValueError, match="tolerance 1e-09 lies below"):
        measures.effective_rank(np.eye(4), tolerance=1e-9)


def test_an_exactly_collapsed_encoder_is_flagged_collapsed():
    """Every embedding identical: R@1 is chance (ties broken at random) and the rank is 1, so the flag fires."""
    labels = np.arange(80) % 4
    same = np.tile(unit(np.ones((1, 8))), (80, 1))
    results = compute_metrics(
        {"image": same, "text": same.copy(), "labels": labels}, "class", {**OPTIONS, "linear_probe": False}
    )
    assert results["r1_mean"] == pytest.approx(results["r1_chance"]) == pytest.approx(25.0)
    assert results["effective_rank_image"] == 0.0
    assert is_collapsed(results, COLLAPSE)


def test_one_collapsed_modality_is_flagged_even_when_pairs_are_apart():
    z, labels = clustered(n=80, modalities=("image", "text"), seed=2)
    z["image"] = np.tile(z["image"][:1], (80, 1))  # images all one point, texts still spread
    results = compute_metrics({**z, "labels": labels}, "class", {**OPTIONS, "linear_probe": False})
    assert results["effective_rank_image"] == 0.0 and results["effective_rank_text"] > 2
    assert is_collapsed(results, COLLAPSE)
    healthy, _ = clustered(n=80, modalities=("image", "text"), seed=2)
    assert not is_collapsed(
        compute_metrics({**healthy, "labels": labels}, "class", {**OPTIONS, "linear_probe": False}), COLLAPSE
    )


def test_a_cone_effect_encoder_is_not_collapsed():
    """A large gap leaves each modality in a narrow cone (intra-modality cosine above 0.95, Liang et al. 2022)
    while retrieval stays far above chance: the inputs are told apart, so it is not a collapse."""
    rng = np.random.default_rng(3)
    classes, n, d = 10, 400, 32
    labels = np.arange(n) % classes
    directions = np.eye(d)[2 : 2 + classes]
    cones = {"image": np.eye(d)[0], "text": np.eye(d)[1]}  # each modality around its own axis: a gap of about 1.4
    z = {m: unit(axis + 0.2 * directions[labels] + 0.015 * rng.normal(size=(n, d))) for m, axis in cones.items()}
    results = compute_metrics({**z, "labels": labels}, "class", {**OPTIONS, "linear_probe": False})
    assert results["gap"] > 1.2 and min(results["intra_cos_image"], results["intra_cos_text"]) > 0.95
    assert results["r1_mean"] > 70 and results["effective_rank_image"] > 2
    assert not is_collapsed(results, COLLAPSE)


def test_an_item_split_never_finds_the_querys_own_partner():
    """Labels unrelated to the embeddings, every item's modalities identical: a point split finds each test
    point's partner among the train points (and its label), an item split cannot, so it scores chance."""
    rng = np.random.default_rng(7)
    n, classes = 400, 4
    labels = rng.integers(classes, size=n)
    items = unit(rng.normal(size=(n, 16)))
    z = {"image": items, "text": items.copy()}
    point = measures.retrieval_and_knn(z, labels, knn=measures.KnnProtocol(1, 0.2, 0, "point"))[1]
    item = measures.retrieval_and_knn(z, labels, knn=measures.KnnProtocol(1, 0.2, 0, "item"))[1]
    assert point > 70 and item < 40  # 1-NN: the partner (80 % of the time on the train side) vs chance 25 %
    train, test = measures.split_indices(n, 0.2, 0)
    assert len(test) == 80  # the item split's test part: these 80 items, in both modalities
