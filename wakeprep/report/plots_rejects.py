"""Section "3. Rejected files": files per reason, stacked by corpus (``rejected.png``),
and the first rejected files with their paths (``rejected.html``, ``rejected.csv``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..stats import REJECTED_COLUMNS, RunStats
from .html import write_csv, write_page
from .png import figure, no_data, save_png


def write(outputs, *, summary) -> None:
    """``rejected_png``, ``rejected_html`` and ``rejected_csv`` from ``summary.json``."""
    s = RunStats.read(summary)
    plot_rejected(s.rejected_by_corpus, outputs["rejected_png"])
    rows = [[r[k] for k in REJECTED_COLUMNS] for r in s.rejected_first]
    write_page(outputs["rejected_html"], "rejected.html.j2", title="Rejected files", s=s,
               columns=REJECTED_COLUMNS, rows=rows)
    write_csv(outputs["rejected_csv"], REJECTED_COLUMNS, rows)


def plot_rejected(reasons: dict, path) -> Path:
    """Horizontal bars: rejected files per reason (``{reason: {corpus: files}}``),
    stacked by corpus."""
    names = list(reasons)
    with figure(7, max(1.6, 0.35 * len(names) + 1.1)) as fig:
        ax = fig.add_subplot()
        if not names:
            no_data(ax, "no rejected files", "Rejected files by reason")
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
