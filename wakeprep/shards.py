"""Per-shard work: convert a shard's files to 16 kHz int16, and compute their features.

With ``features.device: cpu`` (the default) the convert job computes the features too
(:func:`convert_shard` with ``features``), while the audio is in memory, and the features
job takes them over (:mod:`wakeprep.featurecache`) instead of starting a second process and reading
the audio back. With ``cuda``, or a ``pad_ms`` changed since the conversion, the features job
runs :func:`features_shard`. Both give the same feature store, byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from .audio import AudioSettings, convert_file
from .corpus import clip_id, clip_key, printable, read_manifest, speaker_from_path
from .features import FEATURE_SCALE, N_BINS, FeatureSettings, features_batch, require_gpu
from .store import RaggedStore, RaggedWriter
from .table import write_table
from .vad import VadSettings, analyse

import numpy as np

log = logging.getLogger("wakeprep")


class Progress:
    """Log a line every ``every_s`` seconds (and at the end) for a long loop."""

    def __init__(self, what: str, total: int, every_s: float = 10.0):
        self.what, self.total, self.every_s = what, total, every_s
        self.start = self.last = time.monotonic()
        self.done = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            log.info("%s: %d/%d files (%.1f/s)", self.what, self.done, self.total, rate)

    def finish(self) -> float:
        elapsed = time.monotonic() - self.start
        log.info("%s: %d files in %.2f s", self.what, self.done, elapsed)
        return elapsed


def _clean_detail(detail: str, folder: str, rel: str) -> str:
    """Error messages name the absolute path; keep them independent of where the corpus lives."""
    absolute = os.path.join(folder, rel)
    return printable(detail.replace(absolute, rel).replace(os.path.abspath(absolute), rel))


def convert_shard(
    manifest, corpus: dict, settings: AudioSettings, out_store, out_table, vad: VadSettings = VadSettings(),
    features: FeatureSettings | None = None, out_features=None,
) -> Counter:
    """Convert every file of one shard manifest (and, with ``features``, compute their features).

    Parameters
    ----------
    manifest : path-like
        Shard manifest written by :func:`wakeprep.corpus.write_manifests`.
    corpus : dict
        The corpus's config entry (``name``, ``path``, ``label``, optional
        ``speaker_regex`` and ``split``).
    settings : AudioSettings
    vad : VadSettings
        Clips of the labels it names get speech boundaries, ratio and SNR.
    out_store, out_table : path-like
        Audio store of the ok clips, and the table of every file.
    features : FeatureSettings, optional
    out_features : path-like, optional
        Where to write the feature store of the ok clips: the one :func:`features_shard`
        would make from ``out_store`` (same bytes), computed while the audio is in memory,
        when ``features`` is given and its device is ``cpu``; otherwise an empty store that
        says it holds no features (:mod:`wakeprep.featurecache`).

    Returns
    -------
    collections.Counter
        Files per status/reason (``ok``, ``rejected:empty``...).
    """
    entries = read_manifest(manifest)
    name, label = corpus["name"], corpus["label"]
    rows, detect = [], vad.wants(label)
    progress = Progress(f"convert {name}/{Path(manifest).stem}", len(entries))
    attrs = {
        "corpus": name,
        "label": label,
        "sample_rate": settings.target_rate,
        "resample_quality": settings.resample_quality,
        "manifest": Path(manifest).name,
        "vad": vad.method if vad.wants(label) else "",
    }
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(RaggedWriter(out_store, np.int16, (), attrs=attrs))
        batcher = None
        if out_features is not None and features is not None and features.device == "cpu":
            batcher = _FeatureBatcher(stack.enter_context(
                RaggedWriter(out_features, np.uint16, (N_BINS,), attrs=feature_attrs(name, label, features.pad_ms))), features)
        elif out_features is not None:
            note = "features.device is cuda: rule features computes them" if features is not None else "not computed"
            stack.enter_context(RaggedWriter(out_features, np.uint16, (N_BINS,), attrs={"corpus": name, "label": label, "note": note}))
        for row, samples in _converted_rows(entries, corpus, settings):
            rows.append(row)
            if samples is not None and detect:
                _detect_speech(row, samples, vad, settings.min_snr_db)
            if row["status"] == "ok":
                writer.append(row["clip_id"], samples)
                if batcher is not None:
                    batcher.add(row["clip_id"], samples)
            progress.step()
        if batcher is not None:
            batcher.flush()
    write_table(out_table, rows)
    progress.finish()
    counts = Counter("ok" if r["status"] == "ok" else f"rejected:{r['reason']}" for r in rows)
    log.info("shard %s: %s", Path(manifest).stem, dict(sorted(counts.items())))
    if counts and counts["ok"] == 0:
        log.warning("shard %s: every file was rejected", Path(manifest).stem)
    return counts


def _converted_rows(entries, corpus: dict, settings: AudioSettings):
    """(table row, samples of an ok clip or None) for each manifest entry, in order."""
    folder, name = str(corpus["path"]), corpus["name"]
    seen: dict[str, str] = {}
    for entry in entries:
        row = {
            "clip_id": clip_id(name, entry.path),
            "corpus": name,
            "label": corpus["label"],
            "source": printable(entry.path),
            "speaker": speaker_from_path(entry.path, corpus.get("speaker_regex")),
            "split": corpus.get("split") or "",
        }
        key = clip_key(entry.path)
        if key in seen:
            row.update(status="rejected", reason="duplicate_id", detail=f"same clip id as {printable(seen[key])}")
            yield row, None
            continue
        seen[key] = entry.path
        res = convert_file(os.path.join(folder, entry.path), settings)
        row.update(status=res.status, reason=res.reason, detail=_clean_detail(res.detail, folder, entry.path))
        row.update(_result_cells(res))
        yield row, res.samples if res.status == "ok" else None


def _result_cells(res) -> dict:
    """The table cells a conversion result fills."""
    cells = dict(
        source_rate=res.source_rate or "",
        channels=res.channels or "",
        format=res.format,
        subtype=res.subtype,
        source_frames=res.source_frames if res.format else "",
        decoder=res.decoder,
        sha256=res.sha256,
    )
    if res.status == "ok" or res.reason in ("silent", "clipped"):
        cells.update(peak_dbfs=round(res.peak_dbfs, 2), clipped=res.clipped)
    if res.status == "ok":
        cells.update(duration_s=round(res.duration_s, 6), samples=len(res.samples))
    return cells


def _detect_speech(row: dict, samples: np.ndarray, vad: VadSettings, min_snr_db: float | None) -> None:
    """Speech columns of an ok clip's row; with ``min_snr_db`` set, a clip whose speech SNR is
    below it is rejected (``low_snr``)."""
    speech = analyse(samples, vad)
    row.update(speech.columns())
    if min_snr_db is not None and speech.snr_db is not None and speech.snr_db < min_snr_db:
        row.update(status="rejected", reason="low_snr",
                   detail=f"speech SNR {speech.snr_db:.1f} dB < min_snr_db {min_snr_db}")


def feature_attrs(corpus, label, pad_ms) -> dict:
    """``meta.json`` attrs of a shard's feature store."""
    return {
        "corpus": corpus,
        "label": label,
        "frontend": "pymicro-features",
        "window_ms": 30,
        "step_ms": 10,
        "bins": N_BINS,
        "scale": FEATURE_SCALE,
        "pad_ms": pad_ms,
    }


def _pad_into(clips, pad: int, out: np.ndarray, zeros: np.ndarray) -> None:
    """Write ``clips`` back to back into ``out``, each with ``pad`` zero samples before and
    after (``zeros``: at least ``2 * pad`` zeros), in one ``np.concatenate``."""
    if not pad:
        np.concatenate(clips, out=out)
        return
    parts = [zeros[:pad]]
    for clip in clips:
        parts += (clip, zeros[: 2 * pad])
    parts[-1] = zeros[:pad]
    np.concatenate(parts, out=out)


class _FeatureBatcher:
    """Features of clips handed over one at a time, computed in batches of about
    ``settings.batch_mb`` MiB (as :func:`features_shard` batches a store) and appended to
    ``writer`` in the order the clips came.

    The batch is assembled in one buffer kept from flush to flush (grown only for a clip
    larger than the budget), so its pages are touched once per job, not once per batch;
    the clips and their zero pads go in with one ``np.concatenate``."""

    def __init__(self, writer: RaggedWriter, settings: FeatureSettings):
        self.writer, self.settings = writer, settings
        self.pad = int(round(settings.pad_ms * 16))
        self.budget = settings.batch_mb * 2**20 // 2  # samples per batch
        self.ids: list[str] = []
        self.clips: list[np.ndarray] = []
        self.total = 0
        self.buffer = np.empty(0, dtype=np.int16)
        self.zeros = np.zeros(2 * self.pad, dtype=np.int16)

    def add(self, clip_id: str, samples: np.ndarray) -> None:
        n = len(samples) + 2 * self.pad
        if self.clips and self.total + n > self.budget:
            self.flush()
        self.ids.append(clip_id)
        self.clips.append(samples)
        self.total += n

    def flush(self) -> None:
        if not self.clips:
            return
        pad = self.pad
        lengths = np.fromiter((len(c) for c in self.clips), dtype=np.int64, count=len(self.clips)) + 2 * pad
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if len(self.buffer) < self.total:
            self.buffer = np.empty(max(self.total, self.budget), dtype=np.int16)
        batch = self.buffer[: self.total]
        _pad_into(self.clips, pad, batch, self.zeros)
        codes, frame_offsets = features_batch(batch, offsets, self.settings.device)
        self.writer.append_many(self.ids, codes, np.diff(frame_offsets))
        self.ids, self.clips, self.total = [], [], 0


def features_shard(audio_store, out_store, settings: FeatureSettings | None = None, pad_ms: int | None = None) -> int:
    """Compute uint16 micro-frontend features for every clip of an audio store.

    Parameters
    ----------
    audio_store, out_store : path-like
        The shard's int16 audio store, and the feature store to write (``[frames, 40]``
        uint16 per clip, same ids and order).
    settings : FeatureSettings, optional
        From the config's ``features`` section (defaults when not given): ``pad_ms`` of
        digital silence before and after each clip, the ``device``, and the batch size.
        Clips go to the frontend in batches of about ``batch_mb`` MiB.
    pad_ms : int, optional
        Overrides ``settings.pad_ms``.

    Returns the number of clips.
    """
    settings = settings or FeatureSettings()
    if pad_ms is not None:
        settings = replace(settings, pad_ms=pad_ms)
    if settings.device == "cuda":
        log.info("features on %s", require_gpu())
    audio = RaggedStore(audio_store)
    pad = int(round(settings.pad_ms * 16))
    attrs = feature_attrs(audio.attrs.get("corpus"), audio.attrs.get("label"), settings.pad_ms)
    progress = Progress(f"features {audio.path}", len(audio))
    lengths = np.asarray(audio.lengths, dtype=np.int64)
    budget = settings.batch_mb * 2**20 // 2  # samples per batch
    with RaggedWriter(out_store, np.uint16, (N_BINS,), attrs=attrs) as writer:
        first = 0
        while first < len(audio):
            last, total = first, 0
            while last < len(audio) and (last == first or total + lengths[last] + 2 * pad <= budget):
                total += int(lengths[last]) + 2 * pad
                last += 1
            src = audio.offsets[first : last + 1]
            if pad:
                batch = np.empty(total, dtype=np.int16)
                offsets = np.zeros(last - first + 1, dtype=np.int64)
                np.cumsum(lengths[first:last] + 2 * pad, out=offsets[1:])
                clips = [audio.data[src[k] : src[k + 1]] for k in range(last - first)]
                _pad_into(clips, pad, batch, np.zeros(2 * pad, dtype=np.int16))
            else:  # the clips are contiguous in the store: the batch is a view, no copy
                batch = np.asarray(audio.data[src[0] : src[-1]])
                offsets = src - src[0]
            codes, frame_offsets = features_batch(batch, offsets, settings.device)
            for k in range(last - first):
                writer.append(audio.ids[first + k], codes[frame_offsets[k] : frame_offsets[k + 1]])
            progress.step(last - first)
            first = last
    progress.finish()
    return len(audio)
