"""The run summary: files seen, ok and rejected (by reason), hours per corpus and label,
clips and hours per split and label, ambient (background) hours per split with a warning
for a split without any, speaker groups, the leakage check, and the fixed-length windows
(placed clips, speech longer than the window, clips without speech), and, when rule
augment_audio runs, its copies per split and label with the noise and RIR sets that fed them.

Written by rule ``summary`` to ``results/summary.txt`` (printed at the end of every run)
and ``results/summary.json``.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict

from .fileio import atomic_write
from .split import SPLITS
from .table import read_table, write_table


def summarise(rows, corpora: dict | None = None) -> dict:
    """Counts and hours from clip table rows (dicts as read by :func:`read_table`).

    ``corpora`` (``{name: label}``, every configured corpus) lists a corpus without
    any file too, with zeros (one allowed to be empty, ``allow_empty: true``)."""
    files, ok = 0, 0
    reasons: Counter = Counter()
    per = defaultdict(lambda: {"files": 0, "ok": 0, "rejected": 0, "hours": 0.0, "label": ""})
    for name, label in (corpora or {}).items():
        per[name]["label"] = label
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


def group_kind(group: str) -> str:
    """Kind of a speaker group id: ``spk`` (known speaker), ``clu`` (embedding cluster),
    ``clip`` (a clip on its own); see :mod:`wakeprep.split`."""
    return group.split(":", 1)[0]


def summarise_split(rows, split_report: dict | None = None) -> dict:
    """Clips and hours per split and label, and speaker groups, from split table rows.

    Parameters
    ----------
    rows : iterable of dict
        Rows of ``results/split/split.tsv`` as read by :func:`read_table`.
    split_report : dict, optional
        ``results/split/report.json``; adds the leakage check and audit.

    Returns
    -------
    dict
        ``splits`` (``{split: {label: {clips, hours, unused}}}`` for every split and
        every label of the table, zeros included; unused clips (``use`` 0: duplicate
        content, or over the per-group cap of training clips) are not counted in
        ``clips`` and ``hours``),
        ``groups`` (count, largest, median, count per kind) and ``leakage`` (None
        without ``split_report``).
    """
    splits: dict = defaultdict(lambda: defaultdict(lambda: {"clips": 0, "hours": 0.0, "unused": 0}))
    sizes: Counter = Counter()
    for row in rows:
        cell = splits[row["split"]][row["label"]]
        if row["use"] == "1":
            cell["clips"] += 1
            cell["hours"] += float(row["duration_s"]) / 3600
        else:
            cell["unused"] += 1
        sizes[row["group"]] += 1
    labels = sorted({l for per in splits.values() for l in per})
    for split in SPLITS:  # every split and label, so that an empty one shows as 0
        for label in labels:
            splits[split][label]  # noqa: B018 (creates the zero cell)
    order = {s: i for i, s in enumerate(SPLITS)}
    out_splits = {
        s: {l: {**v, "hours": round(v["hours"], 6)} for l, v in sorted(per.items())}
        for s, per in sorted(splits.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    }
    n = sorted(sizes.values())
    kinds = Counter(group_kind(g) for g in sizes)
    groups = {
        "groups": len(n),
        "largest": n[-1] if n else 0,
        "median": float(statistics.median(n)) if n else 0.0,
        "by_kind": {k: kinds.get(k, 0) for k in ("spk", "clu", "clip")},
    }
    leakage = None
    if split_report is not None:
        check = split_report.get("leakage_check", {})
        audit = split_report.get("leakage_audit", {})
        leakage = {
            "passed": bool(check.get("passed")),
            "groups_in_several_splits": len(check.get("groups_in_several_splits", [])),
            "audit_checked": int(audit.get("checked", 0)),
            "audit_above": sum(int(v.get("above", 0)) for v in audit.get("per_split_label", {}).values()),
            "audit_threshold": audit.get("threshold"),
        }
    return {"splits": out_splits, "groups": groups, "leakage": leakage}


MWW_AMBIENT = {"train": "training", "validation": "validation_ambient", "test": "testing_ambient"}


def summarise_ambient(split_rows, ambient_labels=("background",)) -> dict:
    """Hours of ambient audio (clips of ``ambient_labels`` in use) per split, and warnings.

    microWakeWord measures false accepts per hour on the validation and test ambient sets;
    an empty one makes those figures NaN, so each split without ambient audio gets a
    warning line (one line when there is no ambient audio at all).
    """
    hours = {s: 0.0 for s in SPLITS}
    clips = {s: 0 for s in SPLITS}
    for row in split_rows:
        if row["label"] in ambient_labels and row["use"] == "1" and row["split"] in hours:
            hours[row["split"]] += float(row["duration_s"]) / 3600
            clips[row["split"]] += 1
    warnings = []
    names = "/".join(ambient_labels) or "ambient"
    if not any(clips.values()):
        warnings.append(f"warning: no {names} audio in any split: microWakeWord's validation_ambient and "
                        f"testing_ambient sets are empty, so false accepts per hour cannot be measured "
                        f"(add a corpus with label background)")
    else:
        for split in SPLITS:
            if not clips[split]:
                what = ("the training sets have no background audio" if split == "train" else
                        f"microWakeWord's {MWW_AMBIENT[split]} set is empty, so false accepts per hour "
                        f"cannot be measured on it")
                warnings.append(f"warning: split '{split}' has no {names} audio: {what}")
    return {"labels": list(ambient_labels), "hours": {k: round(v, 6) for k, v in hours.items()}, "clips": clips,
            "warnings": warnings}


def summarise_windows(reports) -> dict:
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


def summarise_augment_audio(indexes) -> list[dict]:
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


def augment_audio_lines(rows) -> list[str]:
    """The plain-text table of :func:`summarise_augment_audio` (``augment_audio/overview.txt``
    and ``summary.txt``)."""
    lines = [f"{'split':<11} {'label':<14} {'copies':>7} {'hours':>9}  {'noise set (clips, s)':<36} RIR set (clips)"]
    for r in rows:
        noise = f"{', '.join(r['noise']['corpora']) or '-'} ({r['noise']['clips']}, {r['noise']['seconds']:.0f})"
        rir = f"{', '.join(r['rir']['corpora']) or '-'} ({r['rir']['clips']})"
        lines.append(f"{r['split']:<11} {r['label']:<14} {r['copies']:>7} {r['hours']:>9.3f}  {noise:<36} {rir}")
    return lines


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
    if "splits" in s:
        lines.append("")
        lines.append(f"{'split':<11} {'label':<14} {'clips':>7} {'hours':>9} {'unused':>7}")
        for split, per in s["splits"].items():
            for label, v in per.items():
                lines.append(f"{split:<11} {label:<14} {v['clips']:>7} {v['hours']:>9.4f} {v['unused']:>7}")
        g = s["groups"]
        k = g["by_kind"]
        lines.append("")
        lines.append(
            f"speaker groups: {g['groups']} (known speakers {k['spk']}, clusters {k['clu']}, "
            f"single clips {k['clip']}); largest {g['largest']} clips, median {g['median']:g}"
        )
        amb = s.get("ambient")
        if amb is not None:
            lines.append("ambient hours (" + "/".join(amb["labels"]) + "): " + "   ".join(
                f"{split} {amb['hours'][split]:.4f}" for split in SPLITS))
            lines += amb["warnings"]
        leak = s.get("leakage")
        if leak is not None:
            state = "passed" if leak["passed"] else f"FAILED ({leak['groups_in_several_splits']} groups in several splits)"
            lines.append(f"leakage check: {state}")
            if leak["audit_threshold"] is not None:
                lines.append(
                    f"leakage audit: {leak['audit_above']} of {leak['audit_checked']} validation/test clips "
                    f"have a training clip more similar than {leak['audit_threshold']}"
                )
    if s.get("windows"):
        lines.append("")
        lines.append(f"{'windows':<26} {'mode':<6} {'clips':>7} {'cut':>5} {'windows':>8} {'frames':>7} {'too long':>8} "
                     f"{'no speech':>9}")
        for key, w in s["windows"].items():
            fpw = "" if w["frames_per_window"] is None or w["mode"] != "place" else w["frames_per_window"]
            lines.append(f"{key:<26} {w['mode']:<6} {w['clips']:>7} {w['cut_clips']:>5} {w['windows']:>8} {fpw!s:>7} "
                         f"{w['speech_longer_than_window']:>8} {w['no_speech']:>9}")
        for key, w in s["windows"].items():
            if w["no_speech"]:
                action = "left out" if w["no_speech_action"] == "reject" else "placed by their last sample"
                lines.append(f"warning: {key}: {w['no_speech']} clip(s) without detected speech, {action} "
                             f"(windows.no_speech; ids in results/windows/{key}/windows.json)")
            if w["speech_longer_than_window"]:
                lines.append(f"note: {key}: {w['speech_longer_than_window']} clip(s) with speech longer than the "
                             f"window keep their end (results/windows/{key}/windows.json)")
    if s.get("augment_audio"):
        lines.append("")
        lines.append("augment_audio (waveform-augmented copies; noise and RIR sets of the same split):")
        lines += augment_audio_lines(s["augment_audio"])
    return "\n".join(lines) + "\n"


def write_summary(tables, clips_out, text_out, json_out, split_table=None, split_report=None,
                  windows=(), ambient_labels=("background",), corpora=None, augment_audio=None) -> dict:
    """Merge the shard tables into ``clips_out`` (sorted by clip id) and write the summary.

    With ``split_table`` (``results/split/split.tsv``) the summary also counts clips and
    hours per split and label, ambient hours per split (clips of ``ambient_labels``) and
    the speaker groups; with ``split_report`` (``results/split/report.json``) it adds the
    leakage check; ``windows`` (rule windows' ``windows.json`` files) adds the windows;
    ``corpora`` (``{name: label}``) lists empty corpora with zeros; ``augment_audio``
    (``{(split, label): parts.json}``) adds rule augment_audio's copies and the noise and
    RIR sets that fed each split.
    """
    rows = sorted((r for t in tables for r in read_table(t)), key=lambda r: r["clip_id"])

    write_table(clips_out, rows)
    s = summarise(rows, corpora)
    if split_table is not None:
        report = None
        if split_report is not None:
            with open(split_report, encoding="utf-8") as f:
                report = json.load(f)
        split_rows = list(read_table(split_table))
        s.update(summarise_split(split_rows, report))
        s["ambient"] = summarise_ambient(split_rows, tuple(ambient_labels))
    if windows:
        reports = []
        for p in windows:
            with open(p, encoding="utf-8") as f:
                reports.append(json.load(f))
        s["windows"] = summarise_windows(reports)
    if augment_audio:
        s["augment_audio"] = summarise_augment_audio(augment_audio)
    atomic_write(json_out, json.dumps(s, indent=1, sort_keys=True) + "\n")
    atomic_write(text_out, format_summary(s))
    return s
