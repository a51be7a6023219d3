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

Modules:

- :mod:`~wakeprep.augment.masks`: the mask spec (:class:`AugmentParams`), its draws and
  the CPU path;
- :mod:`~wakeprep.augment.settings`: :class:`AugmentSettings`, the config section;
- :mod:`~wakeprep.augment.device`: is a GPU usable (:func:`gpu_status`, :class:`NoGpuError`);
- :mod:`~wakeprep.augment.gpu` and ``specaugment.cu``: the CUDA kernel, read and compiled
  at run time, and its launch;
- :mod:`~wakeprep.augment.runners`: the pinned-memory GPU runner, the CPU runner and the
  ``preadv`` reads;
- :mod:`~wakeprep.augment.pipeline`: :func:`augment_store`, the step itself.

Everything other modules use is importable from ``wakeprep.augment``.
"""

from ..rng import mix64
from .device import NO_GPU_HELP, NoGpuError, gpu_status, require_gpu
from .gpu import CHUNK_ROWS, augment_batch_gpu, chunk_table, kernel_source, launch_kernel
from .masks import ALGORITHM, AugmentParams, Masks, augment_batch_cpu, draw_masks, mask_code
from .pipeline import augment_store, plan_batches, run_pipeline
from .runners import CPU_BATCH_BYTES, GPU_BATCH_BYTES, SLOTS, CpuRunner, Frames, GpuRunner, gpu_batch_rows
from .settings import AugmentSettings

__all__ = [
    "ALGORITHM", "CHUNK_ROWS", "CPU_BATCH_BYTES", "GPU_BATCH_BYTES", "NO_GPU_HELP", "SLOTS",
    "AugmentParams", "AugmentSettings", "CpuRunner", "Frames", "GpuRunner", "Masks", "NoGpuError",
    "augment_batch_cpu", "augment_batch_gpu", "augment_store", "chunk_table", "draw_masks", "gpu_batch_rows",
    "gpu_status", "kernel_source", "launch_kernel", "mask_code", "mix64", "plan_batches", "require_gpu",
    "run_pipeline",
]
