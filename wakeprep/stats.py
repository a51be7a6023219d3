"""Every number the run summary and the report show, computed once.

Rule ``summary`` reads the merged clip table (``results/clips.tsv``), the split table
(``results/split/split.tsv``) and the split report (``results/split/report.json``), plus
rule windows' ``windows.json`` and rule augment_audio's ``parts.json`` files, builds one
:class:`RunStats` and writes it to ``results/summary.json``. ``results/summary.txt``
(:mod:`wakeprep.summary`) and the report's tables and plots (:mod:`wakeprep.report`)
read that file and only render it.

>>> clips = [{"clip_id": "a/1", "corpus": "a", "label": "positive", "status": "ok",
...           "duration_s": "1.5", "reason": "", "source": "1.wav", "detail": ""}]
>>> split = [{"clip_id": "a/1", "corpus": "a", "label": "positive", "group": "spk:x",
...           "split": "train", "use": "1", "duration_s": "1.5"}]
>>> s = compute_stats(clips, split)
>>> s.splits["train"]["positive"].clips, s.groups.by_kind["spk"]
(1, 1)
>>> RunStats.from_json(s.to_json()) == s
True
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .split import SPLITS

#: Kinds of speaker group, by the prefix of the group id (see :mod:`wakeprep.split`).
GROUP_KINDS = {"spk": "known speaker", "clu": "embedding cluster", "clip": "single clip"}
#: Rejected files listed by path (the report's ``rejected.html`` / ``rejected.csv``).
MAX_REJECTED_ROWS = 300
#: Characters of a rejected file's ``detail`` kept.
DETAIL_CHARS = 200
#: Columns of a rejected file's row.
REJECTED_COLUMNS = ("clip_id", "corpus", "source", "reason", "detail")
#: Version of the layout of ``summary.json``; a file of another version is refused.
FORMAT = 1
#: microWakeWord's ambient set of each split.
MWW_AMBIENT = {"train": "training", "validation": "validation_ambient", "test": "testing_ambient"}


# --------------------------------------------------------------------------- small helpers


def size_bin(n: int) -> int:
    """The power-of-two bin of a group of ``n`` clips: the smallest power of two >= ``n``
    (1, 2, 4, 8...). Bin ``b`` holds sizes ``b // 2 + 1`` to ``b``."""
    b = 1
    while b < n:
        b *= 2
    return b


def size_bin_name(b: int) -> str:
    """``"1"``, ``"2"``, ``"3-4"``, ``"5-8"``...: the sizes of :func:`size_bin`'s bin ``b``."""
    return str(b) if b <= 2 else f"{b // 2 + 1}-{b}"


def group_kind(group: str) -> str:
    """Kind of a speaker group id: ``spk`` (known speaker), ``clu`` (embedding cluster),
    ``clip`` (a clip on its own); see :mod:`wakeprep.split`."""
    return group.split(":", 1)[0]


def split_order(names: Iterable[str]) -> list[str]:
    """``names`` with train, validation, test first (in that order), then the rest sorted."""
    order = {s: i for i, s in enumerate(SPLITS)}
    return sorted(names, key=lambda s: (order.get(s, len(order)), s))


# --------------------------------------------------------------------------- the parts


@dataclass
class Total:
    """Clips and hours (ok clips of a label, from the clip table)."""

    clips: int = 0
    hours: float = 0.0


@dataclass
class Count:
    """Clips in use, their hours, and unused clips (``use`` 0 in the split table:
    duplicate content, or training clips over the per-group cap)."""

    clips: int = 0
    hours: float = 0.0
    unused: int = 0

    def add(self, use: bool, seconds: float) -> None:
        if use:
            self.clips += 1
            self.hours += seconds / 3600
        else:
            self.unused += 1

    def rounded(self) -> "Count":
        return Count(self.clips, round(self.hours, 6), self.unused)


def tally(records: Iterable[tuple[tuple, bool, float]]) -> dict[tuple, Count]:
    """Clips, hours and unused clips per key, from ``(key, use, seconds)`` records, summed
    in the order given (hours not rounded). The one count of split cells: rule
    cluster_split's report and :func:`compute_stats` both use it."""
    out: dict[tuple, Count] = defaultdict(Count)
    for key, use, seconds in records:
        out[key].add(use, seconds)
    return dict(out)


def split_label_counts(records: Iterable[tuple[str, str, bool, float]]) -> dict[str, dict]:
    """``{"split/label": {clips, hours, unused}}`` (hours rounded, keys sorted) from
    ``(split, label, use, seconds)`` records: the ``splits`` of rule cluster_split's report."""
    per = tally(((f"{s}/{l}",), bool(use), seconds) for s, l, use, seconds in records)
    return {k: asdict(v.rounded()) for (k,), v in sorted(per.items())}


@dataclass
class CorpusCount:
    """Files of one corpus: seen, ok, rejected, and hours of the ok ones."""

    label: str
    files: int = 0
    ok: int = 0
    rejected: int = 0
    hours: float = 0.0


@dataclass
class Cell:
    """Clips in use, hours and unused clips of one corpus, label and split."""

    corpus: str
    label: str
    split: str
    clips: int
    hours: float
    unused: int


@dataclass
class Durations:
    """Ok clip durations of one label: a histogram (``counts`` between ``edges``, in
    seconds; log-spaced when ``log_x``) and its summary figures."""

    clips: int
    hours: float
    median: float
    shortest: float
    longest: float
    edges: list
    counts: list
    log_x: bool


@dataclass
class Groups:
    """Speaker groups (clips per group) and their sizes in power-of-two bins per kind
    (``size_bins[kind][str(bin)]``, bins of :func:`size_bin`)."""

    groups: int = 0
    smallest: int = 0
    median: float = 0.0
    mean: float = 0.0
    largest: int = 0
    by_kind: dict = field(default_factory=lambda: {k: 0 for k in GROUP_KINDS})
    size_bins: dict = field(default_factory=dict)


@dataclass
class Ambient:
    """Hours and clips of ambient audio (clips of ``labels`` in use) per split, and a
    warning line per split without any."""

    labels: list
    hours: dict
    clips: dict
    warnings: list


@dataclass
class Leakage:
    """The split report's leakage check (no group in two splits) and leakage audit
    (nearest training clip of each validation and test clip), and its clustering."""

    passed: bool
    groups_in_several_splits: list
    audit_checked: int
    audit_above: int
    audit_threshold: float | None
    per_split_label: dict
    worst_pairs: list
    clustering: dict
    warnings: list


@dataclass
class RunStats:
    """Every figure of a run, computed once by :func:`compute_stats` (rule ``summary``).

    Hours are rounded to 6 decimals. ``splits`` maps split, then label, to a
    :class:`Count` (every split and label of the split table, zeros included);
    ``cells`` has one :class:`Cell` per corpus, label and split present. Parts that need
    the split table are None (or empty) without it.
    """

    format: int = FORMAT
    files: int = 0
    ok: int = 0
    rejected: int = 0
    rejected_by_reason: dict = field(default_factory=dict)  # reason -> files
    rejected_by_corpus: dict = field(default_factory=dict)  # reason -> corpus -> files
    rejected_first: list = field(default_factory=list)  # REJECTED_COLUMNS of the first rejected files
    corpora: dict = field(default_factory=dict)  # corpus -> CorpusCount
    labels: dict = field(default_factory=dict)  # label -> Total
    durations: dict = field(default_factory=dict)  # label -> Durations
    splits: dict = field(default_factory=dict)  # split -> label -> Count
    cells: list = field(default_factory=list)  # Cell
    groups: Groups | None = None
    ambient: Ambient | None = None
    leakage: Leakage | None = None
    windows: dict = field(default_factory=dict)  # "split/label" -> counts of windows.json
    augment_audio: list = field(default_factory=list)  # rows of summarise_augment_audio

    def to_json(self) -> str:
        """``summary.json``: keys sorted, one space of indent."""
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping) -> "RunStats":
        if d.get("format") != FORMAT:
            raise ValueError(f"summary format {d.get('format')}, not {FORMAT}: written by another version of "
                             f"wakeprep (run rule summary again: snakemake --forcerun summary)")
        d = dict(d)
        d["corpora"] = {k: CorpusCount(**v) for k, v in d.get("corpora", {}).items()}
        d["labels"] = {k: Total(**v) for k, v in d.get("labels", {}).items()}
        d["durations"] = {k: Durations(**v) for k, v in d.get("durations", {}).items()}
        d["splits"] = {s: {l: Count(**v) for l, v in per.items()} for s, per in d.get("splits", {}).items()}
        d["cells"] = [Cell(**c) for c in d.get("cells", [])]
        for key, kind in (("groups", Groups), ("ambient", Ambient), ("leakage", Leakage)):
            d[key] = kind(**d[key]) if d.get(key) is not None else None
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "RunStats":
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, path) -> "RunStats":
        """Read ``summary.json``; ValueError naming ``path`` when it is of another format."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            return cls.from_json(text)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def ordered_splits(self) -> list[tuple[str, dict]]:
        """``(split, {label: Count})`` in train, validation, test order."""
        return [(s, self.splits[s]) for s in split_order(self.splits)]

    def label_totals(self) -> dict[str, dict[str, Count]]:
        """``{label: {split: Count}}``: :attr:`splits` turned around, labels sorted."""
        out: dict = defaultdict(dict)
        for split, per in self.ordered_splits():
            for label, c in per.items():
                out[label][split] = c
        return dict(sorted(out.items()))


# --------------------------------------------------------------------------- from the clip table


def duration_bins(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Histogram bin edges for durations ``x``, and whether they are log-spaced (when
    the durations span more than a factor of 50)."""
    lo, hi = float(x.min()), float(x.max())
    n = int(np.clip(2 * np.sqrt(len(x)), 5, 50))
    if hi <= lo:
        w = max(0.05 * abs(lo), 0.05)
        return np.array([lo - w, lo + w]), False
    if lo > 0 and hi / lo > 50:
        return np.geomspace(lo, hi, n + 1), True
    return np.linspace(lo, hi, n + 1), False


def durations_of(seconds: list[float]) -> Durations:
    """The :class:`Durations` of one label's ok clips (at least one)."""
    x = np.asarray(seconds, dtype=np.float64)
    edges, log_x = duration_bins(x)
    counts, _ = np.histogram(x, bins=edges)
    return Durations(clips=len(x), hours=round(float(x.sum()) / 3600, 6), median=round(float(np.median(x)), 6),
                     shortest=round(float(x.min()), 6), longest=round(float(x.max()), 6),
                     edges=[float(e) for e in edges], counts=[int(c) for c in counts], log_x=log_x)


def _rejected_row(row: Mapping) -> dict:
    out = {k: row.get(k, "") or "" for k in REJECTED_COLUMNS}
    out["detail"] = out["detail"][:DETAIL_CHARS]
    return out


def clip_stats(rows: Iterable[Mapping], corpora: Mapping[str, str] | None = None) -> RunStats:
    """Files, ok and rejected (by reason and corpus), per corpus and per label counts and
    ok clip durations, from clip table rows (dicts as read by :func:`wakeprep.table.read_table`).

    ``corpora`` (``{name: label}``, every configured corpus) lists a corpus without any
    file too, with zeros (one allowed to be empty, ``allow_empty: true``).
    """
    s = RunStats()
    per = {name: CorpusCount(label) for name, label in (corpora or {}).items()}
    durations: dict = defaultdict(list)
    reasons: dict = defaultdict(Counter)
    for row in rows:
        c = per.setdefault(row["corpus"], CorpusCount(row["label"]))
        c.label = row["label"]
        c.files += 1
        if row["status"] == "ok":
            c.ok += 1
            c.hours += float(row["duration_s"]) / 3600
            durations[row["label"]].append(float(row["duration_s"]))
        else:
            c.rejected += 1
            reasons[row["reason"] or "unknown"][row["corpus"]] += 1
            if len(s.rejected_first) < MAX_REJECTED_ROWS:
                s.rejected_first.append(_rejected_row(row))
    _fill_clip_totals(s, per, reasons, durations)
    return s


def _fill_clip_totals(s: RunStats, per: dict, reasons: dict, durations: dict) -> None:
    s.files = sum(c.files for c in per.values())
    s.ok = sum(c.ok for c in per.values())
    s.rejected = s.files - s.ok
    s.rejected_by_reason = {r: sum(c.values()) for r, c in sorted(reasons.items())}
    s.rejected_by_corpus = {r: dict(sorted(c.items())) for r, c in sorted(reasons.items())}
    labels: dict = defaultdict(Total)
    for c in per.values():
        labels[c.label].clips += c.ok
        labels[c.label].hours += c.hours
    s.labels = {k: Total(v.clips, round(v.hours, 6)) for k, v in sorted(labels.items())}
    for c in per.values():
        c.hours = round(c.hours, 6)
    s.corpora = dict(sorted(per.items()))
    s.durations = {k: durations_of(v) for k, v in sorted(durations.items())}


# --------------------------------------------------------------------------- from the split table


def split_counts(rows: list[Mapping]) -> tuple[dict, list[Cell]]:
    """``({split: {label: Count}}, [Cell])`` from split table rows: every split and every
    label of the table (zeros included), and each corpus, label and split present."""
    def records(key):
        return ((key(r), r["use"] == "1", float(r["duration_s"])) for r in rows)

    per = tally(records(lambda r: (r["split"], r["label"])))
    labels = sorted({l for _, l in per})
    splits = {s: {l: per.get((s, l), Count()).rounded() for l in labels}
              for s in split_order(set(SPLITS) | {s for s, _ in per})}
    cells = tally(records(lambda r: (r["corpus"], r["label"], r["split"])))
    order = {s: i for i, s in enumerate(split_order({k[2] for k in cells}))}
    cell_list = [Cell(c, l, s, v.clips, round(v.hours, 6), v.unused)
                 for (c, l, s), v in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]]))]
    return splits, cell_list


def group_stats(groups: Iterable[str]) -> Groups:
    """Speaker groups from the group id of every clip (one entry per clip)."""
    sizes = Counter(groups)
    if not sizes:
        return Groups()
    n = sorted(sizes.values())
    kinds = Counter(group_kind(g) for g in sizes)
    bins: dict = defaultdict(Counter)
    for g, k in sizes.items():
        bins[group_kind(g)][size_bin(k)] += 1
    return Groups(
        groups=len(n), smallest=n[0], median=float(statistics.median(n)), mean=round(sum(n) / len(n), 3),
        largest=n[-1], by_kind={k: kinds.get(k, 0) for k in GROUP_KINDS},
        size_bins={kind: {str(b): c for b, c in sorted(per.items())} for kind, per in sorted(bins.items())},
    )


def ambient_stats(rows: Iterable[Mapping], labels: tuple = ("background",)) -> Ambient:
    """Hours of ambient audio (clips of ``labels`` in use) per split, and warnings.

    microWakeWord measures false accepts per hour on the validation and test ambient sets;
    an empty one makes those figures NaN, so each split without ambient audio gets a
    warning line (one line when there is no ambient audio at all).
    """
    hours = {s: 0.0 for s in SPLITS}
    clips = {s: 0 for s in SPLITS}
    for row in rows:
        if row["label"] in labels and row["use"] == "1" and row["split"] in hours:
            hours[row["split"]] += float(row["duration_s"]) / 3600
            clips[row["split"]] += 1
    return Ambient(list(labels), {k: round(v, 6) for k, v in hours.items()}, clips, _ambient_warnings(clips, labels))


def _ambient_warnings(clips: dict, labels: tuple) -> list[str]:
    names = "/".join(labels) or "ambient"
    if not any(clips.values()):
        return [f"warning: no {names} audio in any split: microWakeWord's validation_ambient and "
                f"testing_ambient sets are empty, so false accepts per hour cannot be measured "
                f"(add a corpus with label background)"]
    out = []
    for split in SPLITS:
        if not clips[split]:
            what = ("the training sets have no background audio" if split == "train" else
                    f"microWakeWord's {MWW_AMBIENT[split]} set is empty, so false accepts per hour "
                    f"cannot be measured on it")
            out.append(f"warning: split '{split}' has no {names} audio: {what}")
    return out


def leakage_stats(report: Mapping) -> Leakage:
    """The leakage check, audit and clustering of rule cluster_split's ``report.json``."""
    check = report.get("leakage_check", {})
    audit = report.get("leakage_audit", {})
    per = audit.get("per_split_label", {})
    return Leakage(
        passed=bool(check.get("passed")),
        groups_in_several_splits=list(check.get("groups_in_several_splits", [])),
        audit_checked=int(audit.get("checked", 0)),
        audit_above=sum(int(v.get("above", 0)) for v in per.values()),
        audit_threshold=audit.get("threshold"),
        per_split_label=dict(per),
        worst_pairs=list(audit.get("worst_pairs", [])),
        clustering=dict(report.get("clustering") or {}),
        warnings=list(report.get("warnings", [])),
    )


# --------------------------------------------------------------------------- other rules' reports


def summarise_windows(reports: Iterable[Mapping]) -> dict:
    """Counts of rule windows' ``windows.json`` files, by ``split/label``."""
    out = {}
    for r in reports:
        out[f"{r['split']}/{r['label']}"] = {
            "mode": r["mode"], "clips": r["clips"], "windows": r["windows"],
            "frames_per_window": r["frames_per_window"],
            "speech_longer_than_window": len(r["speech_longer_than_window"]),
            "no_speech": len(r["no_speech"]), "no_speech_action": r["no_speech_action"],
            "cut_clips": r.get("cut_clips", 0),
        }
    return out


def summarise_augment_audio(indexes: Mapping[tuple, object]) -> list[dict]:
    """Rule augment_audio's copies and hours per split and label, and the noise and RIR
    sets (corpora, clips, seconds) that fed them.

    ``indexes`` maps ``(split, label)`` to that split and label's ``parts.json``
    (:func:`wakeprep.waveaug.job.list_parts`). Rows come in split order (train,
    validation, test), then by label.
    """
    order = {s: i for i, s in enumerate(SPLITS)}
    rows = []
    for (split, label), path in sorted(indexes.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])):
        with open(path, encoding="utf-8") as f:
            ix = json.load(f)
        rows.append({
            "split": split, "label": label, "copies": int(ix["items"]), "hours": round(float(ix["hours"]), 6),
            "noise": {"corpora": list(ix["noise"]["corpora"]), "clips": int(ix["noise"]["clips"]),
                      "seconds": round(float(ix["noise"]["seconds"]), 3)},
            "rir": {"corpora": list(ix["rir"]["corpora"]), "clips": int(ix["rir"]["clips"]),
                    "seconds": round(float(ix["rir"].get("seconds", 0.0)), 3)},
        })
    return rows


# --------------------------------------------------------------------------- everything


def compute_stats(clip_rows: Iterable[Mapping], split_rows: Iterable[Mapping] | None = None,
                  split_report: Mapping | None = None, *, corpora: Mapping[str, str] | None = None,
                  ambient_labels: tuple = ("background",), windows: Iterable[Mapping] = (),
                  augment_audio: Mapping[tuple, object] | None = None) -> RunStats:
    """The :class:`RunStats` of a run.

    Parameters
    ----------
    clip_rows : iterable of dict
        Rows of ``results/clips.tsv``.
    split_rows : iterable of dict, optional
        Rows of ``results/split/split.tsv``: adds clips and hours per split and label and
        per corpus, label and split, speaker groups and ambient hours.
    split_report : dict, optional
        ``results/split/report.json``: adds the leakage check, audit and clustering.
    corpora : dict, optional
        ``{name: label}`` of every configured corpus (an empty one is listed with zeros).
    ambient_labels : tuple
        Labels counted as ambient audio (``export.ambient_labels``).
    windows : iterable of dict
        Rule windows' ``windows.json`` contents.
    augment_audio : dict, optional
        ``{(split, label): parts.json}`` of rule augment_audio.
    """
    s = clip_stats(clip_rows, corpora)
    if split_rows is not None:
        rows = list(split_rows)
        s.splits, s.cells = split_counts(rows)
        s.groups = group_stats(r["group"] for r in rows)
        s.ambient = ambient_stats(rows, tuple(ambient_labels))
    if split_report is not None:
        s.leakage = leakage_stats(split_report)
    s.windows = summarise_windows(windows)
    s.augment_audio = summarise_augment_audio(augment_audio or {})
    return s
