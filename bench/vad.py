"""Speech detectors side by side: Silero VAD and webrtcvad, through wakeprep.vad.analyse.

Usage::

    python3 bench/vad.py             # 60 speech clips per condition, the demo's positives too
    python3 bench/vad.py --small     # 6 per condition (CI smoke run)

Recordings-like clips with known truth: espeak-ng speech (ten voices, the demo's phrases)
at 16 kHz, with 0.3-1.2 s of room before and after, its true start and end taken from the
clean signal (the first and last 10 ms frame within 40 dB of its loudest frame), then

- ``clean``: nothing added (the demo's case);
- ``noise 20 dB`` / ``noise 5 dB``: white noise at that SNR over the whole clip;
- ``hum + clicks``: a 100 Hz hum at -30 dBFS and clicks (single-sample spikes) in the pauses;
- ``tone``: a 1 kHz tone at -20 dBFS over the pause after the speech (a phone beep);

and, for false speech, clips with no speech at all: white noise (-20 dBFS), a 1 kHz tone,
clicks on silence. ``demo positives`` are the demo corpus's positives as the workflow
converts them (needs ``results/`` from a demo run; skipped otherwise), truth from the
converted signal the same way (they are clean, but some went through MP3 or OGG).

Per detector and condition: clips where speech was found, median and 90th percentile of
the start and end error (ms) against the truth, the signed median end error (positive:
late), and speed (x real time, one thread, after
one warm-up call). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wakeprep.demo import HARD_NEGATIVE_PHRASES, NEGATIVE_PHRASES, VOICES, WAKE_PHRASE, espeak  # noqa: E402
from wakeprep.vad import VadSettings, analyse  # noqa: E402

RATE = 16000
TRUTH_DB = 40.0


def truth(x: np.ndarray) -> tuple[float, float]:
    """Start and end of the 10 ms frames of clean ``x`` within TRUTH_DB of its loudest frame."""
    n = len(x) // 160
    p = (x[: n * 160].astype(np.float64).reshape(n, 160) ** 2).mean(axis=1)
    loud = np.flatnonzero(p >= p.max() * 10 ** (-TRUTH_DB / 10))
    return loud[0] * 160 / RATE, (loud[-1] + 1) * 160 / RATE


def speech_clips(n: int, rng) -> list[tuple[np.ndarray, float, float]]:
    import soxr

    phrases = [WAKE_PHRASE] + NEGATIVE_PHRASES + HARD_NEGATIVE_PHRASES
    out = []
    for i in range(n):
        x, rate = espeak(phrases[i % len(phrases)], VOICES[i % len(VOICES)], speed=140 + (i * 11) % 60)
        y = soxr.resample(x, rate, RATE)
        speech = np.clip(np.rint(y * 32768 * 0.7 / max(1e-9, np.abs(y).max())), -32768, 32767).astype(np.int16)
        loud = np.flatnonzero(speech != 0)
        speech = speech[loud[0]: loud[-1] + 1]
        s, e = truth(speech)
        lead, tail = (int(rng.uniform(0.3, 1.2) * RATE) for _ in range(2))
        clip = np.concatenate([np.zeros(lead, np.int16), speech, np.zeros(tail, np.int16)])
        out.append((clip, lead / RATE + s, lead / RATE + e))
    return out


def add(x: np.ndarray, extra: np.ndarray) -> np.ndarray:
    return np.clip(x.astype(np.float64) + extra, -32768, 32767).astype(np.int16)


def condition(name: str, clip, start, end, rng) -> np.ndarray:
    n = len(clip)
    if name == "clean":
        return clip
    if name.startswith("noise"):
        snr = float(name.split()[1])
        p = np.mean(clip[int(start * RATE): int(end * RATE)].astype(np.float64) ** 2)
        return add(clip, rng.standard_normal(n) * np.sqrt(p / 10 ** (snr / 10)))
    if name == "hum + clicks":
        hum = 32768 * 10 ** (-30 / 20) * np.sin(2 * np.pi * 100 * np.arange(n) / RATE)
        clicks = np.zeros(n)
        pauses = np.r_[0: int(start * RATE) - 800, int(end * RATE) + 800: n]
        if len(pauses):
            clicks[rng.choice(pauses, size=min(6, len(pauses)), replace=False)] = 20000
        return add(clip, hum + clicks)
    if name == "tone":
        tone = np.zeros(n)
        a = int(end * RATE) + 1600
        tone[a:] = 32768 * 0.1 * np.sin(2 * np.pi * 1000 * np.arange(n - a) / RATE)
        return add(clip, tone)
    raise ValueError(name)


def non_speech(rng, n: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for i in range(n):
        m = int(rng.uniform(1.0, 3.0) * RATE)
        out.append(("noise", add(np.zeros(m, np.int16), rng.standard_normal(m) * 3277)))
        out.append(("tone", add(np.zeros(m, np.int16), 3277 * np.sin(2 * np.pi * 1000 * np.arange(m) / RATE))))
        clicks = np.zeros(m)
        clicks[rng.choice(m, 8, replace=False)] = 20000
        out.append(("clicks", add(np.zeros(m, np.int16), clicks)))
    return out


def demo_positives(limit: int):
    from wakeprep.store import RaggedStore

    shards = sorted(Path("results/shards/demo_positive").glob("s*/audio"))
    out = []
    for s in shards:
        for _, x in RaggedStore(s).items():
            x = np.array(x)
            out.append((x, *truth(x)))
    return out[:limit]


def run(method: str, clips) -> dict:
    settings = VadSettings(method=method)
    analyse(clips[0][0], settings)  # warm-up: model load
    t0 = time.perf_counter()
    results = [analyse(c, settings) for c, _, _ in clips]
    elapsed = time.perf_counter() - t0
    audio_s = sum(len(c) for c, _, _ in clips) / RATE
    found = [(r, s, e) for r, (_, s, e) in zip(results, clips) if r.has_speech]
    ds = np.array([abs(r.start_s - s) * 1000 for r, s, _ in found]) if found else np.array([np.nan])
    de = np.array([abs(r.end_s - e) * 1000 for r, _, e in found]) if found else np.array([np.nan])
    late = np.array([(r.end_s - e) * 1000 for r, _, e in found]) if found else np.array([np.nan])
    return {"found": len(found), "n": len(clips), "start_med": np.median(ds), "start_p90": np.percentile(ds, 90),
            "end_med": np.median(de), "end_p90": np.percentile(de, 90), "late": np.median(late),
            "xrt": audio_s / elapsed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 6 if args.small else 60
    base = speech_clips(n, rng)
    conditions = ["clean", "noise 20", "noise 5", "hum + clicks", "tone"]
    sets = {c: [(condition(c, x, s, e, rng), s, e) for x, s, e in base] for c in conditions}
    demo = demo_positives(n)
    if demo:
        sets["demo positives"] = demo
    print(f"machine: {platform.node()} ({platform.processor() or platform.machine()}), one thread; "
          f"{n} speech clips per condition; truth: 10 ms frames of the clean signal within {TRUTH_DB:g} dB of its loudest")
    print()
    print("| clips | detector | speech found | start error ms (median / p90) | end error ms (median / p90) | end, signed median ms | x real time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, clips in sets.items():
        for method in ("silero", "webrtcvad"):
            r = run(method, clips)
            print(f"| {name} | {method} | {r['found']}/{r['n']} | {r['start_med']:.0f} / {r['start_p90']:.0f} | "
                  f"{r['end_med']:.0f} / {r['end_p90']:.0f} | {r['late']:+.0f} | {r['xrt']:.0f} |")
    ns = non_speech(rng, max(2, n // 3))
    for kind in ("noise", "tone", "clicks"):
        clips = [(x, 0.0, 0.0) for k, x in ns if k == kind]
        for method in ("silero", "webrtcvad"):
            settings = VadSettings(method=method)
            found = sum(analyse(x, settings).has_speech for x, _, _ in clips)
            print(f"| {kind} only (no speech) | {method} | {found}/{len(clips)} (false) | - | - | - | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
