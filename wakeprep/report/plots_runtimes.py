"""Section "6. Run times": wall time, peak memory and CPU time per rule, from the
``benchmark:`` files (``runtimes.png``, ``runtimes.html``, ``runtimes.csv``).

Snakemake's own *Statistics* page shows each rule's run time; this section adds what
only the benchmark files hold: peak memory (``max_rss``) and CPU time per rule, the
figures to size ``resources:`` with on a cluster.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np

from .html import write_csv, write_page
from .png import figure, no_data, save_png

RUNTIME_COLUMNS = ["rule", "jobs", "total_s", "mean_s", "max_s", "max_rss_mb", "cpu_time_s"]


def write(outputs, *, benchmarks, after=()) -> None:
    """``runtimes_png``, ``runtimes_html``, ``runtimes_csv`` from the folder of benchmark
    files. ``after`` (the rule's inputs) only makes the rule run after the benchmarked jobs."""
    bench = read_benchmarks(benchmarks)
    rows = runtime_rows(bench)
    plot_runtimes(bench, rows, outputs["runtimes_png"])
    write_page(outputs["runtimes_html"], "runtimes.html.j2", title="Run times", rows=rows)
    write_csv(outputs["runtimes_csv"], RUNTIME_COLUMNS, rows)


def _mean(rows: list[dict], key: str) -> float:
    vals = []
    for r in rows:
        try:
            vals.append(float(r.get(key, "nan")))
        except ValueError:
            pass
    vals = [v for v in vals if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else float("nan")


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
        with open(p, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            out[rel.parts[0] if len(rel.parts) > 1 else p.stem].append(
                {"job": str(rel.with_suffix("")), **{k: _mean(rows, k) for k in ("s", "max_rss", "cpu_time")}})
    return dict(sorted(out.items()))


def runtime_rows(bench: Mapping[str, list[dict]]) -> list[list]:
    """``[rule, jobs, total s, mean s, max s, peak max_rss MB, cpu time s]`` per rule,
    the slowest rule (total) first."""
    rows = []
    for rule, jobs in bench.items():
        s, rss, cpu = (np.array([j[k] for j in jobs], dtype=float) for k in ("s", "max_rss", "cpu_time"))
        rows.append([
            rule, len(jobs), round(float(np.nansum(s)), 3), round(float(np.nanmean(s)), 3), round(float(np.nanmax(s)), 3),
            round(float(np.nanmax(rss)), 1) if np.isfinite(rss).any() else None,
            round(float(np.nansum(cpu)), 3),
        ])
    rows.sort(key=lambda r: (-r[2], r[0]))
    return rows


def plot_runtimes(bench: Mapping[str, list[dict]], rows: list[list], path) -> Path:
    """Horizontal bars: wall time per rule summed over its jobs; dots: each job."""
    with figure(7, max(1.6, 0.4 * len(rows) + 1.1)) as fig:
        ax = fig.add_subplot()
        if not rows:
            no_data(ax, "no benchmark files")
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
