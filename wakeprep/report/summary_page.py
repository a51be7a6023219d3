"""The run summary page (``summary.html``): ``summary.json`` as an HTML fragment with
inline styles, fit both for its own page and for the report's first page
(``report/workflow.rst``). Rule ``report`` writes it after every other section, so that
asking for it (rule ``all`` does) makes the whole report."""

from __future__ import annotations

from ..fileio import atomic_write
from ..split import SPLITS
from ..stats import RunStats
from .html import hours, render


def write(outputs, *, summary, sections=()) -> None:
    """``summary`` from ``summary.json``; ``sections`` (every other section's files)
    only orders the rule."""
    atomic_write(outputs["summary"], summary_html(RunStats.read(summary)))


def summary_html(s: RunStats) -> str:
    """The fragment of ``s``."""
    splits = [[f"{split} / {label}", c.clips, hours(c.hours), c.unused]
              for split, per in s.ordered_splits() for label, c in sorted(per.items())]
    windows = [[k, w["mode"], w["clips"], w["windows"], w["frames_per_window"] if w["mode"] == "place" else "",
                w["speech_longer_than_window"], w["no_speech"]] for k, w in s.windows.items()]
    augment = [[f"{r['split']} / {r['label']}", r["copies"], hours(r["hours"]),
                ", ".join(r["noise"]["corpora"]) or "-", r["noise"]["clips"], f"{r['noise']['seconds']:.1f}",
                ", ".join(r["rir"]["corpora"]) or "-", r["rir"]["clips"]] for r in s.augment_audio]
    warnings = list(s.ambient.warnings if s.ambient else [])
    warnings += [f"warning: {k}: {w['no_speech']} clip(s) without detected speech ({w['no_speech_action']})"
                 for k, w in s.windows.items() if w["no_speech"]]
    ambient = [f"{k} {hours(s.ambient.hours.get(k, 0.0))}" for k in SPLITS] if s.ambient else []
    return render("summary.html.j2", s=s, labels=[[k, v.clips, hours(v.hours)] for k, v in s.labels.items()],
                  splits=splits, windows=windows, augment_audio=augment, warnings=warnings, ambient=ambient)

