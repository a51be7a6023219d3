"""The dataset report: plots and tables for Snakemake's HTML report.

Rule ``report`` writes every file under ``results/report/`` with a fixed name, and
``snakemake --report report.html`` (or ``report.zip``) gathers them into one page:

- ``summary.html``: the run summary (as ``results/summary.txt``), also shown on the
  report's first page;
- ``counts.html``, ``counts.csv``, ``hours.png``: clips and hours per corpus, label and split;
- ``durations.png``: clip duration histograms per label;
- ``rejected.png``, ``rejected.html``, ``rejected.csv``: rejected files by reason, and
  the first :data:`MAX_REJECTED_ROWS` of them;
- ``group_sizes.png``, ``leakage.html``: speaker group sizes and the leakage audit;
- ``embeddings.png``: a 2-D PCA projection of a sample of speaker embeddings,
  coloured by group;
- ``features_{label}.png``: a few clips' features per label, and their augmented
  copies when the workflow augments;
- ``runtimes.png``, ``runtimes.html``, ``runtimes.csv``: run times per rule from the
  ``benchmark:`` files.

Plots are PNG files drawn by matplotlib's Agg renderer (no display needed), through
:class:`matplotlib.figure.Figure` rather than ``pyplot`` (no global state), and saved
as 256-colour palette PNGs without a date or version (:func:`save_png`): small, and
the same inputs give the same bytes. Every sample
(embeddings, example clips) is chosen by a seeded hash of clip ids, not by file order.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import html
import io
import json
import logging
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .features import FEATURE_SCALE
from .split import SPLITS
from .store import RaggedStore
from .fileio import atomic_write
from .summary import group_kind
from .table import read_table

log = logging.getLogger("wakeprep")

#: Resolution of every plot (pixels per inch); the sizes below are in inches.
DPI = 80
#: Rejected files listed by path in ``rejected.html`` / ``rejected.csv``.
MAX_REJECTED_ROWS = 300
#: Embeddings in the 2-D projection.
EMBEDDING_SAMPLE = 2000
#: Example clips per label in ``features_{label}.png``.
EXAMPLES_PER_LABEL = 4
#: Augmented copies shown next to each example clip.
AUGMENTED_SHOWN = 2
#: Frames (10 ms each) of an example clip drawn; longer clips are cut.
MAX_EXAMPLE_FRAMES = 300
#: Legend entries of the embedding plot (the largest groups of the sample).
LEGEND_GROUPS = 10

#: Every output of :func:`write_report`, by the key the rule names it with.
OUTPUT_KEYS = (
    "summary", "counts_html", "counts_csv", "hours", "durations",
    "rejected_png", "rejected_html", "rejected_csv", "group_sizes", "leakage",
    "embeddings", "features", "runtimes_png", "runtimes_html", "runtimes_csv",
)

_RC = {
    "svg.hashsalt": "wakeprep",  # fixed ids, should a plot ever be saved as SVG
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}
_GROUP_KINDS = {"spk": "known speaker", "clu": "embedding cluster", "clip": "single clip"}


# --------------------------------------------------------------------------- output helpers


def _figure(width: float, height: float, layout: str | None = "constrained"):
    """A new figure, outside pyplot (no global state; the Agg renderer draws it)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def save_png(fig, path) -> Path:
    """Save ``fig`` as a small PNG at ``path``, atomically and byte-reproducibly.

    matplotlib draws the figure (Agg) without the "Software" text chunk; the pixels are
    then reduced to a 256-colour palette (median cut, no dithering: plots have few
    colours, and a colour map has 256) and written by Pillow with ``optimize``, which
    makes files 2 to 3 times smaller than matplotlib's RGBA PNG. Neither step records a
    date or version, so the same figure gives the same bytes.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    buf.seek(0)
    with Image.open(buf) as im:
        rgb = im.convert("RGB")
    pal = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    pal.save(out, format="png", optimize=True)
    return atomic_write(path, out.getvalue())


def write_csv(path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write a comma-separated table with a header (``\\n`` line ends), atomically."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(_plain(v) for v in row)
    atomic_write(path, out.getvalue())
    return Path(path)


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def html_table(header: Sequence[str], rows: Iterable[Sequence], caption: str | None = None) -> str:
    """An HTML ``<table>`` of ``rows`` (values escaped; numbers right-aligned)."""
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        cells = []
        for v in row:
            num = (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)) or (
                isinstance(v, str) and _NUMBER.fullmatch(v) is not None
            )
            cells.append(f'<td class="num">{html.escape(_plain(v))}</td>' if num else f"<td>{html.escape(_plain(v))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "\n".join(parts)


_CSS = (
    "body{font-family:system-ui,sans-serif;font-size:14px;margin:1em;color:#1e293b}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #cbd5e1;padding:2px 8px;text-align:left}"
    "th{background:#f1f5f9}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "caption{text-align:left;font-weight:600;padding:4px 0}"
    ".ok{color:#15803d}.bad{color:#b91c1c}"
)


def html_page(title: str, body: str) -> str:
    """A small self-contained HTML page (inline style, nothing fetched)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _hours(h: float) -> str:
    return f"{h:.4f}"


# --------------------------------------------------------------------------- reading inputs


def hash_first(items: Iterable, n: int, seed: int, key=lambda item: item) -> list:
    """The ``n`` items whose ids (``key(item)``) come first in the seeded hash order
    of :func:`wakeprep.split._hash_order` (SHA-256 of ``"{seed}:{id}"``, then the id),
    sorted by id. A heap keeps ``n`` items at a time: memory does not grow with the
    corpus, and the choice does not depend on the order of ``items``."""

    def rank(item):
        cid = key(item)
        return hashlib.sha256(f"{seed}:{cid}".encode()).digest()[:8], cid

    return sorted(heapq.nsmallest(n, items, key=rank), key=key)


@dataclass
class ClipScan:
    """What the report needs from the merged clip table (``results/clips.tsv``)."""

    corpora: dict = field(default_factory=dict)  # corpus -> {label, files, ok, rejected, hours}
    durations: dict = field(default_factory=dict)  # label -> float array of ok clip durations (s)
    reasons: dict = field(default_factory=dict)  # reason -> Counter(corpus -> files)
    rejected: list = field(default_factory=list)  # first rejected rows, in clip id order
    rejected_total: int = 0


def scan_clips(path, max_rejected: int = MAX_REJECTED_ROWS) -> ClipScan:
    """Stream the clip table once: per corpus counts, durations, reject reasons.

    Parameters
    ----------
    path : path-like
        ``results/clips.tsv`` (sorted by clip id).
    max_rejected : int
        Rejected rows kept for the table of paths.
    """
    scan = ClipScan()
    durations = defaultdict(list)
    reasons: dict = defaultdict(Counter)
    for row in read_table(path):
        c = scan.corpora.setdefault(row["corpus"], {"label": row["label"], "files": 0, "ok": 0, "rejected": 0, "hours": 0.0})
        c["files"] += 1
        if row["status"] == "ok":
            d = float(row["duration_s"])
            c["ok"] += 1
            c["hours"] += d / 3600
            durations[row["label"]].append(d)
        else:
            c["rejected"] += 1
            scan.rejected_total += 1
            reasons[row["reason"] or "unknown"][row["corpus"]] += 1
            if len(scan.rejected) < max_rejected:
                scan.rejected.append({k: row[k] for k in ("clip_id", "corpus", "source", "reason", "detail")})
    scan.corpora = dict(sorted(scan.corpora.items()))
    scan.durations = {k: np.asarray(v, dtype=np.float64) for k, v in sorted(durations.items())}
    scan.reasons = dict(sorted(reasons.items()))
    return scan


@dataclass
class SplitScan:
    """What the report needs from the split table (``results/split/split.tsv``)."""

    cells: dict = field(default_factory=dict)  # (corpus, label, split) -> {clips, hours, unused}
    group_sizes: Counter = field(default_factory=Counter)  # group -> clips


def scan_split(path) -> SplitScan:
    """Stream the split table once: clips and hours per corpus, label and split; group sizes."""
    scan = SplitScan()
    for row in read_table(path):
        cell = scan.cells.setdefault((row["corpus"], row["label"], row["split"]), {"clips": 0, "hours": 0.0, "unused": 0})
        if row["use"] == "1":
            cell["clips"] += 1
            cell["hours"] += float(row["duration_s"]) / 3600
        else:
            cell["unused"] += 1
        scan.group_sizes[row["group"]] += 1
    order = {s: i for i, s in enumerate(SPLITS)}
    scan.cells = dict(sorted(scan.cells.items(), key=lambda kv: (kv[0][0], kv[0][1], order.get(kv[0][2], 9), kv[0][2])))
    return scan


def groups_of(split_table, ids: Iterable[str]) -> dict[str, str]:
    """Speaker group of each of ``ids`` (clips missing from the table are left out)."""
    wanted = set(ids)
    return {r["clip_id"]: r["group"] for r in read_table(split_table) if r["clip_id"] in wanted}


# --------------------------------------------------------------------------- counts


def counts_rows(scan: SplitScan) -> list[list]:
    """``[corpus, label, split, clips, hours, unused]`` rows, one per non-empty cell."""
    return [[c, l, s, v["clips"], round(v["hours"], 6), v["unused"]] for (c, l, s), v in scan.cells.items()]


def label_split_totals(scan: SplitScan) -> dict:
    """``{label: {split: {clips, hours}}}`` over every corpus, every split present."""
    out: dict = defaultdict(lambda: {s: {"clips": 0, "hours": 0.0} for s in SPLITS})
    for (_, label, split), v in scan.cells.items():
        cell = out[label].setdefault(split, {"clips": 0, "hours": 0.0})
        cell["clips"] += v["clips"]
        cell["hours"] += v["hours"]
    return dict(sorted(out.items()))


def counts_html(clips: ClipScan, split: SplitScan) -> str:
    """Page of three tables: files per corpus; clips and hours per label and split;
    clips, hours and unused clips per corpus, label and split."""
    per_corpus = html_table(
        ["corpus", "label", "files", "ok", "rejected", "hours (ok)"],
        [[k, v["label"], v["files"], v["ok"], v["rejected"], _hours(v["hours"])] for k, v in clips.corpora.items()],
        caption="Files per corpus",
    )
    totals = label_split_totals(split)
    splits = list(SPLITS) + sorted({s for per in totals.values() for s in per} - set(SPLITS))
    rows = []
    for label, per in totals.items():
        row = [label]
        for s in splits:
            v = per.get(s, {"clips": 0, "hours": 0.0})
            row += [v["clips"], _hours(v["hours"])]
        rows.append(row)
    by_label = html_table(
        ["label"] + [f"{s} {what}" for s in splits for what in ("clips", "hours")],
        rows,
        caption="Clips and hours per label and split (clips in use)",
    )
    cells = html_table(
        ["corpus", "label", "split", "clips", "hours", "unused"],
        [[c, l, s, v["clips"], _hours(v["hours"]), v["unused"]] for (c, l, s), v in split.cells.items()],
        caption="Clips and hours per corpus, label and split",
    )
    note = (
        "<p>Unused clips are in the split but not in its stores: copies of another clip's content, "
        "and training clips over <code>split.max_train_clips_per_group</code> (the <code>note</code> "
        "column of <code>results/split/split.tsv</code> says which). Hours are of the converted 16 kHz clips.</p>"
    )
    return html_page("Counts and hours", per_corpus + by_label + cells + note)


def plot_hours(split: SplitScan, path) -> Path:
    """Bar chart: audio per label, one bar per split, clip counts on the bars (in
    minutes while no bar reaches an hour)."""
    import matplotlib

    totals = label_split_totals(split)
    labels = list(totals) or ["(no clips)"]
    top = max((v["hours"] for per in totals.values() for v in per.values()), default=0.0)
    unit, scale = ("hours", 1.0) if top >= 1 else ("minutes", 60.0)
    with matplotlib.rc_context(_RC):
        fig = _figure(7, 3.2)
        ax = fig.add_subplot()
        width = 0.8 / len(SPLITS)
        x = np.arange(len(labels))
        for k, s in enumerate(SPLITS):
            hours = [scale * totals.get(l, {}).get(s, {"hours": 0.0})["hours"] for l in labels]
            clips = [totals.get(l, {}).get(s, {"clips": 0})["clips"] for l in labels]
            bars = ax.bar(x + (k - (len(SPLITS) - 1) / 2) * width, hours, width, label=s, color=f"C{k}")
            ax.bar_label(bars, labels=[str(c) for c in clips], fontsize=7, padding=1)
        ax.set_xticks(x, labels)
        ax.set_ylabel(unit)
        ax.set_title(f"Audio per label and split, in {unit} (numbers: clips)")
        ax.legend(frameon=False)
        return save_png(fig, path)


# --------------------------------------------------------------------------- durations


def _bins(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Histogram bin edges for durations ``x``, and whether they are log-spaced."""
    lo, hi = float(x.min()), float(x.max())
    n = int(np.clip(2 * np.sqrt(len(x)), 5, 50))
    if hi <= lo:
        w = max(0.05 * abs(lo), 0.05)
        return np.array([lo - w, lo + w]), False
    if lo > 0 and hi / lo > 50:
        return np.geomspace(lo, hi, n + 1), True
    return np.linspace(lo, hi, n + 1), False


def plot_durations(durations: Mapping[str, np.ndarray], path) -> Path:
    """One histogram of ok clip durations per label (log-spaced bins when they span
    more than a factor of 50)."""
    import matplotlib

    labels = list(durations) or ["(no clips)"]
    with matplotlib.rc_context(_RC):
        fig = _figure(7, 1.9 * len(labels) + 0.3)
        axes = fig.subplots(len(labels), 1, squeeze=False)[:, 0]
        for k, (ax, label) in enumerate(zip(axes, labels)):
            x = durations.get(label, np.zeros(0))
            if not len(x):
                ax.text(0.5, 0.5, "no clips", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(label)
                continue
            bins, logx = _bins(x)
            ax.hist(x, bins=bins, color=f"C{k % 10}")
            if logx:
                ax.set_xscale("log")
            ax.set_title(
                f"{label}: {len(x)} clips, median {np.median(x):.2f} s, "
                f"range {x.min():.2f} to {x.max():.2f} s, {x.sum() / 3600:.4f} h"
            )
            ax.set_ylabel("clips")
        axes[-1].set_xlabel("duration (s)")
        return save_png(fig, path)


# --------------------------------------------------------------------------- rejected


def plot_rejected(reasons: Mapping[str, Counter], path) -> Path:
    """Horizontal bars: rejected files per reason, stacked by corpus."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        names = list(reasons)
        fig = _figure(7, max(1.6, 0.35 * len(names) + 1.1))
        ax = fig.add_subplot()
        if not names:
            ax.text(0.5, 0.5, "no rejected files", ha="center", va="center", transform=ax.transAxes, fontsize=12)
            ax.set_axis_off()
            ax.set_title("Rejected files by reason")
            return save_png(fig, path)
        corpora = sorted({c for per in reasons.values() for c in per})
        y = np.arange(len(names))
        left = np.zeros(len(names))
        for k, corpus in enumerate(corpora):
            n = np.array([reasons[r].get(corpus, 0) for r in names], dtype=float)
            ax.barh(y, n, left=left, label=corpus, color=f"C{k % 10}")
            left += n
        for yi, total in zip(y, left):
            ax.text(total, yi, f" {int(total)}", va="center", fontsize=8)
        ax.set_yticks(y, names)
        ax.invert_yaxis()
        ax.set_xlabel("files")
        ax.set_title(f"Rejected files by reason ({int(left.sum())} in all)")
        if len(corpora) <= 12:
            ax.legend(frameon=False, fontsize=7, loc="lower right")
        return save_png(fig, path)


_REJECTED_COLUMNS = ["clip_id", "corpus", "source", "reason", "detail"]


def rejected_html(scan: ClipScan) -> str:
    """Page of the files per reject reason and the first rejected files, with paths."""
    shown = len(scan.rejected)
    if not scan.rejected_total:
        return html_page("Rejected files", "<p>No file was rejected.</p>")
    head = (
        f"<p>{scan.rejected_total} files rejected; the first {shown} by clip id are listed "
        "(all of them are in <code>results/clips.tsv</code>, status <code>rejected</code>).</p>"
    )
    counts = html_table(
        ["reason", "files"], [[r, sum(c.values())] for r, c in scan.reasons.items()], caption="Files per reason"
    )
    rows = [[r[k] if k != "detail" else r[k][:200] for k in _REJECTED_COLUMNS] for r in scan.rejected]
    return html_page("Rejected files", head + counts + html_table(_REJECTED_COLUMNS, rows, caption="Rejected files"))


# --------------------------------------------------------------------------- speakers


def _size_bin(n: int) -> int:
    b = 1
    while b < n:
        b *= 2
    return b


def plot_group_sizes(group_sizes: Mapping[str, int], path) -> Path:
    """Histogram of speaker group sizes in power-of-two bins, stacked by group kind."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(7, 3.2)
        ax = fig.add_subplot()
        if not group_sizes:
            ax.text(0.5, 0.5, "no groups", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return save_png(fig, path)
        top = _size_bin(max(group_sizes.values()))
        edges = [1]
        while edges[-1] < top:
            edges.append(edges[-1] * 2)
        x = np.arange(len(edges))
        bottom = np.zeros(len(edges))
        for k, (kind, name) in enumerate(_GROUP_KINDS.items()):
            counts = Counter(_size_bin(n) for g, n in group_sizes.items() if group_kind(g) == kind)
            h = np.array([counts.get(e, 0) for e in edges], dtype=float)
            if h.sum():
                ax.bar(x, h, bottom=bottom, label=f"{name} ({int(h.sum())})", color=f"C{k}")
                bottom += h
        ax.set_xticks(x, ["1"] + [f"{e // 2 + 1}-{e}" if e > 2 else "2" for e in edges[1:]], rotation=0)
        ax.set_xlabel("clips in the group")
        ax.set_ylabel("groups")
        sizes = np.array(sorted(group_sizes.values()))
        ax.set_title(
            f"Speaker group sizes: {len(sizes)} groups, median {np.median(sizes):g}, largest {sizes.max()} clips"
        )
        ax.legend(frameon=False)
        return save_png(fig, path)


def leakage_html(report: dict, summary: dict | None = None) -> str:
    """The split report's groups, leakage check and leakage audit as tables."""
    parts = []
    check = report.get("leakage_check", {})
    passed = bool(check.get("passed"))
    several = check.get("groups_in_several_splits", [])
    parts.append(
        f'<p>Leakage check (no speaker group in two splits): <b class="{"ok" if passed else "bad"}">'
        f'{"passed" if passed else "FAILED"}</b>'
        + (f"; groups in several splits: {html.escape(', '.join(several[:20]))}" if several else "")
        + "</p>"
    )
    g = report.get("groups", {})
    parts.append(html_table(
        ["groups", "smallest", "median", "mean", "largest"],
        [[g.get("groups", 0), g.get("min", ""), g.get("median", ""), g.get("mean", ""), g.get("max", "")]],
        caption="Speaker groups (clips per group)",
    ))
    if summary and summary.get("groups"):
        k = summary["groups"]["by_kind"]
        parts.append(html_table(
            ["kind", "groups"], [[_GROUP_KINDS[key], k.get(key, 0)] for key in _GROUP_KINDS], caption="Groups by kind"
        ))
    audit = report.get("leakage_audit", {})
    thr = audit.get("threshold")
    parts.append(
        f"<p>Leakage audit: for each validation and test clip with a speaker embedding, the cosine "
        f"similarity of its nearest training clip; {audit.get('checked', 0)} clips checked, "
        f"threshold {thr}.</p>"
    )
    per = audit.get("per_split_label", {})
    parts.append(html_table(
        ["split/label", "clips", "above threshold", "fraction above", "median similarity", "max similarity"],
        [[k, v.get("clips"), v.get("above"), v.get("fraction_above"), v.get("median_similarity"), v.get("max_similarity")]
         for k, v in per.items()],
        caption="Nearest training clip, per split and label",
    ))
    pairs = audit.get("worst_pairs", [])
    if pairs:
        parts.append(html_table(
            ["similarity", "split", "clip", "group", "nearest training clip", "its group"],
            [[p["similarity"], p["split"], p["clip"], p["group"], p["nearest_train_clip"], p["train_group"]] for p in pairs],
            caption="Most similar pairs",
        ))
    clustering = report.get("clustering") or {}
    if clustering:
        parts.append(html_table(["clustering", "value"], [[k, json.dumps(v)] for k, v in sorted(clustering.items())],
                                caption="Clustering of embeddings without a known speaker"))
    warnings = report.get("warnings", [])
    if warnings:
        parts.append("<p>Warnings:</p><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>")
    return html_page("Speaker groups and leakage audit", "\n".join(parts))


def embedding_sample(stores: Sequence, n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """A seeded sample of at most ``n`` embeddings from shard embedding stores.

    The sample depends on the clip ids and the seed only (not on the order of the
    stores): see :func:`hash_first`. Returns the ids, sorted, and a float64 array of their rows (an item of several
    rows gives its mean row).
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


def plot_embeddings(ids: Sequence[str], x: np.ndarray, groups: Mapping[str, str], path, total: int | None = None) -> Path:
    """Scatter of the PCA projection of ``x``, one colour per speaker group.

    Groups are ranked by their clips in the sample (then by name); colours cycle
    through 20, so beyond 20 groups a colour stands for several groups. The legend
    names the :data:`LEGEND_GROUPS` largest.
    """
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(7, 5.6)
        ax = fig.add_subplot()
        if len(ids) < 2:
            ax.text(0.5, 0.5, "fewer than two speaker embeddings", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return save_png(fig, path)
        y, explained = pca_2d(x)
        g = [groups.get(i, "(no group)") for i in ids]
        sizes = Counter(g)
        rank = {name: r for r, (name, _) in enumerate(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))}
        cmap = matplotlib.colormaps["tab20"]
        colours = np.array([cmap(rank[v] % 20) for v in g])
        ax.scatter(y[:, 0], y[:, 1], c=colours, s=14, linewidths=0, alpha=0.85)
        for name, r in sorted(rank.items(), key=lambda kv: kv[1])[:LEGEND_GROUPS]:
            ax.scatter([], [], color=cmap(r % 20), s=14, label=f"{name} ({sizes[name]})")
        ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f}% of variance)")
        ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f}% of variance)")
        of = f" of {total}" if total is not None else ""
        ax.set_title(f"Speaker embeddings: {len(ids)}{of} clips, {len(sizes)} groups")
        return save_png(fig, path)


# --------------------------------------------------------------------------- features


@dataclass
class Example:
    """One example clip: its id, split, features (float, ``[frames, bins]``) and augmented copies."""

    clip_id: str
    split: str
    features: np.ndarray
    augmented: list = field(default_factory=list)


def _augmented_parts(folder) -> list[RaggedStore]:
    return [RaggedStore(p) for p in sorted(Path(folder).glob("part-*")) if (p / "meta.json").is_file()]


def feature_examples(stores: Mapping[str, object], seed: int, n: int = EXAMPLES_PER_LABEL,
                     augmented=None, copies_shown: int = AUGMENTED_SHOWN) -> list[Example]:
    """A seeded choice of ``n`` clips of one label, with their augmented copies.

    Parameters
    ----------
    stores : mapping split -> path
        The label's assembled feature stores (``results/mmap/{split}/{label}/features``).
        Clips come from the first non-empty split in train, validation, test order.
    seed : int
    n : int
    augmented : path-like, optional
        ``results/augmented/{label}`` (``part-NNNN`` stores of ``{clip id}#aug{c}``
        items); when given, the first ``copies_shown`` copies of each chosen clip.
    """
    for split in SPLITS:
        if split not in stores:
            continue
        s = RaggedStore(stores[split])
        if len(s):
            break
    else:
        return []
    chosen = hash_first(s.ids, n, seed)
    parts = _augmented_parts(augmented) if augmented is not None and Path(augmented).is_dir() else []
    out = []
    for cid in chosen:
        ex = Example(cid, split, np.asarray(s[cid], dtype=np.float32) / FEATURE_SCALE)
        for c in range(copies_shown):
            key = f"{cid}#aug{c}"
            for part in parts:
                if key in part:
                    ex.augmented.append(np.asarray(part[key], dtype=np.float32) / FEATURE_SCALE)
                    break
        out.append(ex)
    return out


def plot_features(label: str, examples: Sequence[Example], path, augment_note: str = "") -> Path:
    """Feature images of the example clips: one row per clip, the original first,
    then its augmented copies. Time runs left to right (10 ms frames), the 40 mel bins
    bottom to top; one colour scale for the whole figure."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        cols = 1 + max((len(e.augmented) for e in examples), default=0)
        rows = max(1, len(examples))
        width, height = 3.2 * cols + 1.2, 1.45 * rows + 0.7
        # fixed margins (in inches): the constrained layout costs a second per figure here
        fig = _figure(width, height, layout=None)
        fig.subplots_adjust(left=0.55 / width, right=1 - 1.05 / width, bottom=0.45 / height, top=1 - 0.5 / height,
                            hspace=0.55, wspace=0.12)
        axes = fig.subplots(rows, cols, squeeze=False)
        if not examples:
            axes[0, 0].text(0.5, 0.5, f"no {label} clips", ha="center", va="center", transform=axes[0, 0].transAxes)
            axes[0, 0].set_axis_off()
            return save_png(fig, path)
        shown = [a[-MAX_EXAMPLE_FRAMES:] for e in examples for a in [e.features, *e.augmented]]
        vmax = max(float(a.max()) if a.size else 0.0 for a in shown) or 1.0
        image = None
        for r, ex in enumerate(examples):
            panels = [("original", ex.features)] + [(f"augmented copy {c}", a) for c, a in enumerate(ex.augmented)]
            for c in range(cols):
                ax = axes[r, c]
                if c >= len(panels):
                    ax.set_axis_off()
                    continue
                name, a = panels[c]
                a = a[-MAX_EXAMPLE_FRAMES:]
                if a.size:
                    image = ax.imshow(a.T, origin="lower", aspect="auto", interpolation="nearest",
                                      cmap="magma", vmin=0.0, vmax=vmax)
                ax.set_title(f"{ex.clip_id} ({ex.split}): {name}" if c == 0 else name, fontsize=7, loc="left")
                ax.tick_params(labelsize=6)
                if c == 0:
                    ax.set_ylabel("bin", fontsize=7)
                if r == rows - 1:
                    ax.set_xlabel("frame (10 ms)", fontsize=7)
        if image is not None:
            cax = fig.add_axes((1 - 0.85 / width, 0.2, 0.12 / width, 0.6))
            fig.colorbar(image, cax=cax, label="feature value")
        title = f"{label}: features of {len(examples)} clips"
        if augment_note:
            title += f" ({augment_note})"
        fig.suptitle(title, fontsize=9)
        return save_png(fig, path)


# --------------------------------------------------------------------------- run times


def read_benchmarks(folder) -> dict[str, list[dict]]:
    """Snakemake ``benchmark:`` files under ``folder``, by rule.

    The rule is the first folder under ``folder`` (``convert/{corpus}/{shard}.tsv``),
    or the file's name for one at the top (``cluster_split.tsv``). Each file gives one
    job: the mean of its rows (one row per repeat) of ``s``, ``max_rss`` (MB) and
    ``cpu_time``.
    """
    folder = Path(folder)
    out: dict[str, list[dict]] = defaultdict(list)
    if not folder.is_dir():
        return {}
    for p in sorted(folder.rglob("*.tsv")):
        rel = p.relative_to(folder)
        rule = rel.parts[0] if len(rel.parts) > 1 else p.stem
        with open(p, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows:
            continue

        def mean(key):
            vals = []
            for r in rows:
                try:
                    vals.append(float(r.get(key, "nan")))
                except ValueError:
                    pass
            vals = [v for v in vals if math.isfinite(v)]
            return sum(vals) / len(vals) if vals else float("nan")

        out[rule].append({"job": str(rel.with_suffix("")), "s": mean("s"), "max_rss": mean("max_rss"), "cpu_time": mean("cpu_time")})
    return dict(sorted(out.items()))


def runtime_rows(bench: Mapping[str, list[dict]]) -> list[list]:
    """``[rule, jobs, total s, mean s, max s, peak max_rss MB, cpu time s]`` per rule,
    the slowest rule (total) first."""
    rows = []
    for rule, jobs in bench.items():
        s = np.array([j["s"] for j in jobs], dtype=float)
        rss = np.array([j["max_rss"] for j in jobs], dtype=float)
        cpu = np.array([j["cpu_time"] for j in jobs], dtype=float)
        rows.append([
            rule, len(jobs), round(float(np.nansum(s)), 3), round(float(np.nanmean(s)), 3), round(float(np.nanmax(s)), 3),
            round(float(np.nanmax(rss)), 1) if np.isfinite(rss).any() else None,
            round(float(np.nansum(cpu)), 3),
        ])
    rows.sort(key=lambda r: (-r[2], r[0]))
    return rows


RUNTIME_COLUMNS = ["rule", "jobs", "total_s", "mean_s", "max_s", "max_rss_mb", "cpu_time_s"]


def plot_runtimes(bench: Mapping[str, list[dict]], path) -> Path:
    """Horizontal bars: wall time per rule summed over its jobs; dots: each job."""
    import matplotlib

    rows = runtime_rows(bench)
    with matplotlib.rc_context(_RC):
        fig = _figure(7, max(1.6, 0.4 * len(rows) + 1.1))
        ax = fig.add_subplot()
        if not rows:
            ax.text(0.5, 0.5, "no benchmark files", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return save_png(fig, path)
        y = np.arange(len(rows))
        ax.barh(y, [r[2] for r in rows], color="C0", alpha=0.6, label="all jobs")
        for yi, r in zip(y, rows):
            s = np.array([j["s"] for j in bench[r[0]]], dtype=float)
            ax.plot(s, np.full(len(s), yi), "o", color="C3", markersize=3)
            ax.text(r[2] * 1.02, yi, f" {r[2]:.1f} s, {r[1]} job{'s' if r[1] != 1 else ''}", va="center", fontsize=7)
        ax.plot([], [], "o", color="C3", markersize=3, label="one job")
        ax.set_yticks(y, [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("wall time (s)")
        ax.set_xlim(0, max(r[2] for r in rows) * 1.35 or 1)
        ax.set_title("Run time per rule (from benchmark files)")
        ax.legend(frameon=False, fontsize=7, loc="lower right")
        return save_png(fig, path)


def runtimes_html(bench: Mapping[str, list[dict]]) -> str:
    """Page of :func:`runtime_rows` as a table."""
    rows = runtime_rows(bench)
    body = "<p>From the <code>benchmark:</code> files under <code>results/benchmarks/</code>, one per job.</p>"
    if not rows:
        return html_page("Run times", body + "<p>No benchmark files.</p>")
    return html_page("Run times", body + html_table(
        ["rule", "jobs", "total (s)", "mean (s)", "max (s)", "peak memory (MB)", "CPU time (s)"], rows,
        caption="Run time per rule"))


# --------------------------------------------------------------------------- summary


def summary_html(s: dict) -> str:
    """The run summary (``results/summary.json``) as an HTML fragment with inline styles,
    fit both for its own page and for the report's first page."""
    td = 'style="border:1px solid #cbd5e1;padding:1px 6px;text-align:right"'
    th = 'style="border:1px solid #cbd5e1;padding:1px 6px;text-align:left"'

    def table(header, rows):
        out = ['<table style="border-collapse:collapse;margin:0.4em 0 1em">']
        out.append("<tr>" + "".join(f"<th {th}>{html.escape(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            out.append("<tr>" + "".join(
                f"<td {td if not isinstance(v, str) or i else th}>{html.escape(_plain(v))}</td>" for i, v in enumerate(row)
            ) + "</tr>")
        return "".join(out) + "</table>"

    parts = ['<meta charset="utf-8"><div class="wakeprep-summary">', "<h2>Run summary</h2>"]
    parts.append(f"<p><b>files seen:</b> {s['files']} &nbsp; <b>ok:</b> {s['ok']} &nbsp; <b>rejected:</b> {s['rejected']}</p>")
    if s.get("rejected_by_reason"):
        parts.append(table(["rejected because", "files"], list(s["rejected_by_reason"].items())))
    parts.append(table(["label", "clips", "hours"], [[k, v["clips"], _hours(v["hours"])] for k, v in s["labels"].items()]))
    if s.get("splits"):
        order = {name: i for i, name in enumerate(SPLITS)}  # summary.json has its keys sorted
        splits = sorted(s["splits"].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        rows = [[f"{split} / {label}", v["clips"], _hours(v["hours"]), v["unused"]]
                for split, per in splits for label, v in sorted(per.items())]
        parts.append(table(["split / label", "clips", "hours", "unused"], rows))
    if s.get("groups"):
        g, k = s["groups"], s["groups"]["by_kind"]
        parts.append(
            f"<p><b>speaker groups:</b> {g['groups']} (known speakers {k['spk']}, clusters {k['clu']}, "
            f"single clips {k['clip']}); largest {g['largest']} clips, median {g['median']:g}</p>"
        )
    amb = s.get("ambient")
    if amb:
        parts.append(f"<p><b>ambient hours ({html.escape('/'.join(amb['labels']))}):</b> " + ", ".join(
            f"{html.escape(k)} {_hours(amb['hours'].get(k, 0.0))}" for k in SPLITS) + "</p>")
    warnings = list((amb or {}).get("warnings", []))
    if s.get("windows"):
        rows = [[k, w["mode"], w["clips"], w["windows"], w["frames_per_window"] if w["mode"] == "place" else "",
                 w["speech_longer_than_window"], w["no_speech"]] for k, w in s["windows"].items()]
        parts.append(table(["split / label", "windows", "clips", "items", "frames each", "speech longer than window",
                            "no speech"], rows))
        warnings += [f"warning: {k}: {w['no_speech']} clip(s) without detected speech ({w['no_speech_action']})"
                     for k, w in s["windows"].items() if w["no_speech"]]
    if s.get("augment_audio"):
        parts.append("<p><b>augment_audio:</b> waveform-augmented copies, and the noise and RIR sets "
                     "(of the same split) that fed them</p>")
        rows = [[f"{r['split']} / {r['label']}", r["copies"], _hours(r["hours"]),
                 ", ".join(r["noise"]["corpora"]) or "-", r["noise"]["clips"], f"{r['noise']['seconds']:.1f}",
                 ", ".join(r["rir"]["corpora"]) or "-", r["rir"]["clips"]] for r in s["augment_audio"]]
        parts.append(table(["split / label", "copies", "hours", "noise set", "noise clips", "noise seconds",
                            "RIR set", "RIR clips"], rows))
    for line in warnings:
        parts.append(f'<p style="color:#b91c1c"><b>{html.escape(line)}</b></p>')
    leak = s.get("leakage")
    if leak:
        colour = "#15803d" if leak["passed"] else "#b91c1c"
        parts.append(f'<p><b>leakage check:</b> <span style="color:{colour}">{"passed" if leak["passed"] else "FAILED"}</span>; '
                     f"audit: {leak['audit_above']} of {leak['audit_checked']} validation/test clips above similarity "
                     f"{leak['audit_threshold']}</p>")
    parts.append("</div>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- everything


def write_report(outputs: Mapping[str, object], *, clips, split_table, split_report, summary,
                 embeddings: Sequence = (), features: Mapping[str, Mapping[str, object]] | None = None,
                 augmented: Mapping[str, object] | None = None, benchmarks=None, seed: int = 0,
                 embedding_sample_size: int = EMBEDDING_SAMPLE) -> None:
    """Write every report file.

    Parameters
    ----------
    outputs : mapping
        Path of each file by :data:`OUTPUT_KEYS` key; ``features`` maps each label to
        its ``features_{label}.png``.
    clips, split_table, split_report, summary : path-like
        ``results/clips.tsv``, ``results/split/split.tsv``, ``results/split/report.json``,
        ``results/summary.json``.
    embeddings : sequence of path-like
        Shard embedding stores.
    features : mapping label -> (mapping split -> path)
        Assembled feature stores.
    augmented : mapping label -> path, optional
        Augmented folders (``results/augmented/{label}``); none when augmentation is off.
    benchmarks : path-like, optional
        Folder of the ``benchmark:`` files (``results/benchmarks``).
    seed : int
        Seed of the samples (embeddings, example clips).
    embedding_sample_size : int
        Embeddings in the 2-D projection.
    """
    missing = [k for k in OUTPUT_KEYS if k not in outputs]
    if missing:
        raise ValueError(f"write_report: no output path for {', '.join(missing)}")
    features = features or {}
    augmented = augmented or {}
    with open(summary, encoding="utf-8") as f:
        summ = json.load(f)
    with open(split_report, encoding="utf-8") as f:
        srep = json.load(f)

    atomic_write(outputs["summary"], summary_html(summ))

    cscan = scan_clips(clips)
    sscan = scan_split(split_table)
    atomic_write(outputs["counts_html"], counts_html(cscan, sscan))
    write_csv(outputs["counts_csv"], ["corpus", "label", "split", "clips", "hours", "unused"], counts_rows(sscan))
    plot_hours(sscan, outputs["hours"])
    plot_durations(cscan.durations, outputs["durations"])

    plot_rejected(cscan.reasons, outputs["rejected_png"])
    atomic_write(outputs["rejected_html"], rejected_html(cscan))
    write_csv(outputs["rejected_csv"], _REJECTED_COLUMNS, ([r[k] for k in _REJECTED_COLUMNS] for r in cscan.rejected))

    plot_group_sizes(sscan.group_sizes, outputs["group_sizes"])
    atomic_write(outputs["leakage"], leakage_html(srep, summ))
    total = sum(len(RaggedStore(p)) for p in embeddings)
    ids, x = embedding_sample(embeddings, embedding_sample_size, seed)
    plot_embeddings(ids, x, groups_of(split_table, ids), outputs["embeddings"], total=total)

    for label, path in outputs["features"].items():
        aug = augmented.get(label)
        note = ""
        if aug is not None:
            meta = Path(aug) / "augment.json"
            if meta.is_file():
                with open(meta, encoding="utf-8") as f:
                    a = json.load(f)
                note = (f"SpecAugment: {a['time_masks']} time masks up to {a['time_mask_max']} frames, "
                        f"{a['freq_masks']} frequency masks up to {a['freq_mask_max']} bins")
        examples = feature_examples(features.get(label, {}), seed, augmented=aug)
        plot_features(label, examples, path, note)

    bench = read_benchmarks(benchmarks) if benchmarks is not None else {}
    plot_runtimes(bench, outputs["runtimes_png"])
    atomic_write(outputs["runtimes_html"], runtimes_html(bench))
    write_csv(outputs["runtimes_csv"], RUNTIME_COLUMNS, runtime_rows(bench))
    log.info("report: %d files written", len(OUTPUT_KEYS) - 1 + len(outputs["features"]))
