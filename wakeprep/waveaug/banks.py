"""Noise and room impulse response sets: clips of corpora, split like any corpus.

A split's noise set is every clip of that split whose label is one of
``augment_audio.noise_labels`` (default ``noise`` and ``background``), its RIR set every
clip labelled ``rir``: the assembled audio stores ``results/mmap/{split}/{label}/audio``.
Train copies therefore only ever meet train-split noise and impulse responses, and
validation/test copies only theirs.
"""

from __future__ import annotations

import numpy as np

from ..store import RaggedStore


class AugmentInputError(ValueError):
    """A noise or RIR set cannot be used; the message names it and what to do."""


class ClipSet:
    """The int16 clips of one split's noise (or RIR) set, read from ragged audio stores.

    Clips are numbered in store order, stores in the order given; nothing is loaded
    until a batch asks for its clips (memory maps), so memory does not grow with the set.

    Examples
    --------
    >>> noise = ClipSet("noise", "train", ["results/mmap/train/background/audio"])   # doctest: +SKIP
    >>> noise.segments(np.array([0]), np.array([0]), 51200)[0].shape                   # doctest: +SKIP
    (1, 51200)
    """

    def __init__(self, kind: str, split: str, stores=(), corpora=()):
        self.kind, self.split, self.corpora = kind, split, list(corpora)
        self.stores = [RaggedStore(p) for p in stores]
        for s in self.stores:
            if s.dtype != np.int16 or s.row_shape != ():
                raise AugmentInputError(f"{s.path}: a {kind} set must be int16 audio samples, got {s.dtype} rows {s.row_shape}")
        self.ids = [i for s in self.stores for i in s.ids]
        self.lengths = np.concatenate([s.lengths for s in self.stores]) if self.stores else np.zeros(0, np.int64)
        self._where = [(k, i) for k, s in enumerate(self.stores) for i in range(len(s))]

    def __len__(self) -> int:
        return len(self.ids)

    def clip(self, i: int) -> np.ndarray:
        k, j = self._where[int(i)]
        return self.stores[k][j]

    def read(self, i: int, start: int = 0, count: int | None = None) -> np.ndarray:
        """Samples ``start:start + count`` of clip ``i``, read with ``pread`` (not through
        the memory map, so resident memory does not grow with the set)."""
        k, j = self._where[int(i)]
        s = self.stores[k]
        n = int(s.lengths[j])
        start = min(max(int(start), 0), n)
        count = n - start if count is None else max(0, min(int(count), n - start))
        if count == 0:
            return np.zeros(0, dtype=np.int16)
        return np.fromfile(s.path / "data.bin", dtype=np.int16, count=count, offset=(int(s.offsets[j]) + start) * 2)

    def _name(self) -> str:
        what = f"corpora {', '.join(self.corpora)}" if self.corpora else "no corpus"
        return f"the {self.kind} set of split '{self.split}' ({what})"

    def check(self, window_samples: int, rate: int = 16000) -> None:
        """Raise :class:`AugmentInputError` when the set cannot serve (see module docs):
        empty (no corpus, all files rejected, or none in this split), silent, or, for
        noise, no clip as long as the window."""
        key = "AddBackgroundNoise" if self.kind == "noise" else "RIR"
        fix = f"add audio to it, or set augment_audio.probabilities.{key}: 0"
        if not len(self):
            raise AugmentInputError(
                f"augment_audio: {self._name()} has no usable clip (empty corpus, every file rejected by convert, "
                f"or none assigned to this split; see results/clips.tsv): {fix}")
        if not any(np.any(self.read(i)) for i in range(len(self))):  # stops at the first clip with sound
            raise AugmentInputError(f"augment_audio: every clip of {self._name()} is silent: {fix}")
        if self.kind == "noise" and int(self.lengths.max()) < window_samples:
            longest = int(np.argmax(self.lengths))
            raise AugmentInputError(
                f"augment_audio: every clip of {self._name()} is shorter than the {window_samples / rate:g} s window "
                f"(longest: {self.ids[longest]}, {self.lengths[longest] / rate:g} s): {fix}")

    def segments(self, index: np.ndarray, offset: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Noise rows ``[R, n]`` float32: clip ``index[r]`` from sample ``offset[r]``, repeated
        to ``n`` samples when shorter, and the RMS of each before repetition (float64)."""
        out = np.empty((len(index), n), dtype=np.float32)
        level = np.zeros(len(index))
        for r, (i, o) in enumerate(zip(index, offset)):  # one slice per noisy row, from the memory map
            seg = self.read(i, o, n).astype(np.float32) * np.float32(1 / 32768)
            level[r] = np.sqrt(np.mean(np.square(seg, dtype=np.float64))) if seg.size else 0.0
            if seg.size == 0:
                out[r] = 0
            elif seg.size >= n:
                out[r] = seg[:n]
            else:
                out[r] = np.resize(seg, n)  # repeated, as audiomentations concatenates it
        return out, level

    def responses(self, index: np.ndarray) -> np.ndarray:
        """Impulse responses ``[R, longest]`` float32, zero-padded."""
        L = max([int(self.lengths[i]) for i in index], default=1)
        out = np.zeros((len(index), max(L, 1)), dtype=np.float32)
        for r, i in enumerate(index):
            h = self.read(i)
            out[r, : h.size] = np.asarray(h, dtype=np.float32) * np.float32(1 / 32768)
        return out


def open_sets(split: str, noise_stores=(), rir_stores=(), noise_corpora=(), rir_corpora=()) -> tuple[ClipSet, ClipSet]:
    """The noise and RIR sets of ``split`` from their audio stores."""
    return (ClipSet("noise", split, noise_stores, noise_corpora),
            ClipSet("RIR", split, rir_stores, rir_corpora))
