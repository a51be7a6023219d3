"""Assembly of the per-split, per-label stores (the microWakeWord export is in :mod:`wakeprep.export`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .features import FEATURE_SCALE
from .store import RaggedStore, RaggedWriter, atomic_dir, merge_stores
from .table import read_table, write_table

log = logging.getLogger("wakeprep")

INDEX_COLUMNS = ["clip_id", "corpus", "label", "group", "split", "duration_s", "frames", "source", "speaker",
                 "speech_start_s", "speech_end_s", "speech_ratio", "snr_db"]
#: Columns of the clip tables carried into the assembled index (speech boundaries place positives).
SPEECH_COLUMNS = ["speech_start_s", "speech_end_s", "speech_ratio", "snr_db"]


def selected_ids(split_table, split: str, label: str) -> list[dict]:
    """Rows of the split table in ``split`` with ``label`` that are in use, sorted by clip id."""
    rows = [r for r in read_table(split_table) if r["split"] == split and r["label"] == label and r["use"] == "1"]
    rows.sort(key=lambda r: r["clip_id"])
    return rows


def speech_columns(tables) -> dict[str, dict]:
    """Speech columns (:data:`SPEECH_COLUMNS`) of every clip of the given clip tables, by clip id."""
    out = {}
    for t in tables:
        for r in read_table(t):
            out[r["clip_id"]] = {c: r.get(c, "") for c in SPEECH_COLUMNS}
    return out


def assemble(split_table, split: str, label: str, feature_stores, audio_stores, out_dir, seed: int,
             tables=()) -> int:
    """Write ``out_dir/{features,audio}`` (ragged stores) and ``out_dir/clips.tsv``.

    Items are copied one at a time from the shard stores, in clip id order, so memory
    stays bounded whatever the corpus size. The folder appears atomically. ``tables``
    (the shard clip tables) give the index its speech columns.
    """
    out_dir = Path(out_dir)
    rows = selected_ids(split_table, split, label)
    if tables:
        speech = speech_columns(tables)
        rows = [{**r, **speech.get(r["clip_id"], {})} for r in rows]
    ids = [r["clip_id"] for r in rows]
    with atomic_dir(out_dir) as tmp:
        attrs = {"split": split, "label": label, "seed": seed}
        feat_sources = [p for p in feature_stores if len(RaggedStore(p))]
        audio_sources = [p for p in audio_stores if len(RaggedStore(p))]
        if ids:
            merge_stores(feat_sources, tmp / "features", ids=ids, attrs={**attrs, "frontend": "pymicro-features", "scale": FEATURE_SCALE})
            merge_stores(audio_sources, tmp / "audio", ids=ids, attrs={**attrs, "sample_rate": 16000})
        else:
            with RaggedWriter(tmp / "features", np.uint16, (40,), attrs=attrs):
                pass
            with RaggedWriter(tmp / "audio", np.int16, (), attrs=attrs):
                pass
        frames = RaggedStore(tmp / "features").lengths
        index = [{**r, "frames": int(n)} for r, n in zip(rows, frames)]
        write_table(tmp / "clips.tsv", index, INDEX_COLUMNS)
    log.info("assemble %s/%s: %d clips", split, label, len(ids))
    return len(ids)
