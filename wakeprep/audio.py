"""Decoding, downmixing, resampling and checking one audio file.

Every file ends as a :class:`Converted`: either ``ok`` with int16 mono 16 kHz
samples, or ``rejected`` with a reason code from :data:`REASONS` and a detail
message. Nothing here raises for bad audio.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from .corpus import printable

TARGET_RATE = 16000
INT16_SCALE = 32768.0

#: Reject reason codes, with what each means.
REASONS = {
    "missing": "the file vanished or is a broken link",
    "unreadable": "neither libsndfile nor sox could decode it, or it could not be opened",
    "empty": "zero bytes or zero samples",
    "truncated": "the header declares more audio data than the file holds",
    "too_short": "shorter than audio.min_duration_s",
    "too_long": "longer than audio.max_duration_s",
    "silent": "peak level below audio.silence_dbfs",
    "non_finite": "NaN or infinite samples",
    "duplicate_id": "another file of the corpus has the same path without extension",
    "clipped": "more than audio.max_clipped_fraction of the samples at full scale",
    "low_snr": "speech SNR estimate below audio.min_snr_db (labels in vad.labels, clips with speech)",
}


@dataclass
class AudioSettings:
    """Conversion settings (``audio:`` in config.yaml)."""

    target_rate: int = TARGET_RATE
    min_duration_s: float = 0.1
    max_duration_s: float = 1800.0
    silence_dbfs: float = -70.0
    resample_quality: str = "VHQ"
    #: Quality gates, off when None: largest fraction of full-scale samples, and
    #: smallest speech SNR in dB (applied in :func:`wakeprep.shards.convert_shard`,
    #: where the SNR is known).
    max_clipped_fraction: float | None = None
    min_snr_db: float | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "AudioSettings":
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in (cfg or {}).items() if k in keys})


@dataclass
class Converted:
    """Result of converting one file."""

    status: str
    reason: str = ""
    detail: str = ""
    samples: np.ndarray | None = None
    source_rate: int = 0
    channels: int = 0
    format: str = ""
    subtype: str = ""
    source_frames: int = 0
    decoder: str = ""
    peak_dbfs: float = float("-inf")
    clipped: int = 0
    full_scale: int = 0
    sha256: str = ""

    @property
    def duration_s(self) -> float:
        return 0.0 if self.samples is None else len(self.samples) / TARGET_RATE


def _reject(reason: str, detail: str, **kw) -> Converted:
    assert reason in REASONS, reason
    return Converted("rejected", reason, detail, **kw)


class _TooLong(Exception):
    pass


# 16-bit PCM WAV, which libsndfile turns into float32 as sample / 32768 (an exact product):
# read as int16 and scaled here, the same bits at a third of libsndfile's conversion cost
# (bench/convert_features.py, "decoding"; FLAC gains nothing so, and keeps libsndfile's
# float32). tests/test_convert.py holds the bits equal.
_INT16_READ = {("WAV", "PCM_16"), ("WAVEX", "PCM_16")}


def _decode_soundfile(source, max_s: float = float("inf")):
    with sf.SoundFile(source) as f:
        info = (f.samplerate, f.channels, f.format, f.subtype, f.frames)
        if f.frames > 0 and f.frames / f.samplerate > max_s:
            raise _TooLong(info)
        if (f.format, f.subtype) not in _INT16_READ:
            return f.read(dtype="float32", always_2d=True), info
        pcm = f.read(dtype="int16", always_2d=True)
    x = pcm.astype(np.float32)
    x *= np.float32(1 / 32768)
    return x, info


def _declared_frames(path: str) -> int:
    """Frames the header of a file libsndfile can open declares; 0 if unknown."""
    try:
        return int(sf.info(path).frames)
    except Exception:
        return 0


def file_sha256(path: str) -> tuple[str, int]:
    """Checksum and size of a file, read in 1 MiB blocks."""
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def _decode_sox(path: str, max_s: float):
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is not installed")
    proc = subprocess.run(
        [sox, "-V1", path, "-t", "wav", "-e", "floating-point", "-b", "32", "-"],
        capture_output=True,
        timeout=max(60.0, max_s / 10),
    )
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(lines[-1].replace(sox, "sox") if lines else f"sox exited with {proc.returncode}")
    x, (rate, ch, _, _, frames) = _decode_soundfile(io.BytesIO(proc.stdout))
    return x, (rate, ch, "SOX:" + os.path.splitext(path)[1].lstrip(".").upper(), "FLOAT", frames)


def wav_truncation(path: str) -> str:
    """For a RIFF/WAVE file whose ``data`` chunk declares more bytes than the file
    holds, a message saying so; else ``""``. (libsndfile reads such files silently.)"""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return ""
            size = os.fstat(f.fileno()).st_size
            pos = 12
            while pos + 8 <= size:
                f.seek(pos)
                cid, n = struct.unpack("<4sI", f.read(8))
                if cid == b"data":
                    have = size - pos - 8
                    if n not in (0, 0xFFFFFFFF) and n > have:
                        return f"data chunk declares {n} bytes, the file holds {have}"
                    return ""
                pos += 8 + n + (n & 1)
    except OSError:
        return ""
    return ""


def resample_to_16k(x: np.ndarray, rate: int, quality: str = "VHQ") -> np.ndarray:
    """Mono float32 at ``rate`` to float32 at 16 kHz with libsoxr."""
    if rate == TARGET_RATE:
        return x
    return soxr.resample(x, rate, TARGET_RATE, quality=quality).astype(np.float32, copy=False)


def to_int16(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Float in [-1, 1) to int16 with rounding; returns samples and how many were clipped."""
    y = np.rint(x * INT16_SCALE)
    clipped = int(np.count_nonzero((y > 32767) | (y < -32768)))
    return np.clip(y, -32768, 32767).astype(np.int16), clipped


def downmix(x: np.ndarray) -> np.ndarray:
    """Mono float32 from ``[frames, channels]`` float32: the channels' mean, the same bits as
    ``x.mean(axis=1, dtype=np.float32)``.

    NumPy reduces a row of fewer than 8 values one after the other, so for 2 to 7 channels
    adding the columns in order and dividing gives its exact result, about 30x faster (a
    row-wise mean over two values costs more than decoding the file). From 8 channels on
    NumPy sums in another order; those keep ``mean``.
    """
    channels = x.shape[1]
    if channels == 1:
        return np.ascontiguousarray(x[:, 0])
    if channels >= 8:
        return np.ascontiguousarray(x.mean(axis=1, dtype=np.float32))
    acc = x[:, 0] + x[:, 1]
    for j in range(2, channels):
        acc += x[:, j]
    acc /= np.float32(channels)
    return acc


def full_scale_count(pcm: np.ndarray) -> int:
    """Samples of int16 ``pcm`` at full scale (32767 or -32768): the clipped ones, whether
    they were clipped here or already in the source."""
    return int(np.count_nonzero((pcm >= 32767) | (pcm <= -32768)))


def convert_file(path: str, settings: AudioSettings) -> Converted:
    """Decode, check, downmix, resample and quantise one file. Never raises for bad audio."""
    try:
        sha, size = file_sha256(path)
    except FileNotFoundError as e:
        return _reject("missing", f"{e.strerror}: {printable(path)}")
    except OSError as e:
        return _reject("unreadable", f"cannot open: {e.strerror or e}")
    if size == 0:
        return _reject("empty", "file has zero bytes", sha256=sha)
    try:
        x, (rate, ch, fmt, subtype, frames) = _decode_soundfile(path, settings.max_duration_s)
        decoder = "soundfile"
    except _TooLong as e:
        rate, ch, fmt, subtype, frames = e.args[0]
        return _reject(
            "too_long",
            f"{frames / rate:.2f} s > max_duration_s {settings.max_duration_s}",
            source_rate=int(rate), channels=int(ch), format=fmt, subtype=subtype,
            source_frames=int(frames), decoder="soundfile", sha256=sha,
        )
    except Exception as e1:  # libsndfile cannot read it: try sox
        try:
            x, (rate, ch, fmt, subtype, frames) = _decode_sox(path, settings.max_duration_s)
            decoder = "sox"
        except Exception as e2:
            return _reject("unreadable", f"soundfile: {e1}; sox: {e2}", sha256=sha)
        declared = _declared_frames(path)
        if declared and x.shape[0] < declared:
            return _reject(
                "truncated",
                f"header declares {declared} frames, only {x.shape[0]} decode (soundfile: {e1})",
                source_rate=int(rate), channels=int(ch), format=fmt, subtype=subtype,
                source_frames=int(x.shape[0]), decoder=decoder, sha256=sha,
            )
    meta = dict(source_rate=int(rate), channels=int(ch), format=fmt, subtype=subtype, decoder=decoder, sha256=sha)
    meta["source_frames"] = int(x.shape[0])
    if fmt == "WAV" and (why := wav_truncation(path)):
        return _reject("truncated", why, **meta)
    if x.shape[0] == 0:
        return _reject("empty", "decoded to zero samples", **meta)
    duration = x.shape[0] / rate
    if duration > settings.max_duration_s:
        return _reject("too_long", f"{duration:.2f} s > max_duration_s {settings.max_duration_s}", **meta)
    if duration < settings.min_duration_s:
        return _reject("too_short", f"{duration:.4f} s < min_duration_s {settings.min_duration_s}", **meta)
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        return _reject("non_finite", f"{bad} of {x.size} samples are NaN or infinite", **meta)
    y = resample_to_16k(downmix(x), int(rate), settings.resample_quality)
    pcm, clipped = to_int16(y)
    peak = int(np.max(np.abs(pcm.astype(np.int32)))) if len(pcm) else 0
    peak_dbfs = 20 * np.log10(peak / INT16_SCALE) if peak else float("-inf")
    meta.update(peak_dbfs=float(peak_dbfs), clipped=clipped, full_scale=full_scale_count(pcm))
    if peak_dbfs < settings.silence_dbfs:
        return _reject("silent", f"peak {peak_dbfs:.1f} dBFS < silence_dbfs {settings.silence_dbfs}", **meta)
    if settings.max_clipped_fraction is not None and meta["full_scale"] > settings.max_clipped_fraction * len(pcm):
        return _reject(
            "clipped",
            f"{meta['full_scale']} of {len(pcm)} samples ({meta['full_scale'] / len(pcm):.4f}) at full scale "
            f"> max_clipped_fraction {settings.max_clipped_fraction}",
            **meta,
        )
    return Converted("ok", samples=pcm, **meta)
