"""Speaker clustering of clip embeddings in linear memory.

What it computes
----------------
:func:`cluster_embeddings` groups L2-normalised embeddings (one row per clip) by **average
linkage cut at a cosine distance threshold** -- the criterion of
``sklearn.cluster.AgglomerativeClustering(metric="cosine", linkage="average",
distance_threshold=t)`` -- without ever forming the n x n distance matrix.

The average-linkage distance between clusters ``A`` and ``B`` is the mean cosine distance over
all ``|A| * |B|`` pairs of their members. Rows being unit vectors, it is one dot product::

    d(A, B) = mean_{a in A, b in B} (1 - a . b) = 1 - m_A . m_B

where ``m_A`` is the mean of ``A``'s rows. A cluster is therefore kept as its mean and its size
(memory ``O(n d)``), and the candidate pairs as a sparse graph (``O(n k)``).

The clustering runs in **levels**. Each level

1. builds a candidate graph: for every current vector, the ``k`` others of largest inner
   product. Level 0 searches the embeddings; later levels search the cluster means, whose inner
   products are exactly the clusters' average similarities. The search is exact up to
   ``exact_max`` vectors and partitioned above (k-means lists, see :func:`knn_graph`);
2. merges in rounds of reciprocal nearest neighbours (RAC): in each round every cluster finds
   its nearest neighbour in the graph (smallest distance; ties to the smaller id), and every
   pair of clusters that are each other's nearest and closer than ``threshold`` merges. A merged
   cluster keeps the smaller id and the union of both edge lists; its distances to its
   neighbours are exact average-linkage distances (by the Lance-Williams update
   ``d(A+B, X) = (|A| d(A, X) + |B| d(B, X)) / (|A| + |B|)`` where both terms are known, from the
   means otherwise). Rounds repeat until no two adjacent clusters are closer than ``threshold``.

Levels repeat until one merges nothing. Every merge joins two clusters whose average distance is
below ``threshold``, and when the last level's search was exact (``info["closed"]``; it is unless
more than ``exact_max`` clusters remain) no two output clusters are closer than ``threshold``:
the stopping condition of scikit-learn's average linkage. The graph only limits which pairs are
compared within a level, and a pair the graph missed is found by a later level's search among
the means. Merging all reciprocal nearest pairs at once gives the same result as merging the
single closest pair at a time because average linkage is reducible (Sumengen et al., "Scaling
hierarchical agglomerative clustering to billion-sized datasets", 2021); so where the graphs
hold the pairs sequential average linkage merges, the output is scikit-learn's. Measured: the
same labels as scikit-learn on the espeak-ng voice set at every threshold from 0.15 to 0.45, and
an adjusted Rand index of at least 0.99 between the two on overlapping synthetic groups (see
``tests/test_cluster.py`` and ``docs/clustering.md``).

Why not connected components of a threshold graph (the earlier design): that is single
linkage, and a chain of close pairs (clips between two voices) joins two speakers into one
group. Average linkage compares whole clusters, so a few close pairs do not merge distinct voices.

Determinism: the same input gives the same labels, byte for byte (seeded k-means samples and
initial centroids, neighbour lists in a total order (similarity descending, row ascending),
fixed tie-breaking in every round, searches that each run single-threaded in a fixed order).
Labels are numbered ``0 .. g-1`` in order of first occurrence in ``emb``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

log = logging.getLogger("wakeprep")

#: Recommended cosine distance threshold for Resemblyzer (``VoiceEncoder``) embeddings. Measured
#: on 12 espeak-ng voices x 16 phrases (``bench/cluster.py``, three jitter seeds): adjusted Rand
#: index 0.89 at 0.3 and 0.87 to 0.91 at 0.25, but 0.3 leaves only 3 to 5 % of same-voice clip
#: pairs in different clusters (0.25: 15 to 20 %), and a split clip pair is what leaks a speaker
#: across splits; 0.35 merges distinct voices (ARI 0.71). Real recordings vary more within a
#: speaker than espeak-ng does, which favours the higher value too.
DEFAULT_THRESHOLD: float = 0.3
#: Neighbours per clip (per cluster, on later levels) in the candidate graph.
DEFAULT_K: int = 16
#: Up to this many vectors the kNN search is exact; above, it is partitioned (:func:`knn_graph`).
EXACT_MAX: int = 10_000
#: Target rows per list of the partitioned kNN search.
LIST_SIZE: int = 1024
#: Most levels (kNN graph + merge rounds) a clustering runs; each level after the first searches
#: the clusters the previous one left.
MAX_LEVELS: int = 8
#: Edges per block in the linkage distance computations.
_BLOCK = 8192


def cluster_embeddings(
    emb: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    exact_max: int = EXACT_MAX,
    list_size: int = LIST_SIZE,
    spill: int = 2,
) -> tuple[np.ndarray, dict]:
    """Cluster unit-norm embeddings by average linkage, cut at a cosine distance threshold.

    See the module docstring for exactly what is computed.

    Parameters
    ----------
    emb : numpy.ndarray
        Array of shape ``(n, d)``, rows L2-normalised (a row whose norm is off by more than
        1e-3 is an error). ``float32``; other float dtypes are converted (a copy).
    threshold : float
        Cosine distance (``1 - cosine similarity``) at or above which two clusters are not
        merged, compared with the average distance over all pairs of their members (as
        scikit-learn's ``distance_threshold`` with ``linkage="average"``).
    k : int
        Neighbours per vector in each level's candidate graph (capped at the vectors minus one).
    seed : int
        Seed of the k-means of the partitioned search (unused when every search is exact).
    exact_max : int
        Largest number of vectors searched exactly; above it the search is partitioned (see
        :func:`knn_graph`).
    list_size, spill : int
        Partitioned search: target rows per list, and lists each row is compared in.

    Returns
    -------
    labels : numpy.ndarray
        ``int64`` array of shape ``(n,)``: cluster of each row, numbered ``0 .. g-1`` in order
        of first occurrence.
    info : dict
        ``method``, ``threshold``, ``k``, ``seed``, ``n``; ``knn`` (``"exact"`` or
        ``"partitioned"``), ``lists``, ``largest_list``, ``spill`` and ``comparisons`` (dot
        products per row) of the first level's search; ``edges`` (undirected edges of the first
        level's graph); ``levels`` and ``rounds`` (merge rounds over all levels);
        ``closed`` (True when the last level searched exactly and merged nothing, so no two
        output clusters are closer than ``threshold``); ``n_clusters``, ``largest_cluster``,
        ``singletons``; ``knn_s``, ``merge_s``, ``total_s`` (seconds).

    Raises
    ------
    ValueError
        If ``emb`` is not 2-D, holds non-finite values or rows that are not unit vectors, or a
        parameter is out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.standard_normal((3, 64))
    >>> x = np.repeat(centres, 5, axis=0) + 0.05 * rng.standard_normal((15, 64))
    >>> x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    >>> labels, info = cluster_embeddings(x, 0.3, k=4)
    >>> labels.tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    """
    t0 = time.perf_counter()
    emb = _check_embeddings(emb)
    _check_parameters(threshold, k, list_size, spill)
    n = emb.shape[0]
    info: dict = {"method": "knn-average-linkage-rac", "threshold": float(threshold),
                  "k": int(min(k, max(n - 1, 1))), "seed": int(seed), "n": int(n)}
    if n <= 1:
        info.update(knn="exact", lists=1, largest_list=n, spill=1, comparisons=0, edges=0,
                    levels=0, rounds=0, closed=True)
        return _finish(np.zeros(n, dtype=np.int64), info, 0.0, 0.0, t0)
    parent, knn_s, merge_s = _merge_levels(emb, float(threshold), k, seed, info,
                                           dict(exact_max=exact_max, list_size=list_size, spill=spill))
    return _finish(_first_occurrence_labels(_resolve(parent)), info, knn_s, merge_s, t0)


def _finish(labels: np.ndarray, info: dict, knn_s: float, merge_s: float, t0: float
            ) -> tuple[np.ndarray, dict]:
    """``labels`` and ``info`` with the cluster counts and timings added (and logged)."""
    sizes = np.bincount(labels)
    total = time.perf_counter() - t0
    info.update(n_clusters=int(sizes.size), largest_cluster=int(sizes.max(initial=0)),
                singletons=int((sizes == 1).sum()), knn_s=round(knn_s, 3),
                merge_s=round(merge_s, 3), total_s=round(total, 3))
    log.info("clustered %d embeddings into %d clusters in %.1f s (%d levels, %d rounds)",
             labels.size, info["n_clusters"], total, info["levels"], info["rounds"])
    return labels, info


def _check_parameters(threshold: float, k: int, list_size: int, spill: int) -> None:
    if not 0.0 < threshold <= 2.0:
        raise ValueError(f"threshold must be a cosine distance in (0, 2], got {threshold!r}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    if list_size < 2 or spill < 1:
        raise ValueError(f"list_size must be at least 2 and spill at least 1, got {list_size!r} and {spill!r}")


def _merge_levels(emb: np.ndarray, threshold: float, k: int, seed: int, info: dict,
                  search: dict) -> tuple[np.ndarray, float, float]:
    """The levels of :func:`cluster_embeddings` (at least two rows): search, then merge rounds,
    until a level merges nothing. Returns ``parent`` (every merged-away id points at the id it
    merged into) and the seconds spent searching and merging; adds the search facts of the
    first level, ``edges``, ``levels``, ``rounds`` and ``closed`` to ``info``."""
    n = emb.shape[0]
    # A cluster's id is its smallest row; `means` holds the mean of every cluster id.
    means = _Means(emb)
    counts = np.ones(n, dtype=np.float64)
    parent = np.arange(n, dtype=np.int64)
    ids = np.arange(n, dtype=np.int64)
    knn_s = merge_s = 0.0
    levels = rounds = 0
    closed = False
    while levels < MAX_LEVELS and ids.size > 1:
        t1 = time.perf_counter()
        # Later levels search the cluster means, whose inner products are exactly the
        # clusters' average similarities.
        x = emb if levels == 0 else means.get(ids)
        nbr, sim, facts = knn_graph(x, min(k, ids.size - 1), seed=seed + levels, **search)
        del x
        u, v, dist = _undirected_edges(nbr, sim)
        del nbr, sim
        u, v = ids[u].astype(u.dtype), ids[v].astype(v.dtype)
        if levels == 0:
            info.update(facts, edges=int(u.size))
        t2 = time.perf_counter()
        merged, r = _rac_average(means, counts, parent, u, v, dist, threshold)
        del u, v, dist
        knn_s += t2 - t1
        merge_s += time.perf_counter() - t2
        levels += 1
        rounds += r
        log.debug("level %d: %d clusters searched (%s), %d merges in %d rounds",
                  levels, ids.size, facts["knn"], merged, r)
        if merged == 0:
            closed = facts["knn"] == "exact"
            break
        ids = ids[parent[ids] == ids]
    info.update(levels=levels, rounds=int(rounds), closed=bool(closed or ids.size <= 1))
    return parent, knn_s, merge_s


def knn_graph(
    x: np.ndarray,
    k: int,
    *,
    exact_max: int = EXACT_MAX,
    list_size: int = LIST_SIZE,
    spill: int = 2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The ``k`` rows of largest inner product with each row (itself excluded).

    Up to ``exact_max`` rows the search is exact (brute force in blocks, faiss ``knn``). Above,
    it is a partitioned join:

    1. spherical k-means (10 iterations, NumPy) with ``round(n / list_size)`` centroids,
       initialised and trained on ``32 * nlist`` rows drawn with
       ``numpy.random.default_rng(seed)``; each row belongs to the list of its most similar
       centroid, and a list larger than ``2 * list_size`` is split by k-means on (a sample of)
       its own rows, so no list is much larger;
    2. each row also joins, as a candidate only, the ``spill - 1`` other lists whose centroids
       are most similar to it (looked for among the 8 centroids nearest its own list's);
    3. each row gets its exact ``k`` best among the members and candidates of its own list.

    Rows that share a list, or where one spills into the other's list, are compared; the cost
    is about ``spill * list_size`` dot products per row. Neighbours across list boundaries can
    be missed; :func:`cluster_embeddings` repairs that by searching again among the clusters.

    Parameters
    ----------
    x : numpy.ndarray
        ``float32`` array (n, d), C-contiguous.
    k : int
        Neighbours per row, at most ``n - 1``.
    exact_max, list_size, spill : int
        See above.
    seed : int
        Seed of the k-means samples.

    Returns
    -------
    nbr : numpy.ndarray
        ``int64`` (n, k) neighbour rows, sorted by (inner product descending, row ascending);
        ``-1`` where a row has fewer candidates.
    sim : numpy.ndarray
        ``float32`` (n, k) inner products (``-inf`` where ``nbr`` is ``-1``).
    facts : dict
        ``knn`` (``"exact"`` or ``"partitioned"``), ``lists``, ``largest_list``, ``spill``,
        ``comparisons`` (dot products computed per row).
    """
    n = x.shape[0]
    nbr = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    if n <= exact_max:
        rows = np.arange(n, dtype=np.int64)
        blocks = [(rows[i:i + 4096], rows) for i in range(0, n, 4096)]
        _run_joins(x, blocks, k, nbr, sim)
        return nbr, sim, {"knn": "exact", "lists": 1, "largest_list": int(n), "spill": 1,
                          "comparisons": int(n)}
    jobs, facts = _partitioned_jobs(x, list_size, spill, np.random.default_rng(seed))
    _run_joins(x, jobs, k, nbr, sim)
    return nbr, sim, facts


def _partitioned_jobs(x: np.ndarray, list_size: int, spill: int, rng: np.random.Generator
                      ) -> tuple[list, dict]:
    """The ``(queries, base)`` joins of :func:`knn_graph`'s partitioned search, one per list
    (queries: the rows whose own list it is; base: those and the rows spilling into it), and
    the search's facts."""
    n = x.shape[0]
    rows = np.arange(n, dtype=np.int64)
    cent, primary = _balanced_lists(x, list_size, rng)
    nlist = cent.shape[0]
    spill = max(1, min(spill, nlist))
    member = np.concatenate([primary[:, None], _spill_lists(x, cent, primary, spill)], axis=1)
    by_primary = np.argsort(primary, kind="stable")
    p_bounds = np.searchsorted(primary[by_primary], np.arange(nlist + 1))
    flat = member.ravel()
    by_any = np.argsort(flat, kind="stable")
    a_bounds = np.searchsorted(flat[by_any], np.arange(nlist + 1))
    row_of = np.repeat(rows, member.shape[1])
    del member, flat
    jobs = []
    for lst in range(nlist):
        queries = by_primary[p_bounds[lst]:p_bounds[lst + 1]]
        if queries.size:
            jobs.append((queries, row_of[by_any[a_bounds[lst]:a_bounds[lst + 1]]]))
    comparisons = sum(q.size * b.size for q, b in jobs)
    return jobs, {"knn": "partitioned", "lists": int(nlist),
                  "largest_list": int(np.diff(p_bounds).max()), "spill": int(spill),
                  "comparisons": int(round(comparisons / n))}


def _spill_lists(x: np.ndarray, cent: np.ndarray, primary: np.ndarray, spill: int) -> np.ndarray:
    """``int64 (n, spill - 1)``: the other lists each row joins as a candidate, those whose
    centroids are most similar to it among the 8 nearest its own list's (ties: smaller list)."""
    n = x.shape[0]
    extra = np.empty((n, spill - 1), dtype=np.int64)
    if spill == 1:
        return extra
    near = _nearest_centroids(cent, min(cent.shape[0], 9))[:, 1:]     # own list excluded
    for start in range(0, n, 8192):
        c = near[primary[start:start + 8192]]
        s = np.einsum("bd,bjd->bj", x[start:start + 8192], cent[c])
        order = np.lexsort((c, -s), axis=1)[:, :spill - 1]
        extra[start:start + 8192] = np.take_along_axis(c, order, axis=1)
    return extra


def _check_embeddings(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array (n, d), got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise ValueError(f"embeddings must be floating point, got dtype {emb.dtype}")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    for start in range(0, emb.shape[0], 1 << 16):
        block = emb[start:start + (1 << 16)]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        bad = ~(np.abs(norms - 1.0) <= 1e-3)  # also catches NaN and inf
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"embedding row {row} has norm {norms[row - start]:.6g}, not 1: rows must be finite "
                "and L2-normalised (divide by np.linalg.norm(emb, axis=1, keepdims=True))")
    return emb


def _faiss():
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("speaker clustering needs faiss: pip install faiss-cpu") from e
    return faiss


def _top_k(scores: np.ndarray, cand: np.ndarray, rows: np.ndarray, k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's best ``k`` candidates in a total order: score descending, then row ascending.

    ``cand`` (b, m) holds candidate rows for the rows ``rows`` (``-1`` for none; the row itself
    may appear anywhere among equal scores and is dropped). Missing neighbours come back as row
    ``-1`` with score ``-inf``.
    """
    if cand.shape[1] < k:
        pad = k - cand.shape[1]
        cand = np.pad(cand, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    valid = (cand >= 0) & (cand != rows[:, None])
    s = np.where(valid, scores, -np.inf).astype(np.float32)
    idx = np.where(valid, cand, np.iinfo(np.int64).max)
    order = np.lexsort((idx, -s), axis=1)[:, :k]
    s = np.take_along_axis(s, order, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    idx[~np.isfinite(s)] = -1
    return idx, s


def _join(x: np.ndarray, queries: np.ndarray, base: np.ndarray, k: int,
          nbr: np.ndarray, sim: np.ndarray) -> None:
    """Exact ``k`` best rows of ``base`` for each row of ``queries`` (both ascending), written
    into ``nbr`` and ``sim`` at the query rows.

    faiss is asked for a few spare candidates, so that near ties at the ``k``-th place are
    settled by :func:`_top_k`'s total order rather than by the search."""
    faiss = _faiss()
    xb = x if base.size == x.shape[0] else x[base]
    m = min(base.size, k + 1 + max(4, k // 4))
    for start in range(0, queries.size, 4096):
        q = queries[start:start + 4096]
        xq = x[q[0]:q[-1] + 1] if q[-1] - q[0] + 1 == q.size else x[q]
        scores, pos = faiss.knn(xq, xb, m, metric=faiss.METRIC_INNER_PRODUCT)
        cand = np.where(pos >= 0, base[np.maximum(pos, 0)], -1)
        nbr[q], sim[q] = _top_k(scores, cand, q, k)


def _run_joins(x: np.ndarray, jobs: list, k: int, nbr: np.ndarray, sim: np.ndarray) -> None:
    """Run :func:`_join` on every ``(queries, base)`` pair, on up to two threads.

    Each thread runs faiss single-threaded: its OpenMP threads spin while waiting and, on a
    machine shared with other work, two of them per search ran 2 to 3 times slower than one.
    The jobs write disjoint rows, so the result does not depend on the threads.
    """
    faiss = _faiss()
    workers = max(1, min(2, len(jobs), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))

    def run(chunk):
        faiss.omp_set_num_threads(1)  # per calling thread (an OpenMP ICV of this thread)
        for queries, base in chunk:
            _join(x, queries, base, k, nbr, sim)

    before = faiss.omp_get_max_threads()
    try:
        if workers == 1:
            run(jobs)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, [jobs[i::workers] for i in range(workers)]))
    finally:
        faiss.omp_set_num_threads(before)


def _assign(x: np.ndarray, cent: np.ndarray) -> np.ndarray:
    """Index of the most similar centroid of every row (ties: smallest index)."""
    out = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], 8192):
        out[start:start + 8192] = np.argmax(x[start:start + 8192] @ cent.T, axis=1)
    return out


def _kmeans(x: np.ndarray, nc: int, rng: np.random.Generator, niter: int = 10) -> np.ndarray:
    """``nc`` spherical k-means centroids (unit rows) of the rows of ``x``.

    Initial centroids are ``nc`` distinct rows drawn with ``rng``; an emptied centroid keeps its
    previous value.
    """
    cent = x[np.sort(rng.choice(x.shape[0], size=nc, replace=False))].astype(np.float32)
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    for _ in range(niter):
        a = _assign(x, cent)
        order = np.argsort(a, kind="stable")
        sizes = np.bincount(a, minlength=nc)
        full = np.flatnonzero(sizes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[full]
        sums = np.add.reduceat(x[order], starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        ok = norms[:, 0] > 0
        cent[full[ok]] = sums[ok] / norms[ok]
    return cent


def _balanced_lists(x: np.ndarray, list_size: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Centroids and each row's list; a list above ``2 * list_size`` rows is split by k-means."""
    n = x.shape[0]
    nlist = max(2, round(n / list_size))
    n_train = min(n, 32 * nlist)
    train = x[np.sort(rng.choice(n, size=n_train, replace=False))] if n_train < n else x
    cent = _kmeans(train, nlist, rng)
    del train
    primary = _assign(x, cent)
    for _ in range(3):
        sizes = np.bincount(primary, minlength=cent.shape[0])
        big = np.flatnonzero(sizes > 2 * list_size)
        if big.size == 0:
            break
        added = []
        next_id = cent.shape[0]
        for lst in big:
            rows = np.flatnonzero(primary == lst)
            parts = int(math.ceil(rows.size / list_size))
            sample = rows if rows.size <= 32 * parts else np.sort(rng.choice(rows, 32 * parts, replace=False))
            sub = _kmeans(x[sample], parts, rng)
            local = _assign(x[rows], sub)
            # Part 0 keeps the list's number, the other parts get new ones.
            ids = np.concatenate([[lst], next_id + np.arange(parts - 1)])
            cent[lst] = sub[0]
            added.append(sub[1:])
            next_id += parts - 1
            primary[rows] = ids[local]
        cent = np.concatenate([cent, *added])
    return cent, primary


def _nearest_centroids(cent: np.ndarray, m: int) -> np.ndarray:
    """For each centroid, the ``m`` most similar centroids: itself first, then by similarity
    descending (ties: smaller index)."""
    nc = cent.shape[0]
    out = np.empty((nc, m), dtype=np.int64)
    for start in range(0, nc, 4096):
        s = cent[start:start + 4096] @ cent.T
        b = s.shape[0]
        s[np.arange(b), np.arange(start, start + b)] = np.inf
        part = (np.argpartition(-s, m - 1, axis=1)[:, :m] if m < nc
                else np.tile(np.arange(nc), (b, 1)))
        sv = np.take_along_axis(s, part, axis=1)
        order = np.lexsort((part, -sv), axis=1)
        out[start:start + b] = np.take_along_axis(part, order, axis=1)
    return out


def _undirected_edges(nbr: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges ``u < v`` (sorted; int32 below 2**31 rows) of a kNN table and their
    distances ``1 - sim``."""
    n, k = nbr.shape
    key = np.repeat(np.arange(n, dtype=np.int64), k)
    dst = nbr.reshape(-1)
    ok = dst >= 0
    key, dst = key[ok], dst[ok]
    # key = min * n + max, computed in place to keep the peak low at a million rows.
    lo = np.minimum(key, dst)
    np.maximum(key, dst, out=key)
    key += lo * n
    del lo, dst
    order = np.argsort(key, kind="stable")
    key = key[order]
    keep = np.ones(key.size, dtype=bool)
    np.not_equal(key[1:], key[:-1], out=keep[1:])
    # Where both ends list each other, the first listing (the smaller row's) gives the distance.
    d = 1.0 - sim.reshape(-1)[ok][order[keep]].astype(np.float64)
    del order, ok
    key = key[keep]
    itype = _id_type(n)
    return (key // n).astype(itype), (key % n).astype(itype), d


def _id_type(n: int) -> type:
    """Integer type for cluster ids: int32 halves the edge lists' memory where it suffices."""
    return np.int32 if n < 2**31 else np.int64


class _Means:
    """Mean vector of every cluster, by cluster id.

    A single clip's mean is its embedding row, read from ``emb`` (not copied). A larger
    cluster's mean lives in a slot of a float32 buffer with room for ``n // 2 + 1`` clusters,
    the most there can be of two or more clips; slots are taken lowest first and reused when
    their cluster merges away, and the buffer's memory pages are only committed when written, so
    the resident size follows the clusters alive, not ``n``.
    """

    def __init__(self, emb: np.ndarray):
        n, d = emb.shape
        self.emb = emb
        self.slot = np.full(n, -1, dtype=np.int64)
        self.store = np.empty((n // 2 + 1, d), dtype=np.float32)
        self.free = np.empty(0, dtype=np.int64)
        self.used = 0

    def get(self, ids: np.ndarray) -> np.ndarray:
        """Means of clusters ``ids`` as a new (len(ids), d) float32 array."""
        out = self.emb[ids]
        s = self.slot[ids]
        big = s >= 0
        if big.any():
            out[big] = self.store[s[big]]
        return out

    def merge(self, a: np.ndarray, b: np.ndarray, wa: np.ndarray) -> None:
        """Clusters ``b`` merge into ``a`` (disjoint ids); ``wa`` is ``|a| / (|a| + |b|)``."""
        wa = wa.astype(np.float32)[:, None]
        new = self.get(a) * wa + self.get(b) * (np.float32(1.0) - wa)
        sa, sb = self.slot[a], self.slot[b]
        # `a` keeps its slot or takes `b`'s; slots of `b` left over are free again (their means
        # were read above); two single clips take a free slot.
        freed = sb[(sa >= 0) & (sb >= 0)]
        sa = np.where(sa >= 0, sa, sb)
        need = np.flatnonzero(sa < 0)
        pool = np.concatenate([self.free, np.sort(freed)])
        fresh = max(0, need.size - pool.size)
        sa[need] = np.concatenate([pool[:need.size], self.used + np.arange(fresh)])
        self.free = pool[need.size:]
        self.used += fresh
        self.slot[a] = sa
        self.slot[b] = -1
        self.store[sa] = new


def _link_dist(means: _Means, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Average-linkage cosine distance between clusters ``u`` and ``v``: one minus the inner
    product of their means (= the mean cosine similarity over all pairs of members)."""
    out = np.empty(u.size, dtype=np.float64)
    for start in range(0, u.size, _BLOCK):
        a = u[start:start + _BLOCK]
        b = v[start:start + _BLOCK]
        out[start:start + _BLOCK] = 1.0 - np.einsum("ij,ij->i", means.get(a), means.get(b))
    return out


def _rac_average(means: _Means, counts: np.ndarray, parent: np.ndarray, u: np.ndarray,
                 v: np.ndarray, dist: np.ndarray, threshold: float) -> tuple[int, int]:
    """Rounds of reciprocal-nearest-neighbour merges (average linkage) on the graph ``(u, v)``.

    ``u < v`` are cluster ids (one integer type) with their current distances ``dist``. Updates
    ``means``, ``counts`` and ``parent`` in place (a merged-away id points at the smaller id it
    merged into). Returns the number of merges and of rounds.
    """
    n = counts.shape[0]
    merges = rounds = 0
    while True:
        a, b = _mutual_nearest(u, v, dist, threshold, n)
        if a is None:
            break
        # The closest pair overall is always mutual, so every round merges at least one pair.
        rounds += 1
        merges += a.size
        # Edges touching a merged cluster ("dirty") move to the surviving id; the others keep
        # their ids and distances.
        touched = np.zeros(n, dtype=bool)
        touched[a] = True
        touched[b] = True
        dirty = touched[u] | touched[v]
        du, dv, dd = u[dirty], v[dirty], dist[dirty]
        clean = ~dirty
        u, v, dist = u[clean], v[clean], dist[clean]
        del dirty, clean
        # Size-weighted distances, with the sizes before this round's merges (Lance-Williams:
        # d(A+B, X) = (|A| d(A, X) + |B| d(B, X)) / (|A| + |B|)).
        weighted = counts[du] * counts[dv] * dd
        del dd
        total = counts[a] + counts[b]
        means.merge(a, b, counts[a] / total)
        counts[a] = total
        parent[b] = a
        lo, hi, new = _merged_edges(means, counts, touched, parent[du], parent[dv], weighted, u.dtype)
        del du, dv, weighted, touched
        u = np.concatenate([u, lo])
        v = np.concatenate([v, hi])
        dist = np.concatenate([dist, new])
    return merges, rounds


def _mutual_nearest(u: np.ndarray, v: np.ndarray, dist: np.ndarray, threshold: float, n: int
                    ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The pairs ``a < b`` of clusters that are each other's nearest neighbour in the graph and
    closer than ``threshold`` (``None, None`` when no edge is)."""
    act = np.flatnonzero(dist < threshold)
    if act.size == 0:
        return None, None
    # Nearest neighbour of every cluster among its edges under the threshold (a cluster
    # whose nearest neighbour is farther cannot merge this round anyway); ties go to the
    # smaller id.
    au, av, ad = u[act], v[act], dist[act]
    del act
    best = np.full(n, np.inf)
    np.minimum.at(best, au, ad)
    np.minimum.at(best, av, ad)
    nn = np.full(n, n, dtype=np.int64)
    at_best = ad == best[au]
    np.minimum.at(nn, au[at_best], av[at_best])
    at_best = ad == best[av]
    np.minimum.at(nn, av[at_best], au[at_best])
    del au, av, ad, at_best, best
    c = np.flatnonzero(nn < n)
    partner = nn[c]
    mutual = (nn[partner] == c) & (c < partner)
    return c[mutual], partner[mutual]


def _merged_edges(means: _Means, counts: np.ndarray, touched: np.ndarray, du: np.ndarray,
                  dv: np.ndarray, weighted: np.ndarray, itype: np.dtype
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges ``lo < hi`` (type ``itype``) that the dirty edges, now between surviving ids
    ``du, dv`` with size-weighted distances ``weighted``, become after a round's merges, and
    their distances. ``counts`` are the merged sizes; ``touched`` marks the clusters that took
    part in a merge."""
    n = counts.shape[0]
    loop = du != dv
    lo = np.minimum(du[loop], dv[loop])
    key = np.maximum(du[loop], dv[loop])
    key += lo * n  # parent is int64, so the key is too
    weighted = weighted[loop]
    del du, dv, loop, lo
    order = np.argsort(key, kind="stable")
    key, weighted = key[order], weighted[order]
    del order
    first = np.ones(key.size, dtype=bool)
    np.not_equal(key[1:], key[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    key = key[starts]
    lo, hi = (key // n).astype(itype), (key % n).astype(itype)
    del key, first
    # A new edge's distance follows from the old ones when every pair of the parts it
    # joins had an edge; otherwise it is computed from the two means.
    found = np.diff(np.append(starts, weighted.size))
    needed = (1 + touched[lo]) * (1 + touched[hi])
    new = np.add.reduceat(weighted, starts) if starts.size else np.empty(0)
    new /= counts[lo] * counts[hi]
    missing = found != needed
    new[missing] = _link_dist(means, lo[missing], hi[missing])
    return lo, hi, new


def _resolve(parent: np.ndarray) -> np.ndarray:
    """Root of every row (pointer jumping; parents always point at smaller ids)."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def _first_occurrence_labels(root: np.ndarray) -> np.ndarray:
    """Relabel cluster ids ``0 .. g-1`` in order of first occurrence.

    Every root is the smallest row of its cluster, so numbering the roots in row order numbers
    the clusters in order of their first row.
    """
    is_root = root == np.arange(root.size)
    number = np.cumsum(is_root, dtype=np.int64) - 1
    return number[root]
