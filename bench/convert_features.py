"""Convert + features throughput, end to end through Snakemake, against the way
microWakeWord's own scripts do the same work (clip by clip in one Python process).

Usage::

    python3 bench/convert_features.py --hours 2 --workdir /tmp/cf --cores 1 --shard-size 1024 \
        --without-speech --steady --repeat 3             # the figures in docs/benchmarks.md
    python3 bench/convert_features.py --small            # a smoke run (CI)
    python3 bench/convert_features.py --soxr-only        # only the VHQ vs HQ resampling table

Rows: the loop (in this process, and as a process of its own, start-up included like the
workflow's); wakeprep with speech detection on (Silero, the default) and, with
``--without-speech``, by webrtcvad, and off (VHQ, and HQ: the loop's resampler). The loop
detects no speech: the speech-detection-off rows are the like-for-like ones. ``--steady``
adds what the second half of the corpus costs (full minus first half), where the start-up a
run pays once cancels out.

A second table compares libsoxr's VHQ (wakeprep's default) with HQ (microWakeWord's
scripts) on the corpus's resampled files: resampling time alone, the largest int16
difference, how many samples and feature codes differ. A third, decoding the 16-bit PCM WAV
and FLAC files: libsndfile's float32 read against wakeprep's (int16 read and scaled for WAV;
the same float32 bits).

Prints markdown tables. The corpus is generated once into --workdir: espeak-ng
speech and noise, cut into 2 to 8 s files, 40 % WAV, 40 % FLAC, 10 % OGG, 10 % MP3, at
8 to 48 kHz, mono and stereo.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# (yaml and wakeprep are imported where they are used: the loop, run as a process of its
# own with --loop-only, imports what microWakeWord's scripts need and no more)

FORMATS = [  # (weight, ext, format, subtype)
    (4, "wav", "WAV", "PCM_16"),
    (4, "flac", "FLAC", "PCM_16"),
    (1, "ogg", "OGG", "VORBIS"),
    (1, "mp3", "MP3", "MPEG_LAYER_III"),
]
RATES = [8000, 16000, 22050, 44100, 48000]


def make_corpus(folder: Path, hours: float, seed: int = 0) -> tuple[int, float]:
    """Write about ``hours`` of audio into ``folder``; returns (files, seconds)."""
    from wakeprep.demo import NEGATIVE_PHRASES, VOICES, espeak, noise

    rng = np.random.default_rng(seed)
    pool = []
    for v in VOICES:
        for p in NEGATIVE_PHRASES:
            x, r = espeak(p, v)
            pool.append(soxr.resample(x, r, 48000).astype(np.float32))
    for k in ("white", "pink", "brown"):
        pool.append(noise(k, 4.0, 48000, rng))
    weights = np.array([f[0] for f in FORMATS], float)
    weights /= weights.sum()
    total, n = 0.0, 0
    while total < hours * 3600:
        seconds = float(rng.uniform(2, 8))
        parts, have = [], 0
        while have < seconds * 48000:
            clip = pool[int(rng.integers(len(pool)))]
            parts.append(clip)
            have += len(clip)
        x = np.concatenate(parts)[: int(seconds * 48000)] * float(rng.uniform(0.3, 1.0))
        _, ext, fmt, subtype = FORMATS[int(rng.choice(len(FORMATS), p=weights))]
        rate = RATES[int(rng.integers(len(RATES)))]
        if fmt == "MP3" and rate == 16000:
            rate = 22050
        y = soxr.resample(x, 48000, rate).astype(np.float32) if rate != 48000 else x
        if rng.random() < 0.3:
            y = np.stack([y, 0.8 * y], axis=1)
        path = folder / f"d{n // 500:03d}" / f"f{n:06d}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.clip(y, -1, 1), rate, format=fmt, subtype=subtype)
        total += seconds
        n += 1
    return n, total


def microwakeword_style(files) -> tuple[float, float]:
    """Clip by clip in one process, as microWakeWord's scripts do: load, resample,
    features with pymicro-features fed 10 ms at a time. Returns wall and CPU seconds."""
    from pymicro_features import MicroFrontend

    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        x, rate = sf.read(f, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if rate != 16000:
            x = soxr.resample(x, rate, 16000, quality="HQ")
        audio = (np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes()
        fe = MicroFrontend()
        feats, i = [], 0
        while i + 320 < len(audio):
            out = fe.process_samples(audio[i : i + 320])
            i += out.samples_read * 2
            if out.features:
                feats.append(out.features)
        np.array(feats, dtype=np.float32)
    return time.perf_counter() - t0, time.process_time() - c0


def soxr_quality(files) -> list[tuple]:
    """VHQ against HQ on every file that needs resampling: decode once, then each quality
    resamples (timed alone) and is quantised the way wakeprep converts (wakeprep.audio)."""
    from wakeprep.audio import to_int16
    from wakeprep.features import features_batch

    times = {"VHQ": 0.0, "HQ": 0.0}
    seconds, n_files, max_diff, differing, samples = 0.0, 0, 0, 0, 0
    feats = {"VHQ": [], "HQ": []}
    for f in files:
        x, rate = sf.read(f, dtype="float32", always_2d=True)
        if rate == 16000:
            continue
        x = np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))
        out = {}
        for q in times:
            t0 = time.perf_counter()
            y = soxr.resample(x, rate, 16000, quality=q)
            times[q] += time.perf_counter() - t0
            out[q] = to_int16(y.astype(np.float32, copy=False))[0]
            feats[q].append(out[q])
        d = np.abs(out["VHQ"].astype(np.int32) - out["HQ"].astype(np.int32))
        max_diff = max(max_diff, int(d.max(initial=0)))
        differing += int(np.count_nonzero(d))
        samples += len(d)
        seconds += len(x) / rate
        n_files += 1
    codes = {}
    for q, clips in feats.items():
        offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
        codes[q] = features_batch(np.concatenate(clips), offsets)[0]
    code_diff = np.abs(codes["VHQ"].astype(np.int32) - codes["HQ"].astype(np.int32))
    return [("VHQ", times["VHQ"], seconds, n_files), ("HQ", times["HQ"], seconds, n_files),
            (max_diff, differing / max(samples, 1), float(np.mean(code_diff != 0)), int(code_diff.max(initial=0)))]


def decoding(files) -> list[tuple]:
    """Per format, 16-bit PCM files only: CPU s of libsndfile's float32 read against
    wakeprep's decoding (``wakeprep.audio._decode_soundfile``: int16 read and scaled for
    WAV), each the median of 3, and whether the bits are equal."""
    from wakeprep.audio import _decode_soundfile

    kinds = {f: (i.format, i.subtype) for f in files for i in [sf.info(f)]}
    rows = []
    for fmt in ("WAV", "FLAC"):
        chosen = [f for f in files if kinds[f] == (fmt, "PCM_16")]

        def libsndfile():
            return [sf.read(f, dtype="float32", always_2d=True)[0] for f in chosen]

        def wakeprep():
            return [_decode_soundfile(f)[0] for f in chosen]

        cpu = {}
        for name, fn in (("libsndfile", libsndfile), ("wakeprep", wakeprep)):
            times = []
            for _ in range(3):
                c0 = time.process_time()
                fn()
                times.append(time.process_time() - c0)
            cpu[name] = float(np.median(times))
        equal = all(np.array_equal(a.view(np.uint32), b.view(np.uint32)) for a, b in zip(libsndfile(), wakeprep()))
        rows.append((fmt, len(chosen), cpu["libsndfile"], cpu["wakeprep"], equal))
    return rows


def loop_process(files, root: Path) -> tuple[float, float]:
    """The same loop run as a process of its own, measured as the workflow is: wall and
    CPU seconds of the whole process, interpreter start-up and imports included."""
    listing = root / "files.txt"
    listing.write_text("\n".join(files))
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--loop-only", str(listing)], check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def median_of(n: int, measure) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``n`` calls of ``measure()`` (each taken
    separately): a shared machine's slow outliers do not decide a row."""
    runs = [measure() for _ in range(max(1, n))]
    return float(np.median([w for w, _ in runs])), float(np.median([c for _, c in runs]))


def run_workflow(corpus: Path, work: Path, cores: int, shard_size: int, speech: bool = True,
                 quality: str | None = None, vad_method: str | None = None) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of Snakemake and every job it ran (user + system).
    ``speech`` False turns convert's speech detection off (``vad.labels: []``), which the
    microWakeWord-style loop does not do either; ``quality`` sets ``audio.resample_quality``
    (``HQ``: the loop's resampler)."""
    import yaml

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    cfg = {
        "shard_size": shard_size,
        "demo": {"generate": False},
        "corpora": [{"name": "bench", "path": str(corpus), "label": "negative"}],
        "augment": {"enabled": False},
    }
    if not speech:  # nothing is then placed by its speech end either (the run stops at features)
        cfg["vad"] = {"labels": []}
        cfg["windows"] = {"place_labels": []}
    if quality:
        cfg["audio"] = {"resample_quality": quality}
    if vad_method:
        cfg["vad"] = {"method": vad_method}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    # --until features: convert and features of every shard, nothing after them
    # (through this interpreter, not a `snakemake` launcher that may be a shell shim)
    cmd = [sys.executable, "-m", "snakemake", "--until", "features", "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--cores", str(cores), "--quiet", "all"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=work, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--small", action="store_true", help="a 3-minute corpus, for a smoke run")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--cores", default="1,2")
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--soxr-only", action="store_true", help="only the VHQ vs HQ table")
    ap.add_argument("--without-speech", action="store_true",
                    help="also run wakeprep with speech detection off (vad.labels: []), on one core, "
                         "with VHQ and with HQ resampling, and the loop as a process of its own")
    ap.add_argument("--steady", action="store_true",
                    help="with --without-speech: also run the loop and wakeprep without speech detection on the "
                         "first half of the corpus, for what the second half costs (start-up paid once cancels out)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure every row this many times and report the medians")
    ap.add_argument("--loop-only", type=Path, help=argparse.SUPPRESS)  # the loop over a file list, in this process
    args = ap.parse_args()
    if args.loop_only:
        microwakeword_style(args.loop_only.read_text().splitlines())
        return
    hours = 0.05 if args.small else args.hours
    root = args.workdir or Path(tempfile.mkdtemp(prefix="wakeprep-bench-"))
    corpus = root / "corpus"
    t0 = time.perf_counter()
    if not corpus.is_dir():
        n, seconds = make_corpus(corpus, hours)
    files = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    seconds = sum(sf.info(f).duration for f in files)
    gen = time.perf_counter() - t0
    print(f"corpus: {len(files)} files, {seconds / 3600:.2f} h of audio in {corpus} (ready in {gen:.0f} s)", file=sys.stderr)

    rows = []
    n = args.repeat
    if not args.soxr_only:
        base, base_cpu = median_of(n, lambda: microwakeword_style(files))
        rows.append(("microWakeWord-style loop, one process", 1, base, base_cpu))
        for cores in [int(c) for c in args.cores.split(",")]:
            wall, cpu = median_of(n, lambda: run_workflow(corpus, root / f"work{cores}", cores, args.shard_size))
            rows.append((f"wakeprep (snakemake --cores {cores}), speech detection on (Silero, the default)", cores, wall, cpu))
        if args.without_speech:
            wall, cpu = median_of(n, lambda: run_workflow(corpus, root / "work1-webrtcvad", 1, args.shard_size,
                                                          vad_method="webrtcvad"))
            rows.append(("wakeprep, speech detection by webrtcvad (snakemake --cores 1)", 1, wall, cpu))
            wall, cpu = median_of(n, lambda: loop_process(files, root))
            rows.append(("microWakeWord-style loop, as its own process (start-up and imports counted)", 1, wall, cpu))
            wall, cpu = median_of(n, lambda: run_workflow(corpus, root / "work1-nospeech", 1, args.shard_size, speech=False))
            rows.append(("wakeprep, speech detection off (snakemake --cores 1)", 1, wall, cpu))
            wall, cpu = median_of(n, lambda: run_workflow(corpus, root / "work1-nospeech-hq", 1, args.shard_size,
                                                          speech=False, quality="HQ"))
            rows.append(("wakeprep, speech detection off, resample_quality HQ (snakemake --cores 1)", 1, wall, cpu))
    steady = []
    if args.steady and args.without_speech and not args.soxr_only:
        half = root / "corpus_half"  # the first half of the files (hard links, same relative paths)
        shutil.rmtree(half, ignore_errors=True)
        for f in files[: len(files) // 2]:
            dst = half / Path(f).relative_to(corpus)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, dst)
        half_files = sorted(str(p) for p in half.rglob("*") if p.is_file())
        half_seconds = sum(sf.info(f).duration for f in half_files)
        full = {name: (wall, cpu) for name, _, wall, cpu in rows}
        loop_name = "microWakeWord-style loop, one process"
        steady.append((loop_name, full[loop_name], median_of(n, lambda: microwakeword_style(half_files))))
        for name, quality in (("wakeprep, speech detection off (snakemake --cores 1)", None),
                              ("wakeprep, speech detection off, resample_quality HQ (snakemake --cores 1)", "HQ")):
            steady.append((name, full[name], median_of(n, lambda: run_workflow(
                half, root / "work1-half", 1, args.shard_size, speech=False, quality=quality))))
    vhq, hq, (max_diff, frac, code_frac, code_max) = soxr_quality(files)
    decoded = decoding(files)

    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")
    print(f"corpus: {len(files)} files, {seconds / 3600:.2f} h (WAV/FLAC/OGG/MP3, 8-48 kHz, mono and stereo)\n")
    if rows:
        # CPU seconds (user + system, every process) hold up better than wall time on a
        # shared machine: "per CPU second" compares the work each method does per core
        print("| method | cores | wall s | x real time | x real time per core | vs microWakeWord-style, per core | "
              "CPU s | x real time per CPU s | vs microWakeWord-style, per CPU s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, cores, wall, cpu in rows:
            rt = seconds / wall
            print(f"| {name} | {cores} | {wall:.1f} | {rt:.0f} | {rt / cores:.0f} | {base / (wall * cores):.2f}x | "
                  f"{cpu:.1f} | {seconds / cpu:.0f} | {base_cpu / cpu:.2f}x |")
        print()
    if steady:
        added = seconds - half_seconds
        print(f"What the second half of the corpus costs ({added / 3600:.2f} h): the full corpus minus its "
              f"first half ({len(half_files)} files, {half_seconds / 3600:.2f} h), one core. Start-up that a "
              "run pays once (Snakemake's, the loop's) cancels out; what each shard job pays does not:\n")
        print("| method | CPU s, full | CPU s, half | CPU s of the second half | x real time per CPU s | "
              "vs microWakeWord-style, per CPU s | wall s of the second half | vs microWakeWord-style, per core |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        base_d = steady[0][1][1] - steady[0][2][1]
        base_w = steady[0][1][0] - steady[0][2][0]
        for name, (wf, cf), (wh, ch) in steady:
            d, dw = cf - ch, wf - wh
            print(f"| {name} | {cf:.1f} | {ch:.1f} | {d:.2f} | {added / d:.0f} | {base_d / d:.2f}x | "
                  f"{dw:.2f} | {base_w / dw:.2f}x |")
        print()
    print(f"libsoxr to 16 kHz on the {vhq[3]} files that need it ({vhq[2] / 3600:.2f} h), one core:\n")
    print("| quality | resample s | x real time | speed vs VHQ |")
    print("| --- | ---: | ---: | ---: |")
    for q, t, secs, _ in (vhq, hq):
        print(f"| {q} | {t:.2f} | {secs / t:,.0f} | {vhq[1] / t:.2f}x |")
    print(f"\nHQ vs VHQ int16 output: largest difference {max_diff} LSB, {100 * frac:.1f} % of samples differ; "
          f"feature codes: {100 * code_frac:.2f} % differ, by at most {code_max}")
    print("\nDecoding the 16-bit PCM files, one core (CPU s, median of 3): libsndfile's float32 read "
          "against wakeprep's (int16 read and scaled for WAV):\n")
    print("| format | files | libsndfile float32 s | wakeprep s | speed-up | float32 bits equal |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for fmt, n_files, old, new, equal in decoded:
        print(f"| {fmt} | {n_files} | {old:.3f} | {new:.3f} | {old / max(new, 1e-9):.2f}x | {'yes' if equal else 'NO'} |")


if __name__ == "__main__":
    main()
