"""The features step alone: wakeprep's frontends against pymicro-features, side by side.

Usage::

    python3 bench/features.py                 # 10 min of audio; GPU rows when CuPy sees a GPU
    python3 bench/features.py --small         # a smoke run (CI)
    python3 bench/features.py --gpu-seconds 40000   # audio for the GPU rows (tiled on the device)

Rows, all on one core / one GPU, every code checked equal to the reference's; CPU rows are
CPU seconds of this one-threaded process (robust on a shared machine), GPU rows wall time:

- reference: pymicro-features through ``MicroFrontend`` fed 10 ms at a time, the loop
  microWakeWord's ``generate_features_for_clip`` runs (what a user runs instead);
- the same C call (``micro_features_cpp.process_samples``) in a bare loop, no wrapper;
- wakeprep cpu, C kernel and numba kernel (``wakeprep.frontend.cpu``; C is the default
  when it is built, numba the fallback): each over the whole batch, and each one's start-up,
  the CPU time of the first ``features_batch`` call in a new process (median of three; the C
  library's load, or numba's import and cache load), shown in the row's name;
- wakeprep cuda, kernels: int16 already in device memory to uint16 codes in device memory
  (CUDA events, the best of several runs);
- wakeprep cuda, host to host: NumPy int16 in, NumPy uint16 out, copies included;
- CUDA start-up of a fresh process (import CuPy, compile or load the kernels, first launch);
- with ``--store-seconds N``: the rule's library call (``features_shard``) store to store on
  N seconds of audio, cpu and cuda, beside the time to read the audio store and write and
  fsync as many bytes as the features take (what the disk alone allows).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soxr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wakeprep.features import features_batch, quantise, reference_features  # noqa: E402
from wakeprep.frontend.tables import frame_offsets  # noqa: E402


def corpus(seconds: float, seed: int = 0) -> list[np.ndarray]:
    """Clips of 1 to 8 s, 16 kHz int16: espeak-ng speech (the demo's phrases and voices)
    mixed with noise, or noise and tones alone when espeak-ng is missing."""
    from wakeprep.demo import NEGATIVE_PHRASES, VOICES, espeak, noise

    rng = np.random.default_rng(seed)
    pool = []
    try:
        for v in VOICES[:5]:
            for p in NEGATIVE_PHRASES[:4]:
                x, r = espeak(p, v)
                pool.append(soxr.resample(x, r, 16000).astype(np.float32))
    except Exception as e:  # no espeak-ng: noise and tones only
        print(f"(no speech: {e})", file=sys.stderr)
    for k in ("white", "pink", "brown"):
        pool.append(noise(k, 4.0, 16000, rng))
    t = np.arange(16000 * 4) / 16000
    pool.append(0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32))
    clips, total = [], 0
    while total < seconds * 16000:
        n = int(rng.uniform(1, 8) * 16000)
        parts, have = [], 0
        while have < n:
            c = pool[int(rng.integers(len(pool)))]
            parts.append(c)
            have += len(c)
        x = np.concatenate(parts)[:n] * float(rng.uniform(0.1, 1.0)) + rng.standard_normal(n) * 1e-3
        clips.append((np.clip(x, -1, 1) * 32767).astype(np.int16))
        total += n
    return clips


def pack(clips):
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    return np.concatenate(clips), offsets


def reference_loop(clips):
    return [quantise(reference_features(c)) for c in clips]


def bare_loop(clips):
    from micro_features_cpp import create_frontend, process_samples

    out = []
    for c in clips:
        b = c.astype("<i2").tobytes()
        fe, feats, i = create_frontend(), [], 0
        while i + 320 < len(b):
            f, n = process_samples(fe, b[i : i + 320])
            i += n * 2
            if f:
                feats.append(f)
        out.append(np.array(feats, np.float32))
    return out


STARTUP_CPU = r"""
import sys; sys.path.insert(0, {repo!r})
import time
import numpy as np
from wakeprep.features import features_batch
from wakeprep.frontend import cpu
x = np.zeros(16000, np.int16)
t0 = time.process_time()
features_batch(x, np.array([0, 16000]))
print(cpu.KERNEL, time.process_time() - t0)
"""


def cpu_startup(kernel: str, runs: int = 3) -> float:
    """Median CPU time of the first ``features_batch`` call (1 s of audio) in a new process
    running ``kernel``, after one untimed process (numba's cache written, files in the page cache)."""
    env = dict(os.environ, WAKEPREP_CPU_KERNEL=kernel)
    times = []
    for _ in range(runs + 1):
        out = subprocess.run([sys.executable, "-c", STARTUP_CPU.format(repo=str(REPO))], capture_output=True, text=True,
                             check=True, env=env)
        got, t = out.stdout.split()
        assert got == kernel, (got, kernel)
        times.append(float(t))
    return float(np.median(times[1:]))


def timed(fn, *a, repeat=1):
    """Best CPU time (this process, user + system) of ``repeat`` calls: on a shared machine
    it holds up better than wall time, and every CPU row runs on one thread."""
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.process_time()
        res = fn(*a)
        best = min(best, time.process_time() - t0)
    return best, res


STARTUP = r"""
import time; t0 = time.perf_counter()
import sys; sys.path.insert(0, {repo!r})
import numpy as np, cupy
from wakeprep.frontend import gpu
x = cupy.zeros(16000, cupy.int16); gpu.features_batch(x, np.array([0, 16000])); cupy.cuda.Device().synchronize()
print(time.perf_counter() - t0)
"""


def gpu_rows(clips, seconds_gpu, ref_codes, ref_offsets, rows, audio_s):
    import cupy

    from wakeprep.features import require_gpu
    from wakeprep.frontend import gpu

    name = require_gpu()
    # fresh processes: CUDA start-up, first with an empty kernel cache (CuPy compiles the
    # kernels), then with the cache it left
    import tempfile

    env = dict(os.environ, CUPY_CACHE_DIR=tempfile.mkdtemp(prefix="cupy-cache-"))
    times = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", STARTUP.format(repo=str(REPO))], capture_output=True, text=True,
                             check=True, env=env)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    rows.append((f"CUDA start-up of a new process (import CuPy, kernels, first launch): {times[0]:.2f} s compiling "
                 f"the kernels, {min(times[1:]):.2f} s from CuPy's kernel cache", None, None, None))
    x, offsets = pack(clips)
    # tile the corpus on the device up to seconds_gpu of audio
    reps = max(1, int(np.ceil(seconds_gpu * 16000 / len(x))))
    d_x = cupy.tile(cupy.asarray(x), reps)
    big_offsets = np.concatenate([[0]] + [offsets[1:] + k * len(x) for k in range(reps)]).astype(np.int64)
    fo = frame_offsets(big_offsets)
    d_offsets = cupy.asarray(big_offsets)
    codes = gpu.features_batch(d_x, d_offsets, fo)  # warm-up (compile)
    cupy.cuda.Device().synchronize()
    best = float("inf")
    for _ in range(5):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        codes = gpu.features_batch(d_x, d_offsets, fo)
        stop.record()
        stop.synchronize()
        best = min(best, cupy.cuda.get_elapsed_time(start, stop) / 1000)
    host = codes.get()
    n_ref = int(ref_offsets[-1])
    equal = all(np.array_equal(host[k * n_ref : (k + 1) * n_ref], ref_codes) for k in range(reps))
    big_s = len(d_x) / 16000
    rows.append((f"wakeprep cuda, kernels, int16 in device memory to uint16 codes ({name}; "
                 f"{big_s:.0f} s of audio, {int(fo[-1]):,} frames)", best, big_s, equal))
    t0 = time.perf_counter()
    c2, _ = features_batch(x, offsets, device="cuda")
    wall = time.perf_counter() - t0
    rows.append(("wakeprep cuda, host int16 to host uint16 (copies included)", wall, audio_s,
                 np.array_equal(c2, ref_codes)))


def store_rows(clips, seconds, rows, devices):
    """features_shard store to store, against reading the input and writing the output bytes."""
    import shutil
    import tempfile

    from wakeprep.features import FeatureSettings
    from wakeprep.shards import features_shard
    from wakeprep.store import RaggedStore, RaggedWriter

    root = Path(tempfile.mkdtemp(prefix="features-store-"))
    try:
        with RaggedWriter(root / "audio", np.int16) as w:
            total, k = 0, 0
            while total < seconds * 16000:
                c = clips[k % len(clips)]
                w.append(f"c/{k:06d}", c)
                total += len(c)
                k += 1
        audio_s = total / 16000
        for device in devices:
            t0 = time.perf_counter()
            features_shard(root / "audio", root / f"feat-{device}", FeatureSettings(device=device))
            rows.append((f"features_shard {device}, store to store ({k:,} clips, includes reading, batching, writing, fsync)",
                         time.perf_counter() - t0, audio_s, None))
        out_bytes = (root / f"feat-{devices[0]}" / "data.bin").stat().st_size
        os.sync()
        t0 = time.perf_counter()
        data = np.fromfile(root / "audio" / "data.bin", dtype=np.uint8)
        with open(root / "disk.bin", "wb") as f:
            f.write(np.zeros(out_bytes, np.uint8).tobytes())
            f.flush()
            os.fsync(f.fileno())
        rows.append((f"disk alone: read the audio ({data.nbytes / 2**20:.0f} MiB), write + fsync the features' bytes "
                     f"({out_bytes / 2**20:.0f} MiB)", time.perf_counter() - t0, audio_s, None))
        same = all((root / f"feat-{d}" / "data.bin").read_bytes() == (root / f"feat-{devices[0]}" / "data.bin").read_bytes()
                   for d in devices)
        if not same:
            raise SystemExit("features_shard: devices wrote different bytes")
        RaggedStore(root / f"feat-{devices[0]}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0, help="audio for the CPU rows")
    ap.add_argument("--gpu-seconds", type=float, default=20000.0, help="audio for the GPU kernel row")
    ap.add_argument("--small", action="store_true", help="30 s of audio, no GPU rows unless --gpu")
    ap.add_argument("--gpu", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--store-seconds", type=float, default=0.0, help="audio for the store-to-store rows (0: none)")
    args = ap.parse_args()
    seconds = 30.0 if args.small else args.seconds
    clips = corpus(seconds)
    x, offsets = pack(clips)
    audio_s = len(x) / 16000

    rows = []  # (name, wall s, audio s, equal to reference)
    t_ref, ref = timed(reference_loop, clips, repeat=2)
    ref_codes = np.concatenate(ref)
    rows.append(("reference: pymicro-features, MicroFrontend fed 10 ms at a time (microWakeWord's loop)", t_ref, audio_s, True))
    t_bare, bare = timed(bare_loop, clips, repeat=2)
    rows.append(("pymicro-features C call in a bare loop (no wrapper objects)", t_bare, audio_s,
                 np.array_equal(quantise(np.concatenate(bare)), ref_codes)))
    from wakeprep.frontend import ckernel, cpu

    for kernel in cpu.KERNELS:
        if kernel == "c" and ckernel.load() is None:
            print(f"(no C kernel row: {ckernel.why()})", file=sys.stderr)
            continue
        try:
            start = cpu_startup(kernel)
        except subprocess.CalledProcessError as e:
            print(f"(no {kernel} kernel row: {e.stderr.strip().splitlines()[-1]})", file=sys.stderr)
            continue
        cpu.features_batch(x[:16000], np.array([0, 16000]), kernel=kernel)  # numba: load (or compile) first
        t_cpu, (codes, _) = timed(cpu.features_batch, x, offsets, kernel, repeat=3)
        default = ", the default here" if kernel == cpu.KERNEL else ""
        rows.append((f"wakeprep cpu, {'C' if kernel == 'c' else 'numba'} kernel{default} (first call in a new process: "
                     f"{start:.3f} CPU s)", t_cpu, audio_s, np.array_equal(codes, ref_codes)))
    fo = ref_offsets = frame_offsets(offsets)
    if args.gpu == "on" or (args.gpu == "auto" and not args.small):
        from wakeprep.augment import gpu_status

        ok, why = gpu_status()
        if ok:
            gpu_rows(clips, 1000.0 if args.small else args.gpu_seconds, ref_codes, ref_offsets, rows, audio_s)
        elif args.gpu == "on":
            raise SystemExit(f"--gpu on: no usable GPU ({why})")
        else:
            print(f"(no GPU rows: {why})", file=sys.stderr)

    if args.store_seconds > 0:
        from wakeprep.augment import gpu_status

        store_rows(clips, args.store_seconds, rows, ["cpu", "cuda"] if gpu_status()[0] and args.gpu != "off" else ["cpu"])

    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(f"audio: {len(clips)} clips, {audio_s:.0f} s, {int(fo[-1]):,} frames\n")
    print("| frontend | s | x real time | vs reference | codes equal |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, wall, secs, equal in rows:
        if wall is None:
            print(f"| {name} | | | | |")
            continue
        # per-second-of-audio cost against the reference's
        speed = (t_ref / audio_s) / (wall / secs)
        shown = "" if equal is None else ("yes" if equal else "NO")
        print(f"| {name} | {wall:.4f} | {secs / wall:,.0f} | {speed:,.1f}x | {shown} |")
    if not all(r[3] for r in rows if r[1] is not None and r[3] is not None):
        raise SystemExit("codes differ from the reference")


if __name__ == "__main__":
    main()
