"""Synthetic unit embeddings with planted speaker groups, for the clustering tests and
``bench/cluster.py`` (moved here from ``wakeprep.cluster``: test data, not library code)."""

from __future__ import annotations

import math

import numpy as np

from wakeprep.cluster import _first_occurrence_labels, _resolve


def planted_embeddings(
    n: int,
    d: int = 256,
    *,
    sizes: tuple[int, int] = (20, 200),
    within: float = 0.8,
    between: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic unit embeddings with planted speaker groups, for tests and benchmarks.

    Group sizes are drawn uniformly from ``sizes`` (the last group takes what is left); rows are
    in random order. Each group has a centre ``sqrt(between) * m + sqrt(1 - between) * g`` (``m`` a
    direction shared by all groups, ``g`` the group's own random unit direction), and each row is
    ``centre + noise`` normalised, the noise scaled so that two rows of one group have a cosine
    similarity of about ``within`` and rows of different groups about ``between * within``.

    Parameters
    ----------
    n, d : int
        Rows and dimensions.
    sizes : tuple of int
        Smallest and largest group size, both included.
    within, between : float
        Target similarities (see above), each in (0, 1).
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    emb : numpy.ndarray
        ``float32`` (n, d), unit rows.
    groups : numpy.ndarray
        ``int64`` (n,), the planted group of each row, numbered in order of first occurrence.
    """
    if not (0 < within < 1 and 0 <= between < 1):
        raise ValueError(f"within must be in (0, 1) and between in [0, 1), got {within}, {between}")
    rng = np.random.default_rng(seed)
    counts: list[int] = []
    while sum(counts) < n:
        counts.append(int(rng.integers(sizes[0], sizes[1] + 1)))
    counts[-1] -= sum(counts) - n
    g = len(counts)
    shared = rng.standard_normal(d)
    shared /= np.linalg.norm(shared)
    own = rng.standard_normal((g, d))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    centres = math.sqrt(between) * shared + math.sqrt(1 - between) * own
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    groups = rng.permutation(np.repeat(np.arange(g), counts))
    # |centre| = 1 and noise of norm s give cos(row_i, row_j) ~ 1 / (1 + s^2) within a group.
    s = math.sqrt(1.0 / within - 1.0)
    emb = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 1 << 16):
        lab = groups[start:start + (1 << 16)]
        x = centres[lab] + (s / math.sqrt(d)) * rng.standard_normal((lab.size, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        emb[start:start + lab.size] = x
    return emb, _first_occurrence_labels(_resolve(_min_row_of_group(groups)))


def _min_row_of_group(groups: np.ndarray) -> np.ndarray:
    """For each row, the first row of its group (a ``parent`` array for :func:`_resolve`)."""
    first = np.full(int(groups.max()) + 1, groups.size, dtype=np.int64)
    np.minimum.at(first, groups, np.arange(groups.size))
    return first[groups]
