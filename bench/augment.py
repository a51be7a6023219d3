"""Benchmark of rule augment's SpecAugment: one markdown table.

Rows: a one-clip-at-a-time CuPy loop (Python loop, host round trip per clip), the
fused kernel on data already on the device, a device-to-device copy of the kernel's
output size (the device's copy bandwidth), host to GPU to host through pinned buffers
and three streams (augment_store's pipeline, no disk), the whole step disk to disk
(``augment_store`` from a store on disk to a folder of stores, fsync included), and
the NumPy CPU path. Spectrograms are 150 x 40 uint16 codes (DESIGN.md); a rate counts
augmented spectrograms written, GB/s counts bytes read plus bytes written.

    python3 bench/augment.py                      # on a GPU machine (about a minute)
    python3 bench/augment.py --cpu-only --small   # CI smoke test, no GPU needed
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wakeprep.augment import (  # noqa: E402
    CPU_BATCH_BYTES,
    AugmentParams,
    AugmentSettings,
    CpuRunner,
    GpuRunner,
    augment_batch_cpu,
    augment_store,
    chunk_table,
    draw_masks,
    gpu_batch_rows,
    gpu_status,
    launch_kernel,
    mask_code,
    plan_batches,
    run_pipeline,
)
from wakeprep.store import RaggedWriter  # noqa: E402

BINS = 40


def make_data(clips: int, frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 2000, size=(clips * frames, BINS), dtype=np.uint16)
    offsets = np.arange(clips + 1, dtype=np.int64) * frames
    return data, offsets


def write_store(path: Path, data: np.ndarray, offsets: np.ndarray) -> Path:
    with RaggedWriter(path, np.uint16, (BINS,)) as w:
        for i in range(len(offsets) - 1):
            w.append(f"bench/clip{i:07d}", data[offsets[i] : offsets[i + 1]])
    return path


def row(name, spectrograms, seconds, nbytes, note=""):
    return {"name": name, "rate": spectrograms / seconds, "gbs": nbytes / seconds / 1e9, "seconds": seconds, "note": note}


def bench_loop(cupy, data, offsets, p: AugmentParams, clips: int) -> dict:
    """One clip at a time: upload, mask with slicing, download; a Python loop per clip."""
    lengths = np.diff(offsets)[:clips]
    m = draw_masks(np.arange(clips), lengths, p)
    host = [np.asarray(data[offsets[i] : offsets[i + 1]]) for i in range(clips)]
    fill = p.fill

    def one(i):
        d = cupy.asarray(host[i])
        for c in range(p.copies):
            y = d.copy()
            for j in range(p.time_masks):
                s = int(m.time_start[i, c, j])
                y[s : s + int(m.time_size[i, c, j])] = fill
            for j in range(p.freq_masks):
                s = int(m.freq_start[i, c, j])
                y[:, s : s + int(m.freq_size[i, c, j])] = fill
            y.get()

    for i in range(min(20, clips)):  # warm-up: kernel compilation, allocator
        one(i)
    t = time.perf_counter()
    for i in range(clips):
        one(i)
    dt = time.perf_counter() - t
    nbytes = int(lengths.sum()) * BINS * 2 * (1 + p.copies)
    return row("one clip at a time, CuPy loop (host round trip per clip)", clips * p.copies, dt, nbytes, f"{clips} clips")


def bench_kernel(cupy, data, offsets, p: AugmentParams, reps: int) -> tuple[dict, dict]:
    """The fused kernel on device-resident data, and a device copy of its output size."""
    src = cupy.asarray(data)
    dst = cupy.empty((src.shape[0] * p.copies, BINS), dtype=np.uint16)
    table = chunk_table(offsets)
    d_off, d_tab = cupy.asarray(offsets), cupy.asarray(table)
    n = len(offsets) - 1
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()

    def timed(fn):
        fn()
        cupy.cuda.Device().synchronize()
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        return cupy.cuda.get_elapsed_time(start, stop) / 1e3 / reps

    t_kernel = timed(lambda: launch_kernel(src, dst, d_off, d_tab, len(table), p, 0, BINS))
    out_bytes = dst.nbytes
    copy_src = cupy.empty_like(dst)
    t_copy = timed(lambda: cupy.copyto(dst, copy_src))
    del src, dst, copy_src, d_off, d_tab
    cupy.get_default_memory_pool().free_all_blocks()
    k = row("fused kernel, data on device", n * p.copies, t_kernel, data.nbytes + out_bytes, f"{n} clips, {reps} reps")
    c = row("device-to-device copy (cupy.copyto, output size)", n * p.copies, t_copy, 2 * out_bytes, "copy bandwidth")
    return k, c


def bench_pcie(cupy, in_bytes: int, out_bytes: int, spectrograms: int) -> dict:
    """Plain pinned memcpy: the input host to device, the output device to host."""
    import cupyx

    h_in, h_out = cupyx.empty_pinned(in_bytes, np.uint8), cupyx.empty_pinned(out_bytes, np.uint8)
    d_in, d_out = cupy.empty(in_bytes, np.uint8), cupy.empty(out_bytes, np.uint8)
    times = []
    for _ in range(2):  # the second is timed
        t = time.perf_counter()
        d_in.set(h_in)
        cupy.cuda.Device().synchronize()
        t1 = time.perf_counter()
        d_out.get(out=h_out)
        cupy.cuda.Device().synchronize()
        times = [t1 - t, time.perf_counter() - t1]
    del h_in, h_out, d_in, d_out
    cupy.get_default_memory_pool().free_all_blocks()
    note = f"H2D {in_bytes / times[0] / 1e9:.1f} GB/s, D2H {out_bytes / times[1] / 1e9:.1f} GB/s, one after the other"
    return row("PCIe bound: pinned memcpy, input up and output down", spectrograms, sum(times), in_bytes + out_bytes, note)


def bench_disk(work: Path, nbytes: int, spectrograms: int) -> dict:
    """Write ``nbytes`` to one file in 8 MiB writes, then fsync: the disk's bound."""
    buf = np.random.default_rng(1).integers(0, 255, size=8 << 20, dtype=np.uint8)
    path = work / "disk-probe.bin"
    t = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        left = nbytes
        while left > 0:
            left -= f.write(memoryview(buf)[: min(left, buf.size)])
        os.fsync(f.fileno())
    dt = time.perf_counter() - t
    path.unlink()
    return row("disk bound: write + fsync of the output bytes, one file", spectrograms, dt, nbytes, "no Python per item")


def bench_writer(work: Path, out: np.ndarray, lengths: np.ndarray, copies: int, where: str = "disk") -> dict:
    """RaggedWriter alone: the augmented items from memory to a store, one append each."""
    t = time.perf_counter()
    with RaggedWriter(work / "writer-probe", np.uint16, (BINS,)) as w:
        pos = 0
        for i, n in enumerate(np.repeat(lengths, copies).tolist()):
            w.append(f"bench/clip{i // copies:07d}#aug{i % copies}", out[pos : pos + n])
            pos += n
    dt = time.perf_counter() - t
    shutil.rmtree(work / "writer-probe")
    return row(f"RaggedWriter alone: augmented items from memory to {where}", len(lengths) * copies, dt, out.nbytes,
               f"one append per item ({dt / (len(lengths) * copies) * 1e6:.1f} us each), fsync at close")


def bench_pipeline(data, offsets, p: AugmentParams, runner, batches, name, note) -> dict:
    """augment_store's pipeline from host memory to host memory, output discarded."""
    run_pipeline(runner, data, offsets, batches[:2], lambda a, b, out: None)  # warm-up
    t = time.perf_counter()
    run_pipeline(runner, data, offsets, batches, lambda a, b, out: None)
    dt = time.perf_counter() - t
    n = len(offsets) - 1
    return row(name, n * p.copies, dt, data.nbytes * (1 + p.copies), note)


def bench_rule(store: Path, out: Path, p: AugmentParams, device: str, n: int, nbytes: int) -> dict:
    settings = AugmentSettings(copies=p.copies, time_masks=p.time_masks, time_mask_max=p.time_mask_max,
                               freq_masks=p.freq_masks, freq_mask_max=p.freq_mask_max, mask_value=0.0, seed=p.seed,
                               device=device)
    t = time.perf_counter()
    augment_store(store, out, settings)
    dt = time.perf_counter() - t
    shutil.rmtree(out)
    label = "GPU" if device == "cuda" else "CPU"
    return row(f"whole step disk to disk, {label} (augment_store)", n * p.copies, dt, nbytes * (1 + p.copies),
               "input in page cache, output fsynced")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=65536, help="spectrograms in the data set (default 65536)")
    ap.add_argument("--frames", type=int, default=150, help="frames per spectrogram (default 150)")
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--loop-clips", type=int, default=2000, help="clips for the one-clip loop")
    ap.add_argument("--cpu-clips", type=int, default=16384, help="clips for the NumPy rows")
    ap.add_argument("--reps", type=int, default=10, help="timed kernel launches")
    ap.add_argument("--small", action="store_true", help="a quick run: 2048 clips, 50 loop clips")
    ap.add_argument("--cpu-only", action="store_true", help="NumPy rows only (no GPU needed)")
    ap.add_argument("--workdir", default=None, help="folder for the on-disk stores (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.small:
        args.clips, args.loop_clips, args.cpu_clips, args.reps = 2048, 50, 2048, 3

    p = AugmentParams(copies=args.copies, time_masks=2, time_mask_max=10, freq_masks=2, freq_mask_max=5,
                      fill=mask_code(0.0), seed=1234)
    ok, device = gpu_status()
    if not args.cpu_only and not ok:
        print(f"bench/augment.py: no usable GPU ({device}); run with --cpu-only for the NumPy rows", file=sys.stderr)
        return 2
    data, offsets = make_data(args.clips, args.frames)
    nbytes = data.nbytes
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-augment-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        if not args.cpu_only:
            import cupy

            loop = bench_loop(cupy, data, offsets, p, args.loop_clips)
            rows.append(loop)
            k, c = bench_kernel(cupy, data, offsets, p, args.reps)
            k["note"] += f"; {k['gbs'] / c['gbs']:.0%} of copy bandwidth (target >= 50%)"
            rows += [k, c]
            batches = plan_batches(offsets, 0, gpu_batch_rows(BINS, p.copies))
            runner = GpuRunner.for_batches(p, BINS, offsets, batches)
            pinned_note = f"{len(batches)} batches of <= {batches[0][1] - batches[0][0]} clips, pinned, 3 streams"
            rows.append(bench_pipeline(data, offsets, p, runner, batches, "host -> GPU -> host, pipelined (no disk)", pinned_note))
            runner.close()
            del runner
            rows.append(bench_pcie(cupy, nbytes, nbytes * p.copies, args.clips * p.copies))
        n_cpu = min(args.cpu_clips, args.clips)
        disk = bench_disk(work, nbytes * p.copies, args.clips * p.copies)
        rows.append(disk)
        out = augment_batch_cpu(data[: offsets[n_cpu]], offsets[: n_cpu + 1], p)
        rows.append(bench_writer(work, out, np.diff(offsets)[:n_cpu], p.copies))
        if Path("/dev/shm").is_dir():  # the same with no disk behind it: Python and memcpy alone
            shm = Path(tempfile.mkdtemp(prefix="bench-augment-", dir="/dev/shm"))
            try:
                rows.append(bench_writer(shm, out, np.diff(offsets)[:n_cpu], p.copies, "tmpfs (/dev/shm)"))
            finally:
                shutil.rmtree(shm, ignore_errors=True)
        del out
        if not args.cpu_only:
            store = write_store(work / "in", data, offsets)
            rule = bench_rule(store, work / "out-gpu", p, "cuda", args.clips, nbytes)
            rule["note"] += (f"; {rule['rate'] / loop['rate']:,.0f}x the loop (target >= 1000x); "
                             f"{rule['seconds'] / disk['seconds']:.1f}x the disk-bound time")
            rows.append(rule)
        # NumPy: a smaller slice (it is slow), in memory and disk to disk
        cdata, coff = data[: offsets[n_cpu]], offsets[: n_cpu + 1]
        cbatches = plan_batches(coff, 0, CPU_BATCH_BYTES // (BINS * 2))
        rows.append(bench_pipeline(cdata, coff, p, CpuRunner(p, BINS), cbatches, "NumPy CPU path, in memory", f"{n_cpu} clips, one core"))
        cstore = write_store(work / "in-cpu", cdata, coff)
        rows.append(bench_rule(cstore, work / "out-cpu", p, "cpu", n_cpu, cdata.nbytes))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    loop_rate = rows[0]["rate"] if not args.cpu_only else None
    print(f"SpecAugment, {args.frames} x {BINS} uint16 spectrograms, {p.copies} copies each, "
          f"{p.time_masks} time masks <= {p.time_mask_max}, {p.freq_masks} freq masks <= {p.freq_mask_max}; "
          f"device: {device if ok else 'none'}; {args.clips} clips ({nbytes / 1e9:.2f} GB in)")
    print()
    print("| path | augmented spectrograms/s | GB/s (read + write) | x one-clip loop | time (s) | note |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        speedup = f"{r['rate'] / loop_rate:,.0f}" if loop_rate else "-"
        print(f"| {r['name']} | {r['rate']:,.0f} | {r['gbs']:,.1f} | {speedup} | {r['seconds']:.4f} | {r['note']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
