"""Writer of ``mmap_ninja`` ragged memory maps (the store microWakeWord's trainer reads),
with plain file writes.

A ``RaggedMmap`` folder of 2-D items (``[frames, 40]``), as ``mmap_ninja`` 0.9 writes it::

    type.ninja            "ragged"
    shapes_are_flat.ninja int32 0 (items are 2-D)
    data.ninja            every item flattened, back to back; dtype.ninja, shape.ninja
                          (uint64 per axis: total elements), order.ninja ("C")
    starts/ ends/ flattened_shapes/   numpy maps of int64, one per item (in elements)
    shapes/               a ragged map of the item shapes (flat: each an int64 [2] array)

Each numpy map is a folder with ``data.ninja``, ``dtype.ninja``, ``shape.ninja``,
``order.ninja`` and ``type.ninja`` ("numpy"). ``mmap_ninja`` itself writes through
``numpy.memmap``, which dies with SIGBUS when the disk fills; this writer appends with
``write()``, so a full disk is an ``OSError`` that names the path.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

_BUFFER = 8 << 20


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _shape_bytes(shape) -> bytes:
    return b"".join(struct.pack("<Q", int(n)) for n in shape)


def write_numpy_map(folder: Path, arr: np.ndarray) -> None:
    """One ``mmap_ninja`` numpy map (small arrays: offsets and shapes)."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(arr)
    _write(folder / "data.ninja", arr.tobytes())
    _write(folder / "type.ninja", b"numpy")
    _write(folder / "dtype.ninja", arr.dtype.name.encode())
    _write(folder / "shape.ninja", _shape_bytes(arr.shape))
    _write(folder / "order.ninja", b"C")


def _ragged_meta(folder: Path, dtype: np.dtype, total: int, starts, ends, flat, shapes, flat_shapes: bool) -> None:
    _write(folder / "dtype.ninja", dtype.name.encode())
    _write(folder / "shape.ninja", _shape_bytes((total,)))
    _write(folder / "order.ninja", b"C")
    write_numpy_map(folder / "starts", np.asarray(starts, dtype=np.int64))
    write_numpy_map(folder / "ends", np.asarray(ends, dtype=np.int64))
    write_numpy_map(folder / "flattened_shapes", np.asarray(flat, dtype=np.int64))
    _write(folder / "shapes_are_flat.ninja", struct.pack("<i", int(flat_shapes)))
    if flat_shapes:
        write_numpy_map(folder / "shapes", np.asarray(shapes, dtype=np.int64))
    else:
        n = len(shapes)
        dims = len(shapes[0]) if n else 2
        sub = folder / "shapes"
        sub.mkdir()
        _write(sub / "data.ninja", np.asarray(shapes, dtype=np.int64).reshape(-1).tobytes())
        _ragged_meta(sub, np.dtype(np.int64), n * dims, np.arange(n) * dims, np.arange(1, n + 1) * dims,
                     [dims] * n, [(dims,)] * n, True)
    _write(folder / "type.ninja", b"ragged")


class NinjaRaggedWriter:
    """Append 2-D items to a new ``mmap_ninja`` ``RaggedMmap`` folder (created, must not exist).

    Example
    -------
    >>> with NinjaRaggedWriter("out/training/wakeword_mmap", np.float32) as w:   # doctest: +SKIP
    ...     w.append(np.zeros((318, 40), np.float32))
    """

    def __init__(self, folder, dtype):
        self.folder = Path(folder)
        self.dtype = np.dtype(dtype)
        self.folder.mkdir(parents=True)
        self._data = open(self.folder / "data.ninja", "wb", buffering=_BUFFER)
        self._starts: list[int] = []
        self._shapes: list[tuple] = []
        self._total = 0

    def append(self, item: np.ndarray) -> None:
        arr = np.ascontiguousarray(item, dtype=self.dtype)
        if arr.ndim != 2:
            raise ValueError(f"{self.folder}: items must be 2-D, got shape {arr.shape}")
        if arr.size:
            self._data.write(memoryview(arr).cast("B"))
        self._starts.append(self._total)
        self._shapes.append(arr.shape)
        self._total += arr.size

    def __len__(self) -> int:
        return len(self._starts)

    def close(self) -> None:
        self._data.flush()
        os.fsync(self._data.fileno())
        self._data.close()
        starts = np.asarray(self._starts, dtype=np.int64)
        flat = np.asarray([a * b for a, b in self._shapes], dtype=np.int64)
        _ragged_meta(self.folder, self.dtype, self._total, starts, starts + flat, flat, self._shapes, False)

    def __enter__(self) -> "NinjaRaggedWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._data.close()


def ragged_bytes(items: int, rows: int, row_elems: int, itemsize: int) -> int:
    """Bytes a ragged map of ``items`` 2-D items and ``rows`` rows in all takes on disk (about;
    small files rounded up to a 4 KiB block)."""
    return rows * row_elems * itemsize + items * (8 * 3 + 16 + 8 * 3) + 40 * 4096
