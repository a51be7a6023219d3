"""Where speech is in a clip, and how far it stands above the noise.

:func:`analyse` gives, per clip of int16 16 kHz audio, a :class:`SpeechInfo`: the start and
end of speech (seconds), the fraction of the clip that is speech, and a signal-to-noise
estimate. The convert step records these in the clip tables (``speech_start_s``,
``speech_end_s``, ``speech_ratio``, ``snr_db``) for the labels in ``vad.labels``; speech
boundaries place positives in fixed-length windows, the ratio keeps non-speech clips out
of speaker clustering, and the SNR feeds the optional quality gate.

Two detectors (``vad.method``), chosen by measurement (docs/vad.md):

- ``silero`` (default): the Silero VAD network, whose weights ship in the ``silero-vad``
  wheel; run on one torch thread so that its output does not depend on the machine's
  cores. It tells speech from tones and loud stationary noise.
- ``webrtcvad``: WebRTC's GMM detector over 10 ms frames, about 40x faster, but it calls
  tones and loud noise speech. Boundaries: the first and last runs of at least
  :data:`MIN_RUN` speech frames.

SNR: the mean power of the 10 ms frames inside speech over that of the frames outside
(the quietest tenth of all frames when fewer than a tenth are outside), with the noise
floored at one int16 step squared, so digital silence gives a large finite figure rather
than infinity. Without speech there is no SNR (``None``).

Example
-------
>>> info = analyse(samples, VadSettings())      # int16, 16 kHz, mono
>>> info.has_speech, info.end_s
(True, 0.83)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

RATE = 16000
#: Samples per VAD frame (10 ms; webrtcvad accepts 10, 20 or 30 ms).
FRAME = 160
#: Consecutive speech frames that count as speech for the boundaries.
MIN_RUN = 3
#: webrtcvad aggressiveness, 0 (keeps most) to 3 (keeps least).
MODE = 2
#: Silero's shortest speech and shortest pause inside speech.
SILERO_MIN_SPEECH_MS = 100
SILERO_MIN_SILENCE_MS = 100
#: Noise power floor, in int16 steps squared.
NOISE_FLOOR = 1.0
#: Speech edges are trimmed to the frames within this many dB of the loudest speech frame.
EDGE_DB = 45.0


@dataclass(frozen=True)
class VadSettings:
    """Speech detection settings (``vad:`` in config.yaml)."""

    method: str = "silero"
    threshold: float = 0.5
    labels: tuple = ("positive", "negative", "hard_negative")

    @classmethod
    def from_config(cls, cfg: dict | None) -> "VadSettings":
        cfg = dict(cfg or {})
        if "labels" in cfg:
            cfg["labels"] = tuple(cfg["labels"])
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in cfg.items() if k in keys})

    def wants(self, label: str) -> bool:
        return label in self.labels


@dataclass(frozen=True)
class SpeechInfo:
    """Speech facts of one clip; times in seconds from its first sample."""

    start_s: float | None
    end_s: float | None
    ratio: float
    snr_db: float | None

    @property
    def has_speech(self) -> bool:
        return self.start_s is not None

    def columns(self) -> dict:
        """The clip-table cells (empty where there is no speech)."""
        r = lambda v: None if v is None else round(v, 3)  # noqa: E731
        return {"speech_start_s": r(self.start_s), "speech_end_s": r(self.end_s),
                "speech_ratio": round(self.ratio, 4), "snr_db": r(self.snr_db)}


def speech_frames(samples: np.ndarray, mode: int = MODE) -> np.ndarray:
    """One bool per whole 10 ms frame: does webrtcvad hear speech in it."""
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    pcm = np.ascontiguousarray(samples, dtype=np.int16)
    n = len(pcm) // FRAME
    data = pcm[: n * FRAME].tobytes()
    step = FRAME * 2
    return np.fromiter((vad.is_speech(data[i * step:(i + 1) * step], RATE) for i in range(n)), dtype=bool, count=n)


def _runs(flags: np.ndarray, min_run: int) -> np.ndarray:
    """Flags kept only where they belong to a run of at least ``min_run`` trues."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    kept = np.zeros_like(flags)
    for s, e in zip(starts, ends):
        if e - s >= min_run:
            kept[s:e] = True
    return kept


def _snr_db(samples: np.ndarray, speech: np.ndarray) -> float | None:
    if not speech.any():
        return None
    n = len(speech)
    power = _frame_power(samples, n)
    signal = power[speech].mean()
    quiet = power[~speech]
    if len(quiet) < max(1, n // 10):
        quiet = np.sort(power)[: max(1, n // 10)]
    noise = max(quiet.mean(), NOISE_FLOOR)
    return float(10 * np.log10(max(signal - noise, NOISE_FLOOR) / noise))


@lru_cache(maxsize=1)
def _silero_model():
    import torch
    from silero_vad import load_silero_vad

    torch.set_num_threads(1)
    return load_silero_vad()


def silero_frames(samples: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """One bool per whole 10 ms frame: inside a speech segment found by Silero VAD."""
    import torch
    from silero_vad import get_speech_timestamps

    pcm = np.asarray(samples, dtype=np.int16)
    wave = torch.from_numpy(pcm.astype(np.float32) / 32768.0)
    segments = get_speech_timestamps(
        wave, _silero_model(), threshold=threshold, sampling_rate=RATE,
        min_speech_duration_ms=SILERO_MIN_SPEECH_MS, min_silence_duration_ms=SILERO_MIN_SILENCE_MS,
        speech_pad_ms=0,
    )
    flags = np.zeros(len(pcm) // FRAME, dtype=bool)
    for seg in segments:
        flags[seg["start"] // FRAME: -(-seg["end"] // FRAME)] = True
    return flags


def analyse(samples: np.ndarray, settings: VadSettings = VadSettings()) -> SpeechInfo:
    """Speech boundaries, speech ratio and SNR of int16 16 kHz mono ``samples``."""
    if settings.method == "silero":
        speech = silero_frames(samples, settings.threshold)
    else:
        speech = _runs(speech_frames(samples), MIN_RUN)
    if not speech.any():
        return SpeechInfo(None, None, 0.0, None)
    first, last = _edges(np.asarray(samples), speech)
    start, end = first * FRAME / RATE, (last + 1) * FRAME / RATE
    return SpeechInfo(float(start), float(end), float(speech.mean()), _snr_db(np.asarray(samples), speech))


def _frame_power(samples: np.ndarray, n: int) -> np.ndarray:
    frames = samples[: n * FRAME].astype(np.float64).reshape(n, FRAME)
    return (frames * frames).mean(axis=1)


def _edges(samples: np.ndarray, speech: np.ndarray) -> tuple[int, int]:
    """First and last speech frame, trimmed to frames within EDGE_DB of the loudest one.

    Detectors decide on windows of 30 ms or more and lag at the edges (Silero ends speech
    about 60 ms late on espeak-ng speech); trimming quiet frames puts the end back where
    the signal ends, and changes nothing where noise fills the edges.
    """
    idx = np.flatnonzero(speech)
    power = _frame_power(samples, len(speech))
    loud = np.flatnonzero(power[idx[0]: idx[-1] + 1] >= power[speech].max() * 10 ** (-EDGE_DB / 10))
    return idx[0] + loud[0], idx[0] + loud[-1]
