"""The dataset report: one Snakemake rule per section, each writing its plots and tables.

Every figure comes from ``results/summary.json`` (:class:`wakeprep.stats.RunStats`,
computed once by rule ``summary``); the sections only render it, except where they show
the data itself (speaker embeddings, feature images) or the run times. :data:`SECTIONS`
is the one table of the report: each section's rule (``report_{name}``, or ``report``
for the run summary), its category in Snakemake's report and its files under
``results/report/``, each with the output name the rule gives it, its caption
(``report/{caption}``) and its subcategory. ``rules/report.smk`` builds each rule's
outputs from it, and :func:`write_section` hands those outputs to the section's module:

================  ======================  ==================================================
section           module                  files
================  ======================  ==================================================
counts            :mod:`.plots_counts`    ``counts.html``, ``counts.csv``, ``hours.png``
durations         :mod:`.plots_durations` ``durations.png``
rejects           :mod:`.plots_rejects`   ``rejected.png``, ``rejected.html``, ``rejected.csv``
speakers          :mod:`.plots_speakers`  ``group_sizes.png``, ``leakage.html``, ``embeddings.png``
features          :mod:`.plots_features`  ``features_{label}.png``
runtimes          :mod:`.plots_runtimes`  ``runtimes.png``, ``runtimes.html``, ``runtimes.csv``
summary           :mod:`.summary_page`    ``summary.html`` (after every other section)
================  ======================  ==================================================

``snakemake --report report.html`` (or ``report.zip``) gathers them into one page. Plots
are byte-reproducible palette PNGs (:mod:`.png`), pages are rendered from Jinja2
templates (:mod:`.html`), and every sample (embeddings, example clips) is chosen by a
seeded hash of clip ids, not by file order.

This module imports nothing heavy: the Snakefile reads :data:`SECTIONS` when parsed.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Mapping

log = logging.getLogger("wakeprep")


@dataclass(frozen=True)
class File:
    """One file of a section: the rule's output name (``key``), the file name under
    ``results/report/`` (``{label}`` in it: one file per label), its caption file under
    ``report/`` and its subcategory in Snakemake's report."""

    key: str
    name: str
    caption: str
    subcategory: str

    @property
    def per_label(self) -> bool:
        return "{label}" in self.name


@dataclass(frozen=True)
class Section:
    """A section of the report: its category, files, and the module that writes them
    (``wakeprep.report.{module}.write(outputs, **inputs_and_params)``)."""

    category: str
    module: str
    files: tuple[File, ...]


SECTIONS: dict[str, Section] = {
    "counts": Section("1. Overview", "plots_counts", (
        File("counts_html", "counts.html", "counts.rst", "Counts and hours"),
        File("counts_csv", "counts.csv", "counts.rst", "Counts and hours"),
        File("hours", "hours.png", "hours.rst", "Counts and hours"),
    )),
    "durations": Section("2. Clip durations", "plots_durations", (
        File("durations", "durations.png", "durations.rst", "Per label"),
    )),
    "rejects": Section("3. Rejected files", "plots_rejects", (
        File("rejected_png", "rejected.png", "rejected.rst", "By reason"),
        File("rejected_html", "rejected.html", "rejected_paths.rst", "Paths"),
        File("rejected_csv", "rejected.csv", "rejected_paths.rst", "Paths"),
    )),
    "speakers": Section("4. Speakers and split", "plots_speakers", (
        File("group_sizes", "group_sizes.png", "group_sizes.rst", "Speaker groups"),
        File("leakage", "leakage.html", "leakage.rst", "Leakage audit"),
        File("embeddings", "embeddings.png", "embeddings.rst", "Speaker embeddings"),
    )),
    "features": Section("5. Features", "plots_features", (
        File("features", "features_{label}.png", "features.rst", "Feature images"),
    )),
    "runtimes": Section("6. Run times", "plots_runtimes", (
        File("runtimes_png", "runtimes.png", "runtimes.rst", "Per rule"),
        File("runtimes_html", "runtimes.html", "runtimes.rst", "Per rule"),
        File("runtimes_csv", "runtimes.csv", "runtimes.rst", "Per rule"),
    )),
    "summary": Section("1. Overview", "summary_page", (
        File("summary", "summary.html", "summary.rst", "Run summary"),
    )),
}


def file_names(labels) -> list[str]:
    """Every file of the report under ``results/report/``, for these labels."""
    return [f.name.format(label=l) for s in SECTIONS.values() for f in s.files
            for l in (labels if f.per_label else [None])]


def rule_outputs(name: str, folder: str, labels, report) -> dict:
    """Section ``name``'s rule outputs, by :class:`File` key: each path under ``folder``
    wrapped by Snakemake's ``report()`` (passed in as ``report``) with its caption,
    category and subcategory; a file per label is a list, in ``labels`` order."""
    sec = SECTIONS[name]

    def one(f: File, label=None):
        extra = {"labels": {"label": label}} if label is not None else {}
        return report(f"{folder}/{f.name.format(label=label)}", caption=f"../report/{f.caption}",
                      category=sec.category, subcategory=f.subcategory, **extra)

    return {f.key: [one(f, l) for l in labels] if f.per_label else one(f) for f in sec.files}


def write_section(name: str, outputs: Mapping, **inputs) -> None:
    """Write section ``name``'s files: ``outputs`` maps each :class:`File` key to its
    path (a list of paths, in label order, for a file per label); ``inputs`` are the
    rule's inputs and parameters by name, as the section's ``write`` takes them."""
    section = SECTIONS[name]
    missing = [f.key for f in section.files if f.key not in outputs]
    if missing:
        raise ValueError(f"report section '{name}': no output path for {', '.join(missing)}")
    module = importlib.import_module(f"{__name__}.{section.module}")
    module.write(outputs, **inputs)
    log.info("report section %s: %s", name, ", ".join(f.key for f in section.files))
