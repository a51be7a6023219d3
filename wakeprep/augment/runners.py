"""Where batches run: a pinned-memory pipeline on the GPU, or NumPy on the CPU.

Both runners take a batch (:meth:`submit`) into one of :data:`SLOTS` slots and give its
output back later (:meth:`result`), so that :func:`~wakeprep.augment.pipeline.run_pipeline`
can read batch ``k + 1`` and write batch ``k - 1`` while batch ``k`` is on the GPU.
:class:`Frames` reads a store's frames with ``preadv`` straight into the pinned buffers.
"""

from __future__ import annotations

import os

import numpy as np

from ..store import RaggedStore, StoreError
from .device import require_gpu
from .gpu import CHUNK_ROWS, chunk_table, get_kernel, launch_kernel
from .masks import AugmentParams, augment_batch_cpu

#: Input bytes per batch when ``batch_items`` is 0 (the GPU may lower it to fit its free memory).
GPU_BATCH_BYTES = 32 << 20
CPU_BATCH_BYTES = 16 << 20
#: Batches in flight on the GPU path: one being read, one on the GPU, one being written.
SLOTS = 3


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

    def __enter__(self) -> "Frames":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
        get_kernel().compile()

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
