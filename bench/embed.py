"""Speaker-embedding throughput per core for each embedder.

Usage::

    python3 bench/embed.py                 # 96 clips, 1 and 2 threads
    python3 bench/embed.py --small         # 8 clips, 1 thread (CI smoke run)

Clips are espeak-ng speech (about 1.5 to 3 s each, six voices) converted to 16 kHz int16
as the workflow does. WavLM runs with the architecture of ``microsoft/wavlm-base-plus-sv``
(``WavLMConfig()`` defaults, x-vector head), randomly initialised and saved with
``save_pretrained``, since the real checkpoint needs the hub; the compute per clip is the
same. Resemblyzer runs with its shipped weights. The first batch (model load and
librosa's JIT compilation) is not timed. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
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

    torch.set_num_threads(threads)
    embedder.embed(clips[:batch])  # warm-up: model load effects, JIT, allocator
    t0 = time.perf_counter()
    for i in range(0, len(clips), batch):
        embedder.embed(clips[i : i + batch])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    n = 8 if args.small else args.clips
    threads = [1] if args.small else [int(t) for t in args.threads.split(",")]
    clips = make_clips(n)
    audio_s = sum(len(c) for c in clips) / TARGET_RATE

    from wakeprep.embed import ResemblyzerEmbedder, WavLMEmbedder

    embedders = [("resemblyzer (shipped weights)", ResemblyzerEmbedder())]
    label = "wavlm (tiny, smoke run)" if args.small else "wavlm (base-plus-sv architecture, random weights)"
    embedders.append((label, WavLMEmbedder(wavlm_folder(args.small))))
    rows = []
    for name, emb in embedders:
        for t in threads:
            wall = timed(emb, clips, args.batch, t)
            rows.append((name, t, wall))
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{n} clips, {audio_s:.0f} s of speech, batches of {args.batch}\n")
    print("| embedder | torch threads | wall s | clips/s | clips/s per core | x real time per core |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, t, wall in rows:
        print(f"| {name} | {t} | {wall:.2f} | {n / wall:.1f} | {n / wall / t:.1f} | {audio_s / wall / t:.0f} |")


if __name__ == "__main__":
    main()
