"""The CUDA kernel (``specaugment.cu``, compiled at run time) and how to launch it.

One fused kernel per batch over the ragged buffer: one thread per 16-byte vector of 8
feature codes, reading each input vector once and writing it to every copy, with the
masks of a :data:`CHUNK_ROWS`-frame chunk computed in shared memory (no mask tensor).
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .device import require_gpu
from .masks import AugmentParams, check_batch

#: Frames per kernel chunk (one bit each in a 32-bit time mask word); passed to the kernel.
CHUNK_ROWS = 32
#: The kernel's source file, shipped in the package beside this module.
KERNEL_FILE = "specaugment.cu"
KERNEL_NAME = "specaugment_u16"

_kernel = None


def kernel_source() -> str:
    """The CUDA source of the kernel, read from the installed package."""
    path = resources.files(__package__).joinpath(KERNEL_FILE)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise FileNotFoundError(
            f"augment: the CUDA kernel {path} is missing ({e.strerror or e}); reinstall wakeprep "
            f"(its wheel ships wakeprep/augment/{KERNEL_FILE}) or run from a full checkout"
        ) from None


def get_kernel():
    """The compiled kernel (a CuPy ``RawKernel``), made once per process."""
    global _kernel
    if _kernel is None:
        import cupy

        _kernel = cupy.RawKernel(kernel_source(), KERNEL_NAME, options=(f"-DCHUNK_ROWS={CHUNK_ROWS}",))
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
    get_kernel()(
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
    """:func:`~wakeprep.augment.augment_batch_cpu` on the GPU: one fused CuPy kernel over the batch.

    ``data`` may be a NumPy or CuPy array; the result is a CuPy array, byte for byte
    what ``augment_batch_cpu`` returns for the same arguments. Raises
    :class:`~wakeprep.augment.NoGpuError` when no GPU is usable.
    """
    require_gpu()
    import cupy

    if data.dtype != np.uint16:
        raise ValueError(f"features must be uint16 codes, got {data.dtype}")
    offsets, n_bins = check_batch(data, np.asarray(offsets))
    params.check(n_bins)
    src = cupy.ascontiguousarray(cupy.asarray(data))
    dst = cupy.empty((src.shape[0] * params.copies, n_bins), dtype=np.uint16)
    table = chunk_table(offsets)
    launch_kernel(src, dst, cupy.asarray(offsets), cupy.asarray(table), len(table), params, clip_base, n_bins)
    return dst
