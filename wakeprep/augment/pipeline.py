"""Rule augment's step: a feature store in, a folder of augmented part stores out.

:func:`augment_store` streams the store in batches of whole clips through a runner
(:mod:`~wakeprep.augment.runners`), with reading, the device and writing overlapped by
:func:`run_pipeline`, into a :class:`~wakeprep.store.ShardedRaggedWriter`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np

from ..store import RaggedStore, ShardedRaggedWriter, StoreError
from .device import require_gpu
from .masks import ALGORITHM, AugmentParams
from .runners import CPU_BATCH_BYTES, SLOTS, CpuRunner, Frames, GpuRunner, gpu_batch_rows
from .settings import AugmentSettings

log = logging.getLogger("wakeprep")

#: What rule augment writes beside the parts.
REPORT = "augment.json"


def augment_store(in_store, out_dir, settings: AugmentSettings) -> dict:
    """Augment every clip of a feature store into a folder of ragged stores.

    Parameters
    ----------
    in_store : path-like
        Ragged store of uint16 feature codes, rows of ``(40,)`` (any multiple of 8 bins
        up to 64 works).
    out_dir : path-like
        Folder to create (:class:`~wakeprep.store.ShardedRaggedWriter`): ``part-0000/``,
        ``part-0001/``... (ragged stores of at most ``settings.shard_items`` augmented
        clips, in order: copy ``c`` of clip ``i`` is item ``i * copies + c`` overall,
        with id ``{clip id}#aug{c}``) and ``augment.json``. Built beside the target and
        renamed into place at the end.
    settings : AugmentSettings
        ``device='cuda'`` runs the fused kernel and raises
        :class:`~wakeprep.augment.NoGpuError` (a ``RuntimeError``) before reading
        anything when no GPU is usable: it never falls back to the CPU. ``cpu`` runs
        the same algorithm with NumPy; the bytes are the same, whatever the device
        and ``batch_items``.

    Returns
    -------
    dict
        What ``augment.json`` records.
    """
    if settings.device == "cuda":
        require_gpu()  # before reading anything: fail fast and say how to proceed
    src = open_features(in_store)
    n_bins = int(src.row_shape[0])
    params = settings.params
    params.check(n_bins)
    batches = plan_batches(src.offsets, settings.batch_items, batch_rows(settings.device, n_bins, params.copies))
    attrs = {"made_by": "augment", "algorithm": ALGORITHM, **asdict(params), "mask_value": settings.mask_value}
    t0 = time.monotonic()
    with ShardedRaggedWriter(out_dir, np.uint16, (n_bins,), settings.shard_items, attrs) as out:
        device_name = augment_into(out, src, params, settings.device, batches)
        elapsed = time.monotonic() - t0
        report = make_report(settings, in_store, src, device_name, out.parts)
        out.write_text(REPORT, json.dumps(report, indent=1, sort_keys=True) + "\n")
    gb = report["input_frames"] * n_bins * 2 * (1 + params.copies) / 1e9
    log.info(
        "augment: %d clips -> %d augmented in %d part(s) on %s, %.2f s (%.2f GB read+written)",
        report["input_clips"], report["output_clips"], len(report["parts"]), device_name, elapsed, gb,
    )
    return report


def open_features(path) -> RaggedStore:
    """The input store, checked: uint16 codes in rows of ``(bins,)``, clips under 2**31 frames."""
    src = RaggedStore(path)
    if src.dtype != np.uint16 or len(src.row_shape) != 1:
        raise StoreError(f"{src.path}: expected uint16 feature codes with rows of (bins,), got {src.dtype} {src.row_shape}")
    if len(src) and int(src.lengths.max()) >= 2**31:
        raise StoreError(f"{src.path}: a clip of 2**31 frames or more cannot be augmented")
    return src


def batch_rows(device: str, n_bins: int, copies: int) -> int:
    """Frames per batch when batches are sized by bytes (``batch_items`` 0)."""
    if device == "cuda":
        return gpu_batch_rows(n_bins, copies)
    return max(1, CPU_BATCH_BYTES // (n_bins * 2))


def plan_batches(offsets: np.ndarray, batch_items: int, max_rows: int) -> list[tuple[int, int]]:
    """Split clips into ``(first, stop)`` batches.

    ``batch_items > 0``: that many clips each. Otherwise as many clips as fit
    ``max_rows`` frames (a longer clip is a batch of its own).
    """
    n = offsets.size - 1
    if n <= 0:
        return []
    if batch_items > 0:
        return [(a, min(a + batch_items, n)) for a in range(0, n, batch_items)]
    out, a = [], 0
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + max_rows, side="right")) - 1
        b = min(max(b, a + 1), n)
        out.append((a, b))
        a = b
    return out


def augment_into(out: ShardedRaggedWriter, src: RaggedStore, params: AugmentParams, device: str,
                 batches: list[tuple[int, int]]) -> str:
    """Run ``batches`` of ``src`` on ``device`` and append the copies to ``out``; returns
    the description of the device that ran them."""
    n_bins = int(src.row_shape[0])
    if device == "cpu":
        runner = CpuRunner(params, n_bins)
    elif batches:
        runner = GpuRunner.for_batches(params, n_bins, src.offsets, batches)
    else:
        return require_gpu()  # nothing to run: no kernel to compile
    try:
        with Frames.of_store(src) as frames:
            run_pipeline(runner, frames, src.offsets, batches, copies_writer(out, src.ids, src.lengths, params.copies))
    finally:
        runner.close()
    return runner.device


def copies_writer(out: ShardedRaggedWriter, ids: Sequence[str], lengths: np.ndarray, copies: int) -> Callable:
    """``write(first, stop, data)`` appending the copies of clips ``first:stop`` to ``out``:
    copy ``c`` of clip ``i`` as item ``{id}#aug{c}``, in that order."""

    def write(first: int, stop: int, data: np.ndarray) -> None:
        item_ids = [f"{clip_id}#aug{c}" for clip_id in ids[first:stop] for c in range(copies)]
        out.append_many(item_ids, data, np.repeat(lengths[first:stop], copies))

    return write


def make_report(settings: AugmentSettings, in_store, src: RaggedStore, device_name: str, parts: list[dict]) -> dict:
    """What ``augment.json`` records: the settings that decide the bytes, counts, parts, device."""
    frames = int(src.offsets[-1]) if len(src.offsets) else 0
    decisive = {k: v for k, v in settings.to_dict().items() if k != "batch_items"}  # batching changes no byte
    return {
        "algorithm": ALGORITHM,
        **decisive,
        "mask_code": settings.params.fill,
        "device_name": device_name,
        "input": str(in_store),
        "input_clips": len(src),
        "input_frames": frames,
        "output_clips": len(src) * settings.copies,
        "output_frames": frames * settings.copies,
        "parts": parts,
    }


def run_pipeline(runner, frames, offsets: np.ndarray, batches: list[tuple[int, int]], write) -> None:
    """Read, augment and write ``batches`` with reading, compute and writing overlapped.

    ``frames`` is a :class:`~wakeprep.augment.runners.Frames` (or a ``[rows, bins]``
    array), ``offsets`` its n + 1 clip offsets. Batch ``k`` uses slot ``k % SLOTS`` of
    ``runner``; ``write(first, stop, out)`` receives each batch's output in order, on one
    writer thread, while later batches are read and computed. ``out`` is only valid
    during the call.
    """
    if not isinstance(frames, Frames):
        frames = Frames(np.asarray(frames))
    pending: list[concurrent.futures.Future | None] = [None] * SLOTS
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment-writer") as writer:
        try:
            prev = None
            for k, (a, b) in enumerate(batches):
                slot = k % SLOTS
                if pending[slot] is not None:
                    pending[slot].result()  # the slot's last output is written
                    pending[slot] = None
                r0 = int(offsets[a])
                runner.submit(slot, frames, r0, offsets[a : b + 1] - r0, a)
                if prev is not None:
                    pk, pa, pb = prev
                    pending[pk % SLOTS] = writer.submit(write, pa, pb, runner.result(pk % SLOTS))
                prev = (k, a, b)
            if prev is not None:
                pk, pa, pb = prev
                pending[pk % SLOTS] = writer.submit(write, pa, pb, runner.result(pk % SLOTS))
            for f in pending:
                if f is not None:
                    f.result()
        except BaseException:
            for f in pending:
                if f is not None:
                    f.cancel()
            raise
