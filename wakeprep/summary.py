"""The run summary as text: ``results/summary.txt``, printed at the end of every run.

Rule ``summary`` merges the shard clip tables into ``results/clips.tsv``, computes the
run's :class:`~wakeprep.stats.RunStats` once (:func:`wakeprep.stats.compute_stats`),
writes it to ``results/summary.json`` and renders it here as text: files seen, ok and
rejected (by reason), hours per corpus and label, clips and hours per split and label,
ambient (background) hours per split with a warning for a split without any, speaker
groups, the leakage check, the fixed-length windows (placed clips, speech longer than the
window, clips without speech), and, when rule augment_audio runs, its copies per split and
label with the noise and RIR sets that fed them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .fileio import atomic_write
from .split import SPLITS
from .stats import RunStats, compute_stats
from .table import read_table, write_table


def augment_audio_lines(rows) -> list[str]:
    """The plain-text table of :func:`wakeprep.stats.summarise_augment_audio`
    (``augment_audio/overview.txt`` and ``summary.txt``)."""
    lines = [f"{'split':<11} {'label':<14} {'copies':>7} {'hours':>9}  {'noise set (clips, s)':<36} RIR set (clips)"]
    for r in rows:
        noise = f"{', '.join(r['noise']['corpora']) or '-'} ({r['noise']['clips']}, {r['noise']['seconds']:.0f})"
        rir = f"{', '.join(r['rir']['corpora']) or '-'} ({r['rir']['clips']})"
        lines.append(f"{r['split']:<11} {r['label']:<14} {r['copies']:>7} {r['hours']:>9.3f}  {noise:<36} {rir}")
    return lines


def _files_lines(s: RunStats) -> list[str]:
    lines = ["wakeprep summary", "================",
             f"files seen: {s.files}   ok: {s.ok}   rejected: {s.rejected}"]
    lines += [f"  rejected {reason}: {n}" for reason, n in s.rejected_by_reason.items()]
    lines += ["", f"{'corpus':<24} {'label':<14} {'files':>7} {'ok':>7} {'rejected':>8} {'hours':>9}"]
    for name, c in s.corpora.items():
        lines.append(f"{name:<24} {c.label:<14} {c.files:>7} {c.ok:>7} {c.rejected:>8} {c.hours:>9.4f}")
        if c.files and not c.ok:
            lines.append(f"  warning: every file of corpus '{name}' was rejected")
    lines += ["", f"{'label':<14} {'clips':>7} {'hours':>9}"]
    lines += [f"{label:<14} {v.clips:>7} {v.hours:>9.4f}" for label, v in s.labels.items()]
    return lines


def _split_lines(s: RunStats) -> list[str]:
    if s.groups is None:
        return []
    lines = ["", f"{'split':<11} {'label':<14} {'clips':>7} {'hours':>9} {'unused':>7}"]
    for split, per in s.ordered_splits():
        lines += [f"{split:<11} {label:<14} {v.clips:>7} {v.hours:>9.4f} {v.unused:>7}" for label, v in per.items()]
    g, k = s.groups, s.groups.by_kind
    lines += ["", f"speaker groups: {g.groups} (known speakers {k['spk']}, clusters {k['clu']}, "
                  f"single clips {k['clip']}); largest {g.largest} clips, median {g.median:g}"]
    if s.ambient is not None:
        a = s.ambient
        lines.append(f"ambient hours ({'/'.join(a.labels)}): "
                     + "   ".join(f"{split} {a.hours[split]:.4f}" for split in SPLITS))
        lines += a.warnings
    return lines + _leakage_lines(s)


def _leakage_lines(s: RunStats) -> list[str]:
    leak = s.leakage
    if leak is None:
        return []
    state = "passed" if leak.passed else f"FAILED ({len(leak.groups_in_several_splits)} groups in several splits)"
    lines = [f"leakage check: {state}"]
    if leak.audit_threshold is not None:
        lines.append(f"leakage audit: {leak.audit_above} of {leak.audit_checked} validation/test clips "
                     f"have a training clip more similar than {leak.audit_threshold}")
    return lines


def _windows_lines(s: RunStats) -> list[str]:
    if not s.windows:
        return []
    lines = ["", f"{'windows':<26} {'mode':<6} {'clips':>7} {'cut':>5} {'windows':>8} {'frames':>7} {'too long':>8} "
                 f"{'no speech':>9}"]
    for key, w in s.windows.items():
        fpw = "" if w["frames_per_window"] is None or w["mode"] != "place" else w["frames_per_window"]
        lines.append(f"{key:<26} {w['mode']:<6} {w['clips']:>7} {w['cut_clips']:>5} {w['windows']:>8} {fpw!s:>7} "
                     f"{w['speech_longer_than_window']:>8} {w['no_speech']:>9}")
    for key, w in s.windows.items():
        if w["no_speech"]:
            action = "left out" if w["no_speech_action"] == "reject" else "placed by their last sample"
            lines.append(f"warning: {key}: {w['no_speech']} clip(s) without detected speech, {action} "
                         f"(windows.no_speech; ids in results/windows/{key}/windows.json)")
        if w["speech_longer_than_window"]:
            lines.append(f"note: {key}: {w['speech_longer_than_window']} clip(s) with speech longer than the "
                         f"window keep their end (results/windows/{key}/windows.json)")
    return lines


def format_summary(s: RunStats) -> str:
    """``summary.txt``: the text rendering of ``s``."""
    lines = _files_lines(s) + _split_lines(s) + _windows_lines(s)
    if s.augment_audio:
        lines += ["", "augment_audio (waveform-augmented copies; noise and RIR sets of the same split):"]
        lines += augment_audio_lines(s.augment_audio)
    return "\n".join(lines) + "\n"


def write_summary(tables, clips_out, text_out, json_out, split_table=None, split_report=None,
                  windows=(), ambient_labels=("background",), corpora=None, augment_audio=None) -> RunStats:
    """Merge the shard tables into ``clips_out`` (sorted by clip id), compute the run's
    :class:`~wakeprep.stats.RunStats` and write it to ``json_out`` and, as text, to ``text_out``.

    ``split_table``, ``split_report``, ``windows`` (rule windows' ``windows.json``
    files), ``ambient_labels``, ``corpora`` (``{name: label}``) and ``augment_audio``
    (``{(split, label): parts.json}``) are passed on to :func:`~wakeprep.stats.compute_stats`.
    """
    rows = sorted((r for t in tables for r in read_table(t)), key=lambda r: r["clip_id"])
    write_table(clips_out, rows)
    stats = compute_stats(
        rows,
        read_table(split_table) if split_table is not None else None,
        _read_json(split_report) if split_report is not None else None,
        corpora=corpora, ambient_labels=tuple(ambient_labels),
        windows=[_read_json(p) for p in windows], augment_audio=augment_audio,
    )
    atomic_write(json_out, stats.to_json())
    atomic_write(text_out, format_summary(stats))
    return stats


def _read_json(path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
