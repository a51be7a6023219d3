"""openWakeWord export: the assembled clips as 16 kHz mono WAV files in the folders that
openWakeWord's training script reads.

openWakeWord's ``openwakeword/train.py`` looks for its clips in
``{output_dir}/{model_name}/positive_train``, ``positive_test``, ``negative_train`` and
``negative_test`` (it globs ``*.wav`` there, and counts the entries of each folder), and
for background audio in the folders of its ``background_paths`` (every file there). It
places clips in its own fixed-length windows and augments them, so the clips go out as
they are in the assembled stores (not in wakeprep's windows). ``results/openwakeword/``::

    {model_name}/positive_train/   positive clips of the training split
    {model_name}/positive_test/    positive clips of the validation and test splits
    {model_name}/negative_train/   negative and hard_negative clips of the training split
    {model_name}/negative_test/    negative and hard_negative clips of validation and test
    background_train/, background_test/   background clips (for background_paths)
    index.tsv                      file, folder, clip id, split, label, samples

File names are the clip ids with ``/`` and ``%`` percent-encoded (``demo_positive%2Fen-us%2F000.wav``),
unique and reversible. Nothing but WAV files is written inside the clip folders, because
openWakeWord sizes its feature arrays by the number of entries there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from .store import RaggedStore, atomic_dir
from .table import write_table

log = logging.getLogger("wakeprep")

RATE = 16000
INDEX_COLUMNS = ["file", "folder", "clip_id", "split", "label", "samples"]


def oww_folder(split: str, label: str, model_name: str) -> str:
    """The folder (relative to the export) of a split and label."""
    part = "train" if split == "train" else "test"
    if label == "background":
        return f"background_{part}"
    kind = "positive" if label == "positive" else "negative"
    return f"{model_name}/{kind}_{part}"


def file_name(clip_id: str) -> str:
    return clip_id.replace("%", "%25").replace("/", "%2F") + ".wav"


def export_openwakeword(assembled: dict, out_dir, model_name: str = "wakeword") -> dict:
    """Write the WAV folders from ``assembled`` (``(split, label)`` to a ``results/mmap``
    folder); returns the number of files per folder."""
    out_dir = Path(out_dir)
    counts: dict[str, int] = {}
    index = []
    with atomic_dir(out_dir) as tmp:
        for kind in ("positive", "negative"):
            for part in ("train", "test"):
                (tmp / model_name / f"{kind}_{part}").mkdir(parents=True, exist_ok=True)
                counts[f"{model_name}/{kind}_{part}"] = 0
        for (split, label), folder in sorted(assembled.items()):
            sub = oww_folder(split, label, model_name)
            (tmp / sub).mkdir(parents=True, exist_ok=True)
            counts.setdefault(sub, 0)
            for clip_id, samples in RaggedStore(Path(folder) / "audio").items():
                name = file_name(clip_id)
                sf.write(tmp / sub / name, np.asarray(samples, dtype=np.int16), RATE, subtype="PCM_16", format="WAV")
                counts[sub] += 1
                index.append({"file": f"{sub}/{name}", "folder": sub, "clip_id": clip_id, "split": split,
                              "label": label, "samples": len(samples)})
        index.sort(key=lambda r: r["file"])
        write_table(tmp / "index.tsv", index, INDEX_COLUMNS)
    log.info("openWakeWord export: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return counts
