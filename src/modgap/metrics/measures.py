"""Metrics on L2-normalised embeddings (docs/workflow.md, "Metrics"), vectorised with numpy.

Embeddings are float arrays (N, d) per modality, row i of every modality being
the same sample. Retrieval and kNN read their scores from tiled passes
(``modgap.metrics.similarity``), so 25,000 x 25,000 similarity matrices never exist in
memory at once, and both retrieval levels and kNN share the products they need.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modgap.metrics import similarity


def gap(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Distance between the modality centroids (Liang et al.)."""
    return float(np.linalg.norm(z_a.mean(axis=0) - z_b.mean(axis=0)))


def cos_true_pairs(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Mean cosine similarity of the true pairs (row i with row i)."""
    return float(np.mean(np.sum(z_a * z_b, axis=1)))


def pair_alignment(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """How far true pairs stand from unrelated ones, on the cosine scale: (cos of true pairs - cos of all
    cross-modal pairs) / (1 - cos of all cross-modal pairs), the latter mean_a . mean_b. 1: every pair
    coincides; 0: a pair is no closer than two unrelated items of the two modalities (two uniform, unaligned
    modalities, whose centroids both sit near the origin: no centroid gap, and no alignment either). NaN when
    every cross-modal pair coincides (nothing to tell apart)."""
    unrelated = float(z_a.astype(np.float64).mean(axis=0) @ z_b.astype(np.float64).mean(axis=0))
    if unrelated >= 1.0 - 1e-6:  # float32 rows of one point give 1 - 1e-9 or so: 0 / 0, not a perfect score
        return float("nan")
    return float((cos_true_pairs(z_a, z_b) - unrelated) / (1.0 - unrelated))


def true_pair_distance(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Mean Euclidean distance of the true pairs, mean_i ||a_i - b_i|| (Liang et al.'s instance-level gap, "L2I")."""
    return float(np.mean(np.linalg.norm(z_a.astype(np.float64) - z_b, axis=1)))


def intra_modality_cosine(z: np.ndarray) -> float:
    """Mean cosine between different rows of one modality of unit vectors: (||sum z||^2 - N) / (N (N - 1))."""
    n = len(z)
    total = z.astype(np.float64).sum(axis=0)
    return float((total @ total - n) / (n * (n - 1)))


# The smallest tolerance effective_rank accepts: its Gram matrix leaves rounding noise of about 1e-8 of the
# largest singular value (the square root of float64's epsilon), which a lower tolerance would count as directions.
GRAM_TOLERANCE_FLOOR = 1e-7


def effective_rank(z: np.ndarray, tolerance: float = 1e-6) -> float:
    """Effective rank (Roy & Vetterli 2007) of one modality's embeddings about their mean: exp of the entropy of
    the normalised singular values of the centred (N, d) matrix, those below ``tolerance`` times the rows' root
    mean square norm counted as zero. 0 when every input maps to one point; about the number of directions
    the inputs spread over otherwise, however narrow the cone they share (centring removes the cone's axis)."""
    _check_tolerance(tolerance)
    return effective_rank_of_centred(*centred_at_unit_scale(z), tolerance)


def _check_tolerance(tolerance: float) -> None:
    if not tolerance >= GRAM_TOLERANCE_FLOOR:  # NaN too
        raise ValueError(f"effective rank: tolerance {tolerance:g} lies below the Gram route's rounding floor")


def centred_at_unit_scale(z: np.ndarray) -> tuple[np.ndarray, float]:
    """The first, elementwise half of ``effective_rank``: the rows in float64, scaled so the largest entry is 1
    (the rank does not depend on scale; unit scale keeps the squares inside float64's range) and centred on
    their mean, with the scaled rows' root-sum-square norm."""
    if np.ndim(z) != 2:
        raise ValueError(f"effective rank needs an (N, d) matrix, got shape {np.shape(z)}")
    z = z.astype(np.float64)
    largest = float(np.abs(z).max()) if z.size else 0.0
    if largest > 0:
        z = z / largest
    return z - z.mean(axis=0), math.sqrt(float((z**2).sum()))


def effective_rank_of_centred(centred: np.ndarray, scale: float, tolerance: float = 1e-6) -> float:
    """The second half of ``effective_rank``, from ``centred_at_unit_scale``'s result: the singular values as the
    roots of the smaller Gram matrix's eigenvalues, N d^2 products instead of an SVD of the N x d matrix (3x
    faster at 25,000 x 512); rounding leaves the roots of zero eigenvalues about 1e-8 of the largest, below the
    tolerance's floor."""
    _check_tolerance(tolerance)
    if np.ndim(centred) != 2:
        raise ValueError(f"effective rank needs an (N, d) matrix, got shape {np.shape(centred)}")
    gram = centred.T @ centred if len(centred) >= centred.shape[1] else centred @ centred.T
    singular = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))
    kept = singular[singular > tolerance * scale]
    if kept.size == 0:
        return 0.0
    shares = kept / kept.sum()
    return float(np.exp(-(shares * np.log(shares)).sum()))


def relative_modality_gap(z_a: np.ndarray, z_b: np.ndarray) -> float:
    """Schrodi et al.'s relative modality gap (ICLR 2025, Eq. 1) with the cosine dissimilarity d = 1 - cos:
    the true pairs' mean dissimilarity over itself plus the mean dissimilarity of different rows within a
    modality (averaged over both). 0: every pair coincides (a collapsed encoder too: no gap to speak of);
    about 1/2: pairs are as far apart as unrelated rows of one modality (a random encoder); towards 1: pairs
    further apart than anything within a modality."""
    between = max(1.0 - cos_true_pairs(z_a, z_b), 0.0)  # rounding can leave -1e-8 for coinciding pairs
    within = max(1.0 - (intra_modality_cosine(z_a) + intra_modality_cosine(z_b)) / 2, 0.0)
    return float(between / (within + between)) if between > 0 else 0.0


# Rows per modality whose pairs enter the uniformity estimate; larger sets use a seeded sample of this many.
UNIFORMITY_ROWS = 5000


def uniformity(
    z: np.ndarray,
    t: float = 2.0,
    max_rows: int | None = UNIFORMITY_ROWS,
    seed: int = 0,
    chunk_size: int = similarity.CHUNK_SIZE,
) -> float:
    """Wang & Isola's uniformity (ICML 2020, Eq. 5): log mean_{i != j} exp(-t ||z_i - z_j||^2) over distinct
    rows of unit vectors; lower is more uniform (-4 for t = 2 on a sphere of many dimensions), 0 when every
    row is the same point. Above ``max_rows`` rows it is estimated on a seeded sample of that many rows;
    tiles keep memory at ``chunk_size`` squared."""
    if max_rows is not None and len(z) > max_rows:
        z = z[np.sort(np.random.default_rng(seed).choice(len(z), max_rows, replace=False))]
    n = len(z)
    if n < 2:
        return float("nan")
    z = np.ascontiguousarray(z, dtype=np.float32)
    # ||a - b||^2 = 2 - 2 a.b for unit vectors; every term is exp(2t (a.b - 1)) <= 1, so no overflow
    total = 0.0
    for start in range(0, n, chunk_size):
        block = z[start : start + chunk_size]
        for other in range(start, n, chunk_size):  # upper triangle of tiles, the off-diagonal ones counted twice
            terms = np.exp(2.0 * t * (block @ z[other : other + chunk_size].T - 1.0), dtype=np.float64)
            if other == start:
                np.fill_diagonal(terms, 0.0)
            total += (1.0 if other == start else 2.0) * float(terms.sum())
    return float(np.log(total / (n * (n - 1)))) if total > 0 else float("-inf")


def retrieval_ranks(
    texts: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    levels: Sequence[str] = ("instance",),
    owner: np.ndarray | None = None,
    chunk_size: int = similarity.CHUNK_SIZE,
) -> dict[str, tuple[similarity.Ranks, similarity.Ranks]]:
    """Ranks of every text among the items and of every item among the texts, per level, from one pass.

    Text ``t`` describes item ``owner[t]`` (default: its own row); ``labels`` are the items' classes (-1:
    none). Each query's ``similarity.Ranks`` entry counts the wrong answers above and tying its best
    correct score and the correct answers at it: at the 'instance' level the correct answers are a text's
    owner and an item's own texts (COCO: an item counts as found when any of its captions is); at the
    'class' level, every labelled item or text of the query's class (unlabelled queries are not ranked).
    """
    labels = np.asarray(labels)
    owner = np.arange(len(texts)) if owner is None else np.asarray(owner, dtype=np.int64)
    return _rank_pass(texts, items, owner, labels, similarity.layout(labels, chunk_size), levels)


def _rank_pass(texts, items, owner, labels, plan, levels, search=None, modalities=None) -> dict[str, tuple]:
    """One pass over ``texts @ items.T`` for the ranks at ``levels``; with a kNN ``search``, the pass also
    serves kNN between the two ``modalities`` (text, other)."""
    rows, cols = similarity.rows_by_chunk(owner, plan, len(items)), list(plan.chunks)
    consumers = []
    if search is not None:
        rows, row_side = search.side(modalities[0], rows)
        cols, col_side = search.side(modalities[1], cols)
        consumers.append(search.consumer(row_side, col_side, *modalities))
    dtype = np.result_type(texts, items)
    counters = [similarity.LevelRanks(level, plan, rows, cols, owner, labels, dtype) for level in levels]
    similarity.tile_pass(texts, items, rows, cols, plan, [*counters, *consumers])
    return {counter.level: counter.ranks() for counter in counters}


def instance_ranks(
    texts: np.ndarray, items: np.ndarray, text_item: np.ndarray | None = None
) -> tuple[similarity.Ranks, similarity.Ranks]:
    """Instance-level ranks both ways: caption ``t`` describes item ``text_item[t]`` (default: its own row)."""
    return retrieval_ranks(texts, items, np.full(len(items), -1), ("instance",), text_item)["instance"]


def class_ranks(texts: np.ndarray, items: np.ndarray, labels: np.ndarray) -> tuple[similarity.Ranks, similarity.Ranks]:
    """Class-level ranks both ways for paired texts and items (row i of each is sample i, of class labels[i])."""
    return retrieval_ranks(texts, items, labels, ("class",))["class"]


def recall_at(ranks: similarity.Ranks, ks: Sequence[int]) -> dict[int, float]:
    """R@k in percent, ties broken uniformly at random (in expectation, see ``similarity.Ranks``); queries
    that are not ranked (no label at the class level) are left out. Without ties this is the share of
    queries with fewer than k wrong answers above their best correct one; an encoder that maps every
    input to one point scores chance."""
    if not ranks.ranked.any():
        return {k: float("nan") for k in ks}
    return {k: float(100.0 * np.mean(ranks.hit_probability(k))) for k in ks}


def stacked(embeddings: Mapping[str, np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All modalities' embeddings stacked, labels repeated per modality; unlabelled (-1) rows dropped."""
    keep = labels >= 0
    points = np.concatenate([z[keep] for z in embeddings.values()])
    return points, np.tile(labels[keep], len(embeddings))


def _entropy(counts: np.ndarray) -> float:
    shares = counts[counts > 0] / counts.sum()
    return float(-np.sum(shares * np.log(shares)))


def partition_scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """V-Measure, homogeneity, completeness, NMI (arithmetic normalisation) and ARI of a clustering, in percent,
    from its contingency table (scikit-learn's definitions and conventions for degenerate partitions)."""
    _, label_of = np.unique(labels, return_inverse=True)
    _, cluster_of = np.unique(clusters, return_inverse=True)
    table = np.zeros((label_of.max(initial=-1) + 1, cluster_of.max(initial=-1) + 1))
    np.add.at(table, (label_of, cluster_of), 1)
    n = table.sum()
    h_labels, h_clusters = _entropy(table.sum(axis=1)), _entropy(table.sum(axis=0))
    joint = table[table > 0] / n
    outer = np.outer(table.sum(axis=1), table.sum(axis=0))[table > 0] / n**2
    mutual = float(max(np.sum(joint * np.log(joint / outer)), 0.0))
    homogeneity = 1.0 if h_labels == 0 else mutual / h_labels
    completeness = 1.0 if h_clusters == 0 else mutual / h_clusters
    v_measure = (
        0.0 if homogeneity + completeness == 0 else 2 * homogeneity * completeness / (homogeneity + completeness)
    )
    if table.shape[0] == table.shape[1] == 1 or h_labels == h_clusters == 0:
        nmi = 1.0
    else:
        nmi = mutual / max((h_labels + h_clusters) / 2, np.finfo(float).eps)

    def pairs(counts):
        return float(np.sum(counts * (counts - 1) / 2))

    together, same_label, same_cluster = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = same_label * same_cluster / pairs(np.array([n])) if n > 1 else 0.0
    top = (same_label + same_cluster) / 2
    ari = 1.0 if top == expected else (together - expected) / (top - expected)  # equal: full agreement
    scores = {"v_measure": v_measure, "homogeneity": homogeneity, "completeness": completeness, "nmi": nmi, "ari": ari}
    return {name: 100.0 * value for name, value in scores.items()}


def test_size(n: int, test_fraction: float) -> int:
    """Points in the test part of a split of ``n``: ceil(test_fraction n), as scikit-learn counts."""
    return int(np.ceil(test_fraction * n))


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of scikit-learn's ``train_test_split(range(n), test_size=test_fraction,
    random_state=seed)``: a RandomState(seed) permutation whose first ``test_size`` are the test part."""
    n_test = test_size(n, test_fraction)
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_test:], permutation[:n_test]


@dataclass(frozen=True)
class KnnProtocol:
    """kNN accuracy on the stacked labelled embeddings of every modality: ``k`` Euclidean neighbours, majority
    vote (ties: the smallest label), on a seeded random split (scikit-learn's ``train_test_split``).

    ``split`` 'point' splits the stacked points, as the released code does, so most test points have
    their own partner in another modality among the train points; 'item' splits the items, every
    modality of an item on the same side, so a neighbour is never the query's own partner."""

    k: int = 5
    test_fraction: float = 0.2
    seed: int = 0
    split: str = "point"


class _KnnSearch:
    """The neighbour lists of kNN's test points and the passes that fill them.

    Points are numbered as ``stacked`` orders them (modality by modality, labelled items in order). Unit
    vectors' Euclidean order is their inner products' order, so neighbours are the train points of
    highest score; passes between the text and another modality can be shared with retrieval.
    """

    def __init__(
        self,
        embeddings: Mapping[str, np.ndarray],
        labels: np.ndarray,
        plan: similarity.Layout,
        protocol: KnnProtocol,
        chunk_size: int,
    ) -> None:
        for modality, z in embeddings.items():
            norms = np.linalg.norm(z, axis=1)
            if not np.all(np.abs(norms - 1) <= 1e-3):  # NaN fails too
                raise ValueError(
                    f"kNN ranks unit vectors by inner product; the {modality} embeddings have norms "
                    f"{norms.min():.4f}-{norms.max():.4f} (L2-normalise them first)"
                )
        labelled = np.flatnonzero(labels >= 0)
        n_points = len(labelled) * len(embeddings)
        if protocol.split == "item":  # the test items' points in every modality, modality by modality
            train_items, test_items = split_indices(len(labelled), protocol.test_fraction, protocol.seed)
            offsets = len(labelled) * np.arange(len(embeddings))
            train = (offsets[:, None] + train_items[None, :]).ravel()
            test = (offsets[:, None] + test_items[None, :]).ravel()
        elif protocol.split == "point":
            train, test = split_indices(n_points, protocol.test_fraction, protocol.seed)
        else:
            raise ValueError(f"kNN split must be 'point' or 'item', got {protocol.split!r}")
        if len(train) < protocol.k or len(test) == 0:
            raise ValueError(
                f"kNN needs at least {protocol.k} train points and one test point, got {len(train)} and {len(test)}"
            )
        self.plan, self.test, self.labels = plan, test, labels
        self.chunk_size, self.test_fraction = chunk_size, protocol.test_fraction
        self.point_labels = np.tile(labels[labelled], len(embeddings))
        self.query = np.full(n_points, -1, dtype=np.int64)  # test point -> its neighbour list
        self.query[test] = np.arange(len(test))
        self.point = {}  # modality -> every item's point number (-1: unlabelled)
        for number, modality in enumerate(embeddings):
            self.point[modality] = np.full(len(labels), -1, dtype=np.int64)
            self.point[modality][labelled] = number * len(labelled) + np.arange(len(labelled))
        dtype = np.result_type(*embeddings.values())
        self.neighbours = similarity.Neighbours(len(test), protocol.k, dtype)
        self.covered: set[tuple[str, str]] = set()

    def side(self, modality: str, chunks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], similarity.Side]:
        """``chunks`` (item indices) reordered test points first, and their kNN ids."""
        ordered, n_queries, ids = [], [], []
        for members in chunks:
            points = self.point[modality][members]
            queries = np.where(points >= 0, self.query[points.clip(min=0)], -1)
            first = np.argsort(queries < 0, kind="stable")
            ordered.append(members[first])
            n_queries.append(int(np.sum(queries >= 0)))
            ids.append(np.where(queries >= 0, queries, points)[first])
        return ordered, similarity.Side(n_queries, ids)

    def consumer(self, rows: similarity.Side, cols: similarity.Side, row_modality: str, col_modality: str):
        """The consumer of a pass between two modalities, which then needs no pass of its own."""
        self.covered |= {(row_modality, col_modality), (col_modality, row_modality)}
        return similarity.NeighbourBlocks(self.neighbours, self.plan, rows, cols)

    def complete(self, embeddings: Mapping[str, np.ndarray]) -> None:
        """Passes of test points of ``a`` against train points of ``b`` for every pair not yet covered."""
        # chunks 1/test_fraction times larger, so that a chunk's test points alone still fill a tile's side;
        # the chunks of unlabelled items hold no kNN points
        full = similarity.layout(self.labels, int(np.ceil(self.chunk_size / self.test_fraction)))
        kept = full.labelled
        plan = similarity.Layout(tuple(c for c, keep in zip(full.chunks, kept) if keep), full.group[kept], kept[kept])
        for a, b in itertools.product(embeddings, repeat=2):
            if (a, b) in self.covered:
                continue
            rows = [members[self.query[self.point[a][members]] >= 0] for members in plan.chunks]  # test points of a
            cols = [members[self.query[self.point[b][members]] < 0] for members in plan.chunks]  # train points of b
            row_side = similarity.Side([len(r) for r in rows], [self.query[self.point[a][r]] for r in rows])
            col_side = similarity.Side([0] * len(cols), [self.point[b][c] for c in cols])
            blocks = similarity.NeighbourBlocks(self.neighbours, plan, row_side, col_side)
            similarity.tile_pass(embeddings[a], embeddings[b], rows, cols, plan, [blocks])

    def accuracy(self) -> float:
        if (self.neighbours.index < 0).any():  # every test point has at least k train points to choose from
            raise RuntimeError("kNN: a neighbour list was left incomplete")
        votes = self.point_labels[self.neighbours.index]
        classes = np.unique(self.point_labels)
        counts = (votes[:, :, None] == classes[None, None, :]).sum(axis=1)
        predicted = classes[np.argmax(counts, axis=1)]  # ties: the smallest label, as scikit-learn
        return float(100.0 * np.mean(predicted == self.point_labels[self.test]))


def retrieval_and_knn(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    levels: Sequence[str] = (),
    ks: Sequence[int] = (1, 5, 10),
    knn: KnnProtocol | None = None,
    text_captions: np.ndarray | None = None,
    text_caption_item: np.ndarray | None = None,
    text_modality: str = "text",
    chunk_size: int = similarity.CHUNK_SIZE,
) -> tuple[dict[str, dict[str, float]], float | None]:
    """Retrieval R@k at every level in ``levels`` and kNN accuracy, sharing the products they both need.

    Returns ``{level: {"r{k}_{query}_{target}": percent}}`` (both ways between the text and every other
    modality; empty without a text modality) and the kNN accuracy in percent (None without ``knn``). With
    ``text_captions`` the instance level ranks every caption (COCO); the class level uses the text modality.
    """
    labels = np.asarray(labels)
    plan = similarity.layout(labels, chunk_size)
    search = _KnnSearch(embeddings, labels, plan, knn, chunk_size) if knn is not None else None
    recalls: dict[str, dict[str, float]] = {level: {} for level in levels}
    identity = np.arange(len(labels))
    by_caption = text_captions is not None and "instance" in levels
    text_levels = [level for level in levels if not (by_caption and level == "instance")]
    others = [m for m in embeddings if m != text_modality] if text_modality in embeddings else []
    for other in others:
        ranks = {}
        if text_levels:  # kNN alone is cheaper in passes of its own (test against train points only)
            ranks |= _rank_pass(
                embeddings[text_modality],
                embeddings[other],
                identity,
                labels,
                plan,
                text_levels,
                search,
                (text_modality, other),
            )
        if by_caption:
            owner = np.asarray(text_caption_item, dtype=np.int64)
            ranks |= _rank_pass(text_captions, embeddings[other], owner, labels, plan, ["instance"])
        for level, (text_ranks, item_ranks) in ranks.items():
            for (query, target), level_ranks in {
                (text_modality, other): text_ranks,
                (other, text_modality): item_ranks,
            }.items():
                for k, value in recall_at(level_ranks, ks).items():
                    recalls[level][f"r{k}_{query}_{target}"] = value
    if search is None:
        return recalls, None
    search.complete(embeddings)
    return recalls, search.accuracy()


def knn_accuracy(
    embeddings: Mapping[str, np.ndarray], labels: np.ndarray, k: int = 5, test_fraction: float = 0.2, seed: int = 0
) -> float:
    """kNN accuracy in percent on the stacked labelled embeddings (see ``KnnProtocol``)."""
    return retrieval_and_knn(embeddings, labels, knn=KnnProtocol(k, test_fraction, seed))[1]


# The gap measures of every modality pair: key, function (each pair's value and the mean over pairs are reported).
PAIR_GAP_METRICS = {
    "gap": gap,
    "true_pair_distance": true_pair_distance,
    "rmg": relative_modality_gap,
    "cos_true_pairs": cos_true_pairs,
    "pair_alignment": pair_alignment,
}


def gap_metrics(
    embeddings: Mapping[str, np.ndarray], keys: Sequence[str] = tuple(PAIR_GAP_METRICS)
) -> dict[str, float]:
    """The measures ``keys`` of ``PAIR_GAP_METRICS`` (default: all) for every modality pair (``<key>_<a>_<b>``),
    plus each one's mean over the pairs (``<key>``)."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    unknown = [key for key in keys if key not in PAIR_GAP_METRICS]
    if unknown:
        raise ValueError(f"unknown gap measure {unknown[0]!r}; known: {', '.join(PAIR_GAP_METRICS)}")
    results: dict[str, float] = {}
    for key in keys:
        values = [
            results.setdefault(f"{key}_{a}_{b}", PAIR_GAP_METRICS[key](embeddings[a], embeddings[b]))
            for a, b in itertools.combinations(embeddings, 2)
        ]
        results[key] = float(np.mean(values))
    return results


def retrieval_metrics(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    level: str,
    ks: Sequence[int] = (1, 5, 10),
    text_captions: np.ndarray | None = None,
    text_caption_item: np.ndarray | None = None,
    text_modality: str = "text",
) -> dict[str, float]:
    """R@k both ways between the text and every other modality at one level, keys like ``r1_text_image``."""
    recalls, _ = retrieval_and_knn(
        embeddings,
        labels,
        levels=(level,),
        ks=ks,
        text_captions=text_captions,
        text_caption_item=text_caption_item,
        text_modality=text_modality,
    )
    return recalls[level]
