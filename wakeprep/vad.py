"""Where speech is in a clip, and how far it stands above the noise.

:func:`analyse` gives, per clip of int16 16 kHz audio, a :class:`SpeechInfo`: the start and
end of speech (seconds), the fraction of the clip that is speech, and a signal-to-noise
estimate. The convert step records these in the clip tables (``speech_start_s``,
``speech_end_s``, ``speech_ratio``, ``snr_db``) for the labels in ``vad.labels``; speech
boundaries place positives in fixed-length windows, the ratio keeps non-speech clips out
of speaker clustering, and the SNR feeds the optional quality gate.

Two detectors (``vad.method``), chosen by measurement (docs/vad.md):

- ``silero`` (default): the Silero VAD network, whose weights ship in the ``silero-vad``
  wheel, run with ONNX Runtime on one thread so that its output does not depend on the
  machine's cores (no torch import: a convert job starts in a fraction of a second). It
  tells speech from tones and loud stationary noise.
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


#: Silero's window and the context (samples at 16 kHz) that precedes each window.
SILERO_WINDOW = 512
SILERO_CONTEXT = 64
#: The model file, from the silero-vad wheel: the whole-sequence 16 kHz export, which takes
#: every window of a clip in one call.
SILERO_ONNX = "silero_vad_16k_sequence.onnx"


@lru_cache(maxsize=1)
def _silero_session():
    """An ONNX Runtime session on one thread (deterministic, and no torch import)."""
    import importlib.util
    import os

    import onnxruntime

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("silero-vad is not installed: run ./setup.sh, or set vad.method: webrtcvad")
    path = os.path.join(spec.submodule_search_locations[0], "data", SILERO_ONNX)
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def silero_probs(clip: np.ndarray) -> np.ndarray:
    """Silero's speech probability per 512-sample window of an int16 clip.

    The windows (the last zero-padded), each with the 64 samples before it, are the ones
    ``silero_vad.get_speech_timestamps`` feeds its model one call at a time; here they go
    through the model's whole-sequence export in one call (about 1,000x real time on one
    core, probabilities within 1e-6 of the torch model's).
    """
    n = -(-len(clip) // SILERO_WINDOW)
    if not n:
        return np.zeros(0, np.float32)
    wave = np.zeros(SILERO_CONTEXT + n * SILERO_WINDOW, np.float32)
    wave[SILERO_CONTEXT: SILERO_CONTEXT + len(clip)] = np.asarray(clip, np.float32) / np.float32(32768)
    rows = np.lib.stride_tricks.sliding_window_view(wave, SILERO_CONTEXT + SILERO_WINDOW)[::SILERO_WINDOW][:n]
    state = np.zeros((1, 1, 128), np.float32)
    return _silero_session().run(None, {"input": np.ascontiguousarray(rows), "h": state, "c": state})[0]


def silero_segments(probs: np.ndarray, n_samples: int, threshold: float) -> list[tuple[int, int]]:
    """Speech segments (sample ranges) from window probabilities, as ``get_speech_timestamps``.

    Speech starts at a window at or above ``threshold`` and ends where the probability has
    stayed below ``threshold - 0.15`` for :data:`SILERO_MIN_SILENCE_MS`; segments shorter
    than :data:`SILERO_MIN_SPEECH_MS` are dropped; no padding is added.
    """
    min_speech = RATE * SILERO_MIN_SPEECH_MS // 1000
    min_silence = RATE * SILERO_MIN_SILENCE_MS // 1000
    neg = max(threshold - 0.15, 0.01)
    segments, start, temp_end = [], None, 0
    for k, p in enumerate(probs):
        at = k * SILERO_WINDOW
        if p >= threshold:
            temp_end = 0
            if start is None:
                start = at
        elif p < neg and start is not None:
            temp_end = temp_end or at
            if at - temp_end >= min_silence:
                if temp_end - start > min_speech:
                    segments.append((start, temp_end))
                start, temp_end = None, 0
    if start is not None and n_samples - start > min_speech:
        segments.append((start, n_samples))
    return segments


def _flags(segments: list[tuple[int, int]], n_samples: int) -> np.ndarray:
    flags = np.zeros(n_samples // FRAME, dtype=bool)
    for s, e in segments:
        flags[s // FRAME: -(-e // FRAME)] = True
    return flags


def _info(samples: np.ndarray, speech: np.ndarray) -> SpeechInfo:
    if not speech.any():
        return SpeechInfo(None, None, 0.0, None)
    first, last = _edges(samples, speech)
    start, end = first * FRAME / RATE, (last + 1) * FRAME / RATE
    return SpeechInfo(float(start), float(end), float(speech.mean()), _snr_db(samples, speech))


def analyse_many(clips: list[np.ndarray], settings: VadSettings = VadSettings()) -> list[SpeechInfo]:
    """:func:`analyse` of each of many int16 16 kHz clips."""
    clips = [np.asarray(c, dtype=np.int16) for c in clips]
    if settings.method == "silero":
        speech = [_flags(silero_segments(silero_probs(c), len(c), settings.threshold), len(c)) for c in clips]
    else:
        speech = [_runs(speech_frames(c), MIN_RUN) for c in clips]
    return [_info(c, s) for c, s in zip(clips, speech)]


def analyse(samples: np.ndarray, settings: VadSettings = VadSettings()) -> SpeechInfo:
    """Speech boundaries, speech ratio and SNR of int16 16 kHz mono ``samples``."""
    return analyse_many([samples], settings)[0]


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
