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
    make_reproducible(path)
    return path


#: Stream serial number written into every OGG page (libsndfile draws a random one).
OGG_SERIAL = 0x77616B65  # "wake"


def make_reproducible(path) -> None:
    """Rewrite what encoders vary from run to run, so that the same samples give the same
    bytes: the stream serial number of OGG files (random in libvorbis/libsndfile; set to
    :data:`OGG_SERIAL`, page checksums recomputed) and the time stamp of the ``PEAK`` chunk
    that libsndfile adds to float WAV files (set to 0)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if data[:4] == b"OggS":
        changed = _fix_ogg_serial(data, OGG_SERIAL)
    elif data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        changed = _zero_peak_timestamp(data)
    else:
        return
    if changed:
        path.write_bytes(bytes(data))


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for b in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ b]
    return crc


def _fix_ogg_serial(data: bytearray, serial: int) -> bool:
    """Set every page's serial number to ``serial`` (a single-stream file) and its CRC."""
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            raise ValueError(f"not an OGG page at byte {pos}")
        nseg = data[pos + 26]
        size = 27 + nseg + sum(data[pos + 27:pos + 27 + nseg])
        data[pos + 14:pos + 18] = serial.to_bytes(4, "little")
        data[pos + 22:pos + 26] = b"\0\0\0\0"
        data[pos + 22:pos + 26] = _ogg_crc(bytes(data[pos:pos + size])).to_bytes(4, "little")
        pos += size
    return True


def _zero_peak_timestamp(data: bytearray) -> bool:
    """Zero the time stamp of a WAV file's ``PEAK`` chunk (version, timestamp, peaks)."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = bytes(data[pos:pos + 4]), int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"PEAK":
            data[pos + 12:pos + 16] = b"\0\0\0\0"
            return True
        pos += 8 + size + (size & 1)
    return False


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


def make_demo_corpus(folder, seed: int = 0, takes: int = 4, voices=VOICES, marker: str | None = None) -> dict:
    """Generate the demo corpus into ``folder`` (built beside it, then renamed).

    The same ``seed`` and ``takes`` give byte-identical files (see
    :func:`make_reproducible`). ``marker``, a file name, is written into the folder
    last, with the parameters and the files made: the workflow reads it to know that
    the demo is complete and need not be generated again. Returns the number of files
    per label.
    """
    import json

    from .store import atomic_dir

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    counts = {}
    k = 0
    with atomic_dir(folder) as tmp:

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
        if marker:
            info = {"seed": seed, "takes": takes, "voices": list(voices), "files": counts}
            (tmp / marker).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return counts
