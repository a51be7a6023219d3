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


#: Largest noise or RIR set (int16 bytes) that :class:`DeviceBank` copies to the device
#: whole; a larger set is gathered on the host batch by batch (``ClipSet.segments``).
DEVICE_BANK_BYTES = 4 << 30
#: Samples per piece when a set is copied to the device.
UPLOAD_SAMPLES = 32 << 20


class DeviceBank:
    """A :class:`ClipSet`'s samples in one int16 array on the backend's device, uploaded once
    per job, so each batch's noise segments and impulse responses are gathered there: no
    host read per clip, no upload of float32 segments per batch. Gives the same numbers
    as ``ClipSet.segments``/``responses`` (the RMS from an exact integer sum of squares).

    A set larger than :data:`DEVICE_BANK_BYTES` stays on the host (the ``ClipSet`` path).
    """

    def __init__(self, clips: ClipSet, be, max_bytes: int = DEVICE_BANK_BYTES):
        self.clips, self.be = clips, be
        total = int(clips.lengths.sum())
        self.resident = 0 < total and 2 * total <= max_bytes
        if not self.resident:
            return
        xp = be.xp
        base = np.cumsum([0] + [int(st.offsets[-1]) for st in clips.stores])
        self.starts = np.concatenate([base[k] + st.offsets[:-1] for k, st in enumerate(clips.stores)]).astype(np.int64)
        self.data = xp.empty(int(base[-1]), dtype=xp.int16)
        for k, st in enumerate(clips.stores):  # in pieces: host memory stays bounded by UPLOAD_SAMPLES
            n = int(st.offsets[-1])
            for a in range(0, n, UPLOAD_SAMPLES):
                piece = np.fromfile(st.path / "data.bin", dtype=np.int16, count=min(UPLOAD_SAMPLES, n - a), offset=2 * a)
                self.data[int(base[k]) + a : int(base[k]) + a + piece.size] = be.asarray(piece)
        self.d_starts = be.asarray(self.starts)
        self.d_lengths = be.asarray(np.asarray(clips.lengths, dtype=np.int64))
        self._xp = xp

    def segments(self, index: np.ndarray, offset: np.ndarray, n: int):
        """As :meth:`ClipSet.segments`, both results on the device."""
        be = self.be
        if not self.resident:
            segs, level = self.clips.segments(index, offset, n)
            return be.asarray(segs), be.asarray(level)
        xp = self._xp
        idx = be.asarray(np.asarray(index, dtype=np.int64))
        off = be.asarray(np.asarray(offset, dtype=np.int64))
        length = self.d_lengths[idx]
        start = xp.minimum(xp.maximum(off, 0), length)
        count = xp.minimum(length - start, n)[:, None]  # samples of the segment before repetition
        j = xp.arange(n, dtype=xp.int64)[None, :]
        pos = self.d_starts[idx][:, None] + start[:, None] + j % xp.maximum(count, 1)
        k = self.data[xp.minimum(pos, self.data.size - 1)]
        k = xp.where(count > 0, k, xp.int16(0))
        segs = k.astype(xp.float32) * xp.float32(1 / 32768)
        kk = k.astype(xp.int64)
        sumsq = xp.sum(xp.where(j < count, kk * kk, 0), axis=1)  # exact: the host's float64 sum is exact too
        c = count[:, 0]
        level = xp.where(c > 0, xp.sqrt(sumsq.astype(xp.float64) * 2.0**-30 / xp.maximum(c, 1)), 0.0)
        return segs, level

    def responses(self, index: np.ndarray):
        """As :meth:`ClipSet.responses`, on the device."""
        be = self.be
        if not self.resident or len(index) == 0:
            return be.asarray(self.clips.responses(index) if len(index) else np.zeros((0, 1), np.float32))
        xp = self._xp
        index = np.asarray(index, dtype=np.int64)
        L = max(int(self.clips.lengths[index].max()), 1)
        idx = be.asarray(index)
        length = self.d_lengths[idx][:, None]
        j = xp.arange(L, dtype=xp.int64)[None, :]
        pos = self.d_starts[idx][:, None] + xp.minimum(j, xp.maximum(length - 1, 0))
        k = xp.where(j < length, self.data[xp.minimum(pos, self.data.size - 1)], xp.int16(0))
        return k.astype(xp.float32) * xp.float32(1 / 32768)


def open_sets(split: str, noise_stores=(), rir_stores=(), noise_corpora=(), rir_corpora=()) -> tuple[ClipSet, ClipSet]:
    """The noise and RIR sets of ``split`` from their audio stores."""
    return (ClipSet("noise", split, noise_stores, noise_corpora),
            ClipSet("RIR", split, rir_stores, rir_corpora))
