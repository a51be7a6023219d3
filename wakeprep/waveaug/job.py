"""Store to store: fixed-length windows -> augmented copies -> microWakeWord features.

One job (:func:`augment_audio_part`) takes a range of windows of one split and label,
makes ``repetitions`` augmented copies of each, computes their features and writes::

    {out}/features/        ragged store, uint16 feature codes [frames, 40]; item
                           "{window id}#aug{copy}", window by window, copies in order
    {out}/params.tsv       every copy's coins, drawn parameters and measured levels
    {out}/augment_audio.json  what was done (settings, sets, device, counts, timing)

:func:`plan_parts` cuts a window store into such ranges (the rule's checkpoint), after
checking the noise and RIR sets, so a bad set stops the run before any GPU work.

On the GPU (:class:`CudaIO`, :func:`run_batches`) a reader thread, the main thread and a
writer thread work on three batches at once: windows read into pinned memory, the noise
and RIR sets in device memory (:class:`DeviceBank`), features computed on the device from
the augmented int16, only the codes and measured levels copied back, asynchronously. The
CPU path runs the same steps one after another, with the same bytes as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..features import FEATURE_SCALE, N_BINS, features_batch
from ..fileio import atomic_open
from ..store import RaggedStore, RaggedWriter, StoreError, atomic_dir
from .banks import ClipSet, DeviceBank, open_sets
from .chain import MEASURED, Backend, run_chain, to_float, to_int16
from .draws import clip_hash, draw_params, param_columns, param_table
from .settings import WaveAugSettings

log = logging.getLogger("wakeprep")

ALGORITHM = "wakeprep-waveaug-v1"
#: Windows per batch when ``batch_items`` is 0.
DEFAULT_BATCH = {"cpu": 256, "cuda": 512}


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


def draw_batch(window_ids, copies: int, settings: WaveAugSettings, n_samples: int, noise: ClipSet, rirs: ClipSet):
    """Parameters of ``copies`` copies of each window: ``(ChainParams, row window index, row copy)``;
    row ``i * copies + c`` is copy ``c`` of window ``i``."""
    n = len(window_ids)
    win = np.repeat(np.arange(n), copies)
    cop = np.tile(np.arange(copies), n)
    return draw_params(settings, clip_hash(window_ids)[win], cop, n_samples, noise.lengths, len(rirs)), win, cop


def chain_batch(be: Backend, audio, p, win: np.ndarray, noise, rirs):
    """The chain on the rows of ``audio`` (int16 ``[n, N]``, host or device) picked by ``win``:
    float32 ``[rows, N]`` and the ``[4, rows]`` measured values, both on the device. ``noise``
    and ``rirs`` are :class:`ClipSet` (host gathering) or :class:`DeviceBank`."""
    N = audio.shape[1]
    nrows = np.flatnonzero(p.apply["AddBackgroundNoise"])
    segs, seg_rms = noise.segments(p.noise_index[nrows], p.noise_offset[nrows], N)
    rrows = np.flatnonzero(p.apply["RIR"])
    resp = rirs.responses(p.rir_index[rrows]) if rrows.size else np.zeros((0, 1), np.float32)
    x = to_float(be, audio)[be.asarray(win)]
    return run_chain(be, x, p, noise=be.asarray(segs), noise_rms=be.asarray(seg_rms), rirs=be.asarray(resp))


def augment_batch(be: Backend, audio: np.ndarray, window_ids, copies: int, settings: WaveAugSettings,
                  noise: ClipSet, rirs: ClipSet):
    """Augment ``copies`` copies of each window of ``audio`` (``[n, N]`` int16).

    Returns ``(int16 [n * copies, N] on the host, ChainParams, measured, row window index, row copy)``;
    row ``i * copies + c`` is copy ``c`` of window ``i``. Off the CPU path (``be.xp`` is not
    NumPy) the noise and RIR sets are gathered as the GPU job does (:class:`DeviceBank`).
    """
    p, win, cop = draw_batch(window_ids, copies, settings, audio.shape[1], noise, rirs)
    if be.xp is not np:
        noise, rirs = DeviceBank(noise, be), DeviceBank(rirs, be)
    x, m = chain_batch(be, audio, p, win, noise, rirs)
    m = be.to_host(m)
    return be.to_host(to_int16(be, x)), p, {k: m[i] for i, k in enumerate(MEASURED)}, win, cop


#: Threads that read a batch of windows side by side on the GPU path.
READ_THREADS = 4
#: Bytes per ``pread`` when the GPU path reads a batch of windows with several threads.
READ_CHUNK = 16 << 20


def read_rows_into(store: RaggedStore, a: int, b: int, out: np.ndarray, pool=None, then: tuple | None = None) -> np.ndarray:
    """:func:`read_rows` into ``out`` (a flat buffer, pinned host memory on the GPU path).

    With ``pool`` (an executor) the batch is read in :data:`READ_CHUNK` pieces side by side
    (several requests in flight: faster from an SSD, and from the page cache); ``then``, a
    later item range, is announced to the kernel (``POSIX_FADV_WILLNEED``) so its readahead
    starts while this batch is processed.
    """
    view = memoryview(out).cast("B")
    row = store.dtype.itemsize * int(np.prod(store.row_shape, dtype=np.int64))
    start = int(store.offsets[a]) * row
    fd = os.open(store.path / "data.bin", os.O_RDONLY)
    try:
        if then is not None and hasattr(os, "posix_fadvise"):
            nxt = int(store.offsets[then[0]]) * row
            os.posix_fadvise(fd, nxt, int(store.offsets[then[1]]) * row - nxt, os.POSIX_FADV_WILLNEED)

        def piece(lo: int) -> None:
            done, hi = lo, min(lo + READ_CHUNK, len(view))
            while done < hi:
                got = os.preadv(fd, [view[done:hi]], start + done)
                if not got:
                    raise StoreError(f"{store.path}: data.bin ends early")
                done += got

        starts = range(0, len(view), READ_CHUNK)
        for _ in (pool.map(piece, starts) if pool is not None else map(piece, starts)):
            pass
    finally:
        os.close(fd)
    return out


class HostIO:
    """Where a part job's batches live on the CPU path: host arrays throughout."""

    sync_writes = False

    def buffer(self, n: int, dtype) -> np.ndarray:
        return np.empty(n, dtype)

    def upload(self, host):
        return host

    def features(self, audio_i16, offsets):
        return features_batch(audio_i16, offsets, "cpu")

    def download(self, codes, measured):
        return codes, measured, None

    def wait(self, token) -> None:
        pass


class CudaIO(HostIO):
    """The GPU path: windows read into pinned host memory and copied without waiting, on one
    stream (:attr:`stream`, current for the whole job); features computed on the device from
    the augmented int16 (no copy to the host in between); codes and measured values copied
    back asynchronously into pinned memory, which the writer thread waits for (an event)."""

    sync_writes = True

    def __init__(self):
        import cupy
        import cupyx

        self.cp, self.cpx = cupy, cupyx
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def buffer(self, n: int, dtype) -> np.ndarray:
        return self.cpx.empty_pinned((n,), dtype)

    def _copy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        if nbytes:
            self.cp.cuda.runtime.memcpyAsync(dst, src, nbytes, kind, self.stream.ptr)

    def upload(self, host):
        d = self.cp.empty(host.shape, host.dtype)
        self._copy(d.data.ptr, host.ctypes.data, host.nbytes, self.cp.cuda.runtime.memcpyHostToDevice)
        return d

    def features(self, audio_i16, offsets):
        from ..frontend import gpu
        from ..frontend.tables import frame_offsets

        fo = frame_offsets(offsets)
        return gpu.features_batch(audio_i16, offsets, fo), fo

    def download(self, codes, measured):
        out = []
        for d in (self.cp.ascontiguousarray(codes), self.cp.ascontiguousarray(measured)):
            h = self.buffer(d.size, d.dtype).reshape(d.shape)
            self._copy(h.ctypes.data, d.data.ptr, d.nbytes, self.cp.cuda.runtime.memcpyDeviceToHost)
            out.append(h)
        return out[0], out[1], self.stream.record()

    def wait(self, token) -> None:
        token.synchronize()


class PartOutput:
    """The files of one part being written (see module docs): the feature store and the
    parameter table, batch by batch, in order."""

    def __init__(self, tmp: Path, attrs: dict, noise_ids, rir_ids, sync: bool = False):
        self.noise_ids, self.rir_ids, self.sync = noise_ids, rir_ids, sync
        self.writer = RaggedWriter(tmp / "features", np.uint16, (N_BINS,), attrs=attrs)
        self.table = open(tmp / "params.tsv", "w", encoding="utf-8", newline="\n")
        self.table.write("\t".join(param_columns()) + "\n")  # streamed batch by batch: memory bounded by the batch

    def write(self, io: HostIO, ids, p, win, cop, codes, frame_offsets, measured, token, *keep) -> int:
        """Append one batch (once ``io`` says its copies from the device are done); with
        ``sync``, push it to the disk now, so the disk works while the device does."""
        io.wait(token)
        item_ids = [f"{ids[i]}#aug{c}" for i, c in zip(win.tolist(), cop.tolist())]
        self.writer.append_many(item_ids, codes[: int(frame_offsets[-1])], np.diff(frame_offsets))
        m = {k: measured[i] for i, k in enumerate(MEASURED)}
        self.table.write(param_table(p, item_ids, [ids[i] for i in win.tolist()], cop, self.noise_ids, self.rir_ids, m))
        if self.sync:
            self.writer.sync()
        return len(item_ids)

    def close(self) -> None:
        self.table.close()
        self.writer.close()

    def abort(self) -> None:
        self.table.close()
        self.writer.abort()


def run_batches(io: HostIO, be: Backend, store: RaggedStore, ranges, job: dict, out: PartOutput, overlap: bool) -> int:
    """Augment and write every ``(first, stop)`` window range of ``ranges``; returns the copies
    written. ``job`` holds ``n_samples``, ``repetitions``, ``settings``, the sets ``noise`` and
    ``rirs`` (for the draws) and ``banks`` (for the gathering).

    With ``overlap``, three things run at once: a reader thread reads batch k + 2 and draws
    its parameters, this thread queues batch k + 1 on the device, and a writer thread writes
    batch k; at most two batches wait at each hand-over, so memory is bounded by the batch.
    The bytes are the same either way.
    """
    n = job["n_samples"]

    following = dict(zip(ranges, ranges[1:]))

    def prepare(a: int, b: int, pool=None):
        ids = store.ids[a:b]
        buf = read_rows_into(store, a, b, io.buffer((b - a) * n, np.int16), pool, following.get((a, b)))
        return (ids, buf, *draw_batch(ids, job["repetitions"], job["settings"], n, job["noise"], job["rirs"]))

    def process(ids, buf, p, win, cop):
        x, m = chain_batch(be, io.upload(buf).reshape(len(ids), n), p, win, *job["banks"])
        pcm = to_int16(be, x)
        codes, fo = io.features(pcm.reshape(-1), np.arange(pcm.shape[0] + 1, dtype=np.int64) * n)
        codes, m, token = io.download(codes, m)
        return (ids, p, win, cop, codes, fo, m, token, buf)

    if not overlap:
        return sum(out.write(io, *process(*prepare(a, b))) for a, b in ranges)
    items, ahead, pending, todo = 0, deque(), deque(), deque(ranges)
    with ThreadPoolExecutor(1, thread_name_prefix="augment-audio-reader") as reader, \
            ThreadPoolExecutor(READ_THREADS, thread_name_prefix="augment-audio-pread") as reads, \
            ThreadPoolExecutor(1, thread_name_prefix="augment-audio-writer") as writer:
        while todo or ahead:
            while todo and len(ahead) < 2:
                ahead.append(reader.submit(prepare, *todo.popleft(), reads))
            pending.append(writer.submit(out.write, io, *process(*ahead.popleft().result())))
            while len(pending) > 2:
                items += pending.popleft().result()
        while pending:
            items += pending.popleft().result()
    return items


def _open_inputs(windows, first: int, stop: int, settings: WaveAugSettings, split: str, sets: dict, device: str):
    """The window store, its window length, the noise and RIR sets (checked) and the device's name."""
    from ..augment import require_gpu

    store, n_samples = open_windows(windows)
    if not 0 <= first <= stop <= len(store):
        raise ValueError(f"augment_audio: windows {first}:{stop} are outside {store.path} ({len(store)} windows)")
    noise, rirs = open_sets(split, **sets)
    if stop > first:
        check_sets(settings, noise, rirs, n_samples)  # a bad set stops the job before any GPU work
    device_name = require_gpu() if device == "cuda" else "cpu"
    return store, n_samples, (noise if noise.corpora else ClipSet("noise", split)), \
        (rirs if rirs.corpora else ClipSet("RIR", split)), device_name


def _augment_range(store, n_samples, first, stop, batch_items, repetitions, settings, noise, rirs, device, overlap,
                   out: PartOutput, io: HostIO, be: Backend) -> int:
    ranges = [(a, min(a + batch_items, stop)) for a in range(first, stop, batch_items)]
    with (io.stream if device == "cuda" else contextlib.nullcontext()):
        banks = (DeviceBank(noise, be), DeviceBank(rirs, be)) if device == "cuda" else (noise, rirs)
        job = {"n_samples": n_samples, "repetitions": repetitions, "settings": settings, "noise": noise, "rirs": rirs,
               "banks": banks}
        return run_batches(io, be, store, ranges, job, out, (device == "cuda") if overlap is None else overlap)


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

    ``overlap`` reads, augments and writes on three threads (:func:`run_batches`); default:
    on the GPU only (a CPU job has one core). The bytes are the same either way.

    ``device='cuda'`` raises :class:`wakeprep.augment.NoGpuError` when no GPU is usable
    (after the cheap input checks, before any audio is processed); it never falls back
    to the CPU.
    """
    if device not in ("cuda", "cpu"):
        raise ValueError(f"augment_audio.device must be 'cuda' or 'cpu', got {device!r}")
    if repetitions < 1 or batch_items < 0:
        raise ValueError(f"augment_audio: repetitions must be >= 1 and batch_items >= 0, got {repetitions}, {batch_items}")
    sets = dict(noise_stores=noise_stores, rir_stores=rir_stores, noise_corpora=noise_corpora, rir_corpora=rir_corpora)
    store, n_samples, noise, rirs, device_name = _open_inputs(windows, first, stop, settings, split, sets, device)
    be = Backend(device)
    io = CudaIO() if device == "cuda" else HostIO()
    out_dir = Path(out_dir)
    t0 = time.monotonic()
    attrs = {"made_by": "augment_audio", "algorithm": ALGORITHM, "split": split, "repetitions": repetitions,
             "settings": settings.to_dict(), "frontend": "pymicro-features", "scale": FEATURE_SCALE}
    with atomic_dir(out_dir) as tmp:
        out = PartOutput(tmp, attrs, noise.ids, rirs.ids, sync=io.sync_writes)
        try:
            items = _augment_range(store, n_samples, first, stop, batch_items or DEFAULT_BATCH[device], repetitions,
                                   settings, noise, rirs, device, overlap, out, io, be)
        except BaseException:
            out.abort()
            raise
        out.close()
        report = {
            "algorithm": ALGORITHM, "windows": str(windows), "first": first, "stop": stop, "split": split,
            "repetitions": repetitions, "window_samples": n_samples, "items": items,
            "audio_seconds": items * n_samples / 16000, "device": device, "device_name": device_name,
            "backend": be.name, "seconds": round(time.monotonic() - t0, 3), "settings": settings.to_dict(),
            "noise": {"corpora": noise.corpora, "clips": len(noise)}, "rir": {"corpora": rirs.corpora, "clips": len(rirs)},
        }
        with open(tmp / "augment_audio.json", "w", encoding="utf-8") as f:
            json.dump({k: v for k, v in report.items() if k != "seconds"}, f, indent=1, sort_keys=True)
            f.write("\n")
    log.info("augment_audio %s %d:%d: %d copies (%.0f s of audio) on %s in %.2f s (%.0fx real time)",
             split, first, stop, items, report["audio_seconds"], device_name, report["seconds"],
             report["audio_seconds"] / max(report["seconds"], 1e-9))
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
    from ..stats import summarise_augment_audio
    from ..summary import augment_audio_lines

    text = "\n".join(augment_audio_lines(summarise_augment_audio(indexes))) + "\n"
    with atomic_open(out_txt) as f:
        f.write(text)
    return text
