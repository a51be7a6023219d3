"""Per-file metadata tables: tab-separated, one row per source file, fixed columns.

Rejected files stay in the table with their reason, so nothing vanishes silently.
Values are printable single-line text (see :func:`wakeprep.corpus.printable`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Iterator

from .fileio import atomic_open

#: Column order of every clip table (shard tables and the merged ``results/clips.tsv``).
COLUMNS = [
    "clip_id", "corpus", "label", "source", "status", "reason", "detail",
    "duration_s", "samples", "source_rate", "channels", "format", "subtype",
    "source_frames", "decoder", "peak_dbfs", "clipped", "speech_start_s", "speech_end_s", "speech_ratio",
    "snr_db", "sha256", "speaker", "split",
]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:.6g}"
    text = str(value)
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def write_table(path, rows: Iterable[dict], columns=COLUMNS) -> Path:
    """Write ``rows`` (dicts) as a TSV with a header, atomically."""
    with atomic_open(path) as f:
        f.write("\t".join(columns) + "\n")
        for row in rows:
            f.write("\t".join(_cell(row.get(c)) for c in columns) + "\n")
    return Path(path)


def read_table(path) -> Iterator[dict]:
    """Yield the rows of a TSV written by :func:`write_table` as dicts of strings."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        yield from reader
