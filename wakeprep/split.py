"""Speaker groups and the group-aware, label-stratified, stable train/validation/test split.

Groups, in order of precedence (docs/splits.md says why and what is stable):

1. a clip with a known speaker id (from its corpus's ``speaker_regex``) belongs to
   group ``spk:{id}``; ids are shared across corpora, so the same person's positives
   and negatives stay together;
2. a clip in which speech detection found no speech (``speech_end_s`` empty for a label
   that speech detection ran on), and any clip without an embedding (background audio),
   is a group of its own, ``clip:{clip id}``;
3. a speech clip with an embedding and at least ``speakers.min_speech_s`` seconds of
   speech belongs to its embedding cluster, named after its smallest member clip id,
   ``clu:{clip id}`` (stable while the cluster keeps that member); when the cluster also
   holds clips with known ids, the clip joins the most common of those known groups
   instead (so a voice seen in a labelled corpus does not leak through an unlabelled one);
4. a speech clip with less speech than that is not clustered (its embedding is not
   reliable): it joins the group of rule 1 or 3 whose mean embedding is nearest, when its
   average cosine distance to that group's clips is below ``speakers.threshold`` (the
   clustering's own criterion), else it is a group of its own, ``clip:{clip id}``.

Every clip of a group lands in one split. Groups holding a clip of a corpus with a fixed
``split`` go there. Every other group's split is decided by the group itself: a seeded hash
of its id gives a number in [0, 1), and the cumulative ratios cut that interval into
train, validation and test. When that leaves a split's share of some label further than
``split.tolerance`` from its target, or leaves a split without any group of a label that
has enough groups, groups are moved one at a time, each time the move that helps most,
until it does not: few groups move, and only then. Shares are clip counts, except for
background audio, whose shares are durations.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "validation", "test")
#: Labels whose split shares are measured in seconds of audio rather than clips (ambient
#: sets: false accepts per hour need hours in every split).
DURATION_LABELS = ("background",)
#: Default ``split.tolerance``: largest distance of a split's share of a label from its
#: target before groups are moved (see docs/splits.md).
DEFAULT_TOLERANCE = 0.05
#: Default ``speakers.min_speech_s``: clips with less speech are not clustered.
DEFAULT_MIN_SPEECH_S = 0.5
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
    #: Seconds from the start of speech to its end; None where speech detection did not run.
    speech_s: float | None = None
    #: True where speech detection ran and found no speech.
    no_speech: bool = False


@dataclass
class SplitResult:
    clips: list[Clip]
    report: dict = field(default_factory=dict)


def _unit_hash(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed`` alone."""
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8]
    return int.from_bytes(h, "big") / 2.0**64


def _hash_order(keys: list[str], seed: int) -> np.ndarray:
    """A seeded permutation of ``keys`` that does not depend on their input order."""
    h = [hashlib.sha256(f"{seed}:{k}".encode()).digest()[:8] for k in keys]
    return np.array(sorted(range(len(keys)), key=lambda i: (h[i], keys[i])), dtype=np.int64)


def clusterable(c: Clip, emb_index: dict, min_speech_s: float = 0.0) -> bool:
    """Whether clip ``c`` takes part in clustering: it has an embedding, speech, and at
    least ``min_speech_s`` seconds of it (its duration where speech detection did not run)."""
    if c.clip_id not in emb_index or c.no_speech:
        return False
    speech = c.duration_s if c.speech_s is None else c.speech_s
    return speech >= min_speech_s


def assign_groups(clips: list[Clip], emb_index: dict[str, int], cluster_labels: np.ndarray | None,
                  emb: np.ndarray | None = None, *, threshold: float = 0.3, min_speech_s: float = 0.0) -> dict:
    """Set ``clip.group`` for every clip (see the module docstring).

    ``cluster_labels`` holds a cluster number per row of the embeddings (``emb_index``
    maps clip ids to rows); rows of clips that are not :func:`clusterable` are ignored
    (-1 is fine). ``emb`` (unit rows) is needed to attach clips with little speech to a
    group; without it they stay alone. Returns counts of the clips per rule.
    """
    members: dict[int, list[str]] = defaultdict(list)
    known_by_cluster: dict[int, Counter] = defaultdict(Counter)
    cl = {}
    if cluster_labels is not None:
        for c in clips:
            if clusterable(c, emb_index, min_speech_s):
                k = int(cluster_labels[emb_index[c.clip_id]])
                cl[c.clip_id] = k
                members[k].append(c.clip_id)
                if c.speaker:
                    known_by_cluster[k][c.speaker] += 1
    name = {k: f"clu:{min(ids)}" for k, ids in members.items()}
    stats = Counter()
    short = []
    for c in clips:
        if c.speaker:
            c.group = f"spk:{c.speaker}"
            stats["known_speaker"] += 1
        elif c.no_speech:
            c.group = f"clip:{c.clip_id}"
            stats["no_speech"] += 1
        elif c.clip_id in cl:
            known = known_by_cluster.get(cl[c.clip_id])
            if known:
                best = sorted(known.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                c.group = f"spk:{best}"
            else:
                c.group = name[cl[c.clip_id]]
            stats["clustered"] += 1
        elif c.clip_id in emb_index and cluster_labels is not None:
            c.group = f"clip:{c.clip_id}"
            short.append(c)
        else:
            c.group = f"clip:{c.clip_id}"
            stats["not_embedded"] += 1
    stats["short_speech"] = len(short)
    stats["short_speech_joined"] = _attach_short(clips, short, emb_index, emb, threshold, min_speech_s) if short else 0
    return dict(sorted(stats.items()))


def _attach_short(clips, short, emb_index, emb, threshold, min_speech_s) -> int:
    """Move each clip of ``short`` into the group whose clips are nearest on average
    (below ``threshold``); returns how many moved."""
    if emb is None:
        return 0
    by_group: dict[str, list[int]] = defaultdict(list)
    for c in clips:
        if not c.group.startswith("clip:") and clusterable(c, emb_index, min_speech_s):
            by_group[c.group].append(emb_index[c.clip_id])
    if not by_group:
        return 0
    names = sorted(by_group)
    # a group's mean embedding: its inner product with a clip is the clip's average cosine
    # similarity to the group's clips (the average-linkage criterion of the clustering)
    means = np.stack([emb[by_group[g]].astype(np.float64).mean(axis=0) for g in names]).astype(np.float32)
    sims, best = nearest(emb[[emb_index[c.clip_id] for c in short]], means)
    moved = 0
    for c, j, s in zip(short, best, sims):
        if j >= 0 and 1.0 - float(s) < threshold:
            c.group = names[int(j)]
            moved += 1
    return moved


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


def preferred_split(group: str, ratios: dict[str, float], seed: int) -> str:
    """The split a group goes to by its own hash: cumulative ratios cut [0, 1)."""
    splits = [s for s in SPLITS if ratios.get(s, 0) > 0]
    r = np.array([ratios[s] for s in splits])
    k = int(np.searchsorted(np.cumsum(r) / r.sum(), _unit_hash(group, seed), side="right"))
    return splits[min(k, len(splits) - 1)]


def split_groups(clips: list[Clip], ratios: dict[str, float], seed: int,
                 tolerance: float = DEFAULT_TOLERANCE, info: dict | None = None) -> list[str]:
    """Set ``clip.split`` group by group (see the module docstring); returns warnings.

    ``info``, when given, receives facts for the report: groups fixed by a corpus's
    ``split``, groups free, and how many of those the rebalancing moved away from the
    split their hash gives."""
    warnings: list[str] = []
    groups: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        groups[c.group].append(c)
    pinned = _pinned_groups(clips, groups, warnings)
    labels = sorted({c.label for c in clips})
    li = {l: i for i, l in enumerate(labels)}
    splits = [s for s in SPLITS if ratios.get(s, 0) > 0]
    free = sorted(g for g in groups if g not in pinned)
    chosen: dict[str, str] = dict(pinned)
    if free:
        gi = {g: i for i, g in enumerate(free)}
        amounts = np.zeros((len(free), len(labels)))
        pinned_have = np.zeros((len(splits), len(labels)))
        for c in clips:
            w = c.duration_s if c.label in DURATION_LABELS else 1.0
            if c.group in gi:
                amounts[gi[c.group], li[c.label]] += w
            elif pinned[c.group] in splits:
                pinned_have[splits.index(pinned[c.group]), li[c.label]] += w
        u = np.array([_unit_hash(g, seed) for g in free])
        r = np.array([ratios[s] for s in splits])
        hi = np.cumsum(r) / r.sum()
        lo = hi - r / r.sum()
        where = np.minimum(np.searchsorted(hi, u, side="right"), len(splits) - 1)  # as preferred_split
        distance = np.maximum(lo[None, :] - u[:, None], 0) + np.maximum(u[:, None] - hi[None, :], 0)
        moved = _rebalance(amounts, where, r, tolerance, u, pinned_have, distance)
        chosen.update({g: splits[int(k)] for g, k in zip(free, moved)})
        if info is not None:
            info["moved_from_hash_split"] = int(np.sum(moved != where))
    for c in clips:
        c.split = chosen[c.group]
    if info is not None:
        info.update(fixed_groups=len(pinned), free_groups=len(free), tolerance=tolerance)
        info.setdefault("moved_from_hash_split", 0)
    return warnings + _single_group_warnings(clips, chosen)


def _pinned_groups(clips: list[Clip], groups: dict[str, list[Clip]], warnings: list[str]) -> dict[str, str]:
    """The split of every group holding a clip of a corpus with a fixed split; a group fixed
    to two splits is an error, and other corpora's clips that follow a fixed split a warning."""
    pinned: dict[str, str] = {}
    for g in sorted({c.group for c in clips if c.fixed_split}):
        members = groups[g]
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
    return pinned


def _single_group_warnings(clips: list[Clip], chosen: dict[str, str]) -> list[str]:
    """A warning per corpus (without a fixed split) whose clips all fall in one group: it
    cannot be split."""
    warnings = []
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


_CHUNK = 1024


def _excess(dev: np.ndarray, tolerance: float) -> np.ndarray:
    return np.maximum(np.abs(dev) - tolerance, 0.0)


def _rebalance(amounts: np.ndarray, where: np.ndarray, ratios: np.ndarray, tolerance: float,
               priority: np.ndarray, pinned_have: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Move groups between splits until every split's share of every label is within
    ``tolerance`` of its target, then until every split holds a group of each label that
    has at least one group per split. Returns the new split index per group.

    ``amounts`` is ``(groups, labels)``, ``where`` the split index of each group,
    ``distance[g, s]`` how far group g's hash lies from split s's interval. Each step makes,
    of the moves that bring the shares closer to the tolerance band, the one of the group
    whose hash lies nearest the interval of the split it moves to (as if that split's cut
    points had moved a little; ties: lowest ``priority``). An edit that changes the shares
    a little therefore changes which groups move only at the margin.
    """
    sh = _Shares(amounts, where, ratios, tolerance, priority, distance)
    _into_band(sh)
    if _cover_labels(sh, pinned_have):
        # a group moved in for its label can push another label's shares out of the band:
        # move again, but never a split's last group of a label that every split should hold
        _into_band(sh, keep=_covered(sh, pinned_have))
    return sh.where


class _Shares:
    """The amounts of every label per split (``have``) while groups move between splits, with
    the targets, the tolerance and the move order's keys of :func:`_rebalance`."""

    def __init__(self, amounts, where, ratios, tolerance, priority, distance):
        self.amounts, self.tolerance, self.distance = amounts, tolerance, distance
        self.where = where.copy()
        totals = amounts.sum(axis=0)
        self.scale = 1.0 / np.maximum(totals, 1e-12)
        self.target = ratios[:, None] * totals[None, :]
        self.have = np.zeros((len(ratios), amounts.shape[1]))
        np.add.at(self.have, self.where, amounts)
        self.rank = np.argsort(np.argsort(priority, kind="stable"), kind="stable")
        self.has = amounts > 0
        #: groups per split holding each label
        self.count = np.zeros(self.have.shape, dtype=np.int64)
        np.add.at(self.count, self.where, self.has.astype(np.int64))

    def cost_rows(self, h: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per split: squared excess beyond the tolerance, summed over labels."""
        return np.sum(_excess((h - t) * self.scale, self.tolerance) ** 2, axis=-1)

    def move(self, g: int, b: int) -> None:
        """Group ``g`` moves to split ``b``."""
        self.have[self.where[g]] -= self.amounts[g]
        self.have[b] += self.amounts[g]
        self.count[self.where[g]] -= self.has[g]
        self.count[b] += self.has[g]
        self.where[g] = b


def _into_band(sh: _Shares, keep: np.ndarray | None = None) -> None:
    """Greedy moves (see :func:`_rebalance`) until every share is within the tolerance or no
    move brings the shares closer. ``keep[s, l]``, when given: no move takes split s's last
    group holding label l."""
    orders: dict[tuple, list] = {}  # per set of labels outside the band: candidates per split, nearest first
    skip: dict[tuple, int] = {}
    for _ in range(sh.amounts.shape[0] + 1):
        rows = sh.cost_rows(sh.have, sh.target)
        if rows.sum() <= 1e-15:
            break
        # only a group holding a label outside the band can bring the cost down
        dev = (sh.have - sh.target) * sh.scale
        out = tuple(np.flatnonzero(np.any(_excess(dev, sh.tolerance) > 0, axis=0)))
        if out not in orders:
            idx = np.flatnonzero(np.any(sh.amounts[:, list(out)] > 0, axis=1))
            orders[out] = [idx[np.lexsort((sh.rank[idx], sh.distance[idx, b]))] for b in range(len(sh.have))]
        best = _best_move(sh, rows, dev, orders[out], skip, out, keep)
        if best is None:
            break
        g, b = best
        for key in [k for k in skip if k[1] == sh.where[g]]:
            skip[key] = 0
        sh.move(g, b)


def _best_move(sh: _Shares, rows: np.ndarray, dev: np.ndarray, orders: list, skip: dict, out: tuple,
               keep: np.ndarray | None) -> tuple[int, int] | None:
    """The next move of :func:`_into_band`: per split, the first group of its order whose move
    there lowers the cost, and of those the one nearest its new split (then lowest rank)."""
    surplus = np.any(dev > sh.tolerance, axis=1)  # splits that lose cost by giving a group away
    deficit = np.any(dev < -sh.tolerance, axis=1)  # splits that lose cost by taking one
    best_key, best = None, None
    for b in range(len(sh.have)):
        if not deficit[b] and not np.delete(surplus, b).any():
            continue  # no move into b can help
        order = orders[b]
        # skip the leading groups already in b (reset when a group leaves b)
        p = skip.get((out, b), 0)
        while p < len(order) and sh.where[order[p]] == b:
            p += 1
        skip[(out, b)] = p
        g = _first_helpful(sh, rows, order[p:], b, keep)
        if g is not None:
            key = (float(sh.distance[g, b]), int(sh.rank[g]))
            if best_key is None or key < best_key:
                best_key, best = key, (g, b)
    return best


def _first_helpful(sh: _Shares, rows: np.ndarray, order: np.ndarray, b: int,
                   keep: np.ndarray | None) -> int | None:
    """The first group of ``order`` whose move to split ``b`` lowers the cost (and that
    ``keep`` allows; see :func:`_into_band`), or ``None``."""
    for start in range(0, len(order), _CHUNK):
        ch = order[start:start + _CHUNK]
        a, w = sh.amounts[ch], sh.where[ch]
        gain = (rows[w] + rows[b] - sh.cost_rows(sh.have[w] - a, sh.target[w])
                - sh.cost_rows(sh.have[b][None, :] + a, sh.target[b]))
        ok = (gain > 1e-15) & (w != b)
        if keep is not None:
            h = sh.has[ch]
            ok &= ~np.any(h & (sh.count[w] == 1) & keep[w], axis=1)
        hit = np.flatnonzero(ok)
        if len(hit):
            return int(ch[hit[0]])
    return None


def _covered(sh: _Shares, pinned_have: np.ndarray) -> np.ndarray:
    """``[split, label]``: the labels with a group per split that the split holds through its
    free groups only (a pinned group holds it for good)."""
    return (sh.has.sum(axis=0) >= len(sh.have))[None, :] & (pinned_have <= 0)


def _cover_labels(sh: _Shares, pinned_have: np.ndarray) -> int:
    """Every split gets a group of each label that has enough groups for that: the move that
    raises the squared deviations least, from a donor that keeps a group of every label it
    gives away. Returns the number of moves."""
    amounts, where, have, target, scale = sh.amounts, sh.where, sh.have, sh.target, sh.scale
    n_splits, n_labels = have.shape
    has = amounts > 0
    moves = 0
    for l in range(n_labels):
        if has[:, l].sum() < n_splits:
            continue
        for b in range(n_splits):
            if have[b, l] > 0 or pinned_have[b, l] > 0:
                continue
            count = np.zeros((n_splits, n_labels), dtype=np.int64)
            np.add.at(count, where, has.astype(np.int64))
            # a donor keeps at least one group of every label it gives away
            ok = has[:, l] & (where != b) & np.all(((count[where] - has) > 0) | ~has, axis=1)
            cand = np.flatnonzero(ok)
            if not len(cand):
                continue
            after = np.array([np.sum(((have[where[g]] - amounts[g] - target[where[g]]) * scale) ** 2)
                              + np.sum(((have[b] + amounts[g] - target[b]) * scale) ** 2)
                              - np.sum(((have[where[g]] - target[where[g]]) * scale) ** 2)
                              - np.sum(((have[b] - target[b]) * scale) ** 2) for g in cand])
            sh.move(int(cand[np.lexsort((sh.rank[cand], after))[0]]), b)
            moves += 1
    return moves


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


def group_size_stats(clips: list[Clip]) -> dict:
    sizes = np.array(sorted(Counter(c.group for c in clips).values()))
    if not len(sizes):
        return {"groups": 0}
    from .stats import size_bin

    hist = Counter(f"<={size_bin(s)}" for s in sizes)
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


def _speech(row: dict) -> tuple[float | None, bool]:
    """``(speech seconds, no speech found)`` from a clip-table row; ``(None, False)`` where
    speech detection did not run (its ``speech_ratio`` cell is empty)."""
    if not row.get("speech_ratio"):
        return None, False
    start, end = row.get("speech_start_s") or "", row.get("speech_end_s") or ""
    if not end:
        return 0.0, True
    return max(float(end) - float(start or 0.0), 0.0), False


def load_clips(tables) -> list[Clip]:
    """The ok clips of every shard table, sorted by clip id."""
    from .table import read_table

    clips = []
    for t in tables:
        for r in read_table(t):
            if r["status"] != "ok":
                continue
            speech_s, no_speech = _speech(r)
            clips.append(
                Clip(r["clip_id"], r["corpus"], r["label"], float(r["duration_s"]), r["source"], r["speaker"],
                     r["split"], sha256=r["sha256"], speech_s=speech_s, no_speech=no_speech)
            )
    clips.sort(key=lambda c: c.clip_id)
    return clips


def split_shares(clips: list[Clip]) -> dict:
    """Each split's share of each label: of its clips, or of its seconds for
    :data:`DURATION_LABELS` (what the split balances)."""
    amount: dict = defaultdict(float)
    total: dict = defaultdict(float)
    for c in clips:
        w = c.duration_s if c.label in DURATION_LABELS else 1.0
        amount[(c.label, c.split)] += w
        total[c.label] += w
    return {label: {"by": "seconds" if label in DURATION_LABELS else "clips",
                    **{s: round(amount[(label, s)] / total[label], 6) if total[label] else 0.0 for s in SPLITS}}
            for label in sorted(total)}


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


@dataclass(frozen=True)
class SpeakerSettings:
    """Speaker clustering settings (``speakers:`` in config.yaml)."""

    threshold: float = 0.3
    neighbors: int = 16
    min_speech_s: float = DEFAULT_MIN_SPEECH_S

    @classmethod
    def from_config(cls, cfg: dict | None) -> "SpeakerSettings":
        return cls(**_known_keys(cls, "speakers", cfg))


@dataclass(frozen=True)
class SplitSettings:
    """Split settings (``split:`` in config.yaml); see docs/splits.md."""

    ratios: dict = field(default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})
    max_train_clips_per_group: int = 0
    cap_strategy: str = "spread"
    leakage_similarity: float = 0.9
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def from_config(cls, cfg: dict | None) -> "SplitSettings":
        return cls(**_known_keys(cls, "split", cfg))


def _known_keys(cls, section: str, cfg: dict | None) -> dict:
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
    if unknown:
        raise ValueError(f"{section}.{unknown[0]}: unknown key (allowed: {', '.join(cls.__dataclass_fields__)})")
    return cfg


def run_cluster_split(tables, embedding_stores, out_table, out_report, speakers: SpeakerSettings,
                      split: SplitSettings, *, seed: int, worst_pairs: int = 20) -> SplitResult:
    """The ``cluster_split`` rule: groups, split, checks and report.

    Only :func:`clusterable` clips are clustered (speech found, at least
    ``speakers.min_speech_s`` seconds of it); see :func:`assign_groups` for the others.
    """
    threshold, neighbors, min_speech_s = speakers.threshold, speakers.neighbors, speakers.min_speech_s
    ratios, cap, cap_strategy = split.ratios, split.max_train_clips_per_group, split.cap_strategy
    leakage_similarity, tolerance = split.leakage_similarity, split.tolerance
    import time

    from .stats import split_label_counts
    from .table import write_table

    t0 = time.monotonic()
    clips = load_clips(tables)
    emb_index, emb = load_embeddings(embedding_stores)
    info: dict = {"method": None, "embedded_clips": len(emb_index), "clustered_clips": 0}
    labels = None
    rows = [emb_index[c.clip_id] for c in clips if clusterable(c, emb_index, min_speech_s)]
    if emb is not None and len(emb):
        labels = np.full(len(emb), -1, dtype=np.int64)
        if rows:
            from .cluster import cluster_embeddings

            sub, info = cluster_embeddings(emb[rows], threshold, k=neighbors, seed=seed)
            labels[rows] = sub
            info = {k: v for k, v in info.items() if not k.endswith("_s")}  # timings vary run to run
        info["embedded_clips"] = int(len(emb))
        info["clustered_clips"] = len(rows)
    grouping = assign_groups(clips, emb_index, labels, emb, threshold=threshold, min_speech_s=min_speech_s)
    duplicates = merge_duplicate_content(clips)
    split_info: dict = {}
    warnings = split_groups(clips, ratios, seed, tolerance, info=split_info)
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
            "min_speech_s": min_speech_s,
            "tolerance": tolerance,
        },
        "clustering": info,
        "grouping": grouping,
        "balance": {**split_info, "shares": split_shares(clips)},
        "clips": len(clips),
        "groups": group_size_stats(clips),
        "splits": split_label_counts((c.split, c.label, c.use, c.duration_s) for c in clips),
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
