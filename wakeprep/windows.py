"""Fixed-length training windows: placed positives and cut negatives.

microWakeWord trains on spectrograms of one length. Its own positives are fixed-length
clips (3.2 s) whose wake word ends 0.195-0.205 s before the end, so the model learns to
fire right after the word in a stream; its long negatives are cut into windows
(``split_spectrogram_duration_s``). Rule ``windows`` does both, per split and label, from
the assembled stores (``results/mmap/{split}/{label}``):

**place** (labels in ``windows.place_labels``, default ``positive``). Each clip is put in a
window of ``positive_s`` seconds of silence so that its speech end (``speech_end_s`` from
the clip table, found by :mod:`wakeprep.vad`) lies ``jitter`` before the window's end.
``jitter`` is a whole number of samples, uniform in ``[end_jitter_min_s, end_jitter_max_s]``,
drawn from a counter-based hash of ``(seed, clip id, copy)``::

    k0 = mix64(seed + G);  k1 = mix64(k0 ^ blake2b64(clip id));  k2 = mix64(k1 ^ copy)
    h  = mix64(k2 + G * (1 + PURPOSE))                   (mix64, G: SplitMix64, see augment)
    jitter = lo + (((h >> 32) * (hi - lo + 1)) >> 32)    lo, hi: the range in samples

so a clip's window does not depend on which other clips exist. Audio of the clip before
the window's start is dropped (a clip whose *speech* is longer than the window is counted
as ``speech_longer_than_window``: it keeps its end); audio after ``jitter`` past the speech
end is dropped too. Features are computed on each window with
:func:`wakeprep.features.micro_features_u16`, so every placed item has the same frame
count. A clip without detected speech is never placed by guesswork: with
``windows.no_speech: reject`` (default) it is left out and listed in ``windows.json``;
with ``clip_end`` it is placed as if its speech ended at its last sample, and listed too.

**cut** (labels of ``windows.cut_labels`` that are not placed, default ``negative``,
``hard_negative`` and ``background``, in every split except the validation and test sets
of ``export.ambient_labels``, which keep long clips; see :func:`window_mode`). The clip's features are cut, as microWakeWord cuts spectrograms:
a clip of at most ``skip + W`` frames is kept whole; a longer one gives windows of
``W = negative_s / 10 ms`` frames starting at ``skip, skip + H, ...`` (``H = hop_s / 10
ms``) while they fit, plus one window ending at the clip's last frame when the last one
stops short of it, so every frame after ``skip`` is in a window. ``skip`` (``skip_s``,
default 0.2 s, microWakeWord's 20 frames) drops the frontend's start-up frames.

Output folder (``results/windows/{split}/{label}``)::

    features/     ragged store of uint16 feature codes, one item per window
    audio/        ragged store of the int16 windows (placed labels only)
    windows.tsv   one row per window: its id, source clip, copy, kind and where it came from
    windows.json  settings, counts, and the clips that were truncated or had no speech

Window ids: the clip id for a placed window (copy 0) and for a whole clip; ``{clip
id}#w{k}`` (k from 0, four digits) for the k-th cut window of a clip.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .features import FEATURE_SCALE
from .rng import mix64
from .fileio import atomic_write
from .store import RaggedStore, RaggedWriter, atomic_dir
from .table import read_table, write_table

log = logging.getLogger("wakeprep")

RATE = 16000
#: Feature frame step of the micro frontend, in samples (10 ms).
STEP = 160
#: Draw index of the end jitter in the counter-based generator (other purposes use others).
PURPOSE_JITTER = 0x6A17
_G = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1

WINDOW_COLUMNS = ["window_id", "clip_id", "copy", "kind", "start_frame", "frames", "offset_samples",
                  "jitter_s", "speech_end_s", "note"]
PLACE_LABELS = ("positive", "hard_negative")
CUT_LABELS = ("negative", "hard_negative", "background")


def _mix64(z: int) -> int:
    """:func:`wakeprep.rng.mix64` (SplitMix64's finaliser) of one Python integer."""
    return int(mix64(np.uint64(z & _MASK)))


def clip_key(clip_id: str) -> int:
    """A stable 64-bit number for a clip id (BLAKE2b, 8 bytes, little-endian)."""
    return int.from_bytes(hashlib.blake2b(clip_id.encode("utf-8"), digest_size=8).digest(), "little")


def draw_jitter(seed: int, clip_id: str, copy: int, lo: int, hi: int) -> int:
    """End jitter in samples, uniform in ``[lo, hi]``, keyed on ``(seed, clip id, copy)``."""
    if hi < lo:
        raise ValueError(f"jitter range [{lo}, {hi}] is empty")
    k0 = _mix64(seed + _G)
    k1 = _mix64(k0 ^ clip_key(clip_id))
    k2 = _mix64(k1 ^ copy)
    h = _mix64(k2 + _G * (1 + PURPOSE_JITTER))
    return lo + (((h >> 32) * (hi - lo + 1)) >> 32)


@dataclass(frozen=True)
class WindowSettings:
    """Window settings (``windows:`` in config.yaml); see the module docstring.

    Example
    -------
    >>> s = WindowSettings.from_config({"positive_s": 3.2})
    >>> s.positive_samples, s.negative_frames
    (51200, 320)
    """

    positive_s: float = 3.2
    end_jitter_min_s: float = 0.195
    end_jitter_max_s: float = 0.205
    place_labels: tuple = ("positive",)
    no_speech: str = "reject"
    negative_s: float = 3.2
    hop_s: float = 3.2
    skip_s: float = 0.2
    cut_labels: tuple = CUT_LABELS

    @classmethod
    def from_config(cls, cfg: dict | None) -> "WindowSettings":
        cfg = dict(cfg or {})
        for k in ("place_labels", "cut_labels"):
            if k in cfg:
                cfg[k] = tuple(cfg[k])
        keys = cls.__dataclass_fields__
        unknown = sorted(set(cfg) - set(keys))
        if unknown:
            raise ValueError(f"windows.{unknown[0]}: unknown key (allowed: {', '.join(keys)})")
        s = cls(**cfg)
        s.check()
        return s

    def check(self) -> None:
        if self.no_speech not in ("reject", "clip_end"):
            raise ValueError(f"windows.no_speech: {self.no_speech!r} is not one of 'reject', 'clip_end'")
        if not 0 <= self.end_jitter_min_s <= self.end_jitter_max_s < self.positive_s:
            raise ValueError(
                f"windows.end_jitter_min_s ({self.end_jitter_min_s}) must be >= 0 and <= windows.end_jitter_max_s "
                f"({self.end_jitter_max_s}), which must be below windows.positive_s ({self.positive_s})")
        if not 0 < self.hop_s:
            raise ValueError(f"windows.hop_s must be above 0, not {self.hop_s}")
        if self.negative_frames < 1:
            raise ValueError(f"windows.negative_s ({self.negative_s}) is shorter than one 10 ms frame")
        bad = [l for l in self.place_labels if l not in PLACE_LABELS]
        if bad:
            raise ValueError(f"windows.place_labels: {bad[0]!r} cannot be placed (allowed: {', '.join(PLACE_LABELS)})")

    @property
    def positive_samples(self) -> int:
        return int(round(self.positive_s * RATE))

    @property
    def jitter_samples(self) -> tuple[int, int]:
        return int(round(self.end_jitter_min_s * RATE)), int(round(self.end_jitter_max_s * RATE))

    @property
    def negative_frames(self) -> int:
        return int(round(self.negative_s * RATE / STEP))

    @property
    def hop_frames(self) -> int:
        return max(1, int(round(self.hop_s * RATE / STEP)))

    @property
    def skip_frames(self) -> int:
        return int(round(self.skip_s * RATE / STEP))


def window_mode(split: str, label: str, settings: WindowSettings, ambient_labels=("background",)) -> str:
    """What rule ``windows`` does with a split and label: ``place``, ``cut`` or ``whole``.

    Placed labels are placed in every split. Other labels in ``cut_labels`` are cut in
    every split except the validation and test sets of ``ambient_labels`` (microWakeWord's
    ``*_ambient`` sets), which keep long clips for false accepts per hour.
    """
    if label in settings.place_labels:
        return "place"
    if label in settings.cut_labels and not (split != "train" and label in ambient_labels):
        return "cut"
    return "whole"


# --------------------------------------------------------------------------- placement


def place(samples: np.ndarray, speech_end: int, window: int, jitter: int) -> tuple[np.ndarray, int]:
    """``samples`` placed in ``window`` samples of silence so that sample ``speech_end``
    (the end of speech, exclusive) lands ``jitter`` samples before the window's end.

    Returns the window and the offset of the clip's first sample in it (negative when
    the clip's start was cut off).
    """
    offset = window - jitter - speech_end
    out = np.zeros(window, dtype=np.int16)
    a, b = max(0, offset), min(window, offset + len(samples))
    if b > a:
        out[a:b] = samples[a - offset: b - offset]
    return out, offset


def cut_starts(frames: int, width: int, hop: int, skip: int) -> list[int]:
    """First frames of the windows of a clip of ``frames`` frames (see the module docstring);
    ``[]`` when the clip is kept whole (``frames <= skip + width``)."""
    if frames <= skip + width:
        return []
    starts = list(range(skip, frames - width + 1, hop))
    if starts[-1] + width < frames:
        starts.append(frames - width)
    return starts


def _float(v: str | None):
    return None if v in (None, "") else float(v)


def make_windows(assembled, out_dir, split: str, label: str, settings: WindowSettings, *, seed: int,
                 ambient_labels=("background",)) -> dict:
    """Write the windows of one assembled split and label (see the module docstring).

    Parameters
    ----------
    assembled : path-like
        ``results/mmap/{split}/{label}`` (``features/``, ``audio/``, ``clips.tsv`` with the
        speech columns).
    out_dir : path-like
        Folder to create, atomically.
    settings : WindowSettings
    seed : int
        Seed of the end jitter.

    Returns
    -------
    dict
        What ``windows.json`` records.
    """
    assembled, out_dir = Path(assembled), Path(out_dir)
    mode = window_mode(split, label, settings, ambient_labels)
    rows = {r["clip_id"]: r for r in read_table(assembled / "clips.tsv")}
    feats = RaggedStore(assembled / "features")
    report = {"split": split, "label": label, "mode": mode, "seed": seed, "settings": asdict(settings),
              "clips": len(feats), "windows": 0, "frames": 0, "frames_per_window": None,
              "speech_longer_than_window": [], "no_speech": [], "no_speech_action": settings.no_speech,
              "cut_clips": 0, "whole_clips": 0}
    index: list[dict] = []
    with atomic_dir(out_dir) as tmp:
        if mode == "place":
            _place_all(assembled, tmp, feats, rows, settings, seed, report, index, split, label)
        else:
            _cut_all(tmp, feats, settings, mode, report, index, split, label)
        write_table(tmp / "windows.tsv", index, WINDOW_COLUMNS)
        atomic_write(tmp / "windows.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
    log.info("windows %s/%s (%s): %d clips -> %d windows; speech longer than the window: %d; no speech: %d (%s)",
             split, label, mode, report["clips"], report["windows"], len(report["speech_longer_than_window"]),
             len(report["no_speech"]), settings.no_speech)
    return report


def _place_all(assembled, tmp, feats, rows, settings, seed, report, index, split, label):
    from .features import micro_features_u16

    audio = RaggedStore(assembled / "audio")
    n, (lo, hi) = settings.positive_samples, settings.jitter_samples
    attrs = {"split": split, "label": label, "made_by": "windows", "mode": "place", "seed": seed,
             "window_samples": n, "sample_rate": RATE}
    with RaggedWriter(tmp / "features", np.uint16, (40,), attrs={**attrs, "frontend": "pymicro-features", "scale": FEATURE_SCALE}) as wf, \
            RaggedWriter(tmp / "audio", np.int16, (), attrs=attrs) as wa:
        for clip_id, samples in audio.items():
            row = rows.get(clip_id, {})
            end_s = _float(row.get("speech_end_s"))
            start_s = _float(row.get("speech_start_s"))
            note = ""
            if end_s is None:
                report["no_speech"].append(clip_id)
                if settings.no_speech == "reject":
                    continue
                end, start = len(samples), 0
                note = "no_speech_clip_end"
            else:
                end = min(len(samples), int(round(end_s * RATE)))
                start = int(round((start_s or 0.0) * RATE))
            copy = 0
            jitter = draw_jitter(seed, clip_id, copy, lo, hi)
            window, offset = place(samples, end, n, jitter)
            if offset + start < 0:
                report["speech_longer_than_window"].append(clip_id)
                note = (note + ";" if note else "") + "speech_longer_than_window"
            codes = micro_features_u16(window)
            wa.append(clip_id, window)
            wf.append(clip_id, codes)
            if report["frames_per_window"] is None:
                report["frames_per_window"] = int(len(codes))
            elif len(codes) != report["frames_per_window"]:
                raise AssertionError(f"{clip_id}: {len(codes)} frames, other windows have {report['frames_per_window']}")
            report["windows"] += 1
            report["frames"] += int(len(codes))
            index.append({"window_id": clip_id, "clip_id": clip_id, "copy": copy, "kind": "placed",
                          "start_frame": 0, "frames": len(codes), "offset_samples": offset,
                          "jitter_s": f"{jitter / RATE:.7f}", "speech_end_s": f"{(offset + end) / RATE:.7f}",
                          "note": note})
    if report["no_speech"]:
        log.warning("windows %s/%s: %d clip(s) without detected speech (%s): %s", split, label, len(report["no_speech"]),
                    "left out" if settings.no_speech == "reject" else "placed by their last sample",
                    ", ".join(report["no_speech"][:10]))
    if report["speech_longer_than_window"]:
        log.warning("windows %s/%s: %d clip(s) with speech longer than the %.3f s window keep their end: %s", split, label,
                    len(report["speech_longer_than_window"]), settings.positive_s,
                    ", ".join(report["speech_longer_than_window"][:10]))


def _cut_all(tmp, feats, settings, mode, report, index, split, label):
    width, hop, skip = settings.negative_frames, settings.hop_frames, settings.skip_frames
    attrs = {"split": split, "label": label, "made_by": "windows", "mode": mode, "window_frames": width,
             "hop_frames": hop, "skip_frames": skip, "frontend": "pymicro-features", "scale": FEATURE_SCALE}
    with RaggedWriter(tmp / "features", np.uint16, (40,), attrs=attrs) as wf:
        for clip_id, codes in feats.items():
            starts = cut_starts(len(codes), width, hop, skip) if mode == "cut" else []
            if not starts:
                wf.append(clip_id, codes)
                report["whole_clips"] += 1
                index.append({"window_id": clip_id, "clip_id": clip_id, "copy": 0, "kind": "whole",
                              "start_frame": 0, "frames": len(codes)})
                report["windows"] += 1
                report["frames"] += int(len(codes))
                continue
            report["cut_clips"] += 1
            for k, s in enumerate(starts):
                wid = f"{clip_id}#w{k:04d}"
                wf.append(wid, codes[s: s + width])
                index.append({"window_id": wid, "clip_id": clip_id, "copy": 0, "kind": "cut",
                              "start_frame": s, "frames": width})
                report["windows"] += 1
                report["frames"] += width
