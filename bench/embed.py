"""Speaker-embedding throughput per core for each embedder, and the fixed cost of an
embed job.

Usage::

    python3 bench/embed.py                 # 96 clips, 1 and 2 threads; start-up and jobs
    python3 bench/embed.py --small         # 8 clips, 1 thread (CI smoke run)

Fixed per-job costs: each ``embed`` job is a new process. Two tables compare, side by
side, wakeprep's Resemblyzer embedder with the same embedder written on the
``resemblyzer`` package as a user would (``VoiceEncoder`` and ``audio.wav_to_mel_spectrogram``,
i.e. librosa, whose first call compiles with numba): the start-up of a fresh process
(imports and model, first clip, exit; median of ``--repeats``), and whole jobs of
``--job-clips`` clips (a fresh process running ``embed_store`` on an audio store, as the
rule does) against the embedding compute alone (the same clips in one warm process).
The last table extrapolates both to 100,000 clips in jobs of that size: the ratio of a
job's wall time to its compute does not depend on the number of jobs.

Clips are espeak-ng speech (about 1.5 to 3 s each, six voices) converted to 16 kHz int16
as the workflow does. WavLM runs with the architecture of ``microsoft/wavlm-base-plus-sv``
(``WavLMConfig()`` defaults, x-vector head), randomly initialised and saved with
``save_pretrained``, since the real checkpoint needs the hub; the compute per clip is the
same. Resemblyzer runs with its shipped weights. The first batch (model load and
librosa's JIT compilation) is not timed. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wakeprep.audio import TARGET_RATE  # noqa: E402
from wakeprep.demo import NEGATIVE_PHRASES, VOICES, espeak  # noqa: E402


def make_clips(n: int) -> list[np.ndarray]:
    import soxr

    clips = []
    for i in range(n):
        x, rate = espeak(NEGATIVE_PHRASES[i % len(NEGATIVE_PHRASES)], VOICES[i % len(VOICES)], speed=150 + (i * 7) % 50)
        y = soxr.resample(x, rate, TARGET_RATE)
        clips.append(np.clip(np.rint(y * 32768), -32768, 32767).astype(np.int16))
    return clips


def wavlm_folder(small: bool) -> str:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    cfg = WavLMConfig() if not small else WavLMConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                        intermediate_size=128, tdnn_dim=(64, 64, 64, 64, 128))
    folder = tempfile.mkdtemp(prefix="wavlm-bench-")
    WavLMForXVector(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return folder


def timed(embedder, clips, batch: int, threads: int) -> float:
    import torch

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):  # NumPy's BLAS too, as Snakemake's thread variables do in a job
        embedder.embed(clips[:batch])  # warm-up: model load effects, JIT, allocator
        t0 = time.perf_counter()
        for i in range(0, len(clips), batch):
            embedder.embed(clips[i : i + batch])
        return time.perf_counter() - t0


#: The embedder on top of the ``resemblyzer`` package (what wakeprep did before it computed
#: the mel spectrogram itself): the baseline for the start-up and job tables.
PACKAGE_EMBEDDER = """
import numpy as np, torch
from resemblyzer import VoiceEncoder, audio
from resemblyzer.hparams import audio_norm_target_dBFS
from wakeprep.embed import _normalise

class PackageResemblyzer:
    name, dim, model_name = "resemblyzer", 256, "resemblyzer-pretrained"

    def __init__(self):
        self.model = VoiceEncoder(device="cpu", verbose=False).eval()

    def embed(self, clips):
        parts = []
        for c in clips:
            wav = audio.normalize_volume(c.astype(np.float32) / 32768.0, audio_norm_target_dBFS, increase_only=True)
            ws, ms = self.model.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
            if ws[-1].stop > len(wav):
                wav = np.pad(wav, (0, ws[-1].stop - len(wav)))
            mel = audio.wav_to_mel_spectrogram(wav)
            parts.append(np.stack([mel[s] for s in ms]))
        with torch.no_grad():
            emb = self.model(torch.from_numpy(np.concatenate(parts))).numpy()
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return _normalise(np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]))
"""

OURS = "wakeprep (NumPy mel, no resemblyzer import)"
PATHS = {
    OURS: "from wakeprep.embed import load_embedder\nmake = lambda: load_embedder('resemblyzer')\n",
    "resemblyzer package (librosa mel)": PACKAGE_EMBEDDER + "make = PackageResemblyzer\n",
}

STARTUP = """
import time, json
import numpy as np
c_import = time.process_time()
{setup}
import torch
torch.set_num_threads(1)
e = make()
c_model = time.process_time()
x = np.load({clip!r})
e.embed([x])
c_first = time.process_time()
e.embed([x])
c_second = time.process_time()
print(json.dumps({{"model": c_model - c_import, "first": c_first - c_model, "second": c_second - c_first}}))
from wakeprep.embed import exit_without_teardown
{exit}
"""

JOB = """
{setup}
from wakeprep.embed import embed_store, exit_without_teardown
embed_store({audio!r}, {out!r}, make(), batch_size=16, threads=1)
{exit}
"""
#: How each path's job ends: scripts/embed.py skips torch's teardown; the baseline exits normally.
EXIT = {OURS: "exit_without_teardown()"}

WARM = """
import json, time
import numpy as np
{setup}
import torch
from wakeprep.store import RaggedStore
torch.set_num_threads(1)
e = make()
s = RaggedStore({audio!r})
clips = [np.asarray(s[i]) for i in np.argsort(s.lengths, kind="stable")]
e.embed(clips[:16])
t0, c0 = time.perf_counter(), time.process_time()
for i in range(0, len(clips), 16):
    e.embed(clips[i : i + 16])
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}}))
"""


def _python(code: str) -> tuple[float, float, dict]:
    """Run ``code`` in a fresh interpreter on one core's worth of threads; its wall time and
    CPU time (user + system, start to exit) and its last JSON line."""
    import resource

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, (json.loads(lines[-1]) if lines else {})


def startup_costs(clip: np.ndarray, repeats: int) -> None:
    """Start-up of a fresh process for both paths, interleaved; prints one table."""
    tmp = Path(tempfile.mkdtemp(prefix="embed-bench-"))
    np.save(tmp / "clip.npy", clip)
    rows = {name: [] for name in PATHS}
    for _ in range(repeats):  # interleaved, so both paths see the same machine load
        for name, setup in PATHS.items():
            wall, cpu, t = _python(STARTUP.format(setup=setup, exit=EXIT.get(name, ""), clip=str(tmp / "clip.npy")))
            rows[name].append((wall, cpu, t["model"], t["first"], t["second"]))
    med = statistics.median
    print(f"\nStart-up of a fresh process, median of {repeats}, CPU seconds (one thread; the process "
          "columns include the interpreter's start, and torch's teardown at exit where the job pays it):\n")
    print("| path | imports + model | first clip | next clip | to first embedding | process CPU s | process wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rs in rows.items():
        wall, cpu, m, f, sec = (med([r[i] for r in rs]) for i in range(5))
        print(f"| {name} | {m:.2f} | {f:.3f} | {sec:.3f} | {m + f:.2f} | {cpu:.2f} | {wall:.2f} |")


def job_costs(clips: list[np.ndarray], sizes: list[int], repeats: int) -> None:
    """Whole jobs against compute alone, both paths, each job size; prints two tables.

    CPU seconds (user + system of the job's process, one thread) are the measure: on a
    shared machine wall times swing with the load, CPU times much less. Wall times are
    printed beside them."""
    from wakeprep.store import RaggedWriter

    med = statistics.median
    results = []
    for size in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="embed-bench-"))
        with RaggedWriter(tmp / "audio", np.int16, attrs={"corpus": "bench", "label": "negative"}) as w:
            for i in range(size):
                w.append(f"bench/{i:06d}", clips[i % len(clips)])
        audio_s = sum(len(clips[i % len(clips)]) for i in range(size)) / TARGET_RATE
        jobs = {name: [] for name in PATHS}
        warm = {name: [] for name in PATHS}
        for r in range(repeats):  # interleaved, so both paths see the same machine load
            for name, setup in PATHS.items():
                out = tmp / f"emb-{len(jobs[name])}-{r}"
                wall, cpu, _ = _python(JOB.format(setup=setup, exit=EXIT.get(name, ""), audio=str(tmp / "audio"), out=str(out)))
                jobs[name].append((wall, cpu))
                t = _python(WARM.format(setup=setup, audio=str(tmp / "audio")))[2]
                warm[name].append((t["wall"], t["cpu"]))
        for name in PATHS:
            results.append((name, size, audio_s, med([j[1] for j in jobs[name]]), med([w[1] for w in warm[name]]),
                            med([j[0] for j in jobs[name]]), med([w[0] for w in warm[name]])))
    print(f"\nWhole embed jobs in a fresh process against the same clips embedded in one warm process "
          f"(compute alone), one thread, medians of {repeats}:\n")
    print("| path | clips per job | audio s | job CPU s | compute alone CPU s | fixed cost per job CPU s "
          "| job / compute (CPU) | job wall s | compute alone wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, size, audio_s, j, c, jw, cw in results:
        print(f"| {name} | {size} | {audio_s:.0f} | {j:.2f} | {c:.2f} | {j - c:.2f} | {j / c:.2f} | {jw:.2f} | {cw:.2f} |")
    n = 100_000
    ours = {size: c for name, size, _, _, c, _, _ in results if name == OURS}
    print(f"\n{n:,} clips like these on one core, extrapolated from the CPU seconds above (jobs x job):\n")
    print("| path | clips per job | jobs | end to end min | compute alone min | end to end / compute alone "
          "| end to end / wakeprep's compute alone |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, size, _, j, c, _, _ in results:
        jobs_n = -(-n // size)
        print(f"| {name} | {size} | {jobs_n} | {j * n / size / 60:.1f} | {c * n / size / 60:.1f} | {j / c:.2f} "
              f"| {j / ours[size]:.2f} |")


def span_check(n_per_voice: int, voices: int) -> None:
    """Speech span against whole clip: espeak-ng phrases with 0.1 to 1.5 s of quiet room noise
    before and after (as in recorded wake-word clips), embedded whole and over the span
    :func:`wakeprep.vad.analyse` finds. Prints same-voice and other-voice cosine similarity
    and the adjusted Rand index of the clustering against the voices."""
    import soxr
    from sklearn.metrics import adjusted_rand_score

    from wakeprep.cluster import DEFAULT_THRESHOLD, cluster_embeddings
    from wakeprep.embed import ResemblyzerEmbedder
    from wakeprep.vad import VadSettings, analyse

    rng = np.random.default_rng(7)
    whole, spans, who = [], [], []
    for v in range(voices):
        for i in range(n_per_voice):
            x, rate = espeak(NEGATIVE_PHRASES[i % len(NEGATIVE_PHRASES)], VOICES[v], speed=150 + (i * 7) % 50)
            y = soxr.resample(x, rate, TARGET_RATE)
            rms = np.sqrt(np.mean(y**2))
            pad = lambda: rng.normal(0, rms * 10 ** (-30 / 20), int(rng.uniform(0.1, 1.5) * TARGET_RATE))  # noqa: E731
            y = np.concatenate([pad(), y, pad()])
            pcm = np.clip(np.rint(y * 32768), -32768, 32767).astype(np.int16)
            info = analyse(pcm, VadSettings())
            whole.append(pcm)
            spans.append(pcm[int(round(info.start_s * TARGET_RATE)) : int(round(info.end_s * TARGET_RATE))])
            who.append(v)
    who = np.array(who)
    enc = ResemblyzerEmbedder()
    print(f"\nSpeech span or whole clip: {voices} voices x {n_per_voice} phrases, 0.1-1.5 s of noise 30 dB "
          f"below the speech before and after; clustering threshold {DEFAULT_THRESHOLD}:\n")
    print("| embedded | audio s | mean cosine, same voice | mean cosine, other voices | margin | clusters | ARI |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, clips in (("whole clip", whole), ("speech span", spans)):
        e = np.concatenate([enc.embed(clips[i : i + 16]) for i in range(0, len(clips), 16)])
        sim = e @ e.T
        same = (who[:, None] == who[None, :]) & ~np.eye(len(who), dtype=bool)
        other = who[:, None] != who[None, :]
        labels, _ = cluster_embeddings(e, DEFAULT_THRESHOLD)
        secs = sum(len(c) for c in clips) / TARGET_RATE
        print(f"| {name} | {secs:.0f} | {sim[same].mean():.3f} | {sim[other].mean():.3f} | "
              f"{sim[same].mean() - sim[other].mean():.3f} | {len(set(labels.tolist()))} | "
              f"{adjusted_rand_score(who, labels):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--job-clips", default="390,780",
                    help="clips per embed job, comma-separated (390: 100,000 files in 256 shards, "
                         "shard_size 256; 780: shard_size 512)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-throughput", action="store_true", help="only the start-up and job tables")
    ap.add_argument("--skip-wavlm", action="store_true", help="throughput of Resemblyzer only")
    ap.add_argument("--skip-jobs", action="store_true", help="no start-up and job tables")
    ap.add_argument("--span-check", action="store_true", help="only the speech-span-or-whole-clip table")
    args = ap.parse_args()
    n = 8 if args.small else args.clips
    threads = [1] if args.small else [int(t) for t in args.threads.split(",")]
    if args.span_check:
        span_check(4 if args.small else 16, 3 if args.small else len(VOICES))
        return
    clips = make_clips(n)
    audio_s = sum(len(c) for c in clips) / TARGET_RATE

    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    repeats = 1 if args.small else args.repeats
    if not args.skip_jobs:
        startup_costs(clips[0], repeats)
        job_costs(clips, [8] if args.small else [int(x) for x in args.job_clips.split(",")], repeats)
    if args.skip_throughput:
        return

    from wakeprep.embed import ResemblyzerEmbedder, WavLMEmbedder

    embedders = [("resemblyzer (shipped weights)", ResemblyzerEmbedder())]
    label = "wavlm (tiny, smoke run)" if args.small else "wavlm (base-plus-sv architecture, random weights)"
    if not args.skip_wavlm:
        embedders.append((label, WavLMEmbedder(wavlm_folder(args.small))))
    rows = []
    for name, emb in embedders:
        for t in threads:
            wall = timed(emb, clips, args.batch, t)
            rows.append((name, t, wall))
    print(f"\nThroughput in one warm process: {n} clips, {audio_s:.0f} s of speech, batches of {args.batch}\n")
    print("| embedder | torch threads | wall s | clips/s | clips/s per core | x real time per core |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, t, wall in rows:
        print(f"| {name} | {t} | {wall:.2f} | {n / wall:.1f} | {n / wall / t:.1f} | {audio_s / wall / t:.0f} |")


if __name__ == "__main__":
    main()
