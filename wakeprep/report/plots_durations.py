"""Section "2. Clip durations": a histogram of ok clip durations per label
(``durations.png``), from the histograms in ``summary.json``."""

from __future__ import annotations

from pathlib import Path

from ..stats import RunStats
from .png import figure, save_png


def write(outputs, *, summary) -> None:
    """``durations`` from ``summary.json``."""
    plot_durations(RunStats.read(summary), outputs["durations"])


def plot_durations(s: RunStats, path) -> Path:
    """One histogram per label (log-spaced bins when the durations span more than a
    factor of 50: :func:`wakeprep.stats.duration_bins`)."""
    labels = list(s.durations) or ["(no clips)"]
    with figure(7, 1.9 * len(labels) + 0.3) as fig:
        axes = fig.subplots(len(labels), 1, squeeze=False)[:, 0]
        for k, (ax, label) in enumerate(zip(axes, labels)):
            d = s.durations.get(label)
            if d is None:
                ax.text(0.5, 0.5, "no clips", ha="center", va="center", transform=ax.transAxes)
                ax.set_title(label)
                continue
            ax.stairs(d.counts, d.edges, fill=True, color=f"C{k % 10}")
            if d.log_x:
                ax.set_xscale("log")
            ax.set_title(f"{label}: {d.clips} clips, median {d.median:.2f} s, "
                         f"range {d.shortest:.2f} to {d.longest:.2f} s, {d.hours:.4f} h")
            ax.set_ylabel("clips")
        axes[-1].set_xlabel("duration (s)")
        return save_png(fig, path)
