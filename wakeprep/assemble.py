"""Assembly of the per-split, per-label stores, and the microWakeWord export."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from .features import dequantise
from .store import RaggedStore, merge_stores, replace_dir, temp_sibling
from .table import read_table, write_table

log = logging.getLogger("wakeprep")

INDEX_COLUMNS = ["clip_id", "corpus", "label", "group", "split", "duration_s", "frames", "source", "speaker"]
#: microWakeWord's folder for each of our splits (background audio goes to its *_ambient sets).
MWW_SPLIT = {"train": "training", "validation": "validation", "test": "testing"}


def selected_ids(split_table, split: str, label: str) -> list[dict]:
    """Rows of the split table in ``split`` with ``label`` that are in use, sorted by clip id."""
    rows = [r for r in read_table(split_table) if r["split"] == split and r["label"] == label and r["use"] == "1"]
    rows.sort(key=lambda r: r["clip_id"])
    return rows


def assemble(split_table, split: str, label: str, feature_stores, audio_stores, out_dir, seed: int) -> int:
    """Write ``out_dir/{features,audio}`` (ragged stores) and ``out_dir/clips.tsv``.

    Items are copied one at a time from the shard stores, in clip id order, so memory
    stays bounded whatever the corpus size. The folder appears atomically.
    """
    out_dir = Path(out_dir)
    rows = selected_ids(split_table, split, label)
    ids = [r["clip_id"] for r in rows]
    tmp = temp_sibling(out_dir)
    try:
        attrs = {"split": split, "label": label, "seed": seed}
        feat_sources = [p for p in feature_stores if len(RaggedStore(p))]
        audio_sources = [p for p in audio_stores if len(RaggedStore(p))]
        if ids:
            merge_stores(feat_sources, tmp / "features", ids=ids, attrs={**attrs, "frontend": "pymicro-features", "scale": 25.6})
            merge_stores(audio_sources, tmp / "audio", ids=ids, attrs={**attrs, "sample_rate": 16000})
        else:
            from .store import RaggedWriter

            with RaggedWriter(tmp / "features", np.uint16, (40,), attrs=attrs):
                pass
            with RaggedWriter(tmp / "audio", np.int16, (), attrs=attrs):
                pass
        frames = RaggedStore(tmp / "features").lengths
        index = [{**r, "frames": int(n)} for r, n in zip(rows, frames)]
        write_table(tmp / "clips.tsv", index, INDEX_COLUMNS)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("assemble %s/%s: %d clips", split, label, len(ids))
    return len(ids)


def export_microwakeword(assembled: dict, out_dir, batch_size: int = 256) -> dict:
    """Write microWakeWord's layout from assembled feature stores.

    ``assembled`` maps ``(split, label)`` to an assembled folder. The result is
    ``out_dir/{label}/{training,validation,testing}/wakeword_mmap/`` (``mmap_ninja``
    ragged stores of float32 ``[frames, 40]`` features, as microWakeWord writes them);
    background audio's validation and test sets go to ``validation_ambient`` and
    ``testing_ambient``. Returns the number of clips per exported folder.
    """
    from mmap_ninja.ragged import RaggedMmap

    out_dir = Path(out_dir)
    tmp = temp_sibling(out_dir)
    counts = {}
    try:
        for (split, label), folder in sorted(assembled.items()):
            store = RaggedStore(Path(folder) / "features")
            sub = MWW_SPLIT[split]
            if label == "background" and split != "train":
                sub += "_ambient"
            target = tmp / label / sub / "wakeword_mmap"
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(store):
                RaggedMmap.from_generator(
                    out_dir=str(target),
                    sample_generator=(dequantise(x) for x in store),
                    batch_size=batch_size,
                    verbose=False,
                )
            counts[f"{label}/{sub}"] = len(store)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
