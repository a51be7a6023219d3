"""Benchmark of rule augment_audio: waveform augmentation + features, one markdown table.

All rows work on the same 3.2 s windows (int16, as rule windows writes them), the same
noise set (10 clips of 10 s) and RIR set (6 image-source RIRs), with microWakeWord's
notebook settings (probabilities EQ/tanh/pitch/band-stop/colour 0.1, background 0.75 at
-5..10 dB, gain 1.0, RIR 0.5).

CPU rows, on one core (threads pinned to 1, process pinned to one CPU when possible):

* microWakeWord's ``Augmentation`` chain, rebuilt here exactly as its
  ``microwakeword/audio/augmentation.py`` builds it (audiomentations ``Compose``, folders
  of WAV files for noise and RIRs), then ``generate_features_for_clip``'s loop over
  pymicro-features, window by window: what a microWakeWord user runs;
* ours, store to store on disk (``augment_audio_part``, device cpu): windows store in,
  feature store and parameter table out.

GPU rows (when CuPy sees a GPU; torch-audiomentations rows when torch has CUDA and
torch-audiomentations is installed):

* ours, store to store on disk (device cuda, features on the device; median of 3 runs),
  with the windows in the page cache (as the benchmark just wrote them) and read from the
  disk (evicted first);
* the disk alone: reading those windows uncached, writing + fsync of the features' bytes;
* ours, the chain alone on device-resident batches (no features, no disk);
* torch-audiomentations and ours on the transforms they share (Gain, AddColoredNoise,
  BandStopFilter, PitchShift, peak normalisation), same batch, on the device.

    python3 bench/augment_audio.py            # about 2 minutes on one core (+ GPU rows)
    python3 bench/augment_audio.py --small    # CI smoke test
    python3 bench/augment_audio.py --gpu-only # GPU rows only (no audiomentations needed)
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wakeprep.features import CHUNK_BYTES  # noqa: E402
from wakeprep.store import RaggedStore, RaggedWriter  # noqa: E402
from wakeprep.waveaug import TRANSFORMS, Backend, ClipSet, WaveAugSettings  # noqa: E402
from wakeprep.waveaug.job import augment_audio_part, augment_batch  # noqa: E402

RATE = 16000
N = 51200  # 3.2 s
NOTEBOOK = {"SevenBandParametricEQ": 0.1, "TanhDistortion": 0.1, "PitchShift": 0.1, "BandStopFilter": 0.1,
            "AddColorNoise": 0.1, "AddBackgroundNoise": 0.75, "Gain": 1.0, "RIR": 0.5}
SHARED = ("Gain", "AddColorNoise", "BandStopFilter", "PitchShift")


# --------------------------------------------------------------------------- inputs


def synthetic_rir(rng) -> np.ndarray:
    """An image-source RIR (pyroomacoustics) when installed, else exponentially decaying noise."""
    try:
        from wakeprep.demo_resources import _rir

        return _rir(rng)
    except ImportError:
        n = int(rng.uniform(0.2, 0.6) * RATE)
        h = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.05 * RATE))
        h[0] = 3.0
        return (h / np.abs(h).max() * 0.9).astype(np.float32)


def make_inputs(folder: Path, windows: int, seed: int = 0, wav: bool = True) -> dict:
    """Windows (speech-like: tones with formant-ish envelopes, silence padding at the start
    like a positive), a noise folder and a RIR folder (WAV for audiomentations, ragged
    stores for us)."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / RATE
    with RaggedWriter(folder / "windows", np.int16) as w:
        for i in range(windows):
            x = np.zeros(N)
            for f in rng.uniform(120, 3500, 8):
                x += np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * np.abs(np.sin(2 * np.pi * rng.uniform(2, 6) * t))
            x[: int(rng.uniform(0.3, 1.5) * RATE)] = 0  # the wake word sits at the end
            x = x / np.abs(x).max() * rng.uniform(0.1, 0.7)
            w.append(f"bench/w{i:06d}", (x * 32767).astype(np.int16))
    if wav:  # audiomentations reads folders of files
        import soundfile as sf

        (folder / "noise_wav").mkdir()
        (folder / "rir_wav").mkdir()
    with RaggedWriter(folder / "noise", np.int16) as w:
        for i in range(10):
            y = (rng.standard_normal(10 * RATE) * 3000).astype(np.int16)
            if wav:
                sf.write(folder / "noise_wav" / f"n{i}.wav", y, RATE, subtype="PCM_16")
            w.append(f"bench_noise/n{i}", y)
    with RaggedWriter(folder / "rir", np.int16) as w:
        for i in range(6):
            y = (synthetic_rir(rng) * 32767).astype(np.int16)
            if wav:
                sf.write(folder / "rir_wav" / f"r{i}.wav", y, RATE, subtype="PCM_16")
            w.append(f"bench_rir/r{i}", y)
    return {"windows": folder / "windows", "noise": folder / "noise", "rir": folder / "rir",
            "noise_wav": folder / "noise_wav", "rir_wav": folder / "rir_wav"}


# --------------------------------------------------------------------------- baselines


def microwakeword_chain(noise_dir, rir_dir):
    """microWakeWord's Augmentation.augment (its __init__, notebook arguments)."""
    import audiomentations as A

    p = NOTEBOOK
    return A.Compose(transforms=[
        A.SevenBandParametricEQ(p=p["SevenBandParametricEQ"], min_gain_db=-6, max_gain_db=6),
        A.TanhDistortion(p=p["TanhDistortion"], min_distortion=0.0001, max_distortion=0.10),
        A.PitchShift(p=p["PitchShift"], min_semitones=-3, max_semitones=3),
        A.BandStopFilter(p=p["BandStopFilter"]),
        A.AddColorNoise(p=p["AddColorNoise"], min_snr_db=10, max_snr_db=30),
        A.AddBackgroundNoise(p=p["AddBackgroundNoise"], sounds_path=[str(noise_dir)], min_snr_db=-5, max_snr_db=10),
        A.Gain(p=p["Gain"], min_gain_db=-45, max_gain_db=0),
        A.GainTransition(p=0.0, min_gain_db=-10, max_gain_db=10),
        A.ApplyImpulseResponse(p=p["RIR"], ir_path=[str(rir_dir)]),
        A.Compose(transforms=[A.Normalize(apply_to="only_too_loud_sounds", p=1.0)]),
    ], shuffle=False)


def microwakeword_features(audio: np.ndarray) -> np.ndarray:
    """microWakeWord's generate_features_for_clip (pymicro-features 2.x names)."""
    from pymicro_features import MicroFrontend

    audio = np.clip(audio * 32768, -32768, 32767).astype(np.int16).tobytes()
    frontend = MicroFrontend()
    features, i = [], 0
    while i + CHUNK_BYTES < len(audio):
        out = frontend.process_samples(audio[i : i + CHUNK_BYTES])
        i += out.samples_read * 2
        if out.features:
            features.append(out.features)
    return np.array(features)


def bench_microwakeword(inp, windows: int) -> dict:
    store = RaggedStore(inp["windows"])
    chain = microwakeword_chain(inp["noise_wav"], inp["rir_wav"])
    clips = [np.asarray(store[i], dtype=np.float32) / 32768 for i in range(windows)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain(clips[0], RATE)  # warm-up (imports, file scans)
        t = time.perf_counter()
        for x in clips:
            microwakeword_features(chain(x, RATE))
        dt = time.perf_counter() - t
    return row("microWakeWord Augmentation (audiomentations) + pymicro-features", "cpu, 1 core", windows, dt)


def bench_microwakeword_chain_only(inp, windows: int) -> dict:
    store = RaggedStore(inp["windows"])
    chain = microwakeword_chain(inp["noise_wav"], inp["rir_wav"])
    clips = [np.asarray(store[i], dtype=np.float32) / 32768 for i in range(windows)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chain(clips[0], RATE)
        t = time.perf_counter()
        for x in clips:
            chain(x, RATE)
        dt = time.perf_counter() - t
    return row("microWakeWord Augmentation alone (no features)", "cpu, 1 core", windows, dt)


def bench_ours_chain_only_cpu(inp, windows: int, batch: int) -> dict:
    be = Backend("cpu")
    store = RaggedStore(inp["windows"])
    s = WaveAugSettings.from_config({"probabilities": NOTEBOOK})
    noise = ClipSet("noise", "train", [inp["noise"]], ["n"])
    rirs = ClipSet("RIR", "train", [inp["rir"]], ["r"])
    audio = np.asarray(store.data[: windows * N]).reshape(windows, N)
    augment_batch(be, audio[:batch], store.ids[:batch], 1, s, noise, rirs)
    t = time.perf_counter()
    for a in range(0, windows, batch):
        augment_batch(be, audio[a : a + batch], store.ids[a : a + batch], 1, s, noise, rirs)
    dt = time.perf_counter() - t
    return row("wakeprep chain alone (no features, no disk)", "cpu, 1 core", windows, dt)


def evict(path: Path) -> None:
    """Drop a (written and synced) file from the page cache, so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def bench_ours_store(inp, out: Path, windows: int, device: str, batch: int, reps: int = 1, cold: bool = False) -> dict:
    """Median of ``reps`` runs; ``cold``: the windows evicted from the page cache before each."""
    s = WaveAugSettings.from_config({"probabilities": NOTEBOOK})
    kw = dict(first=0, stop=windows, repetitions=1, settings=s, split="train", noise_stores=[inp["noise"]],
              rir_stores=[inp["rir"]], noise_corpora=["bench_noise"], rir_corpora=["bench_rir"], device=device,
              batch_items=batch)
    augment_audio_part(inp["windows"], out / "warm", **dict(kw, stop=min(windows, batch)))  # warm-up
    shutil.rmtree(out / "warm")
    times = []
    for _ in range(reps):
        shutil.rmtree(out / device, ignore_errors=True)
        if cold:
            evict(Path(inp["windows"]) / "data.bin")
        t = time.perf_counter()
        augment_audio_part(inp["windows"], out / device, **kw)
        times.append(time.perf_counter() - t)
    where = "cpu, 1 core" if device == "cpu" else Backend(device).name
    how = f", median of {reps}" if reps > 1 else ""
    how += ", windows read from the disk (evicted from the page cache)" if cold else ""
    return row(f"wakeprep augment_audio, store to store ({device}{how})", where, windows, float(np.median(times)))


def bench_ours_chain_on_device(inp, windows: int, batch: int, probabilities: dict, name: str, reps: int = 3) -> dict:
    import cupy

    from wakeprep.waveaug.banks import DeviceBank
    from wakeprep.waveaug.job import chain_batch, draw_batch

    be = Backend("cuda")
    store = RaggedStore(inp["windows"])
    audio = np.asarray(store.data[: windows * N]).reshape(windows, N)
    s = WaveAugSettings.from_config({"probabilities": probabilities})
    noise = ClipSet("noise", "train", [inp["noise"]], ["n"])
    rirs = ClipSet("RIR", "train", [inp["rir"]], ["r"])
    banks = DeviceBank(noise, be), DeviceBank(rirs, be)
    # windows on the device and parameters drawn beforehand: this row times the device work
    batches = [(cupy.asarray(audio[a : a + batch]), *draw_batch(store.ids[a : a + batch], 1, s, N, noise, rirs))
               for a in range(0, windows, batch)]

    def once():
        for d, p, win, _ in batches:
            chain_batch(be, d, p, win, *banks)
        cupy.cuda.Device().synchronize()

    once()
    t = time.perf_counter()
    for _ in range(reps):
        once()
    dt = (time.perf_counter() - t) / reps
    return row(name, be.name, windows, dt)


def bench_disk(inp, out: Path, windows: int) -> list[dict]:
    """What the disk allows: read the windows the store-to-store rows read, from the disk
    (evicted from the page cache first), and write + fsync as many bytes as their feature
    store has."""
    src = Path(inp["windows"]) / "data.bin"
    nbytes = (out / "cuda" / "features" / "data.bin").stat().st_size
    evict(src)
    t = time.perf_counter()
    with open(src, "rb") as f:
        while f.read(64 << 20):
            pass
    t_read = time.perf_counter() - t
    block = np.random.default_rng(0).integers(0, 65535, 32 << 20, dtype=np.uint16).tobytes()
    t = time.perf_counter()
    with open(out / "disk-probe.bin", "wb") as f:
        left = nbytes
        while left > 0:
            left -= f.write(block[: min(left, len(block))])
        f.flush()
        os.fsync(f.fileno())
    t_write = time.perf_counter() - t
    (out / "disk-probe.bin").unlink()
    rows = [row(f"disk alone: read the windows ({src.stat().st_size / 1e6:.0f} MB, not cached)", "this machine's disk",
                windows, t_read),
            row(f"disk alone: write + fsync the features' bytes ({nbytes / 1e6:.0f} MB)", "this machine's disk",
                windows, t_write)]
    for r in rows:
        r["ratio_to"] = None
    return rows


def bench_torch_audiomentations(windows: int, batch: int, reps: int = 3) -> dict:
    import torch
    import torch_audiomentations as T

    chain = T.Compose([
        T.BandStopFilter(p=0.1, sample_rate=RATE),
        T.PitchShift(p=0.1, min_transpose_semitones=-3, max_transpose_semitones=3, sample_rate=RATE),
        T.AddColoredNoise(p=0.1, min_snr_in_db=10, max_snr_in_db=30, sample_rate=RATE),
        T.Gain(p=1.0, min_gain_in_db=-45, max_gain_in_db=0),
        T.PeakNormalization(apply_to="only_too_loud_sounds", p=1.0),
    ], output_type="tensor")
    rng = np.random.default_rng(0)
    data = [torch.from_numpy((rng.standard_normal((min(batch, windows - a), 1, N)) * 0.1).astype(np.float32)).cuda()
            for a in range(0, windows, batch)]

    def once():
        for d in data:
            chain(d, sample_rate=RATE)
        torch.cuda.synchronize()

    once()
    t = time.perf_counter()
    for _ in range(reps):
        once()
    dt = (time.perf_counter() - t) / reps
    return row("torch-audiomentations, shared transforms, data on device", f"cuda (torch {torch.__version__})", windows, dt)


# --------------------------------------------------------------------------- table


class _Done(Exception):
    """The rows asked for are measured."""


def row(name: str, where: str, windows: int, seconds: float) -> dict:
    audio = windows * N / RATE
    return {"name": name, "where": where, "windows": windows, "seconds": seconds, "rt": audio / seconds}


def one_core() -> str:
    try:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=300, help="windows for the CPU rows")
    ap.add_argument("--gpu-windows", type=int, default=16384, help="windows for the GPU rows")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--gpu-batch", type=int, default=512, help="windows per batch of the GPU store-to-store rows")
    ap.add_argument("--small", action="store_true", help="a few windows, for a smoke run")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--gpu-only", action="store_true",
                    help="skip the CPU rows (no audiomentations needed), e.g. on a GPU machine without it")
    args = ap.parse_args()
    if args.small:
        args.windows, args.gpu_windows, args.batch, args.gpu_batch = 12, 64, 16, 32
    work = Path(tempfile.mkdtemp(prefix="bench-augment-audio-", dir=args.workdir))
    rows = []
    chain_base = None
    try:
        from wakeprep.augment import gpu_status

        gpu_ok, gpu_what = gpu_status()
        if args.gpu_only and not gpu_ok:
            raise SystemExit(f"--gpu-only, but no usable GPU: {gpu_what}")
        inp = make_inputs(work, max(0 if args.gpu_only else args.windows, args.gpu_windows if gpu_ok else 0),
                          wav=not args.gpu_only)
        if gpu_ok:  # before pinning to one core: the GPU rows feed the device from the host
            rows.append(bench_ours_chain_on_device(inp, args.gpu_windows, args.batch * 4, NOTEBOOK,
                                                   "wakeprep chain alone (microWakeWord's settings), data on device"))
            shared = {k: NOTEBOOK.get(k, 0.0) if k in SHARED else 0.0 for k in TRANSFORMS}
            ours_shared = bench_ours_chain_on_device(inp, args.gpu_windows, args.batch * 4, shared,
                                                     "wakeprep chain, shared transforms only, data on device")
            rows.append(ours_shared)
            try:
                theirs = bench_torch_audiomentations(args.gpu_windows, args.batch * 4)
                theirs["ratio_to"] = ours_shared
                rows.append(theirs)
            except Exception as e:  # not installed, or no CUDA in torch
                print(f"torch-audiomentations row skipped: {type(e).__name__}: {e}", file=sys.stderr)
            rows.append(bench_ours_store(inp, work, args.gpu_windows, "cuda", args.gpu_batch, reps=3))
            rows.append(bench_ours_store(inp, work, args.gpu_windows, "cuda", args.gpu_batch, reps=3, cold=True))
            rows += bench_disk(inp, work, args.gpu_windows)
        pinned = "not used"
        if args.gpu_only:
            base = None
            raise _Done
        pinned = one_core()
        base = bench_microwakeword(inp, args.windows)
        rows.append(base)
        ours = bench_ours_store(inp, work, args.windows, "cpu", args.batch)
        rows.append(ours)
        chain_base = bench_microwakeword_chain_only(inp, args.windows)
        rows.append(chain_base)
        chain_ours = bench_ours_chain_only_cpu(inp, args.windows, args.batch)
        chain_ours["ratio_to"] = chain_base
        rows.append(chain_ours)
        for r in rows:
            if r is not base and r is not chain_base and "ratio_to" not in r:
                r["ratio_to"] = base
    except _Done:
        pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nwindows of 3.2 s; CPU rows on one core ({pinned}); GPU: {gpu_what}")
    print(f"peak host memory (max RSS) of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n")
    print("| what | where | windows | seconds | x real time | ratio |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        ref = r.get("ratio_to")
        if "ratio_to" in r and ref is None:
            ratio = ""
        elif ref is None:
            ratio = "1.00 (baseline)" if base is not None else ""
        elif r is chain_base:
            ratio = "1.00 (baseline, chain alone)"
        elif ref is base:
            ratio = f"{r['rt'] / base['rt']:.2f}x microWakeWord's loop"
        elif ref is chain_base:
            ratio = f"{r['rt'] / ref['rt']:.2f}x microWakeWord's chain alone"
        else:
            ratio = f"ours {ref['rt'] / r['rt']:.2f}x this"
        print(f"| {r['name']} | {r['where']} | {r['windows']} | {r['seconds']:.2f} | {r['rt']:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
