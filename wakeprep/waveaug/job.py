"""Store to store: fixed-length windows -> augmented copies -> microWakeWord features.

One job (:func:`augment_audio_part`) takes a range of windows of one split and label,
makes ``repetitions`` augmented copies of each, computes their features and writes::

    {out}/features/        ragged store, uint16 feature codes [frames, 40]; item
                           "{window id}#aug{copy}", window by window, copies in order
    {out}/params.tsv       every copy's coins, drawn parameters and measured levels
    {out}/augment_audio.json  what was done (settings, sets, device, counts, timing)

:func:`plan_parts` cuts a window store into such ranges (the rule's checkpoint), after
checking the noise and RIR sets, so a bad set stops the run before any GPU work.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..features import FEATURE_SCALE, N_BINS, features_batch
from ..fileio import atomic_open
from ..store import RaggedStore, RaggedWriter, StoreError, atomic_dir
from ..table import _cell
from .banks import ClipSet, open_sets
from .chain import Backend, apply_chain, to_float, to_int16
from .draws import clip_hash, draw_params, param_columns, param_rows
from .settings import WaveAugSettings

log = logging.getLogger("wakeprep")

ALGORITHM = "wakeprep-waveaug-v1"
#: Windows per batch when ``batch_items`` is 0.
DEFAULT_BATCH = {"cpu": 256, "cuda": 2048}


def open_windows(path) -> tuple[RaggedStore, int]:
    """The window store and its window length; every item must have that length."""
    s = RaggedStore(path)
    if s.dtype != np.int16 or s.row_shape != ():
        raise StoreError(f"{s.path}: windows must be int16 audio samples, got {s.dtype} rows {s.row_shape}")
    if len(s) == 0:
        return s, 0
    n = int(s.lengths[0])
    if (s.lengths != n).any():
        bad = int(np.flatnonzero(s.lengths != n)[0])
        raise StoreError(f"{s.path}: windows must all have the same length; {s.ids[bad]} has {s.lengths[bad]} samples, the first {n}")
    return s, n


def features_of_batch(audio: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Features of every row of an int16 ``[B, N]`` batch: uint16 codes back to back and each
    row's frame count, in one call of the batched frontend of rule features
    (:func:`wakeprep.features.features_batch`, bit-exact with pymicro-features) on ``device``."""
    rows, n = audio.shape
    codes, frame_offsets = features_batch(np.ascontiguousarray(audio).reshape(-1), np.arange(rows + 1, dtype=np.int64) * n, device)
    return codes, np.diff(frame_offsets)


def read_rows(store: RaggedStore, a: int, b: int) -> np.ndarray:
    """Items ``a:b`` of a store, read with one ``pread`` rather than through the memory map,
    so the job's resident memory does not grow with the windows it has read."""
    r0, r1 = int(store.offsets[a]), int(store.offsets[b])
    row = store.dtype.itemsize * int(np.prod(store.row_shape, dtype=np.int64))
    return np.fromfile(store.path / "data.bin", dtype=store.dtype, count=(r1 - r0) * row // store.dtype.itemsize,
                       offset=r0 * row).reshape(r1 - r0, *store.row_shape)


def check_sets(settings: WaveAugSettings, noise: ClipSet, rirs: ClipSet, window_samples: int) -> None:
    """Check the sets a transform with a non-zero probability will use (see ClipSet.check).
    A set without any corpus leaves its transform off, as microWakeWord does without paths."""
    for s, key in ((noise, "AddBackgroundNoise"), (rirs, "RIR")):
        if settings.p(key) <= 0:
            continue
        if not s.corpora:
            log.warning("augment_audio: no %s corpus is configured, so %s is off", s.kind, key)
            continue
        s.check(window_samples)


def plan_parts(windows, out_json, *, part_items: int, settings: WaveAugSettings, split: str,
               noise_stores=(), rir_stores=(), noise_corpora=(), rir_corpora=()) -> dict:
    """Check the inputs and write the parts of one split and label as JSON."""
    if part_items < 1:
        raise ValueError(f"augment_audio.part_items must be at least 1, got {part_items}")
    store, n = open_windows(windows)
    noise, rirs = open_sets(split, noise_stores, rir_stores, noise_corpora, rir_corpora)
    if len(store):
        check_sets(settings, noise, rirs, n)
    count = len(store)
    parts = [[a, min(a + part_items, count)] for a in range(0, count, part_items)] or [[0, 0]]
    plan = {
        "windows": str(windows), "count": count, "window_samples": n, "part_items": part_items, "parts": parts,
        "noise": {"corpora": noise.corpora, "clips": len(noise), "seconds": float(noise.lengths.sum()) / 16000},
        "rir": {"corpora": rirs.corpora, "clips": len(rirs), "seconds": float(rirs.lengths.sum()) / 16000},
    }
    with atomic_open(out_json) as f:
        json.dump(plan, f, indent=1, sort_keys=True)
        f.write("\n")
    return plan


def augment_batch(be: Backend, audio: np.ndarray, window_ids, copies: int, settings: WaveAugSettings,
                  noise: ClipSet, rirs: ClipSet):
    """Augment ``copies`` copies of each window of ``audio`` (``[n, N]`` int16).

    Returns ``(int16 [n * copies, N] on the host, ChainParams, measured, row window index, row copy)``;
    row ``i * copies + c`` is copy ``c`` of window ``i``.
    """
    n, N = audio.shape
    win = np.repeat(np.arange(n), copies)
    cop = np.tile(np.arange(copies), n)
    hashes = clip_hash(window_ids)
    p = draw_params(settings, hashes[win], cop, N, noise.lengths, len(rirs))
    nrows = np.flatnonzero(p.apply["AddBackgroundNoise"])
    segs, seg_rms = noise.segments(p.noise_index[nrows], p.noise_offset[nrows], N)
    rrows = np.flatnonzero(p.apply["RIR"])
    resp = rirs.responses(p.rir_index[rrows]) if rrows.size else np.zeros((0, 1), np.float32)
    x = to_float(be, audio)[be.asarray(win)]
    x, measured = apply_chain(be, x, p, noise=be.asarray(segs), noise_rms=seg_rms, rirs=be.asarray(resp))
    return be.to_host(to_int16(be, x)), p, measured, win, cop


def augment_audio_part(
    windows,
    out_dir,
    *,
    first: int,
    stop: int,
    repetitions: int,
    settings: WaveAugSettings,
    split: str,
    noise_stores=(),
    rir_stores=(),
    noise_corpora=(),
    rir_corpora=(),
    device: str = "cuda",
    batch_items: int = 0,
    overlap: bool | None = None,
) -> dict:
    """Augment windows ``first:stop`` of a window store into ``out_dir`` (see module docs).

    ``overlap`` writes batch k (features, stores, table) on a second thread while batch
    k + 1 is augmented; default: on the GPU only (a CPU job has one core). The bytes are
    the same either way.

    ``device='cuda'`` raises :class:`wakeprep.augment.NoGpuError` when no GPU is usable
    (after the cheap input checks, before any audio is processed); it never falls back
    to the CPU.
    """
    from ..augment import require_gpu

    if device not in ("cuda", "cpu"):
        raise ValueError(f"augment_audio.device must be 'cuda' or 'cpu', got {device!r}")
    if repetitions < 1 or batch_items < 0:
        raise ValueError(f"augment_audio: repetitions must be >= 1 and batch_items >= 0, got {repetitions}, {batch_items}")
    batch_items = batch_items or DEFAULT_BATCH[device]
    store, n_samples = open_windows(windows)
    if not 0 <= first <= stop <= len(store):
        raise ValueError(f"augment_audio: windows {first}:{stop} are outside {store.path} ({len(store)} windows)")
    noise, rirs = open_sets(split, noise_stores, rir_stores, noise_corpora, rir_corpora)
    if stop > first:
        check_sets(settings, noise, rirs, n_samples)  # a bad set stops the job before any GPU work
    device_name = require_gpu() if device == "cuda" else "cpu"
    if not noise.corpora:
        noise = ClipSet("noise", split)
    if not rirs.corpora:
        rirs = ClipSet("RIR", split)
    be = Backend(device)

    out_dir = Path(out_dir)
    t0 = time.monotonic()
    items = 0
    attrs = {"made_by": "augment_audio", "algorithm": ALGORITHM, "split": split, "repetitions": repetitions,
             "settings": settings.to_dict(), "frontend": "pymicro-features", "scale": FEATURE_SCALE}
    with atomic_dir(out_dir) as tmp:
        columns = param_columns()
        with RaggedWriter(tmp / "features", np.uint16, (N_BINS,), attrs=attrs) as w, \
                open(tmp / "params.tsv", "w", encoding="utf-8", newline="\n") as table:
            table.write("\t".join(columns) + "\n")  # streamed batch by batch: memory bounded by the batch

            def write(ids, out, p, measured, win, cop):
                codes, lengths = features_of_batch(out, device)
                item_ids = [f"{ids[i]}#aug{c}" for i, c in zip(win, cop)]
                w.append_many(item_ids, codes, lengths)
                for r in param_rows(p, item_ids, [ids[i] for i in win], cop, noise.ids, rirs.ids, measured):
                    table.write("\t".join(_cell(r.get(c)) for c in columns) + "\n")
                return len(item_ids)

            # On the GPU, the host computes and writes batch k's features while the device
            # augments batch k + 1 (one batch in flight, written in order). On the CPU the job
            # has one core (threads: 1), so it does one thing at a time.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment-audio-writer") as pool:
                pending = None
                for a in range(first, stop, batch_items):
                    b = min(a + batch_items, stop)
                    ids = store.ids[a:b]
                    audio = read_rows(store, a, b).reshape(b - a, n_samples)
                    batch = (ids, *augment_batch(be, audio, ids, repetitions, settings, noise, rirs))
                    if pending is not None:
                        items += pending.result()
                        pending = None
                    if (device == "cuda") if overlap is None else overlap:
                        pending = pool.submit(write, *batch)
                    else:
                        items += write(*batch)
                if pending is not None:
                    items += pending.result()
        elapsed = time.monotonic() - t0
        report = {
            "algorithm": ALGORITHM, "windows": str(windows), "first": first, "stop": stop, "split": split,
            "repetitions": repetitions, "window_samples": n_samples, "items": items,
            "audio_seconds": items * n_samples / 16000, "device": device, "device_name": device_name,
            "backend": be.name, "seconds": round(elapsed, 3), "settings": settings.to_dict(),
            "noise": {"corpora": noise.corpora, "clips": len(noise)}, "rir": {"corpora": rirs.corpora, "clips": len(rirs)},
        }
        with open(tmp / "augment_audio.json", "w", encoding="utf-8") as f:
            json.dump({k: v for k, v in report.items() if k != "seconds"}, f, indent=1, sort_keys=True)
            f.write("\n")
    log.info("augment_audio %s %d:%d: %d copies (%.0f s of audio) on %s in %.2f s (%.0fx real time)",
             split, first, stop, items, report["audio_seconds"], device_name, elapsed,
             report["audio_seconds"] / max(elapsed, 1e-9))
    return report


def list_parts(plan_json, parts, out_json) -> dict:
    """Write the index of one split and label's augmented parts: each part's feature store,
    item count and audio seconds, and the noise and RIR sets that fed them (the report
    and the export read this)."""
    with open(plan_json, encoding="utf-8") as f:
        plan = json.load(f)
    listed = []
    for p in parts:
        with open(Path(p, "augment_audio.json"), encoding="utf-8") as f:
            rep = json.load(f)
        listed.append({"features": str(Path(p, "features")), "params": str(Path(p, "params.tsv")),
                       "items": rep["items"], "audio_seconds": rep["audio_seconds"], "device": rep["device"]})
    index = {"windows": plan["windows"], "window_samples": plan["window_samples"], "noise": plan["noise"],
             "rir": plan["rir"], "items": sum(p["items"] for p in listed),
             "hours": sum(p["audio_seconds"] for p in listed) / 3600, "parts": listed}
    with atomic_open(out_json) as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    return index


def write_overview(indexes: dict, out_txt) -> str:
    """A plain-text table of what augment_audio made: for each split and label, copies,
    hours, and which noise and RIR sets (corpora, clips, seconds) fed it (the same lines
    as ``results/summary.txt``, :func:`wakeprep.summary.augment_audio_lines`).

    ``indexes`` maps ``(split, label)`` to the path of its ``parts.json``.
    """
    from ..summary import augment_audio_lines, summarise_augment_audio

    text = "\n".join(augment_audio_lines(summarise_augment_audio(indexes))) + "\n"
    with atomic_open(out_txt) as f:
        f.write(text)
    return text
