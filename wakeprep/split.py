"""Speaker groups and the group-aware, label-stratified train/validation/test split.

Groups, in order of precedence:

1. a clip with a known speaker id (from its corpus's ``speaker_regex``) belongs to
   group ``spk:{id}``; ids are shared across corpora, so the same person's positives
   and negatives stay together;
2. an embedded (speech) clip without a known id belongs to its embedding cluster
   ``clu:{n}``; when that cluster also holds clips with known ids, the clip joins the
   most common of those known groups instead (so a voice seen in a labelled corpus
   does not leak through an unlabelled one);
3. any other clip (background audio) is a group of its own, ``clip:{clip id}``.

Every clip of a group lands in one split. Groups holding a clip of a corpus with a fixed
``split`` go there. The others are shuffled with the seed, ordered largest first, and
each is given to the split whose per-label deficit against the target ratios, weighted
by the group's label counts, is largest.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "validation", "test")
log = logging.getLogger("wakeprep")


class SplitError(RuntimeError):
    """The split cannot be made without leaking a group across splits."""


@dataclass
class Clip:
    clip_id: str
    corpus: str
    label: str
    duration_s: float
    source: str = ""
    speaker: str = ""
    fixed_split: str = ""
    group: str = ""
    split: str = ""
    use: int = 1
    sha256: str = ""
    note: str = ""


@dataclass
class SplitResult:
    clips: list[Clip]
    report: dict = field(default_factory=dict)


def _hash_order(keys: list[str], seed: int) -> np.ndarray:
    """A seeded permutation of ``keys`` that does not depend on their input order."""
    import hashlib

    h = [hashlib.sha256(f"{seed}:{k}".encode()).digest()[:8] for k in keys]
    return np.array(sorted(range(len(keys)), key=lambda i: (h[i], keys[i])), dtype=np.int64)


def assign_groups(clips: list[Clip], emb_index: dict[str, int], cluster_labels: np.ndarray | None) -> None:
    """Set ``clip.group`` for every clip (see the module docstring)."""
    known_by_cluster: dict[int, Counter] = defaultdict(Counter)
    if cluster_labels is not None:
        for c in clips:
            if c.speaker and c.clip_id in emb_index:
                known_by_cluster[int(cluster_labels[emb_index[c.clip_id]])][c.speaker] += 1
    for c in clips:
        if c.speaker:
            c.group = f"spk:{c.speaker}"
        elif cluster_labels is not None and c.clip_id in emb_index:
            k = int(cluster_labels[emb_index[c.clip_id]])
            known = known_by_cluster.get(k)
            if known:
                best = sorted(known.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                c.group = f"spk:{best}"
            else:
                c.group = f"clu:{k:07d}"
        else:
            c.group = f"clip:{c.clip_id}"


def merge_duplicate_content(clips: list[Clip]) -> list[dict]:
    """Clips with identical source bytes (same sha256) share one group, so they land in
    one split; all but the first (by clip id) are marked ``use = 0``. Returns the
    duplicates found, as ``{"clip", "same_as"}`` records."""
    first: dict[str, Clip] = {}
    parent: dict[str, str] = {}

    def find(g: str) -> str:
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    dups = []
    for c in sorted(clips, key=lambda c: c.clip_id):
        if not c.sha256:
            continue
        if c.sha256 in first:
            keep = first[c.sha256]
            a, b = find(keep.group), find(c.group)
            if a != b:
                parent[max(a, b)] = min(a, b)
            c.use = 0
            c.note = f"duplicate_content of {keep.clip_id}"
            dups.append({"clip": c.clip_id, "same_as": keep.clip_id})
        else:
            first[c.sha256] = c
    for c in clips:
        c.group = find(c.group)
    return dups


def split_groups(clips: list[Clip], ratios: dict[str, float], seed: int) -> list[str]:
    """Set ``clip.split`` group by group; returns warnings."""
    warnings: list[str] = []
    groups: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        groups[c.group].append(c)
    pinned: dict[str, str] = {}
    for g, members in groups.items():
        fixed = sorted({c.fixed_split for c in members if c.fixed_split})
        if len(fixed) > 1:
            raise SplitError(
                f"group {g} has clips in corpora fixed to different splits ({', '.join(fixed)}); "
                "it cannot be kept in one split. Remove one of the fixed splits or the speaker_regex that joins them."
            )
        if fixed:
            pinned[g] = fixed[0]
            if any(not c.fixed_split for c in members):
                warnings.append(
                    f"group {g}: {sum(not c.fixed_split for c in members)} clips from corpora without a fixed split "
                    f"follow the group's fixed split '{fixed[0]}'"
                )
    labels = sorted({c.label for c in clips})
    li = {l: i for i, l in enumerate(labels)}
    free = [g for g in groups if g not in pinned]
    counts = {g: np.bincount([li[c.label] for c in groups[g]], minlength=len(labels)).astype(np.float64) for g in groups}
    totals = np.sum([counts[g] for g in free], axis=0) if free else np.zeros(len(labels))
    splits = [s for s in SPLITS if ratios.get(s, 0) > 0]
    target = {s: ratios[s] * totals for s in splits}
    have = {s: np.zeros(len(labels)) for s in splits}
    weight = 1.0 / np.maximum(totals, 1.0)
    order = [free[i] for i in _hash_order(free, seed)]
    order.sort(key=lambda g: -len(groups[g]))  # stable: equal sizes keep the seeded order
    chosen: dict[str, str] = dict(pinned)
    for g in order:
        c = counts[g]
        scores = [float(np.sum(c * (target[s] - have[s]) * weight)) for s in splits]
        s = splits[int(np.argmax(scores))]
        have[s] += c
        chosen[g] = s
    for c in clips:
        c.split = chosen[c.group]
    # a corpus whose clips all fall in one group cannot be split
    by_corpus: dict[str, set] = defaultdict(set)
    n_corpus: Counter = Counter()
    fixed_corpus = {c.corpus for c in clips if c.fixed_split}
    for c in clips:
        by_corpus[c.corpus].add(c.group)
        n_corpus[c.corpus] += 1
    for corpus, gs in sorted(by_corpus.items()):
        if len(gs) == 1 and n_corpus[corpus] > 1 and corpus not in fixed_corpus:
            g = next(iter(gs))
            warnings.append(
                f"corpus '{corpus}' has a single speaker group ({g}): all {n_corpus[corpus]} clips go to "
                f"'{chosen[g]}', the other splits get none of it"
            )
    return warnings


def cap_train_groups(clips: list[Clip], cap: int, strategy: str, seed: int, emb_index, emb) -> int:
    """Keep at most ``cap`` training clips per (group, label); mark the rest ``use = 0``.

    ``random``: a seeded sample; ``centroid``: the clips nearest the group's mean
    embedding; ``spread``: farthest-point sampling from the clip nearest the centroid.
    Clips without an embedding fall back to ``random``. Returns how many were dropped.
    """
    if not cap:
        return 0
    buckets: dict[tuple, list[Clip]] = defaultdict(list)
    for c in clips:
        if c.split == "train" and c.use:
            buckets[(c.group, c.label)].append(c)
    dropped = 0
    for key in sorted(buckets):
        members = sorted(buckets[key], key=lambda c: c.clip_id)
        if len(members) <= cap:
            continue
        have_emb = emb is not None and all(c.clip_id in emb_index for c in members)
        if strategy == "random" or not have_emb:
            keep_idx = sorted(_hash_order([c.clip_id for c in members], seed)[:cap])
        else:
            x = emb[[emb_index[c.clip_id] for c in members]].astype(np.float64)
            centre = x.mean(axis=0)
            sim = x @ centre
            if strategy == "centroid":
                keep_idx = sorted(np.lexsort((np.arange(len(members)), -sim))[:cap].tolist())
            else:  # spread
                first = int(np.argmax(sim))
                keep = [first]
                best = x @ x[first]
                for _ in range(cap - 1):
                    best_masked = np.where(np.isin(np.arange(len(members)), keep), np.inf, best)
                    nxt = int(np.argmin(best_masked))
                    keep.append(nxt)
                    best = np.maximum(best, x @ x[nxt])
                keep_idx = sorted(keep)
        keep_set = set(int(i) for i in keep_idx)
        for i, c in enumerate(members):
            if i not in keep_set:
                c.use = 0
                c.note = "over max_train_clips_per_group"
                dropped += 1
    return dropped


def nearest(query: np.ndarray, base: np.ndarray, exact_limit: float = 2e10) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and index of each query row's nearest ``base`` row.

    Exact (blocked inner products) while ``len(query) * len(base) * dim`` stays under
    ``exact_limit``; else an IVF index from faiss.
    """
    if len(base) == 0 or len(query) == 0:
        return np.full(len(query), np.nan, np.float32), np.full(len(query), -1, np.int64)
    q = np.ascontiguousarray(query, np.float32)
    b = np.ascontiguousarray(base, np.float32)
    if len(q) * len(b) * b.shape[1] <= exact_limit:
        sims = np.empty(len(q), np.float32)
        idx = np.empty(len(q), np.int64)
        step = max(1, int(2e7 // max(len(b), 1)))
        for i in range(0, len(q), step):
            s = q[i : i + step] @ b.T
            j = np.argmax(s, axis=1)
            idx[i : i + step] = j
            sims[i : i + step] = s[np.arange(len(j)), j]
        return sims, idx
    import faiss

    nlist = int(min(4096, max(16, np.sqrt(len(b)))))
    quant = faiss.IndexFlatIP(b.shape[1])
    index = faiss.IndexIVFFlat(quant, b.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    train = b[np.sort(rng.choice(len(b), size=min(len(b), nlist * 64), replace=False))]
    index.train(train)
    index.add(b)
    index.nprobe = 16
    d, i = index.search(q, 1)
    return d[:, 0], i[:, 0].astype(np.int64)


def leakage_audit(clips: list[Clip], emb_index, emb, threshold: float, worst: int = 20) -> dict:
    """For each validation/test clip with an embedding, the similarity of its nearest
    training clip; the fraction above ``threshold`` per split and label, and the worst pairs."""
    if emb is None or not emb_index:
        return {"threshold": threshold, "checked": 0, "per_split_label": {}, "worst_pairs": []}
    train = [c for c in clips if c.split == "train" and c.use and c.clip_id in emb_index]
    base = emb[[emb_index[c.clip_id] for c in train]] if train else np.zeros((0, emb.shape[1]), np.float32)
    out: dict = {"threshold": threshold, "checked": 0, "per_split_label": {}, "worst_pairs": []}
    pairs = []
    for split in ("validation", "test"):
        qs = [c for c in clips if c.split == split and c.clip_id in emb_index]
        if not qs:
            continue
        sims, idx = nearest(emb[[emb_index[c.clip_id] for c in qs]], base)
        out["checked"] += len(qs)
        by_label: dict[str, list] = defaultdict(list)
        for c, s, j in zip(qs, sims, idx):
            by_label[c.label].append(float(s))
            if j >= 0:
                pairs.append((float(s), split, c.clip_id, train[int(j)].clip_id, c.group, train[int(j)].group))
        for label, ss in sorted(by_label.items()):
            arr = np.asarray(ss)
            out["per_split_label"][f"{split}/{label}"] = {
                "clips": len(arr),
                "above": int(np.sum(arr > threshold)),
                "fraction_above": round(float(np.mean(arr > threshold)), 6),
                "max_similarity": round(float(np.nanmax(arr)), 6) if len(arr) else None,
                "median_similarity": round(float(np.nanmedian(arr)), 6) if len(arr) else None,
            }
    pairs.sort(key=lambda p: (-p[0], p[2]))
    out["worst_pairs"] = [
        {"similarity": round(s, 6), "split": sp, "clip": a, "nearest_train_clip": b, "group": ga, "train_group": gb}
        for s, sp, a, b, ga, gb in pairs[:worst]
    ]
    return out


def summarise_split(clips: list[Clip]) -> dict:
    per: dict = defaultdict(lambda: {"clips": 0, "hours": 0.0, "unused": 0})
    for c in clips:
        key = f"{c.split}/{c.label}"
        if c.use:
            per[key]["clips"] += 1
            per[key]["hours"] += c.duration_s / 3600
        else:
            per[key]["unused"] += 1
    return {k: {**v, "hours": round(v["hours"], 6)} for k, v in sorted(per.items())}


def group_size_stats(clips: list[Clip]) -> dict:
    sizes = np.array(sorted(Counter(c.group for c in clips).values()))
    if not len(sizes):
        return {"groups": 0}
    hist = Counter()
    for s in sizes:
        b = 1
        while b < s:
            b *= 2
        hist[f"<={b}"] += 1
    return {
        "groups": int(len(sizes)),
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "mean": round(float(sizes.mean()), 3),
        "max": int(sizes.max()),
        "histogram": dict(sorted(hist.items(), key=lambda kv: int(kv[0][2:]))),
    }


def check_no_leak(clips: list[Clip]) -> list[str]:
    where: dict[str, set] = defaultdict(set)
    for c in clips:
        where[c.group].add(c.split)
    return sorted(g for g, s in where.items() if len(s) > 1)


def to_json(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=True) + "\n"


SPLIT_COLUMNS = ["clip_id", "corpus", "label", "group", "split", "use", "note", "duration_s", "source", "speaker", "sha256"]


def load_clips(tables) -> list[Clip]:
    """The ok clips of every shard table, sorted by clip id."""
    from .table import read_table

    clips = []
    for t in tables:
        for r in read_table(t):
            if r["status"] != "ok":
                continue
            clips.append(
                Clip(r["clip_id"], r["corpus"], r["label"], float(r["duration_s"]), r["source"], r["speaker"],
                     r["split"], sha256=r["sha256"])
            )
    clips.sort(key=lambda c: c.clip_id)
    return clips


def load_embeddings(stores) -> tuple[dict[str, int], np.ndarray | None]:
    """Every embedding of the given stores, as an id index and one ``(n, d)`` array."""
    from .store import RaggedStore

    ids, parts = [], []
    for p in stores:
        s = RaggedStore(p)
        if len(s):
            ids.extend(s.ids)
            parts.append(np.asarray(s.data, dtype=np.float32).reshape(len(s), -1))
    if not parts:
        return {}, None
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    emb = np.concatenate(parts)[order]
    return {ids[i]: k for k, i in enumerate(order)}, np.ascontiguousarray(emb)


def run_cluster_split(tables, embedding_stores, out_table, out_report, *, seed: int, threshold: float,
                      neighbors: int, ratios: dict, cap: int, cap_strategy: str,
                      leakage_similarity: float, worst_pairs: int = 20) -> SplitResult:
    """The ``cluster_split`` rule: groups, split, checks and report."""
    import time

    from .table import write_table

    t0 = time.monotonic()
    clips = load_clips(tables)
    emb_index, emb = load_embeddings(embedding_stores)
    info: dict = {"method": None, "embedded_clips": len(emb_index)}
    labels = None
    if emb is not None and len(emb):
        from .cluster import cluster_embeddings

        labels, info = cluster_embeddings(emb, threshold, k=neighbors, seed=seed)
        info = {k: v for k, v in info.items() if not k.endswith("_s")}  # timings vary run to run
        info["embedded_clips"] = int(len(emb))
    assign_groups(clips, emb_index, labels)
    duplicates = merge_duplicate_content(clips)
    warnings = split_groups(clips, ratios, seed)
    dropped = cap_train_groups(clips, cap, cap_strategy, seed, emb_index, emb)
    leaks = check_no_leak(clips)
    for w in warnings:
        log.warning(w)
    report = {
        "seed": seed,
        "parameters": {
            "threshold": threshold,
            "neighbors": neighbors,
            "ratios": ratios,
            "max_train_clips_per_group": cap,
            "cap_strategy": cap_strategy,
            "leakage_similarity": leakage_similarity,
        },
        "clustering": info,
        "clips": len(clips),
        "groups": group_size_stats(clips),
        "splits": summarise_split(clips),
        "capped_train_clips": dropped,
        "duplicate_content": {"clips": len(duplicates), "first": duplicates[:50]},
        "warnings": warnings,
        "leakage_check": {"groups_in_several_splits": leaks, "passed": not leaks},
        "leakage_audit": leakage_audit(clips, emb_index, emb, leakage_similarity, worst_pairs),
    }
    rows = ({**c.__dict__, "duration_s": round(c.duration_s, 6)} for c in clips)
    write_table(out_table, rows, SPLIT_COLUMNS)
    from .fileio import atomic_write

    atomic_write(out_report, to_json(report))
    log.info("cluster_split: %d clips, %d groups in %.2f s", len(clips), report["groups"].get("groups", 0), time.monotonic() - t0)
    if leaks:
        raise SplitError(f"leakage check failed: {len(leaks)} groups are in several splits, e.g. {leaks[:5]}")
    return SplitResult(clips, report)
