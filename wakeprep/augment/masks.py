"""The mask spec (:class:`AugmentParams`), its draws, and the CPU path.

:func:`draw_masks` is the NumPy twin of the kernel's draws (``specaugment.cu``);
:func:`augment_batch_cpu` applies them to a ragged batch. Both compute the integers that
the GPU computes, so the two paths write the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import FEATURE_SCALE
from ..rng import GOLDEN, mix64

#: Name and version of the mask algorithm, recorded in every output.
ALGORITHM = "wakeprep-specaugment-v1"

_GOLDEN = np.uint64(GOLDEN)
_LOW32 = np.uint64(0xFFFFFFFF)
_U64 = np.uint64


@dataclass(frozen=True)
class AugmentParams:
    """Everything that decides the augmented bytes: what the kernel and the CPU path take.

    Parameters
    ----------
    copies : int
        Augmented copies per clip (>= 1).
    time_masks, freq_masks : int
        Masks of each kind per copy (>= 0).
    time_mask_max : int
        Largest time mask, in frames; a clip shorter than that is masked at most whole.
    freq_mask_max : int
        Largest frequency mask, in bins (at most the bin count).
    fill : int
        uint16 code written into masked cells (see :func:`mask_code`).
    seed : int
        Seed of the masks, 0 <= seed < 2**64.

    Examples
    --------
    >>> p = AugmentParams(copies=2, time_masks=2, time_mask_max=10, freq_masks=2,
    ...                   freq_mask_max=5, fill=mask_code(0.0), seed=1234)
    >>> p.check(n_bins=40)
    """

    copies: int
    time_masks: int
    time_mask_max: int
    freq_masks: int
    freq_mask_max: int
    fill: int
    seed: int

    def check(self, n_bins: int | None = None) -> None:
        """Raise ``ValueError`` naming the first bad value; ``n_bins``, when given, bounds
        ``freq_mask_max``."""
        for name in ("copies", "time_masks", "time_mask_max", "freq_masks", "freq_mask_max", "fill", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"augment.{name} must be an integer, got {value!r}")
        if self.copies < 1:
            raise ValueError(f"augment.copies must be at least 1, got {self.copies}")
        for name in ("time_masks", "time_mask_max", "freq_masks", "freq_mask_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if self.time_mask_max >= 2**31:
            raise ValueError(f"augment.time_mask_max must be < 2**31, got {self.time_mask_max}")
        if n_bins is not None and self.freq_mask_max > n_bins:
            raise ValueError(f"augment.freq_mask_max must be at most the {n_bins} bins, got {self.freq_mask_max}")
        if not 0 <= self.fill <= 0xFFFF:
            raise ValueError(f"mask code must fit uint16 (0..65535), got {self.fill}")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"augment.seed must be in [0, 2**64), got {self.seed}")


def mask_code(mask_value: float) -> int:
    """uint16 code of a mask value given in feature units: ``round(v * 25.6)``.

    Rounds half to even, as :func:`wakeprep.features.quantise` does.
    """
    code = int(np.rint(float(mask_value) * FEATURE_SCALE))
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"augment.mask_value {mask_value} gives code {code}, outside uint16 (0..65535)")
    return code


@dataclass
class Masks:
    """Masks drawn for ``n`` clips: arrays of shape ``[n, copies, masks]`` (int64).

    ``time_start``/``time_size`` are in frames, ``freq_start``/``freq_size`` in bins;
    mask ``j`` of copy ``c`` of clip ``i`` covers ``[start, start + size)``.
    """

    time_start: np.ndarray
    time_size: np.ndarray
    freq_start: np.ndarray
    freq_size: np.ndarray


def _draws(k2: np.ndarray, draw: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return mix64(k2[..., None] + (draw.astype(np.uint64) + _U64(1)) * _GOLDEN)


def _size_start(h: np.ndarray, max_size: int, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Size uniform in [0, max_size] clamped to ``n``, start uniform in [0, n - size]."""
    with np.errstate(over="ignore"):
        size = ((h >> _U64(32)) * _U64(max_size + 1)) >> _U64(32)
        size = np.minimum(size, n)
        start = ((h & _LOW32) * (n - size + _U64(1))) >> _U64(32)
    return start.astype(np.int64), size.astype(np.int64)


def draw_masks(clip_index, lengths, params: AugmentParams, n_bins: int = 40) -> Masks:
    """The masks of every copy of the given clips (the NumPy twin of the kernel's draws).

    Parameters
    ----------
    clip_index : array of int
        Each clip's index in the input store (the global index, not the batch's).
    lengths : array of int
        Each clip's frame count.
    params : AugmentParams
    n_bins : int
        Frequency bins per frame.
    """
    clip = np.asarray(clip_index, dtype=np.int64).astype(np.uint64)
    frames = np.asarray(lengths, dtype=np.int64)
    if clip.shape != frames.shape or clip.ndim != 1:
        raise ValueError("clip_index and lengths must be 1-d arrays of the same length")
    if frames.size and (frames.min() < 0 or frames.max() >= 2**32):
        raise ValueError("clip lengths must be in [0, 2**32) frames")
    with np.errstate(over="ignore"):
        k0 = mix64(np.array([params.seed], dtype=np.uint64) + _GOLDEN)
        k1 = mix64(k0 ^ clip)
        k2 = mix64(k1[:, None] ^ np.arange(params.copies, dtype=np.uint64)[None, :])
    n = frames.astype(np.uint64)[:, None, None]
    t_draw = 2 * np.arange(params.time_masks, dtype=np.int64)
    f_draw = 2 * np.arange(params.freq_masks, dtype=np.int64) + 1
    ts, tz = _size_start(_draws(k2, t_draw), params.time_mask_max, n)
    fs, fz = _size_start(_draws(k2, f_draw), params.freq_mask_max, np.full((1, 1, 1), n_bins, dtype=np.uint64))
    return Masks(ts, tz, fs, fz)


def check_batch(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
    """A batch's offsets rebased to 0, and its bin count; ``ValueError`` if they do not fit."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or offsets.size < 1:
        raise ValueError("offsets must be a 1-d array of n + 1 row offsets")
    offsets = offsets - offsets[0]
    if np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must not decrease")
    if data.ndim != 2 or data.shape[0] != offsets[-1]:
        raise ValueError(f"data must be [rows, bins] with rows == offsets[-1] - offsets[0] ({offsets[-1]}), got {data.shape}")
    n_bins = data.shape[1]
    if n_bins % 8 or not 8 <= n_bins <= 64:
        raise ValueError(f"frames of {n_bins} bins: the kernel needs a multiple of 8 bins, at most 64")
    return offsets, n_bins


def augment_batch_cpu(data: np.ndarray, offsets, params: AugmentParams, clip_base: int = 0) -> np.ndarray:
    """Augment a ragged batch on the CPU with NumPy (no Python loop over clips).

    Parameters
    ----------
    data : ndarray, uint16, shape [rows, bins]
        The batch's frames, clip after clip.
    offsets : array of int, n + 1 values
        Clip ``i`` is rows ``offsets[i] - offsets[0]`` to ``offsets[i + 1] - offsets[0]``.
    params : AugmentParams
    clip_base : int
        Store index of the batch's first clip (masks depend on the global index).

    Returns
    -------
    ndarray, uint16, shape [copies * rows, bins]
        Copy ``c`` of clip ``i`` is output item ``i * copies + c``, items back to back.
    """
    data = np.asarray(data)
    if data.dtype != np.uint16:
        raise ValueError(f"features must be uint16 codes, got {data.dtype}")
    offsets, n_bins = check_batch(data, offsets)
    params.check(n_bins)
    n, C = offsets.size - 1, params.copies
    lengths = np.diff(offsets)
    masks = draw_masks(clip_base + np.arange(n, dtype=np.int64), lengths, params, n_bins)

    out_len = np.repeat(lengths, C)
    out_off = np.zeros(n * C + 1, dtype=np.int64)
    np.cumsum(out_len, out=out_off[1:])
    item = np.repeat(np.arange(n * C, dtype=np.int64), out_len)  # output item of each output row
    frame = np.arange(out_off[-1], dtype=np.int64) - out_off[item]
    out = data[offsets[item // C] + frame]
    _mask_time(out, item, frame, masks, params)
    _mask_freq(out, item, masks, params, n_bins)
    return out


def _mask_time(out: np.ndarray, item: np.ndarray, frame: np.ndarray, masks: Masks, params: AugmentParams) -> None:
    """Fill the masked frames of every output row (``item``/``frame``: its copy and frame)."""
    if not params.time_masks:
        return
    start = masks.time_start.reshape(-1, params.time_masks)
    stop = start + masks.time_size.reshape(-1, params.time_masks)
    hit = np.zeros(out.shape[0], dtype=bool)
    for j in range(params.time_masks):
        hit |= (frame >= start[item, j]) & (frame < stop[item, j])
    out[hit] = params.fill


def _mask_freq(out: np.ndarray, item: np.ndarray, masks: Masks, params: AugmentParams, n_bins: int) -> None:
    """Fill the masked bins of every output row."""
    if not params.freq_masks:
        return
    bins = np.arange(n_bins, dtype=np.int64)
    start = masks.freq_start.reshape(-1, params.freq_masks)
    stop = start + masks.freq_size.reshape(-1, params.freq_masks)
    band = np.zeros((start.shape[0], n_bins), dtype=bool)
    for j in range(params.freq_masks):
        band |= (bins >= start[:, j, None]) & (bins < stop[:, j, None])
    np.copyto(out, np.uint16(params.fill), where=band[item])
