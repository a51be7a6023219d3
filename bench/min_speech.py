"""How much speech does Resemblyzer need to tell voices apart? (the default of
``speakers.min_speech_s``, docs/splits.md).

Speaks words and phrases of several lengths in the demo's espeak-ng voices (two takes each,
random speed and pitch), finds each clip's speech span with Silero VAD, embeds it with
Resemblyzer, and prints, per speech-span bin, how similar clips of different voices are
(pairs above ``1 - speakers.threshold`` would be merged by the clustering) and how similar
each clip is to the mean of its own voice's long clips.

Usage::

    python3 bench/min_speech.py            # ten voices (about a minute)
    python3 bench/min_speech.py --small    # three voices
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ["hey", "yes", "stop", "go", "no", "hey jarvis", "okay computer", "turn it off",
         "what is the weather like today", "set a timer for ten minutes please",
         "the kitchen light is still on", "can you open the window"]
BINS = [(0.0, 0.5), (0.5, 0.6), (0.6, 0.8), (0.8, 1.2), (1.2, 99.0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="three voices")
    ap.add_argument("--threshold", type=float, default=0.3, help="speakers.threshold (cosine distance)")
    args = ap.parse_args()
    import soxr

    from wakeprep.demo import VOICES, espeak
    from wakeprep.embed import ResemblyzerEmbedder
    from wakeprep.vad import VadSettings, analyse

    voices = VOICES[:3] if args.small else VOICES
    rng = np.random.default_rng(0)
    pcm, span, voice = [], [], []
    for v, name in enumerate(voices):
        for w in WORDS:
            for _ in range(2):
                x, rate = espeak(w, name, int(rng.integers(130, 190)), int(rng.integers(30, 70)))
                y = np.clip(soxr.resample(x, rate, 16000) * 32767, -32768, 32767).astype(np.int16)
                info = analyse(y, VadSettings())
                pcm.append(y)
                span.append(info.end_s - info.start_s if info.has_speech else 0.0)
                voice.append(v)
    emb = ResemblyzerEmbedder().embed(pcm)
    span, voice = np.array(span), np.array(voice)
    sim_cut = 1.0 - args.threshold
    long = span >= 1.2
    cent = np.stack([emb[long & (voice == k)].mean(axis=0) for k in range(len(voices))])
    print(f"{len(voices)} voices, {len(pcm)} clips; threshold {args.threshold} (similarity above {sim_cut:.2f} merges)\n")
    print("| speech span (s) | clips | different-voice pairs: mean similarity | 95th pct | above cut "
          "| same-voice pairs: mean | similarity to own voice's mean | joins own voice | nearest voice correct |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for lo, hi in BINS:
        m = np.flatnonzero((span >= lo) & (span < hi))
        if len(m) < 2:
            continue
        s = emb[m] @ emb[m].T
        same = voice[m][:, None] == voice[m][None, :]
        iu = np.triu_indices(len(m), 1)
        diff, same_pairs = s[iu][~same[iu]], s[iu][same[iu]]
        to_cent = emb[m] @ cent.T
        own = to_cent[np.arange(len(m)), voice[m]]
        label = f"{lo:.1f}-{hi:.1f}" if hi < 99 else f"{lo:.1f}+"
        print(f"| {label} | {len(m)} | {diff.mean():.3f} | {np.percentile(diff, 95):.3f} | "
              f"{np.mean(diff > sim_cut) * 100:.1f} % | {same_pairs.mean() if len(same_pairs) else float('nan'):.3f} | "
              f"{own.mean():.3f} | {np.mean(own > sim_cut) * 100:.0f} % | "
              f"{np.mean(to_cent.argmax(axis=1) == voice[m]) * 100:.0f} % |")


if __name__ == "__main__":
    main()
