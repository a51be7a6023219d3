"""The demo's noise and room impulse response sets, made offline and deterministically.

``noise/``: coloured noise and hum-like tones, 4 s each (longer than the 3.2 s windows);
``rir/``: room impulse responses of shoebox rooms by the image-source method
(pyroomacoustics), with reverberation times from 0.15 to 0.7 s. Both are written as
16 kHz 16-bit WAV, so they go through convert like any corpus (labels ``noise`` and
``rir``) and are split like any corpus.

Every random choice comes from ``numpy.random.default_rng(seed)``, so the same seed gives
the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def _noise_clip(kind: int, rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    slope = (-6.0, -3.0, 0.0, 3.0)[kind % 4]  # brown, pink, white, blue (dB/octave)
    spec *= (f / 1000.0) ** (slope / 20 / np.log10(2))
    y = np.fft.irfft(spec, n)
    if kind % 5 == 4:  # a hum: mains harmonics over the noise
        t = np.arange(n) / RATE
        y = y / np.std(y) * 0.2 + sum(np.sin(2 * np.pi * 50 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    level = 10 ** (rng.uniform(-30, -15) / 20)  # RMS in dBFS
    return (y / np.sqrt(np.mean(y**2)) * level).astype(np.float32)


def _rir(rng: np.random.Generator) -> np.ndarray:
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 8), rng.uniform(2.5, 6), rng.uniform(2.3, 3.2)])
    rt60 = rng.uniform(0.15, 0.7)
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(absorption), max_order=min(max_order, 40))
    room.add_source(dims * rng.uniform(0.2, 0.8, 3))
    room.add_microphone(dims * rng.uniform(0.2, 0.8, 3))
    room.compute_rir()
    h = np.asarray(room.rir[0][0], dtype=np.float64)
    h = h[: int(RATE * rt60 * 1.2)]
    return (h / np.abs(h).max() * 0.9).astype(np.float32)


def make_noise_and_rirs(folder, seed: int = 0, noise_clips: int = 10, rirs: int = 10) -> dict:
    """Write ``folder/noise/noise_NN.wav`` and ``folder/rir/rir_NN.wav``; returns the counts.

    Ten of each by default, so that a 0.8/0.1/0.1 split leaves every split some.
    """
    folder = Path(folder)
    rng = np.random.default_rng([seed, 13])  # a stream of its own: the rest of the demo is unaffected
    (folder / "noise").mkdir(parents=True, exist_ok=True)
    (folder / "rir").mkdir(parents=True, exist_ok=True)
    for i in range(noise_clips):
        sf.write(folder / "noise" / f"noise_{i:02d}.wav", _noise_clip(i, rng, 4.0), RATE, subtype="PCM_16")
    for i in range(rirs):
        sf.write(folder / "rir" / f"rir_{i:02d}.wav", _rir(rng), RATE, subtype="PCM_16")
    return {"noise": noise_clips, "rir": rirs}
