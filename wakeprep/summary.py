"""The run summary: files seen, ok and rejected (by reason), hours per corpus and label."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from .table import read_table, write_table


def summarise(rows) -> dict:
    """Counts and hours from clip table rows (dicts as read by :func:`read_table`)."""
    files, ok = 0, 0
    reasons: Counter = Counter()
    per = defaultdict(lambda: {"files": 0, "ok": 0, "rejected": 0, "hours": 0.0, "label": ""})
    for row in rows:
        files += 1
        c = per[row["corpus"]]
        c["files"] += 1
        c["label"] = row["label"]
        if row["status"] == "ok":
            ok += 1
            c["ok"] += 1
            c["hours"] += float(row["duration_s"]) / 3600
        else:
            c["rejected"] += 1
            reasons[row["reason"]] += 1
    labels = defaultdict(lambda: {"clips": 0, "hours": 0.0})
    for c in per.values():
        labels[c["label"]]["clips"] += c["ok"]
        labels[c["label"]]["hours"] += c["hours"]
    return {
        "files": files,
        "ok": ok,
        "rejected": files - ok,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "corpora": {k: {**v, "hours": round(v["hours"], 6)} for k, v in sorted(per.items())},
        "labels": {k: {**v, "hours": round(v["hours"], 6)} for k, v in sorted(labels.items())},
    }


def format_summary(s: dict) -> str:
    lines = ["wakeprep summary", "================"]
    lines.append(f"files seen: {s['files']}   ok: {s['ok']}   rejected: {s['rejected']}")
    for reason, n in s["rejected_by_reason"].items():
        lines.append(f"  rejected {reason}: {n}")
    lines.append("")
    lines.append(f"{'corpus':<24} {'label':<14} {'files':>7} {'ok':>7} {'rejected':>8} {'hours':>9}")
    for name, c in s["corpora"].items():
        lines.append(f"{name:<24} {c['label']:<14} {c['files']:>7} {c['ok']:>7} {c['rejected']:>8} {c['hours']:>9.4f}")
        if c["files"] and not c["ok"]:
            lines.append(f"  warning: every file of corpus '{name}' was rejected")
    lines.append("")
    lines.append(f"{'label':<14} {'clips':>7} {'hours':>9}")
    for label, v in s["labels"].items():
        lines.append(f"{label:<14} {v['clips']:>7} {v['hours']:>9.4f}")
    return "\n".join(lines) + "\n"


def _atomic_write(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_summary(tables, clips_out, text_out, json_out) -> dict:
    """Merge the shard tables into ``clips_out`` (sorted by clip id) and write the summary."""
    rows = sorted((r for t in tables for r in read_table(t)), key=lambda r: r["clip_id"])

    write_table(clips_out, rows)
    s = summarise(rows)
    _atomic_write(json_out, json.dumps(s, indent=1, sort_keys=True) + "\n")
    _atomic_write(text_out, format_summary(s))
    return s
