"""Padded, weighted, seeded training batches straight from the feature stores.

A :class:`WakeWordDataset` is a list of labelled :class:`FeatureSet` (each one or more
ragged stores of uint16 feature codes) and a target length of ``frames`` feature frames.
It yields :class:`Batch` objects that unpack as ``features, labels, clip_ids``:

- ``features``: ``[B, frames, 40]`` float32 (the stored codes divided by
  :data:`wakeprep.features.FEATURE_SCALE`), or the uint16 codes with ``dtype="uint16"``;
- ``labels``: ``[B]`` float32, each set's ``label``;
- ``clip_ids``: the ``B`` clip ids (``batch.starts`` says which frames of the clip).

Length handling follows microWakeWord's ``truncation_strategy`` names. A clip longer than
``frames`` is cut to one window: ``random`` (start uniform in ``[0, length - frames]``),
``truncate_start`` (keep the last ``frames``: the start is dropped), ``truncate_end`` (keep
the first ``frames``), or cut into every window ``split`` gives (starts ``0, stride,
2 * stride...`` while the window fits). A clip shorter than ``frames`` is padded with
zeros *before* its first frame, as microWakeWord's ``fixed_length_spectrogram`` does, and a
``split`` set's short clip gives one padded window.

Random draws (which set, which item, where a crop starts, the SpecAugment masks) are
counter-based: each is ``mix64`` (SplitMix64's finaliser) of a key built from
``(seed, epoch, purpose, ...)`` and the draw's position, so an epoch's batches are the
same whatever worker computes them and in whatever order (``docs/dataset.md``).

Memory stays flat in the corpus size: the stores are memory maps, and the dataset keeps
index arrays only (an offset per clip, a start per ``split`` window, one permutation per
set while an epoch runs).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..augment import AugmentParams, augment_batch_cpu, chunk_table, launch_kernel, mask_code, mix64, require_gpu
from ..features import FEATURE_SCALE
from ..store import RaggedStore, StoreError

STRATEGIES = ("random", "truncate_start", "truncate_end", "split")
#: Labels of resource audio in a results folder (noise and impulse responses for waveform
#: augmentation): never training sets.
RESOURCE_LABELS = ("noise", "rir")
#: ``float32(code) * SCALE`` is :func:`wakeprep.features.dequantise`, exactly.
SCALE = np.float32(1 / FEATURE_SCALE)

_G = np.uint64(0x9E3779B97F4A7C15)
_U64 = np.uint64
# What a draw is for: the last-but-one part of its key.
_SET, _PERM, _CROP, _AUG, _EVAL_CROP = 1, 2, 3, 4, 5
#: Training positions planned at a time (set choices and ranks; a few MB of index arrays).
_PLAN_POSITIONS = 1 << 16


# --------------------------------------------------------------------------- random numbers


def draw_key(*parts: int) -> np.uint64:
    """A 64-bit key for one kind of draw: ``k = mix64(parts[0] + G)``, then
    ``k = mix64(k ^ p)`` for each further part (all arithmetic modulo 2**64)."""
    with np.errstate(over="ignore"):
        k = mix64(np.array([int(parts[0]) % 2**64], dtype=np.uint64) + _G)
        for p in parts[1:]:
            k = mix64(k ^ np.uint64(int(p) % 2**64))
    return k[0]


def draws(key: np.uint64, index) -> np.ndarray:
    """``mix64(key + (index + 1) * G)``: one uint64 per index."""
    i = np.asarray(index, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix64(np.uint64(key) + (i + _U64(1)) * _G)


def _uniform(h: np.ndarray) -> np.ndarray:
    """Floats in [0, 1) from the top 53 bits."""
    return (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _below(h: np.ndarray, m) -> np.ndarray:
    """Integers uniform in ``[0, m]`` (``m < 2**32``), from the top 32 bits."""
    m = np.asarray(m, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return (((h >> _U64(32)) * (m + _U64(1))) >> _U64(32)).astype(np.int64)


def permutation(key: np.uint64, n: int) -> np.ndarray:
    """A uniformly random permutation of ``range(n)``: the order of ``draws(key, i)``."""
    return np.argsort(draws(key, np.arange(n)), kind="stable")


# --------------------------------------------------------------------------- sets


@dataclass(frozen=True)
class FeatureSet:
    """One labelled set of clips: one or more feature stores read as one.

    Parameters
    ----------
    name : str
        Shown in messages and :meth:`WakeWordDataset.describe`.
    stores : sequence of path-like
        Ragged stores of uint16 feature codes with rows of 40 bins (``results/mmap/
        {split}/{label}/features``, a part of ``results/augmented/{label}``, any store).
    label : float
        Every clip's label (microWakeWord's ``truth``: 1.0 wake word, 0.0 not).
    sampling_weight : float
        How often training batches draw from this set, relative to the other sets of the
        same label (or to every set when the dataset has no ``label_weights``).
    penalty_weight : float
        Loss weight of this set's clips, returned in ``batch.weights``.
    truncation_strategy : str
        One of :data:`STRATEGIES`.

    Examples
    --------
    >>> FeatureSet("wake", ["results/mmap/train/positive/features"], label=1.0,
    ...            truncation_strategy="truncate_start")              # doctest: +SKIP
    """

    name: str
    stores: tuple = ()
    label: float = 0.0
    sampling_weight: float = 1.0
    penalty_weight: float = 1.0
    truncation_strategy: str = "random"

    def __post_init__(self):
        stores = (self.stores,) if isinstance(self.stores, (str, Path)) else tuple(self.stores)
        object.__setattr__(self, "stores", tuple(Path(p) for p in stores))
        if self.truncation_strategy not in STRATEGIES:
            raise ValueError(
                f"feature set {self.name!r}: truncation_strategy {self.truncation_strategy!r} is not one of "
                f"{list(STRATEGIES)} (microWakeWord's 'none' gives clips of any length, which cannot be batched)"
            )
        for what in ("sampling_weight", "penalty_weight"):
            v = getattr(self, what)
            if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"feature set {self.name!r}: {what} must be a finite number >= 0, got {v!r}")


class _Source:
    """One store, opened for reading: offsets, lengths, ids and a window view of its rows."""

    def __init__(self, path: Path, frames: int, set_name: str):
        self.path = Path(path)
        try:
            store = RaggedStore(self.path)
        except StoreError as e:
            raise StoreError(f"feature set {set_name!r}: {e} (check the set's stores)") from None
        if store.dtype != np.uint16 or len(store.row_shape) != 1:
            raise StoreError(
                f"feature set {set_name!r}: {self.path} holds {store.dtype} rows of {store.row_shape}, "
                "expected uint16 feature codes with rows of (bins,) (a features store, not audio)"
            )
        self.store = store
        self.bins = int(store.row_shape[0])
        self.offsets = store.offsets
        self.lengths = store.lengths
        self.ids = store.ids
        rows = store.data.view(np.ndarray) if isinstance(store.data, np.memmap) else np.asarray(store.data)
        self.rows = rows
        n_rows = rows.shape[0]
        # windows[r] = rows r .. r + frames - 1: a strided view, nothing copied.
        if n_rows >= frames and frames > 0:
            s0, s1 = rows.strides
            self.windows = as_strided(rows, shape=(n_rows - frames + 1, frames, self.bins), strides=(s0, s0, s1), writeable=False)
        else:
            self.windows = None

    def __len__(self) -> int:
        return len(self.lengths)


class _Set:
    """A :class:`FeatureSet` opened: its sources and its items (clips, or ``split`` windows)."""

    def __init__(self, spec: FeatureSet, frames: int, stride: int, first_source: int):
        self.spec = spec
        self.sources = [_Source(p, frames, spec.name) for p in spec.stores]
        self.source_ids = np.arange(first_source, first_source + len(self.sources))
        counts = np.array([len(s) for s in self.sources], dtype=np.int64)
        self.clip_base = np.concatenate([[0], np.cumsum(counts)])  # set clip j is in source k where base[k] <= j < base[k+1]
        self.n_clips = int(self.clip_base[-1])
        self.lengths = np.concatenate([s.lengths for s in self.sources]) if self.sources else np.zeros(0, np.int64)
        if spec.truncation_strategy == "split":
            # window w of clip j starts at frame start[w]; clips up to frames long give one (padded) window
            per = np.where(self.lengths > frames, (self.lengths - frames) // stride + 1, 1)
            self.win_clip = np.repeat(np.arange(self.n_clips, dtype=np.int64), per)
            first = np.concatenate([[0], np.cumsum(per)[:-1]])
            self.win_start = (np.arange(len(self.win_clip), dtype=np.int64) - first[self.win_clip]) * stride
            short = self.lengths[self.win_clip] <= frames
            self.win_start[short] = (self.lengths[self.win_clip] - frames)[short]
            self.n_items = len(self.win_clip)
        else:
            self.win_clip = self.win_start = None
            self.n_items = self.n_clips

    def locate(self, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Set clip indices to (source index within the set, clip index in that source)."""
        k = np.searchsorted(self.clip_base, clip, side="right") - 1
        return k, clip - self.clip_base[k]


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """One batch. Unpacks as ``features, labels, clip_ids``.

    Attributes
    ----------
    features : ndarray ``[B, frames, bins]``
        float32 features (uint16 codes with ``dtype="uint16"``; a CuPy array when SpecAugment
        runs on the GPU).
    labels : ndarray ``[B]`` float32
    clip_ids : list of str
    weights : ndarray ``[B]`` float32
        Each clip's set's ``penalty_weight``.
    sets : ndarray ``[B]`` int32
        Index of each clip's set in ``dataset.sets``.
    starts : ndarray ``[B]`` int64
        First frame of the clip in the window; negative: that many zero frames come first.
    index : int
        The batch's number in its pass (training epoch or evaluation pass).
    first : int
        Position of its first clip in the pass (``index * batch_size``); SpecAugment masks are
        keyed by ``(seed, epoch, first + i)``.
    epoch : int
    """

    features: object
    labels: np.ndarray
    clip_ids: list
    weights: np.ndarray
    sets: np.ndarray
    starts: np.ndarray
    index: int = 0
    first: int = 0
    epoch: int = 0

    def __iter__(self):
        return iter((self.features, self.labels, self.clip_ids))

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class _Plan:
    index: int
    first: int
    sets: np.ndarray  # [B] set index
    clips: np.ndarray  # [B] clip index within the set
    starts: np.ndarray  # [B] window start within the clip (negative: padding)


# --------------------------------------------------------------------------- SpecAugment


@dataclass
class SpecAugment:
    """SpecAugment applied to batches as they are made (nothing written to disk).

    The masks are those of rule ``augment`` (:mod:`wakeprep.augment`, same algorithm and
    kernel), keyed by ``(seed, epoch)`` and the clip's position in the epoch, so every
    epoch sees new masks and the CPU and GPU give the same bytes.

    Parameters
    ----------
    time_masks, time_mask_max, freq_masks, freq_mask_max, mask_value
        As in the ``augment`` section of ``config.yaml`` (sizes in frames and bins,
        ``mask_value`` in feature units).
    seed : int
    device : {'cpu', 'cuda'}
        ``cuda`` runs the fused CuPy kernel and raises :class:`wakeprep.augment.NoGpuError`
        when no GPU is usable; it never falls back to the CPU.

    Examples
    --------
    >>> aug = SpecAugment(time_masks=2, time_mask_max=10, freq_masks=2, freq_mask_max=5, device="cpu")
    >>> ds = WakeWordDataset.from_results("results", frames=150, augment=aug)   # doctest: +SKIP
    """

    time_masks: int = 2
    time_mask_max: int = 10
    freq_masks: int = 2
    freq_mask_max: int = 5
    mask_value: float = 0.0
    seed: int = 0
    device: str = "cpu"
    _gpu_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"SpecAugment device must be 'cpu' or 'cuda', got {self.device!r}")
        self.params(0).check(40)
        if self.device == "cuda":
            require_gpu()  # fail here, with what to do, not at the first batch

    @classmethod
    def from_config(cls, cfg: Mapping | None, *, seed: int = 0, device: str | None = None) -> "SpecAugment":
        """From the ``augment`` section of ``config.yaml`` (its ``seed`` wins over ``seed``
        when set; ``device`` overrides the section's)."""
        cfg = dict(cfg or {})
        keys = ("time_masks", "time_mask_max", "freq_masks", "freq_mask_max", "mask_value")
        kw = {k: cfg[k] for k in keys if k in cfg}
        s = cfg.get("seed")
        return cls(**kw, seed=int(seed if s is None else s), device=device or cfg.get("device", "cpu"))

    def params(self, epoch: int) -> AugmentParams:
        return AugmentParams(
            copies=1, time_masks=int(self.time_masks), time_mask_max=int(self.time_mask_max),
            freq_masks=int(self.freq_masks), freq_mask_max=int(self.freq_mask_max),
            fill=mask_code(self.mask_value), seed=int(draw_key(self.seed, epoch, _AUG)),
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_gpu_cache"] = {}
        return state

    def apply(self, codes, *, epoch: int = 0, first: int = 0, dequantise: bool = True):
        """Mask a ``[B, frames, bins]`` batch of uint16 codes.

        ``codes`` is a NumPy array (``device='cpu'``) or a NumPy or CuPy array
        (``device='cuda'``: the result stays on the GPU). Clip ``i`` is position
        ``first + i`` of ``epoch``. Returns float32 features (or uint16 codes when
        ``dequantise`` is false); ``codes`` is not changed.
        """
        if codes.dtype != np.uint16 or codes.ndim != 3:
            raise ValueError(f"SpecAugment.apply needs a [B, frames, bins] batch of uint16 codes, got {codes.dtype} {codes.shape}")
        B, T, bins = codes.shape
        if bins % 8 or not 8 <= bins <= 64:
            raise ValueError(f"frames of {bins} bins: the masks need a multiple of 8 bins, at most 64")
        p = self._gpu_cache.get(("params", epoch, bins))
        if p is None:
            p = self.params(epoch)
            p.check(bins)
            self._gpu_cache[("params", epoch, bins)] = p
        if self.device == "cpu":
            flat = np.ascontiguousarray(codes).reshape(B * T, bins)
            out = augment_batch_cpu(flat, np.arange(B + 1, dtype=np.int64) * T, p, first).reshape(B, T, bins)
            if not dequantise:
                return out
            res = out.astype(np.float32)
            res *= SCALE
            return res
        import cupy

        src = cupy.ascontiguousarray(cupy.asarray(codes))
        key = (B, T, cupy.cuda.Device().id)
        if key not in self._gpu_cache:
            offsets = np.arange(B + 1, dtype=np.int64) * T
            table = chunk_table(offsets)
            self._gpu_cache[key] = (cupy.asarray(offsets), cupy.asarray(table), len(table))
        d_off, d_tab, n_chunks = self._gpu_cache[key]
        dst = cupy.empty((B, T, bins), dtype=cupy.uint16)
        launch_kernel(src.reshape(B * T, bins), dst.reshape(B * T, bins), d_off, d_tab, n_chunks, p, first, bins)
        if not dequantise:
            return dst
        return _gpu_dequantise()(dst, np.float32(SCALE))


_dequantise_kernel = None


def _gpu_dequantise():
    """``float32(code) * SCALE`` on the GPU: the same IEEE product as the NumPy path."""
    global _dequantise_kernel
    if _dequantise_kernel is None:
        import cupy

        _dequantise_kernel = cupy.ElementwiseKernel(
            "uint16 code, float32 scale", "float32 y", "y = (float)code * scale", "wakeprep_dequantise")
    return _dequantise_kernel


# --------------------------------------------------------------------------- the dataset


def _features_of(results, split: str, label: str) -> Path:
    """The features store a split and label trains on: rule windows' windows where they
    exist (fixed-length positives, cut negatives), else the assembled clips."""
    windows = Path(results) / "windows" / split / label / "features"
    return windows if (windows / "meta.json").is_file() else Path(results) / "mmap" / split / label / "features"


class WakeWordDataset:
    """Labelled feature sets read as fixed-length, weighted, seeded batches.

    Parameters
    ----------
    sets : sequence of FeatureSet
    frames : int
        Frames per example (microWakeWord's ``spectrogram_length``; 10 ms a frame).
    batch_size : int
    seed : int
        With the epoch, decides every draw.
    label_weights : mapping of label -> float, optional
        Share of each label in training batches; a label's share is split among its sets
        by their ``sampling_weight``. Without it, sets are drawn by ``sampling_weight`` alone.
    split_stride : int
        Frames between the starts of consecutive windows of a ``split`` set.
    batches_per_epoch : int, optional
        Default: as many batches as it takes to draw every item once on average
        (``ceil(items / batch_size)`` over the sets that can be drawn).
    augment : SpecAugment, optional
        Masks applied to training batches (not to evaluation passes).
    dtype : {'float32', 'uint16'}
        ``uint16`` yields the stored codes (half the bytes; divide by
        :data:`wakeprep.features.FEATURE_SCALE` yourself, e.g. on the GPU).

    Examples
    --------
    >>> ds = WakeWordDataset.from_results("results", split="train", frames=150, batch_size=256)  # doctest: +SKIP
    >>> for features, labels, clip_ids in ds.batches(epoch=0):                                    # doctest: +SKIP
    ...     ...
    """

    def __init__(
        self,
        sets: Sequence[FeatureSet],
        frames: int,
        *,
        batch_size: int = 128,
        seed: int = 0,
        label_weights: Mapping | None = None,
        split_stride: int = 10,
        batches_per_epoch: int | None = None,
        augment: SpecAugment | None = None,
        dtype: str = "float32",
    ):
        for name, v, low in (("frames", frames, 1), ("batch_size", batch_size, 1), ("split_stride", split_stride, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if batches_per_epoch is not None and (isinstance(batches_per_epoch, bool) or not isinstance(batches_per_epoch, (int, np.integer)) or batches_per_epoch < 1):
            raise ValueError(f"batches_per_epoch must be a positive integer or None, got {batches_per_epoch!r}")
        if dtype not in ("float32", "uint16"):
            raise ValueError(f"dtype must be 'float32' or 'uint16', got {dtype!r}")
        if augment is not None and not isinstance(augment, SpecAugment):
            raise TypeError(f"augment must be a SpecAugment or None, got {type(augment).__name__}")
        sets = list(sets)
        if not sets:
            raise ValueError("a WakeWordDataset needs at least one FeatureSet")
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ValueError(f"feature set names must be unique, got {names}")
        self.specs = sets
        self.frames = int(frames)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.label_weights = dict(label_weights) if label_weights is not None else None
        self.split_stride = int(split_stride)
        self._batches_per_epoch = batches_per_epoch
        self.augment = augment
        self.dtype = dtype
        self._open()

    # -- opening, pickling (DataLoader workers reopen the memory maps instead of copying them)

    def _open(self) -> None:
        self.sets: list[_Set] = []
        n = 0
        for spec in self.specs:
            s = _Set(spec, self.frames, self.split_stride, n)
            n += len(s.sources)
            self.sets.append(s)
        self._sources = [src for s in self.sets for src in s.sources]
        bins = {src.bins for src in self._sources}
        if len(bins) > 1:
            raise StoreError(f"feature sets mix rows of {sorted(bins)} bins: {[str(s.path) for s in self._sources]}")
        self.bins = bins.pop() if bins else 40
        self.probabilities = self._probabilities()
        self._cum = np.cumsum(self.probabilities)
        if self._cum.size and self._cum[-1] > 0:
            self._cum /= self._cum[-1]
            self._cum[-1] = 1.0
        self._labels = np.array([float(s.spec.label) for s in self.sets], dtype=np.float32)
        self._penalty = np.array([float(s.spec.penalty_weight) for s in self.sets], dtype=np.float32)
        self._ids = [np.array(src.ids, dtype=object) for src in self._sources]
        self._perm_cache: dict = {}

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k in (
            "specs", "frames", "batch_size", "seed", "label_weights", "split_stride",
            "_batches_per_epoch", "augment", "dtype")}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def _probabilities(self) -> np.ndarray:
        w = np.array([float(s.spec.sampling_weight) if s.n_items else 0.0 for s in self.sets])
        if self.label_weights is None:
            return w / w.sum() if w.sum() > 0 else w
        labels = [float(s.spec.label) for s in self.sets]
        lw = {float(k): float(v) for k, v in self.label_weights.items()}
        for k, v in lw.items():
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"label_weights[{k}] must be a finite number >= 0, got {v}")
        missing = sorted({lab for lab in labels if lab not in lw})
        if missing:
            raise ValueError(f"label_weights has no weight for label(s) {missing} (labels of the sets: {sorted(set(labels))})")
        p = np.zeros(len(self.sets))
        present = {lab for lab, wi in zip(labels, w) if wi > 0}
        total = sum(lw[lab] for lab in present)
        if total <= 0:
            return p
        for lab in present:
            members = [i for i, x in enumerate(labels) if x == lab]
            sw = w[members].sum()
            for i in members:
                p[i] = lw[lab] / total * w[i] / sw
        return p

    @classmethod
    def from_results(
        cls,
        results="results",
        *,
        split: str = "train",
        frames: int,
        labels: Sequence[str] | None = None,
        truth: Sequence[str] = ("positive",),
        sampling_weights: Mapping[str, float] | None = None,
        penalty_weights: Mapping[str, float] | None = None,
        truncation_strategy: str | Mapping[str, str] | None = None,
        **kwargs,
    ) -> "WakeWordDataset":
        """The stores of one split of a results folder: for each label, the fixed-length
        windows of rule windows (``{results}/windows/{split}/{label}/features``) where that
        rule made them, else the assembled clips (``{results}/mmap/{split}/{label}/features``).

        Parameters
        ----------
        results : path-like
            The workflow's results folder.
        split : str
            ``train``, ``validation`` or ``test``.
        labels : sequence of str, optional
            Which labels to read; default every label folder that has a features store, but the
            resource labels (``noise``, ``rir``: audio that augmentation mixes in, not training data).
        truth : sequence of str
            Labels whose clips get label 1.0; the others get 0.0.
        sampling_weights, penalty_weights : mapping label -> float, optional
            Per label (default 1.0). With one set per label, sampling weights per label are
            the label shares of the batches.
        truncation_strategy : str or mapping label -> str, optional
            Default: ``truncate_start`` for labels in ``truth`` (the wake word ends the clip)
            and ``random`` for the others.
        **kwargs
            Passed to :class:`WakeWordDataset` (``batch_size``, ``seed``, ``augment``...).
        """
        base = Path(results) / "mmap" / split
        if labels is None:
            if not base.is_dir():
                raise StoreError(f"{base} does not exist: run the workflow first (snakemake --cores N), or pass results=")
            labels = sorted(p.parent.parent.name for p in base.glob("*/features/meta.json")
                            if p.parent.parent.name not in RESOURCE_LABELS)
            if not labels:
                raise StoreError(f"{base} has no {{label}}/features stores: run the workflow first (snakemake --cores N)")
        sampling_weights = dict(sampling_weights or {})
        penalty_weights = dict(penalty_weights or {})
        for what, d in (("sampling_weights", sampling_weights), ("penalty_weights", penalty_weights)):
            extra = sorted(set(d) - set(labels))
            if extra:
                raise ValueError(f"{what} names label(s) {extra} that are not read (labels: {list(labels)})")
        sets = []
        for label in labels:
            if isinstance(truncation_strategy, Mapping):
                strategy = truncation_strategy.get(label)
            else:
                strategy = truncation_strategy
            if strategy is None:
                strategy = "truncate_start" if label in truth else "random"
            sets.append(FeatureSet(
                name=label, stores=(_features_of(results, split, label),), label=1.0 if label in truth else 0.0,
                sampling_weight=float(sampling_weights.get(label, 1.0)),
                penalty_weight=float(penalty_weights.get(label, 1.0)), truncation_strategy=strategy,
            ))
        return cls(sets, frames, **kwargs)

    # -- sizes

    @property
    def items(self) -> int:
        """Items of one evaluation pass: clips, and every window of ``split`` sets."""
        return sum(s.n_items for s in self.sets)

    @property
    def batches_per_epoch(self) -> int:
        if self._batches_per_epoch is not None:
            return int(self._batches_per_epoch)
        n = sum(s.n_items for s, p in zip(self.sets, self.probabilities) if p > 0)
        return max(1, math.ceil(n / self.batch_size)) if n else 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def eval_batches_count(self) -> int:
        return math.ceil(self.items / self.batch_size)

    def describe(self) -> str:
        """A table: each set's label, stores, clips, items, strategy and share of training draws."""
        lines = [f"{'set':<16} {'label':>5} {'clips':>9} {'items':>9} {'frames':>11} {'strategy':<15} {'share':>6} {'penalty':>7}"]
        for s, p in zip(self.sets, self.probabilities):
            lines.append(
                f"{s.spec.name:<16} {s.spec.label:>5g} {s.n_clips:>9} {s.n_items:>9} {int(s.lengths.sum()):>11} "
                f"{s.spec.truncation_strategy:<15} {p:>6.3f} {s.spec.penalty_weight:>7g}"
            )
        lines.append(f"frames {self.frames}, batch {self.batch_size}, {self.batches_per_epoch} batches an epoch, seed {self.seed}")
        return "\n".join(lines)

    # -- plans

    def _crop(self, s: _Set, clips: np.ndarray, key_index: np.ndarray, epoch: int, set_index: int, purpose: int) -> np.ndarray:
        """Window start within each clip for a non-split set (negative: padding)."""
        L = s.lengths[clips]
        over = L - self.frames
        strategy = s.spec.truncation_strategy
        if strategy == "truncate_start":
            start = over.copy()
        elif strategy == "truncate_end":
            start = np.zeros_like(over)
        else:  # random
            start = np.zeros_like(over)
            long = over > 0
            if long.any():
                h = draws(draw_key(self.seed, epoch, purpose, set_index), key_index[long])
                start[long] = _below(h, over[long])
        return np.where(over > 0, start, over)  # short clips: padded, the clip ends the window

    def _items_to_plan(self, set_index: int, items: np.ndarray, key_index: np.ndarray, epoch: int,
                       purpose: int = _CROP) -> tuple[np.ndarray, np.ndarray]:
        s = self.sets[set_index]
        if s.win_clip is not None:
            return s.win_clip[items], s.win_start[items]
        return items, self._crop(s, items, key_index, epoch, set_index, purpose)

    def _perm(self, epoch: int, set_index: int, cycle: int) -> np.ndarray:
        k = (epoch, set_index, cycle)
        p = self._perm_cache.get(k)
        if p is None:
            if len(self._perm_cache) > 2 * len(self.sets) + 4:
                self._perm_cache.clear()
            p = permutation(draw_key(self.seed, epoch, _PERM, set_index, cycle), self.sets[set_index].n_items)
            self._perm_cache[k] = p
        return p

    def _train_plans(self, epoch: int) -> Iterator[_Plan]:
        B, nb = self.batch_size, self.batches_per_epoch
        if not nb or self._cum.size == 0 or self._cum[-1] <= 0:
            raise ValueError("no training batches: every feature set is empty or has sampling weight 0\n" + self.describe())
        set_key = draw_key(self.seed, epoch, _SET)
        used = np.zeros(len(self.sets), dtype=np.int64)  # items drawn so far from each set
        last = int(np.flatnonzero(self.probabilities > 0)[-1])
        per_chunk = max(1, _PLAN_POSITIONS // B)
        for b0 in range(0, nb, per_chunk):
            b1 = min(nb, b0 + per_chunk)
            pos = np.arange(b0 * B, b1 * B, dtype=np.int64)
            which = np.searchsorted(self._cum, _uniform(draws(set_key, pos)), side="right")
            which = np.minimum(which, last)
            clips = np.empty(pos.size, dtype=np.int64)
            starts = np.empty(pos.size, dtype=np.int64)
            for si in np.unique(which):
                si = int(si)
                sel = np.flatnonzero(which == si)
                n = self.sets[si].n_items
                rank = used[si] + np.arange(sel.size, dtype=np.int64)
                used[si] += sel.size
                cycle = rank // n
                items = np.empty(sel.size, dtype=np.int64)
                cycles = np.unique(cycle)
                if n < 4096 and cycles.size > 2:
                    keys = np.array([draw_key(self.seed, epoch, _PERM, si, c) for c in cycles], dtype=np.uint64)
                    with np.errstate(over="ignore"):
                        h = mix64(keys[:, None] + (np.arange(n, dtype=np.uint64)[None, :] + _U64(1)) * _G)
                    perms = np.argsort(h, axis=1, kind="stable")
                    items[:] = perms[np.searchsorted(cycles, cycle), rank % n]
                else:
                    for c in cycles:
                        m = cycle == c
                        items[m] = self._perm(epoch, si, int(c))[rank[m] % n]
                clips[sel], starts[sel] = self._items_to_plan(si, items, pos[sel], epoch)
            for b in range(b0, b1):
                a, z = (b - b0) * B, (b - b0 + 1) * B
                yield _Plan(b, b * B, which[a:z].astype(np.int32), clips[a:z], starts[a:z])

    def _eval_plans(self, shuffle: bool, epoch: int) -> Iterator[_Plan]:
        B = self.batch_size
        sizes = np.array([s.n_items for s in self.sets], dtype=np.int64)
        base = np.concatenate([[0], np.cumsum(sizes)])
        total = int(base[-1])
        order = permutation(draw_key(self.seed, epoch, _PERM, 2**32), total) if shuffle else None
        for b, a in enumerate(range(0, total, B)):
            pos = np.arange(a, min(a + B, total), dtype=np.int64)
            g = order[pos] if order is not None else pos
            which = (np.searchsorted(base, g, side="right") - 1).astype(np.int32)
            clips = np.empty(pos.size, dtype=np.int64)
            starts = np.empty(pos.size, dtype=np.int64)
            for si in np.unique(which):
                sel = np.flatnonzero(which == si)
                items = g[sel] - base[si]
                clips[sel], starts[sel] = self._items_to_plan(int(si), items, items, epoch, _EVAL_CROP)
            yield _Plan(b, a, which, clips, starts)

    # -- assembly

    def _resolve(self, plan: _Plan) -> tuple[_Plan, np.ndarray, np.ndarray]:
        """Each item's source (global index) and clip within it; the plan reordered so that
        the items of one source are contiguous (stable: draw order within a source kept)."""
        B = len(plan.sets)
        src = np.empty(B, dtype=np.int64)
        local = np.empty(B, dtype=np.int64)
        set_ids = np.unique(plan.sets)
        for si in set_ids:
            s = self.sets[int(si)]
            sel = slice(None) if set_ids.size == 1 else np.flatnonzero(plan.sets == si)
            if len(s.sources) == 1:
                src[sel] = s.source_ids[0]
                local[sel] = plan.clips[sel]
            else:
                k, loc = s.locate(plan.clips[sel])
                src[sel] = s.source_ids[k]
                local[sel] = loc
        if B > 1 and np.any(src[1:] < src[:-1]):
            order = np.argsort(src, kind="stable")
            plan = _Plan(plan.index, plan.first, plan.sets[order], plan.clips[order], plan.starts[order])
            src, local = src[order], local[order]
        return plan, src, local

    def _assemble(self, plan: _Plan, src: np.ndarray, local: np.ndarray, dtype) -> np.ndarray:
        """The plan's windows as ``[B, frames, bins]`` of ``dtype`` (uint16 codes, or float32
        codes not yet scaled). ``src`` must be sorted (see :meth:`_resolve`)."""
        B, T = len(plan.sets), self.frames
        out = np.empty((B, T, self.bins), dtype=dtype)
        cuts = np.concatenate([[0], np.flatnonzero(src[1:] != src[:-1]) + 1, [B]])
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            source = self._sources[int(src[a])]
            row = source.offsets[local[a:b]] + plan.starts[a:b]
            if source.windows is not None and row.min() >= 0:
                np.copyto(out[a:b], source.windows[row])  # one gather (and cast) of the run's windows
                continue
            for i, r0 in enumerate(row.tolist(), start=a):  # before the store's first row, tiny stores
                out[i] = 0
                lo = max(r0, 0)
                if r0 + T > lo:
                    out[i, lo - r0 :] = source.rows[lo : r0 + T]
        padded = np.flatnonzero(plan.starts < 0)
        if padded.size:  # zeros before each short clip: rows i * T + [0, pad) of the batch
            n = -plan.starts[padded]
            skip = np.cumsum(n) - n
            rows = np.repeat(padded * T - skip, n) + np.arange(int(n.sum()))
            row_type = np.dtype((np.void, self.bins * out.itemsize))  # a frame as one element: a faster fancy assignment
            out.reshape(B * T, self.bins).view(row_type).reshape(B * T)[rows] = np.zeros((), row_type)
        return out

    def _batch(self, plan: _Plan, epoch: int, train: bool) -> Batch:
        plan, src, local = self._resolve(plan)
        aug = self.augment if train else None
        if aug is None and self.dtype == "float32":
            feats = self._assemble(plan, src, local, np.float32)
            feats *= SCALE
        else:
            codes = self._assemble(plan, src, local, np.uint16)
            if aug is not None:
                feats = aug.apply(codes, epoch=epoch, first=plan.first, dequantise=self.dtype == "float32")
            else:
                feats = codes
        cuts = np.concatenate([[0], np.flatnonzero(src[1:] != src[:-1]) + 1, [len(src)]])
        clip_ids = []
        for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            clip_ids += self._ids[int(src[a])][local[a:b]].tolist()
        return Batch(
            features=feats, labels=self._labels[plan.sets], clip_ids=clip_ids,
            weights=self._penalty[plan.sets], sets=plan.sets, starts=plan.starts,
            index=plan.index, first=plan.first, epoch=epoch,
        )

    # -- iteration

    def batches(self, epoch: int = 0, *, part: int = 0, parts: int = 1) -> Iterator[Batch]:
        """Training batches of ``epoch``: ``batches_per_epoch`` of ``batch_size`` each.

        Each position draws a set by weight, then the set's next item in a permutation of
        its items keyed by ``(seed, epoch, set, cycle)`` (a set drawn more often than it has
        items starts a new permutation). With ``parts > 1``, this yields batches ``part``,
        ``part + parts``... only: the parts are disjoint and together give the epoch.
        """
        _check_part(part, parts)
        plans = self._train_plans(int(epoch))
        next_plan = next(plans)  # errors here, not at the first batch
        return self._make(itertools.chain([next_plan], plans), int(epoch), True, part, parts)

    def _make(self, plans, epoch: int, train: bool, part: int, parts: int) -> Iterator[Batch]:
        for plan in plans:
            if plan.index % parts == part:
                yield self._batch(plan, epoch, train)

    def eval_batches(self, *, part: int = 0, parts: int = 1, shuffle: bool = False, epoch: int = 0) -> Iterator[Batch]:
        """Every item of every set exactly once (a ``split`` set's windows, each clip of the
        others), set after set in store order (or shuffled by ``(seed, epoch)``); the last
        batch may be short. No SpecAugment. ``random`` crops are keyed by ``(seed, epoch)``."""
        _check_part(part, parts)
        return self._make(self._eval_plans(bool(shuffle), int(epoch)), int(epoch), False, part, parts)

    def __iter__(self) -> Iterator[Batch]:
        return self.batches(0)


def _check_part(part: int, parts: int) -> None:
    if isinstance(parts, bool) or not isinstance(parts, (int, np.integer)) or parts < 1:
        raise ValueError(f"parts must be a positive integer, got {parts!r}")
    if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or not 0 <= part < parts:
        raise ValueError(f"part must be an integer in [0, {parts}), got {part!r}")
