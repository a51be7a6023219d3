"""Section "4. Speakers and split": speaker group sizes (``group_sizes.png``), the
leakage check and audit (``leakage.html``), both from ``summary.json``, and a 2-D PCA
projection of a seeded sample of speaker embeddings, coloured by group (``embeddings.png``)."""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..stats import GROUP_KINDS, Groups, RunStats, size_bin, size_bin_name
from ..store import RaggedStore
from ..table import read_table
from .html import write_page
from .png import figure, no_data, save_png

#: Embeddings in the 2-D projection.
EMBEDDING_SAMPLE = 2000
#: Legend entries of the embedding plot (the largest groups of the sample).
LEGEND_GROUPS = 10


def write(outputs, *, summary, split, embeddings=(), seed: int = 0,
          sample_size: int = EMBEDDING_SAMPLE) -> None:
    """``group_sizes`` and ``leakage`` from ``summary.json``; ``embeddings`` from the
    shard embedding stores and the split table (``split``)."""
    s = RunStats.read(summary)
    plot_group_sizes(s.groups or Groups(), outputs["group_sizes"])
    write_page(outputs["leakage"], "leakage.html.j2", title="Speaker groups and leakage audit",
               **leakage_tables(s))
    ids, x = embedding_sample(embeddings, sample_size, seed)
    total = sum(len(RaggedStore(p)) for p in embeddings)
    plot_embeddings(ids, x, groups_of(split, ids), outputs["embeddings"], total=total)


def plot_group_sizes(g: Groups, path) -> Path:
    """Histogram of speaker group sizes in power-of-two bins, stacked by group kind."""
    with figure(7, 3.2) as fig:
        ax = fig.add_subplot()
        if not g.groups:
            no_data(ax, "no groups")
            return save_png(fig, path)
        edges = [1]
        while edges[-1] < size_bin(g.largest):
            edges.append(edges[-1] * 2)
        x = np.arange(len(edges))
        bottom = np.zeros(len(edges))
        for k, (kind, name) in enumerate(GROUP_KINDS.items()):
            h = np.array([g.size_bins.get(kind, {}).get(str(e), 0) for e in edges], dtype=float)
            if h.sum():
                ax.bar(x, h, bottom=bottom, label=f"{name} ({int(h.sum())})", color=f"C{k}")
                bottom += h
        ax.set_xticks(x, [size_bin_name(e) for e in edges])
        ax.set_xlabel("clips in the group")
        ax.set_ylabel("groups")
        ax.set_title(f"Speaker group sizes: {g.groups} groups, median {g.median:g}, largest {g.largest} clips")
        ax.legend(frameon=False)
        return save_png(fig, path)


def leakage_tables(s: RunStats) -> dict:
    """The context of ``leakage.html``: groups, the check, the audit and the clustering."""
    leak = s.leakage
    g = s.groups or Groups()
    if leak is None:
        raise ValueError("report: summary.json has no leakage check (rule summary ran without the split report)")
    return {
        "leak": leak, "g": g,
        "kinds": [[name, g.by_kind.get(key, 0)] for key, name in GROUP_KINDS.items()],
        "audit": [[k, v.get("clips"), v.get("above"), v.get("fraction_above"), v.get("median_similarity"),
                   v.get("max_similarity")] for k, v in leak.per_split_label.items()],
        "pairs": [[p["similarity"], p["split"], p["clip"], p["group"], p["nearest_train_clip"], p["train_group"]]
                  for p in leak.worst_pairs],
        "clustering": [[k, json.dumps(v)] for k, v in sorted(leak.clustering.items())],
    }


def hash_first(items: Iterable, n: int, seed: int, key=lambda item: item) -> list:
    """The ``n`` items whose ids (``key(item)``) come first in the seeded hash order
    of :func:`wakeprep.split._hash_order` (SHA-256 of ``"{seed}:{id}"``, then the id),
    sorted by id. A heap keeps ``n`` items at a time: memory does not grow with the
    corpus, and the choice does not depend on the order of ``items``."""

    def rank(item):
        cid = key(item)
        return hashlib.sha256(f"{seed}:{cid}".encode()).digest()[:8], cid

    return sorted(heapq.nsmallest(n, items, key=rank), key=key)


def groups_of(split_table, ids: Iterable[str]) -> dict[str, str]:
    """Speaker group of each of ``ids`` (clips missing from the table are left out)."""
    wanted = set(ids)
    return {r["clip_id"]: r["group"] for r in read_table(split_table) if r["clip_id"] in wanted}


def embedding_sample(stores: Sequence, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """A seeded sample of at most ``n`` embeddings from shard embedding stores.

    The sample depends on the clip ids and the seed only (not on the order of the
    stores): see :func:`hash_first`. Returns the ids, sorted, and a float64 array of
    their rows (an item of several rows gives its mean row).
    """
    opened = [RaggedStore(p) for p in stores]
    items = ((cid, k, i) for k, s in enumerate(opened) for i, cid in enumerate(s.ids))
    chosen = hash_first(items, n, seed, key=lambda t: t[0])
    if not chosen:
        return [], np.zeros((0, 0))
    dim = int(np.prod(opened[chosen[0][1]].row_shape))
    x = np.zeros((len(chosen), dim))
    for row, (_, k, i) in enumerate(chosen):
        x[row] = np.asarray(opened[k][i], dtype=np.float64).reshape(-1, dim).mean(axis=0)
    return [t[0] for t in chosen], x


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal components of the rows of ``x`` (NumPy SVD).

    Each component's sign is fixed (its largest loading is positive), so the picture
    does not flip between runs. Returns the ``(n, 2)`` projection and the fraction of
    variance each component explains.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        return np.zeros((len(x), 2)), np.zeros(2)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(2, len(s))
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1, signs)[:, None]
    y = np.zeros((len(x), 2))
    y[:, :k] = xc @ comps.T
    total = float(np.sum(s**2))
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return y, explained


def plot_embeddings(ids: Sequence[str], x: np.ndarray, groups: Mapping[str, str], path,
                    total: int | None = None) -> Path:
    """Scatter of the PCA projection of ``x``, one colour per speaker group.

    Groups are ranked by their clips in the sample (then by name); colours cycle
    through 20, so beyond 20 groups a colour stands for several groups. The legend
    names the :data:`LEGEND_GROUPS` largest.
    """
    import matplotlib

    with figure(7, 5.6) as fig:
        ax = fig.add_subplot()
        if len(ids) < 2:
            no_data(ax, "fewer than two speaker embeddings")
            return save_png(fig, path)
        y, explained = pca_2d(x)
        g = [groups.get(i, "(no group)") for i in ids]
        sizes = Counter(g)
        rank = {name: r for r, (name, _) in enumerate(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))}
        cmap = matplotlib.colormaps["tab20"]
        ax.scatter(y[:, 0], y[:, 1], c=np.array([cmap(rank[v] % 20) for v in g]), s=14, linewidths=0, alpha=0.85)
        for name, r in sorted(rank.items(), key=lambda kv: kv[1])[:LEGEND_GROUPS]:
            ax.scatter([], [], color=cmap(r % 20), s=14, label=f"{name} ({sizes[name]})")
        ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f}% of variance)")
        of = f" of {total}" if total is not None else ""
        ax.set_title(f"Speaker embeddings: {len(ids)}{of} clips, {len(sizes)} groups")
        return save_png(fig, path)
