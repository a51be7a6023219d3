"""A small demo corpus, spoken by espeak-ng and made of seeded noise.

Speech is written at several sample rates, channel counts and formats, so that the
demo exercises every path of the conversion step. Layout::

    {folder}/positive/{voice}/{take}.{ext}        the wake phrase
    {folder}/negative/{voice}/{take}.{ext}        other phrases
    {folder}/hard_negative/{voice}/{take}.{ext}   phrases that sound like the wake phrase
    {folder}/background/noise_{k}.{ext}           white, pink and brown noise
    {folder}/noise/noise_{k}.wav, {folder}/rir/rir_{k}.wav   noise and room impulse
                                                  responses for augment_audio (demo_resources)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .demo_resources import make_noise_and_rirs

WAKE_PHRASE = "hey jarvis"
NEGATIVE_PHRASES = [
    "what is the weather like today",
    "turn the music down please",
    "I will be home in ten minutes",
    "can you open the window",
    "the kitchen light is still on",
    "set a timer for the oven",
]
HARD_NEGATIVE_PHRASES = ["hey jarvin", "hey travis", "hey service", "a jar of peas"]
#: Voices a speaker encoder tells apart (espeak-ng's accents alone sound like one speaker to
#: Resemblyzer; see docs/clustering.md), so that the demo's split has speakers to spread.
VOICES = ["en-us", "en-us+f3", "en-029+f2", "en-us+Annie", "en-us+Andy", "en-us+klatt",
          "en-us+steph", "en-us+Marco", "en-us+grandma", "en-us+Lee"]

#: (extension, soundfile format, subtype, sample rate, channels): cycled over clips.
VARIANTS = [
    ("wav", "WAV", "PCM_16", 16000, 1),
    ("flac", "FLAC", "PCM_24", 44100, 1),
    ("ogg", "OGG", "VORBIS", 48000, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 22050, 1),
    ("wav", "WAV", "FLOAT", 48000, 2),
    ("wav", "WAV", "PCM_U8", 8000, 1),
    ("flac", "FLAC", "PCM_16", 22050, 6),
]


def espeak(text: str, voice: str, speed: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng; returns float32 mono samples and their rate."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: run ./setup.sh (or apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "speech.wav")
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", out, text], check=True, capture_output=True)
        x, rate = sf.read(out, dtype="float32")
    return x, rate


def write_variant(path: Path, x: np.ndarray, rate: int, variant) -> Path:
    """Write mono float ``x`` (at ``rate``) in one of :data:`VARIANTS`; returns the path."""
    ext, fmt, subtype, out_rate, channels = variant
    y = soxr.resample(x, rate, out_rate, quality="VHQ") if out_rate != rate else x
    if channels > 1:
        gains = np.linspace(1.0, 0.6, channels, dtype=np.float32)
        y = y[:, None] * gains[None, :]
    path = path.with_suffix("." + ext)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(y, -1, 1).astype(np.float32), out_rate, format=fmt, subtype=subtype)
    return path


def noise(kind: str, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise at about -20 dBFS RMS."""
    n = int(seconds * rate)
    white = rng.standard_normal(n)
    if kind == "white":
        y = white
    elif kind == "brown":
        y = np.cumsum(white)
        y -= np.linspace(y[0], y[-1], n)
    else:  # pink: 1/f shaping in the frequency domain
        spec = np.fft.rfft(white)
        f = np.arange(len(spec))
        spec[1:] /= np.sqrt(f[1:])
        spec[0] = 0
        y = np.fft.irfft(spec, n)
    y = y / (np.sqrt(np.mean(y**2)) + 1e-12) * 0.1
    return y.astype(np.float32)


def make_demo_corpus(folder, seed: int = 0, takes: int = 4, voices=VOICES) -> dict:
    """Generate the demo corpus into ``folder`` (built beside it, then renamed).

    Returns the number of files per label.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent if folder.parent.exists() else None))
    counts = {}
    k = 0

    def spoken(label, phrases, n_per_voice):
        nonlocal k
        for v, voice in enumerate(voices):
            vname = voice.replace("+", "_")
            for t in range(n_per_voice):
                text = phrases[(v + t) % len(phrases)]
                speed = int(rng.integers(130, 190))
                pitch = int(rng.integers(30, 70))
                x, rate = espeak(text, voice, speed, pitch)
                write_variant(tmp / label / vname / f"{t:03d}", x, rate, VARIANTS[k % len(VARIANTS)])
                k += 1
        counts[label] = len(voices) * n_per_voice

    spoken("positive", [WAKE_PHRASE], takes)
    spoken("negative", NEGATIVE_PHRASES, takes)
    spoken("hard_negative", HARD_NEGATIVE_PHRASES, max(1, takes // 2))
    kinds = ["white", "pink", "brown"]
    for i in range(6):
        variant = VARIANTS[i % len(VARIANTS)]
        x = noise(kinds[i % 3], 3.0, 48000, rng)
        write_variant(tmp / "background" / f"noise_{i:02d}", x, 48000, variant)
    counts["background"] = 6
    counts.update(make_noise_and_rirs(tmp, seed))  # its own random stream: the files above are unchanged
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(tmp, folder)
    return counts
