"""SpecAugment of feature stores: time and frequency masks, on the GPU or the CPU.

Each augmented copy ``c`` of clip ``i`` (its position in the input store) gets its own
masks, drawn from a counter-based hash of ``(seed, i, c, mask)``; nothing depends on
which batch a clip falls in, so the output is the same bytes whatever the batch size,
and the CUDA kernel and the NumPy code compute the same integers.

The random numbers (``docs/augment.md`` has the details)::

    k0      = mix64(seed + G)                 G = 0x9E3779B97F4A7C15 (SplitMix64's step)
    k1      = mix64(k0 ^ clip)                clip: index in the input store
    k2      = mix64(k1 ^ copy)
    h(m)    = mix64(k2 + (m + 1) * G)         draw m: 2j for time mask j, 2j+1 for frequency mask j
    size    = ((h >> 32) * (max + 1)) >> 32   uniform in [0, max]; time masks: min(size, frames)
    start   = ((h & 0xFFFFFFFF) * (n - size + 1)) >> 32   uniform in [0, n - size]

``mix64`` is SplitMix64's finaliser; all arithmetic is on unsigned 64-bit integers,
modulo 2**64. ``n`` is the clip's frame count for time masks and the bin count (40)
for frequency masks. Masked cells take the mask value; every other cell is copied.

The GPU path is one fused kernel per batch over the ragged buffer: one thread per
16-byte vector of 8 feature codes, reading each input vector once and writing it to
every copy, with the masks of a 32-frame chunk computed in shared memory (no mask
tensor). :func:`augment_store` streams a store through pinned host buffers and
three CUDA streams, so reading, transfers, the kernel and writing overlap.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .features import FEATURE_SCALE
from .store import RaggedStore, RaggedWriter, StoreError, _fsync_dir, replace_dir, temp_sibling

log = logging.getLogger("wakeprep")

#: Name and version of the mask algorithm, recorded in every output.
ALGORITHM = "wakeprep-specaugment-v1"
#: Frames per kernel chunk (one bit each in a 32-bit time mask word).
CHUNK_ROWS = 32
#: Input bytes per batch when ``batch_items`` is 0 (the GPU may lower it to fit its free memory).
GPU_BATCH_BYTES = 32 << 20
CPU_BATCH_BYTES = 16 << 20
#: Batches in flight on the GPU path: one being read, one on the GPU, one being written.
SLOTS = 3

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_U64 = np.uint64

NO_GPU_HELP = (
    "set `augment.device: cpu` in config.yaml to run the same algorithm with NumPy on the "
    "CPU (byte-identical output, much slower), or run this step on a machine with an "
    "NVIDIA GPU, its driver and CuPy"
)


class NoGpuError(RuntimeError):
    """``device='cuda'`` was asked for, but CuPy or a usable GPU is missing."""


@dataclass(frozen=True)
class AugmentParams:
    """Everything that decides the augmented bytes.

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
    """

    copies: int
    time_masks: int
    time_mask_max: int
    freq_masks: int
    freq_mask_max: int
    fill: int
    seed: int

    def check(self, n_bins: int) -> None:
        """Raise ``ValueError`` naming the first bad value."""
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
        if self.freq_mask_max > n_bins:
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


# --------------------------------------------------------------------------- masks


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _U64(30))) * _M1
        z = (z ^ (z >> _U64(27))) * _M2
        return z ^ (z >> _U64(31))


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


# --------------------------------------------------------------------------- CPU


def _check_batch(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, int]:
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
    offsets, n_bins = _check_batch(data, offsets)
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

    if params.time_masks:
        start = masks.time_start.reshape(n * C, -1)
        stop = start + masks.time_size.reshape(n * C, -1)
        hit = np.zeros(out.shape[0], dtype=bool)
        for j in range(params.time_masks):
            hit |= (frame >= start[item, j]) & (frame < stop[item, j])
        out[hit] = params.fill
    if params.freq_masks:
        bins = np.arange(n_bins, dtype=np.int64)
        start = masks.freq_start.reshape(n * C, -1)
        stop = start + masks.freq_size.reshape(n * C, -1)
        band = np.zeros((n * C, n_bins), dtype=bool)
        for j in range(params.freq_masks):
            band |= (bins >= start[:, j, None]) & (bins < stop[:, j, None])
        np.copyto(out, np.uint16(params.fill), where=band[item])
    return out


# --------------------------------------------------------------------------- GPU

_KERNEL_SOURCE = r"""
typedef unsigned long long u64;
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define CHUNK_ROWS 32

__device__ __forceinline__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// size uniform in [0, max_size] clamped to n; start uniform in [0, n - size]
__device__ __forceinline__ void size_start(u64 h, u64 max_size, u64 n, u64 &start, u64 &size) {
    size = ((h >> 32) * (max_size + 1)) >> 32;
    if (size > n) size = n;
    start = ((h & 0xFFFFFFFFULL) * (n - size + 1)) >> 32;
}

// Blend two uint16 codes in a 32-bit word: bit 0 of sel2 replaces the low half, bit 1 the high.
__device__ __forceinline__ unsigned int blend(unsigned int w, unsigned int sel2, unsigned int fill) {
    unsigned int m = ((sel2 & 1u) ? 0x0000FFFFu : 0u) | ((sel2 & 2u) ? 0xFFFF0000u : 0u);
    return (w & ~m) | (fill & m);
}

// One block per chunk of up to 32 frames of one clip; one thread per 16-byte vector
// (8 codes). Each thread reads its vector once and writes it to every copy.
extern "C" __global__ void specaugment_u16(
    const uint4* __restrict__ src,          // batch frames, vpr vectors per frame
    uint4* __restrict__ dst,                // copies * rows frames
    const long long* __restrict__ offsets,  // n + 1 frame offsets of the batch's clips
    const int2* __restrict__ chunks,        // (clip in batch, first frame) per chunk
    const long long clip_base,              // store index of the batch's first clip
    const u64 seed,
    const int copies, const int n_time, const int time_max,
    const int n_freq, const int freq_max,
    const int vpr,                          // 16-byte vectors per frame (bins / 8)
    const unsigned int fill)                // mask code in both halves
{
    extern __shared__ u64 smem[];
    u64* fbits = smem;                                    // [copies] masked bins
    unsigned int* tbits = (unsigned int*)(smem + copies); // [copies] masked frames of this chunk

    const int2 ch = chunks[blockIdx.x];
    const long long off = offsets[ch.x];
    const long long len = offsets[ch.x + 1] - off;
    const long long r0 = ch.y;

    const u64 k1 = mix64(mix64(seed + GOLDEN) ^ (u64)(clip_base + ch.x));
    for (int c = threadIdx.x; c < copies; c += blockDim.x) {
        const u64 k2 = mix64(k1 ^ (u64)c);
        unsigned int tb = 0u;
        for (int j = 0; j < n_time; ++j) {
            u64 start, size;
            size_start(mix64(k2 + (u64)(2 * j + 1) * GOLDEN), (u64)time_max, (u64)len, start, size);
            const long long a = (long long)start > r0 ? (long long)start : r0;
            const long long e = (long long)(start + size);
            const long long b = e < r0 + CHUNK_ROWS ? e : r0 + CHUNK_ROWS;
            if (a < b) {
                const int w = (int)(b - a);
                const unsigned int run = w >= 32 ? 0xFFFFFFFFu : ((1u << w) - 1u);
                tb |= run << (int)(a - r0);
            }
        }
        u64 fb = 0ull;
        for (int j = 0; j < n_freq; ++j) {
            u64 start, size;
            size_start(mix64(k2 + (u64)(2 * j + 2) * GOLDEN), (u64)freq_max, (u64)(vpr * 8), start, size);
            const u64 run = size >= 64 ? ~0ull : ((1ull << size) - 1ull);
            fb |= run << start;
        }
        fbits[c] = fb;
        tbits[c] = tb;
    }
    __syncthreads();

    const int rl = threadIdx.x / vpr;
    const int g = threadIdx.x - rl * vpr;
    const long long row = r0 + rl;
    if (rl >= CHUNK_ROWS || row >= len) return;
    const uint4 v = src[(off + row) * vpr + g];
    const long long base = off * copies + row;   // copy c starts at copies * off + c * len
    for (int c = 0; c < copies; ++c) {
        uint4 o;
        if ((tbits[c] >> rl) & 1u) {
            o = make_uint4(fill, fill, fill, fill);
        } else {
            const unsigned int sel = (unsigned int)(fbits[c] >> (8 * g)) & 0xFFu;
            if (sel == 0u) {
                o = v;
            } else {
                o.x = blend(v.x, sel, fill);
                o.y = blend(v.y, sel >> 2, fill);
                o.z = blend(v.z, sel >> 4, fill);
                o.w = blend(v.w, sel >> 6, fill);
            }
        }
        dst[(base + (long long)c * len) * vpr + g] = o;
    }
}
"""

_kernel = None


def gpu_status() -> tuple[bool, str]:
    """Whether CuPy and a usable GPU are here; the second value says which, or why not."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a CuPy built for another CUDA
        return False, f"CuPy cannot be imported ({type(e).__name__}: {e})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return False, "CUDA reports no GPU"
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        _, total = cupy.cuda.runtime.memGetInfo()
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return True, f"cuda:{dev.id} {name} ({total / 2**30:.0f} GiB)"
    except Exception as e:  # no driver, driver too old, device busy or lost...
        return False, f"CUDA is not usable ({type(e).__name__}: {e})"


def require_gpu() -> str:
    """Return the GPU's description, or raise :class:`NoGpuError` saying what to do."""
    ok, what = gpu_status()
    if not ok:
        raise NoGpuError(f"augment: no usable GPU was found: {what}. To proceed, {NO_GPU_HELP}.")
    return what


def _get_kernel():
    global _kernel
    if _kernel is None:
        import cupy

        _kernel = cupy.RawKernel(_KERNEL_SOURCE, "specaugment_u16")
    return _kernel


def chunk_table(offsets) -> np.ndarray:
    """``[n_chunks, 2]`` int32 (clip in batch, first frame): the kernel's grid.

    Every clip is cut into chunks of :data:`CHUNK_ROWS` frames; empty clips have none.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    per = (lengths + CHUNK_ROWS - 1) // CHUNK_ROWS
    total = int(per.sum())
    if lengths.size and lengths.max() >= 2**31:
        raise ValueError("a clip of 2**31 frames or more cannot be augmented")
    clip = np.repeat(np.arange(lengths.size, dtype=np.int32), per)
    first = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(per[:-1], out=first[1:])
    table = np.empty((total, 2), dtype=np.int32)
    table[:, 0] = clip
    table[:, 1] = (np.arange(total, dtype=np.int64) - first[clip]) * CHUNK_ROWS
    return table


def launch_kernel(src, dst, offsets_dev, chunks_dev, n_chunks: int, params: AugmentParams, clip_base: int, n_bins: int) -> None:
    """Launch the fused kernel on the current CuPy stream (device arrays in, ``dst`` out).

    ``src`` is ``[rows, bins]`` uint16, ``dst`` ``[copies * rows, bins]`` uint16,
    ``offsets_dev`` the batch's n + 1 int64 offsets (starting at 0) and ``chunks_dev``
    the :func:`chunk_table` (int32), all on the device.
    """
    if n_chunks == 0:
        return
    vpr = n_bins // 8
    fill = params.fill | (params.fill << 16)
    _get_kernel()(
        (n_chunks,),
        (CHUNK_ROWS * vpr,),
        (
            src, dst, offsets_dev, chunks_dev,
            np.int64(clip_base), np.uint64(params.seed),
            np.int32(params.copies), np.int32(params.time_masks), np.int32(params.time_mask_max),
            np.int32(params.freq_masks), np.int32(params.freq_mask_max),
            np.int32(vpr), np.uint32(fill),
        ),
        shared_mem=params.copies * 12 + 8,
    )


def augment_batch_gpu(data, offsets, params: AugmentParams, clip_base: int = 0):
    """:func:`augment_batch_cpu` on the GPU: one fused CuPy kernel over the batch.

    ``data`` may be a NumPy or CuPy array; the result is a CuPy array, byte for byte
    what :func:`augment_batch_cpu` returns for the same arguments. Raises
    :class:`NoGpuError` when no GPU is usable.
    """
    require_gpu()
    import cupy

    if data.dtype != np.uint16:
        raise ValueError(f"features must be uint16 codes, got {data.dtype}")
    offsets, n_bins = _check_batch(data, np.asarray(offsets))
    params.check(n_bins)
    src = cupy.ascontiguousarray(cupy.asarray(data))
    dst = cupy.empty((src.shape[0] * params.copies, n_bins), dtype=np.uint16)
    table = chunk_table(offsets)
    launch_kernel(src, dst, cupy.asarray(offsets), cupy.asarray(table), len(table), params, clip_base, n_bins)
    return dst


# --------------------------------------------------------------------------- stores


def plan_batches(offsets: np.ndarray, batch_items: int, max_rows: int) -> list[tuple[int, int]]:
    """Split clips into ``(first, stop)`` batches.

    ``batch_items > 0``: that many clips each. Otherwise as many clips as fit
    ``max_rows`` frames (a longer clip is a batch of its own).
    """
    n = offsets.size - 1
    if n <= 0:
        return []
    if batch_items > 0:
        return [(a, min(a + batch_items, n)) for a in range(0, n, batch_items)]
    out, a = [], 0
    while a < n:
        b = int(np.searchsorted(offsets, offsets[a] + max_rows, side="right")) - 1
        b = min(max(b, a + 1), n)
        out.append((a, b))
        a = b
    return out


class Frames:
    """Where a pipeline reads its frames: an array, or a store's ``data.bin``.

    ``view(r0, r1)`` gives frames ``r0:r1`` (a view of the array or memory map);
    ``read_into(r0, r1, dst)`` fills ``dst`` with them, from the file with ``pread``
    when there is one (one copy out of the page cache, no page faults, GIL released).
    """

    def __init__(self, data: np.ndarray, path=None):
        self.data = data
        self._fd = None
        if path is not None and data.size:
            self._fd = os.open(path, os.O_RDONLY)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    @classmethod
    def of_store(cls, store: RaggedStore) -> "Frames":
        return cls(store.data, store.path / "data.bin")

    def view(self, r0: int, r1: int) -> np.ndarray:
        return self.data[r0:r1]

    def read_into(self, r0: int, r1: int, dst: np.ndarray) -> None:
        if self._fd is None:
            np.copyto(dst, self.data[r0:r1])
            return
        row_bytes = self.data.shape[1] * self.data.itemsize
        buf = memoryview(dst.reshape(-1).view(np.uint8))
        want, pos, got = (r1 - r0) * row_bytes, r0 * row_bytes, 0
        while got < want:
            k = os.preadv(self._fd, [buf[got:want]], pos + got)
            if k <= 0:
                raise StoreError(f"short read from the features store at byte {pos + got}")
            got += k

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class CpuRunner:
    """Runs batches with NumPy; same interface as :class:`GpuRunner`."""

    device = "cpu (numpy)"

    def __init__(self, params: AugmentParams, n_bins: int):
        self.params = params
        self._results: dict[int, np.ndarray] = {}

    def submit(self, slot: int, frames: Frames, r0: int, offsets: np.ndarray, clip_base: int) -> None:
        data = np.asarray(frames.view(r0, r0 + int(offsets[-1])))
        self._results[slot] = augment_batch_cpu(data, offsets, self.params, clip_base)

    def result(self, slot: int) -> np.ndarray:
        return self._results.pop(slot)

    def close(self) -> None:
        self._results.clear()


class GpuRunner:
    """A pipeline of :data:`SLOTS` pinned host buffers, device buffers and streams.

    ``submit`` copies a batch into the slot's pinned buffer and queues host-to-device,
    kernel and device-to-host on the slot's stream; ``result`` waits for that slot
    and returns the pinned output (valid until the slot is submitted again).
    """

    def __init__(self, params: AugmentParams, n_bins: int, max_rows: int, max_clips: int, max_chunks: int):
        import cupy
        import cupyx

        self.device = require_gpu()
        self.cupy = cupy
        self.params = params
        self.n_bins = n_bins
        C = params.copies
        meta = max_clips + 1 + max_chunks
        self.slots = []
        for _ in range(SLOTS):
            self.slots.append(
                dict(
                    stream=cupy.cuda.Stream(non_blocking=True),
                    event=None,
                    rows=0,
                    h_in=cupyx.empty_pinned((max_rows, n_bins), dtype=np.uint16),
                    h_out=cupyx.empty_pinned((max_rows * C, n_bins), dtype=np.uint16),
                    h_meta=cupyx.empty_pinned((meta,), dtype=np.int64),
                    d_in=cupy.empty((max_rows, n_bins), dtype=np.uint16),
                    d_out=cupy.empty((max_rows * C, n_bins), dtype=np.uint16),
                    d_meta=cupy.empty((meta,), dtype=np.int64),
                )
            )
        _get_kernel().compile()

    @classmethod
    def for_batches(cls, params: AugmentParams, n_bins: int, offsets: np.ndarray, batches) -> "GpuRunner":
        """A runner with buffers just large enough for the largest of ``batches``."""
        first = np.array([a for a, _ in batches], dtype=np.int64)
        stop = np.array([b for _, b in batches], dtype=np.int64)
        chunks = np.concatenate([[0], np.cumsum((np.diff(offsets) + CHUNK_ROWS - 1) // CHUNK_ROWS)])
        return cls(
            params, n_bins,
            max_rows=max(1, int((offsets[stop] - offsets[first]).max())),
            max_clips=int((stop - first).max()),
            max_chunks=max(1, int((chunks[stop] - chunks[first]).max())),
        )

    def submit(self, slot: int, frames: Frames, r0: int, offsets: np.ndarray, clip_base: int) -> None:
        """Queue frames ``r0 + offsets[0]`` to ``r0 + offsets[-1]`` (offsets start at 0)."""
        cupy = self.cupy
        memcpy = cupy.cuda.runtime.memcpyAsync
        s = self.slots[slot]
        rows, n = int(offsets[-1]), offsets.size - 1
        table = chunk_table(offsets)
        nm = n + 1 + len(table)
        frames.read_into(r0, r0 + rows, s["h_in"][:rows])  # the read, straight into pinned memory
        s["h_meta"][: n + 1] = offsets
        s["h_meta"][n + 1 : nm].view(np.int32).reshape(-1, 2)[:] = table
        st = s["stream"]
        nbytes = rows * self.n_bins * 2
        memcpy(s["d_meta"].data.ptr, s["h_meta"].ctypes.data, nm * 8, 1, st.ptr)
        memcpy(s["d_in"].data.ptr, s["h_in"].ctypes.data, nbytes, 1, st.ptr)
        with st:
            launch_kernel(
                s["d_in"], s["d_out"], s["d_meta"][: n + 1], s["d_meta"][n + 1 : nm],
                len(table), self.params, clip_base, self.n_bins,
            )
        memcpy(s["h_out"].ctypes.data, s["d_out"].data.ptr, nbytes * self.params.copies, 2, st.ptr)
        s["event"] = st.record()
        s["rows"] = rows

    def result(self, slot: int) -> np.ndarray:
        s = self.slots[slot]
        s["event"].synchronize()
        return s["h_out"][: s["rows"] * self.params.copies]

    def close(self) -> None:
        for s in self.slots:
            s["stream"].synchronize()
        self.slots.clear()


def gpu_batch_rows(n_bins: int, copies: int, target_bytes: int = GPU_BATCH_BYTES) -> int:
    """Frames per GPU batch: ``target_bytes`` of input, lowered to fit free GPU memory.

    The :data:`SLOTS` batches in flight (input plus ``copies`` outputs each) take at
    most half of the free memory.
    """
    import cupy

    free, _ = cupy.cuda.runtime.memGetInfo()
    row_bytes = n_bins * 2
    fit = int(free // 2 // (SLOTS * (1 + copies) * row_bytes))
    return max(1, min(target_bytes // row_bytes, fit))


class _ShardSink:
    """Writes augmented items in order into ``part-NNNN`` stores of ``shard_items`` each."""

    def __init__(self, folder: Path, ids: Sequence[str], lengths: np.ndarray, copies: int,
                 shard_items: int, n_bins: int, attrs: dict):
        self.folder, self.ids, self.lengths, self.copies = folder, ids, lengths, copies
        self.shard_items, self.n_bins, self.attrs = shard_items, n_bins, attrs
        self.parts: list[dict] = []
        self._writer: RaggedWriter | None = None

    def _next_part(self) -> RaggedWriter:
        if self._writer is not None:
            self._writer.close()
        k = len(self.parts)
        name = f"part-{k:04d}"
        self.parts.append({"name": name, "count": 0, "rows": 0})
        self._writer = RaggedWriter(self.folder / name, np.uint16, (self.n_bins,), attrs=dict(self.attrs, part=k))
        return self._writer

    def write(self, first: int, stop: int, out: np.ndarray) -> None:
        w = self._writer or self._next_part()
        part = self.parts[-1]
        pos = 0
        for i in range(first, stop):
            n = int(self.lengths[i])
            clip_id = self.ids[i]
            for c in range(self.copies):
                if part["count"] == self.shard_items:
                    w = self._next_part()
                    part = self.parts[-1]
                w.append(f"{clip_id}#aug{c}", out[pos : pos + n])
                pos += n
                part["count"] += 1
                part["rows"] += n
        if pos != out.shape[0]:
            raise AssertionError(f"batch {first}:{stop}: wrote {pos} of {out.shape[0]} augmented frames")

    def close(self) -> list[dict]:
        if self._writer is None:
            self._next_part()  # an empty input still gives one (empty) part
        self._writer.close()
        return self.parts

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def augment_store(
    in_store,
    out_dir,
    *,
    copies: int,
    time_masks: int,
    time_mask_max: int,
    freq_masks: int,
    freq_mask_max: int,
    mask_value: float = 0.0,
    seed: int,
    device: str = "cuda",
    batch_items: int = 0,
    shard_items: int = 100_000,
) -> dict:
    """Augment every clip of a feature store into a folder of ragged stores.

    Parameters
    ----------
    in_store : path-like
        Ragged store of uint16 feature codes, rows of ``(40,)`` (any multiple of 8 bins
        up to 64 works).
    out_dir : path-like
        Folder to create: ``part-0000/``, ``part-0001/``... (ragged stores of at most
        ``shard_items`` augmented clips, in order: copy ``c`` of clip ``i`` is item
        ``i * copies + c`` overall, with id ``{clip id}#aug{c}``) and ``augment.json``.
        Built beside the target and renamed into place at the end.
    copies, time_masks, time_mask_max, freq_masks, freq_mask_max, seed
        See :class:`AugmentParams`.
    mask_value : float
        Value of masked cells in feature units; stored as ``round(v * 25.6)``.
    device : {'cuda', 'cpu'}
        ``cuda`` runs the fused kernel and raises :class:`NoGpuError` (a
        ``RuntimeError``) when no GPU is usable: it never falls back to the CPU.
        ``cpu`` runs the same algorithm with NumPy; the bytes are the same.
    batch_items : int
        Clips per batch; 0 sizes batches by bytes (and, on the GPU, free memory).
        The output does not depend on it.
    shard_items : int
        Largest number of augmented clips in one part.

    Returns
    -------
    dict
        What ``augment.json`` records.
    """
    if device not in ("cuda", "cpu"):
        raise ValueError(f"augment.device must be 'cuda' or 'cpu', got {device!r}")
    if isinstance(shard_items, bool) or not isinstance(shard_items, (int, np.integer)) or shard_items < 1:
        raise ValueError(f"augment.shard_items must be a positive integer, got {shard_items!r}")
    if isinstance(batch_items, bool) or not isinstance(batch_items, (int, np.integer)) or batch_items < 0:
        raise ValueError(f"augment.batch_items must be an integer >= 0, got {batch_items!r}")
    if device == "cuda":
        require_gpu()  # before reading anything: fail fast and say how to proceed
    src = RaggedStore(in_store)
    if src.dtype != np.uint16 or len(src.row_shape) != 1:
        raise StoreError(f"{src.path}: expected uint16 feature codes with rows of (bins,), got {src.dtype} {src.row_shape}")
    n_bins = int(src.row_shape[0])
    params = AugmentParams(
        copies=int(copies), time_masks=int(time_masks), time_mask_max=int(time_mask_max),
        freq_masks=int(freq_masks), freq_mask_max=int(freq_mask_max), fill=mask_code(mask_value), seed=int(seed),
    )
    params.check(n_bins)
    offsets = src.offsets
    if len(src) and int(src.lengths.max()) >= 2**31:
        raise StoreError(f"{src.path}: a clip of 2**31 frames or more cannot be augmented")
    row_bytes = n_bins * 2

    if device == "cuda":
        max_rows = gpu_batch_rows(n_bins, params.copies)
    else:
        max_rows = max(1, CPU_BATCH_BYTES // row_bytes)
    batches = plan_batches(offsets, int(batch_items), max_rows)

    out_dir = Path(out_dir)
    tmp = temp_sibling(out_dir)
    attrs = {"made_by": "augment", "algorithm": ALGORITHM, **asdict(params), "mask_value": float(mask_value)}
    sink = _ShardSink(tmp, src.ids, src.lengths, params.copies, int(shard_items), n_bins, attrs)
    t0 = time.monotonic()
    runner = None
    try:
        if device == "cuda":
            if batches:
                runner = GpuRunner.for_batches(params, n_bins, offsets, batches)
                device_name = runner.device
            else:
                device_name = require_gpu()
        else:
            runner = CpuRunner(params, n_bins)
            device_name = runner.device
        frames = Frames.of_store(src)
        try:
            run_pipeline(runner, frames, offsets, batches, sink.write)
        finally:
            frames.close()
        parts = sink.close()
    except BaseException:
        sink.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if runner is not None:
            runner.close()
    elapsed = time.monotonic() - t0

    report = {
        "algorithm": ALGORITHM,
        "seed": params.seed,
        "copies": params.copies,
        "time_masks": params.time_masks,
        "time_mask_max": params.time_mask_max,
        "freq_masks": params.freq_masks,
        "freq_mask_max": params.freq_mask_max,
        "mask_value": float(mask_value),
        "mask_code": params.fill,
        "shard_items": int(shard_items),
        "device": device,
        "device_name": device_name,
        "input": str(in_store),
        "input_clips": len(src),
        "input_frames": int(offsets[-1]) if len(offsets) else 0,
        "output_clips": len(src) * params.copies,
        "output_frames": int(offsets[-1]) * params.copies if len(offsets) else 0,
        "parts": parts,
    }
    try:
        with open(tmp / "augment.json", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    gb = report["input_frames"] * row_bytes * (1 + params.copies) / 1e9
    log.info(
        "augment: %d clips -> %d augmented in %d part(s) on %s, %.2f s (%.2f GB read+written)",
        report["input_clips"], report["output_clips"], len(parts), device_name, elapsed, gb,
    )
    return report


def run_pipeline(runner, frames, offsets: np.ndarray, batches: list[tuple[int, int]], write) -> None:
    """Read, augment and write ``batches`` with reading, compute and writing overlapped.

    ``frames`` is a :class:`Frames` (or a ``[rows, bins]`` array), ``offsets`` its
    n + 1 clip offsets. Batch ``k`` uses slot ``k % SLOTS`` of ``runner``; ``write(first, stop, out)``
    receives each batch's output in order, on one writer thread, while later batches
    are read and computed. ``out`` is only valid during the call.
    """
    if not isinstance(frames, Frames):
        frames = Frames(np.asarray(frames))
    pending: list[concurrent.futures.Future | None] = [None] * SLOTS
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="augment-writer") as writer:
        try:
            prev = None
            for k, (a, b) in enumerate(batches):
                slot = k % SLOTS
                if pending[slot] is not None:
                    pending[slot].result()  # the slot's last output is written
                    pending[slot] = None
                r0 = int(offsets[a])
                runner.submit(slot, frames, r0, offsets[a : b + 1] - r0, a)
                if prev is not None:
                    pk, pa, pb = prev
                    pending[pk % SLOTS] = writer.submit(write, pa, pb, runner.result(pk % SLOTS))
                prev = (k, a, b)
            if prev is not None:
                pk, pa, pb = prev
                pending[pk % SLOTS] = writer.submit(write, pa, pb, runner.result(pk % SLOTS))
            for f in pending:
                if f is not None:
                    f.result()
        except BaseException:
            for f in pending:
                if f is not None:
                    f.cancel()
            raise
