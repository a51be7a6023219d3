"""Benchmark of speaker clustering (:mod:`wakeprep.cluster`): time, peak memory, quality.

Prints a markdown table: for each size, the wall time and peak resident memory of
:func:`wakeprep.cluster.cluster_embeddings` on synthetic 256-d embeddings with planted speaker
groups of 20 to 200 clips (each size in a fresh process, so peaks do not mix), scikit-learn's
average-linkage ``AgglomerativeClustering`` at 10,000 for comparison, and then the adjusted Rand
index of both methods on real voices (espeak-ng speech embedded with Resemblyzer).

Usage::

    python3 bench/cluster.py                        # 10k, 100k, 1M (minutes)
    python3 bench/cluster.py --sizes 10000,100000
    python3 bench/cluster.py --small                # CI smoke run: 2k and 5k
    python3 bench/cluster.py --no-voices            # skip the espeak-ng / Resemblyzer part

The voice set and its generator live here and are imported by ``tests/test_cluster.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
for _p in (REPO, REPO / "tests"):  # tests/planted.py: the planted-group generator
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from planted import planted_embeddings  # noqa: E402
from wakeprep.cluster import DEFAULT_THRESHOLD, cluster_embeddings  # noqa: E402

#: espeak-ng voices that Resemblyzer tells apart (measured; see docs/clustering.md). Left out as
#: confusable: the accent-only voices with the default variant (en-us, en-gb, en-gb-scotland,
#: en-029, en-us-nyc, en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd are one "speaker" to it, so only
#: en-us is kept), and the pairs en-us+f3 / en-gb-x-rp+f4, en-us+m7 / en-us+Andy,
#: en-us+adam / en-us+caleb / en-us+klatt, en-us+grandpa / en-us+croak, en-us+f2 / en-us+f5.
#: Note: "en-gb+VARIANT" ignores the variant (the same audio as "en-gb"); "en+VARIANT" works.
VOICES: tuple[str, ...] = (
    "en-us", "en-us+f3", "en-029+f2", "en-us+Annie", "en-us+Andy", "en-us+klatt",
    "en-us+steph", "en-us+Marco", "en-us+whisper", "en-us+grandma", "en-us+Lee", "en-us+iven",
)
#: Every voice says every phrase once, at a random speed (145-185 wpm) and pitch (42-58).
PHRASES: tuple[str, ...] = (
    "hey jarvis turn on the lights", "okay computer what is the weather like today",
    "play some music in the kitchen please", "set a timer for ten minutes",
    "remind me to call my sister tomorrow", "how far away is the moon from here",
    "open the garage door please", "good morning how are you doing", "stop the alarm right now",
    "read me the latest news", "what time does the shop close", "turn the heating up a little",
    "call mum on her mobile", "is it going to rain this evening", "add milk to the shopping list",
    "switch off the television",
)


def espeak_16k(voice: str, text: str, speed: int, pitch: int) -> np.ndarray:
    """Speech from espeak-ng as float32 mono at 16 kHz (resampled with soxr)."""
    import soundfile as sf
    import soxr

    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         capture_output=True, check=True).stdout
    x, rate = sf.read(io.BytesIO(out), dtype="float32")
    return soxr.resample(x, rate, 16000).astype(np.float32)


def voice_embeddings(voices=VOICES, phrases=PHRASES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Resemblyzer embeddings of every voice saying every phrase, and each clip's voice index.

    Audio is resampled to 16 kHz here so that ``preprocess_wav`` skips librosa's resampler,
    whose first call spends about 15 s compiling. torch runs on one thread: on a shared 2-core
    machine its second thread made each embedding about 5 times slower (spinning waits).
    """
    import torch
    from resemblyzer import VoiceEncoder, preprocess_wav

    rng = np.random.default_rng(seed)
    jobs = [(i, voice, text, int(rng.integers(145, 186)), int(rng.integers(42, 59)))
            for i, voice in enumerate(voices) for text in phrases]
    with ThreadPoolExecutor(4) as pool:  # espeak-ng runs in its own processes
        audio = list(pool.map(lambda j: espeak_16k(*j[1:]), jobs))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder = VoiceEncoder("cpu", verbose=False)
        emb = np.asarray([encoder.embed_utterance(preprocess_wav(x, source_sr=16000)) for x in audio],
                         dtype=np.float32)
    finally:
        torch.set_num_threads(threads)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, np.asarray([j[0] for j in jobs], dtype=np.int64)


def sklearn_average(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Plain average-linkage agglomerative clustering (cosine), the quality reference."""
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                   distance_threshold=threshold).fit_predict(emb)


def single_linkage(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Connected components of the graph of pairs closer than ``threshold`` (single linkage)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    return connected_components(csr_matrix(emb @ emb.T > 1.0 - threshold), directed=False)[1]


def voice_scores(emb: np.ndarray, who: np.ndarray, threshold: float) -> dict:
    """Adjusted Rand index against the true voices: ours, scikit-learn average, single linkage."""
    from sklearn.metrics import adjusted_rand_score

    ours, info = cluster_embeddings(emb, threshold)
    return {
        "ours": adjusted_rand_score(who, ours),
        "sklearn": adjusted_rand_score(who, sklearn_average(emb, threshold)),
        "single": adjusted_rand_score(who, single_linkage(emb, threshold)),
        "clusters": info["n_clusters"],
    }


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs``), so that the peak measured next
    excludes what came before (here: generating the data). False where not supported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb(reset: bool) -> float:
    """Peak RSS in MB: since :func:`reset_peak_rss` if it worked, else since the start."""
    return _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(method: str, n: int, threshold: float) -> dict:
    """One measurement, run in a fresh process (``--worker``)."""
    from sklearn.metrics import adjusted_rand_score

    emb, groups = planted_embeddings(n, 256, seed=1)
    reset = reset_peak_rss()
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if method == "ours":
        labels, info = cluster_embeddings(emb, threshold)
        extra = {k: info[k] for k in ("knn", "levels", "rounds", "knn_s", "merge_s", "closed")}
    else:
        labels, extra = sklearn_average(emb, threshold), {}
    seconds = time.perf_counter() - t0
    return {"method": method, "n": n, "groups": int(groups.max()) + 1, "seconds": seconds,
            "peak_mb": peak_rss_mb(reset), "data_mb": before, "clusters": int(labels.max()) + 1,
            "ari": adjusted_rand_score(groups, labels), **extra}


def _measure(method: str, n: int, threshold: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, str(n), "--threshold", str(threshold)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{method} at n={n} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated sizes")
    ap.add_argument("--small", action="store_true", help="quick smoke run (2k and 5k)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--no-voices", action="store_true", help="skip the espeak-ng voices")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], int(args.worker[1]), args.threshold)))
        return

    sizes = [2000, 5000] if args.small else [int(s) for s in args.sizes.split(",") if s]
    sk_n = min(10_000, max(sizes))
    runs = [("ours", n) for n in sizes] + [("sklearn", sk_n)]
    print(f"Clustering synthetic 256-d embeddings, planted groups of 20-200 clips, threshold "
          f"{args.threshold}, {os.cpu_count()} cores, each row in a fresh process. Peak RSS is the "
          f"process's peak while clustering (the embeddings included); RSS before is the process "
          f"with the embeddings generated (float32, n x 1 KB).\n")
    print("| method | n | groups | clusters | ARI vs planted | time (s) | peak RSS (MB) | RSS before (MB) | notes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for method, n in runs:
        r = _measure(method, n, args.threshold)
        notes = (f"{r['knn']} kNN, {r['levels']} levels, {r['rounds']} rounds, kNN {r['knn_s']:.1f} s, "
                 f"merge {r['merge_s']:.1f} s" if method == "ours" else "sklearn AgglomerativeClustering, average, cosine")
        name = "wakeprep.cluster" if method == "ours" else "sklearn average linkage"
        print(f"| {name} | {n:,} | {r['groups']:,} | {r['clusters']:,} | {r['ari']:.4f} | {r['seconds']:.1f} | "
              f"{r['peak_mb']:,.0f} | {r['data_mb']:,.0f} | {notes} |", flush=True)

    if not args.no_voices:
        t0 = time.perf_counter()
        emb, who = voice_embeddings()
        s = voice_scores(emb, who, args.threshold)
        print(f"\nReal voices: {len(VOICES)} espeak-ng voices x {len(PHRASES)} phrases ({len(who)} clips, "
              f"Resemblyzer, {time.perf_counter() - t0:.0f} s to generate and score), threshold {args.threshold}:\n")
        print("| method | adjusted Rand index | clusters |")
        print("| --- | ---: | ---: |")
        print(f"| wakeprep.cluster | {s['ours']:.3f} | {s['clusters']} |")
        print(f"| sklearn average linkage | {s['sklearn']:.3f} | {len(set(sklearn_average(emb, args.threshold)))} |")
        print(f"| single linkage (threshold graph components) | {s['single']:.3f} | "
              f"{len(set(single_linkage(emb, args.threshold)))} |")
        print(f"\nVoices: {', '.join(VOICES)}")


if __name__ == "__main__":
    main()
