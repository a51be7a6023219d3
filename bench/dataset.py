"""Benchmark of wakeprep.dataset: batch assembly on one core, and SpecAugment on the GPU.

One markdown table. Every row makes batches of 150 x 40 spectrograms from a features store in
the page cache (clips of 100 to 200 frames, so some are padded and some cropped), on one core:

- plain memory copies of the same bytes (the floor): ``np.copyto`` of each batch's float32
  bytes from a contiguous float32 array larger than the caches, and of its uint16 bytes
  from the store's memory map in order;
- ``WakeWordDataset.batches`` (two labelled sets, weights, seeded shuffling, random crops,
  clip ids), float32 and uint16 codes, and an evaluation pass;
- the loop a user would write instead, as microWakeWord's ``FeatureHandler`` does it: per
  clip, pick a set and a clip, ``fixed_length_spectrogram`` (np.pad / slice), store it;
- SpecAugment on the fly with NumPy (the CPU path).

With ``--gpu`` (CuPy and a GPU), rows for SpecAugment on the fly on batches already on the
device (the kernel of rule ``augment`` plus the float32 conversion), and a device copy of the
output bytes for reference. Without CuPy, those rows are skipped with the reason.

    python3 bench/dataset.py              # about a minute
    python3 bench/dataset.py --gpu        # plus the GPU rows (on a GPU machine)
    python3 bench/dataset.py --small      # CI smoke test
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wakeprep.augment import gpu_status  # noqa: E402
from wakeprep.dataset import FeatureSet, SpecAugment, WakeWordDataset  # noqa: E402
from wakeprep.features import FEATURE_SCALE  # noqa: E402
from wakeprep.store import RaggedStore, RaggedWriter  # noqa: E402

T, BINS = 150, 40


def make_store(path: Path, clips: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 201, size=clips)
    with RaggedWriter(path, np.uint16, (BINS,)) as w:
        for i, n in enumerate(lengths):
            w.append(f"{path.name}/clip{i:07d}", rng.integers(1, 1500, size=(int(n), BINS), dtype=np.uint16))
    with open(path / "data.bin", "rb") as f:  # into the page cache
        while f.read(8 << 20):
            pass
    return path


def timed(fn, repeats: int) -> float:
    """Best of ``repeats`` calls (seconds); the machine is shared."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def row(name, spectrograms, seconds, out_bytes, note=""):
    return {"name": name, "rate": spectrograms / seconds, "gbs": out_bytes / seconds / 1e9, "note": note}


def fixed_length(spec: np.ndarray, length: int, strategy: str) -> np.ndarray:
    """microWakeWord's fixed_length_spectrogram semantics: crop, or zero-pad at the start."""
    n = spec.shape[0]
    if n > length:
        off = {"random": np.random.randint(0, n - length + 1), "truncate_start": n - length}.get(strategy, 0)
        return spec[off : off + length]
    return np.pad(spec, ((length - n, 0), (0, 0)))


def bench_cpu(work: Path, clips: int, batch: int, batches: int, repeats: int) -> list[dict]:
    pos = make_store(work / "positive", clips // 4, 1)
    neg = make_store(work / "negative", clips, 2)
    sets = [
        FeatureSet("positive", [pos], label=1.0, truncation_strategy="truncate_start"),
        FeatureSet("negative", [neg], label=0.0, sampling_weight=3.0, truncation_strategy="random"),
    ]
    n = batch * batches
    f32_bytes, u16_bytes = n * T * BINS * 4, n * T * BINS * 2
    table = []

    # the floor: plain copies of the same bytes
    big = np.empty((max(4 * batch, 4096), T, BINS), dtype=np.float32)  # > the last-level cache
    big[:] = 1.0
    out = np.empty((batch, T, BINS), dtype=np.float32)

    def copy_f32():
        for k in range(batches):
            a = (k * batch) % (big.shape[0] - batch + 1)
            np.copyto(out, big[a : a + batch])

    dt = timed(copy_f32, repeats)
    copy_f32_rate = n / dt
    table.append(row("plain memory copy of the batch's float32 bytes (np.copyto)", n, dt, f32_bytes, "the floor for float32 batches"))
    del big
    data = RaggedStore(neg).data
    out16 = np.empty((batch * T, BINS), dtype=np.uint16)

    def copy_u16():
        for k in range(batches):
            a = (k * batch * T) % (data.shape[0] - batch * T + 1)
            np.copyto(out16, data[a : a + batch * T])

    dt = timed(copy_u16, repeats)
    copy_u16_rate = n / dt
    table.append(row("plain memory copy of the batch's uint16 bytes (from the store's memory map)", n, dt, u16_bytes, "the floor for uint16 batches"))

    # the same bytes from their places: B random windows of the store, gathered by NumPy
    flat = data.view(np.ndarray)
    s0, s1 = flat.strides
    windows = np.lib.stride_tricks.as_strided(flat, shape=(flat.shape[0] - T + 1, T, BINS), strides=(s0, s0, s1), writeable=False)
    starts = np.random.default_rng(5).integers(0, windows.shape[0], size=(batches, batch))
    out16 = out16.reshape(batch, T, BINS)

    def gather_u16():
        for k in range(batches):
            np.copyto(out16, windows[starts[k]])

    dt = timed(gather_u16, repeats)
    gather_rate = n / dt
    rows_note = "random windows: the floor for batches drawn at random"
    table.append(row("plain copy of the same bytes from their places in the store (uint16 windows, one NumPy gather)", n, dt, u16_bytes, rows_note))
    del windows, flat

    ds = WakeWordDataset(sets, T, batch_size=batch, batches_per_epoch=batches, seed=1)
    epoch = [0]

    def train(d=ds):
        epoch[0] += 1
        for _ in d.batches(epoch[0]):
            pass

    dt = timed(train, repeats)
    table.append(row("WakeWordDataset.batches, float32 (weights, shuffle, crops, padding, clip ids)", n, dt, f32_bytes,
                    f"{copy_f32_rate * dt / n:.2f}x the float32 copy's time"))
    codes = WakeWordDataset(sets, T, batch_size=batch, batches_per_epoch=batches, seed=1, dtype="uint16")
    dt = timed(lambda: train(codes), repeats)
    table.append(row("WakeWordDataset.batches, uint16 codes", n, dt, u16_bytes, f"{copy_u16_rate * dt / n:.2f}x the uint16 copy's time"))

    ev = WakeWordDataset(sets, T, batch_size=batch, seed=1)
    m = ev.items

    def evaluate():
        for _ in ev.eval_batches():
            pass

    dt = timed(evaluate, repeats)
    table.append(row("WakeWordDataset.eval_batches, float32 (every clip once)", m, dt, m * T * BINS * 4, f"{m} clips"))

    # what a user writes instead: microWakeWord's FeatureHandler loop, on the same stores
    stores = [RaggedStore(pos), RaggedStore(neg)]
    strategies = ["truncate_start", "random"]
    k = max(1, batches // 8)  # slow: fewer batches

    def loop():
        random.seed(0)
        np.random.seed(0)
        for _ in range(k):
            x = np.zeros((batch, T, BINS), dtype=np.float32)
            y = np.zeros(batch, dtype=np.float32)
            chosen = random.choices([0, 1], [1.0, 3.0], k=batch)
            for i, s in enumerate(chosen):
                spec = stores[s][random.randrange(len(stores[s]))]
                x[i] = fixed_length(spec, T, strategies[s]).astype(np.float32) * np.float32(1 / FEATURE_SCALE)
                y[i] = 1.0 - s

    dt = timed(loop, max(1, repeats // 2))
    table.append(row("per-clip loop as in microWakeWord's FeatureHandler (what a user would run)", k * batch, dt,
                    k * batch * T * BINS * 4, "baseline"))

    aug = SpecAugment(time_masks=2, time_mask_max=10, freq_masks=2, freq_mask_max=5, device="cpu")
    augd = WakeWordDataset(sets, T, batch_size=batch, batches_per_epoch=k, seed=1, augment=aug)
    dt = timed(lambda: train(augd), max(1, repeats // 2))
    table.append(row("WakeWordDataset.batches + SpecAugment on the fly, CPU (NumPy)", k * batch, dt, k * batch * T * BINS * 4, "2 time + 2 freq masks"))
    return table


def bench_gpu(batches: list[int], reps: int) -> list[dict]:
    import cupy

    rows = []
    aug = SpecAugment(time_masks=2, time_mask_max=10, freq_masks=2, freq_mask_max=5, device="cuda")
    rng = np.random.default_rng(0)
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()

    def device_time(fn, r):
        fn()
        cupy.cuda.Device().synchronize()
        start.record()
        for i in range(r):
            fn(i)
        stop.record()
        stop.synchronize()
        return cupy.cuda.get_elapsed_time(start, stop) / 1e3

    for B in batches:
        codes = cupy.asarray(rng.integers(1, 1500, size=(B, T, BINS), dtype=np.uint16))
        r = max(reps, 200_000 // B)
        dt = device_time(lambda i=0: aug.apply(codes, epoch=1, first=i * B), r)
        rows.append(row(f"SpecAugment on the fly on the GPU + float32, batch {B} on the device", r * B, dt, r * B * T * BINS * 4,
                        f"{r} batches, kernel + conversion, masks keyed per position"))
        del codes
    B = max(batches)
    src = cupy.empty((B, T, BINS), dtype=cupy.float32)
    dst = cupy.empty_like(src)
    r = max(reps, 200_000 // B)
    dt = device_time(lambda i=0: cupy.copyto(dst, src), r)
    rows.append(row(f"device-to-device copy of the float32 batch (batch {B})", r * B, dt, r * B * T * BINS * 4, "copy bandwidth (read + write is twice this)"))
    return rows


def print_table(rows, title):
    print(f"\n{title}\n")
    print("| what | spectrograms/s | GB/s out | note |")
    print("| --- | ---: | ---: | --- |")
    for r in rows:
        print(f"| {r['name']} | {r['rate']:,.0f} | {r['gbs']:.2f} | {r['note']} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="a few seconds (CI smoke test)")
    ap.add_argument("--gpu", action="store_true", help="add the GPU rows (needs CuPy and a GPU; skipped otherwise)")
    ap.add_argument("--clips", type=int, default=0, help="clips in the negative store (default 40,000; --small 2,000)")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    clips = args.clips or (2_000 if args.small else 40_000)
    batches = 8 if args.small else 200
    repeats = 2 if args.small else 5
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp:
        rows = bench_cpu(Path(tmp), clips, args.batch, batches, repeats)
    print_table(rows, f"Batch assembly, one core, {T} x {BINS} spectrograms, batch {args.batch}, best of {repeats} "
                f"({clips + clips // 4} clips of 100-200 frames in the page cache)")
    train = next(r for r in rows if r["name"].startswith("WakeWordDataset.batches, float32"))
    codes = next(r for r in rows if r["name"].startswith("WakeWordDataset.batches, uint16"))
    copy32 = next(r for r in rows if "float32 bytes" in r["name"])
    copy16 = next(r for r in rows if "uint16 bytes" in r["name"])
    gather = next(r for r in rows if r["name"].startswith("plain copy of the same bytes"))
    loop = next(r for r in rows if r["name"].startswith("per-clip loop"))
    print(f"\nfloat32 batches: {train['rate']:,.0f} spectrograms/s (target >= 200,000: {'met' if train['rate'] >= 2e5 else 'NOT met'}), "
          f"{train['rate'] / loop['rate']:.1f}x the per-clip loop")
    print(f"time per batch vs a plain copy of the same bytes: float32 {copy32['rate'] / train['rate']:.2f}x the float32 copy; "
          f"uint16 {copy16['rate'] / codes['rate']:.2f}x the sequential uint16 copy, "
          f"{gather['rate'] / codes['rate']:.2f}x the gather of the same windows (target: within 2x)")
    if args.gpu:
        ok_gpu, why = gpu_status()
        if not ok_gpu:
            print(f"\nGPU rows skipped: {why}")
        else:
            g = bench_gpu([256, 4096] if args.small else [256, 1024, 4096, 16384], 5 if args.small else 50)
            print_table(g, f"SpecAugment on the fly on {why}, batches already on the device")
            best = max(r["rate"] for r in g if r["name"].startswith("SpecAugment"))
            print(f"\ntarget: >= 5,000,000 spectrograms/s on one H100: best {best:,.0f}/s -> {'met' if best >= 5e6 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
