"""Section "1. Overview": clips and hours per corpus, label and split (``counts.html``,
``counts.csv``) and a bar chart of audio per label and split (``hours.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..stats import RunStats
from .html import hours, write_csv, write_page
from .png import figure, save_png

CELL_COLUMNS = ["corpus", "label", "split", "clips", "hours", "unused"]


def write(outputs, *, summary) -> None:
    """``counts_html``, ``counts_csv`` and ``hours`` from ``summary.json``."""
    s = RunStats.read(summary)
    write_page(outputs["counts_html"], "counts.html.j2", title="Counts and hours", **counts_tables(s))
    write_csv(outputs["counts_csv"], CELL_COLUMNS,
              ([c.corpus, c.label, c.split, c.clips, c.hours, c.unused] for c in s.cells))
    plot_hours(s, outputs["hours"])


def counts_tables(s: RunStats) -> dict:
    """The rows of ``counts.html``'s three tables: files per corpus, clips and hours per
    label and split, clips and hours per corpus, label and split."""
    splits = [split for split, _ in s.ordered_splits()]
    labels = []
    for label, per in s.label_totals().items():
        row = [label]
        for split in splits:
            c = per.get(split)
            row += [c.clips if c else 0, hours(c.hours if c else 0.0)]
        labels.append(row)
    return {
        "corpora": [[k, c.label, c.files, c.ok, c.rejected, hours(c.hours)] for k, c in s.corpora.items()],
        "label_header": ["label"] + [f"{split} {what}" for split in splits for what in ("clips", "hours")],
        "labels": labels,
        "cells": [[c.corpus, c.label, c.split, c.clips, hours(c.hours), c.unused] for c in s.cells],
    }


def plot_hours(s: RunStats, path) -> Path:
    """Bar chart: audio per label, one bar per split, clip counts on the bars (in
    minutes while no bar reaches an hour)."""
    totals = s.label_totals()
    labels = list(totals) or ["(no clips)"]
    splits = [split for split, _ in s.ordered_splits()]
    top = max((c.hours for per in totals.values() for c in per.values()), default=0.0)
    unit, scale = ("hours", 1.0) if top >= 1 else ("minutes", 60.0)
    with figure(7, 3.2) as fig:
        ax = fig.add_subplot()
        width = 0.8 / max(len(splits), 1)
        x = np.arange(len(labels))
        for k, split in enumerate(splits):
            cells = [totals.get(l, {}).get(split) for l in labels]
            bars = ax.bar(x + (k - (len(splits) - 1) / 2) * width, [scale * (c.hours if c else 0.0) for c in cells],
                          width, label=split, color=f"C{k}")
            ax.bar_label(bars, labels=[str(c.clips if c else 0) for c in cells], fontsize=7, padding=1)
        ax.set_xticks(x, labels)
        ax.set_ylabel(unit)
        ax.set_title(f"Audio per label and split, in {unit} (numbers: clips)")
        ax.legend(frameon=False)
        return save_png(fig, path)
