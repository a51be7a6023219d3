"""Ragged memory-mapped store: many variable-length items in one flat file.

A store is one folder::

    data.bin      every item's rows back to back, C order, dtype and row shape from meta.json
    offsets.bin   int64, n + 1 values: item i is rows offsets[i] to offsets[i + 1]
    lengths.bin   int64, n values: rows of each item (offsets[1:] - offsets[:-1])
    ids.txt       one UTF-8 item id per line, in item order
    meta.json     {"format": "wakeprep-ragged", "version": 1, "dtype", "row_shape",
                   "count", "rows", "attrs": {...}}

Everything is readable with ``numpy.memmap`` alone (see ``docs/store.md``). A larger
output is a folder of such stores, ``part-0000/``, ``part-0001/``... written by
:class:`ShardedRaggedWriter`.

Writers build the folder under a temporary name beside the target and rename it into
place when closed, so a reader never sees a half-written store. :class:`atomic_dir` does
that for them, and for every other step that writes a folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .fileio import atomic_dir

FORMAT = "wakeprep-ragged"
VERSION = 1
DATA, OFFSETS, LENGTHS, IDS, META = "data.bin", "offsets.bin", "lengths.bin", "ids.txt", "meta.json"
_BUFFER_BYTES = 8 << 20


class StoreError(RuntimeError):
    """A store folder is missing, incomplete or not a wakeprep ragged store."""


def _check_id(item_id: str) -> str:
    if not isinstance(item_id, str) or not item_id or any(c in item_id for c in "\n\r"):
        raise ValueError(f"item id must be a non-empty single-line string, got {item_id!r}")
    return item_id


def _close_quietly(f) -> None:
    """Close ``f``, dropping a failure to flush it: its file descriptor is released either
    way (CPython closes the raw file after a failed flush)."""
    try:
        f.close()
    except OSError:
        try:
            f.close()  # a second close releases the descriptor if the first stopped early
        except (OSError, ValueError):
            pass


class _Writer:
    """The writers' context-manager protocol: ``close()`` on a clean exit, ``abort()`` on
    an exception."""

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class RaggedWriter(_Writer):
    """Append variable-length items to a new ragged store; atomic on close.

    Parameters
    ----------
    path : path-like
        Folder of the finished store. Created (or replaced) only when the writer
        closes without an exception.
    dtype : numpy dtype
        Element type of every row.
    row_shape : tuple of int
        Shape of one row: ``()`` for audio samples, ``(40,)`` for feature frames.
    attrs : dict, optional
        JSON-serialisable facts about how the store was made, kept in ``meta.json``.

    Examples
    --------
    >>> with RaggedWriter("out/audio", np.int16) as w:      # doctest: +SKIP
    ...     w.append("corpus/a", np.zeros(16000, np.int16))
    >>> RaggedStore("out/audio")["corpus/a"].shape          # doctest: +SKIP
    (16000,)
    """

    def __init__(self, path, dtype, row_shape: Sequence[int] = (), attrs: dict | None = None):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.attrs = dict(attrs or {})
        self._dir = atomic_dir(self.path)
        self._tmp = self._dir.tmp
        self._data = open(self._tmp / DATA, "wb", buffering=_BUFFER_BYTES)
        self._ids = open(self._tmp / IDS, "w", encoding="utf-8", newline="\n")
        self._lengths: list[int] = []
        self._seen: set[str] = set()
        self._closed = False

    def append(self, item_id: str, rows) -> None:
        """Append one item; ``rows`` has shape ``(n, *row_shape)`` (n may be 0)."""
        if self._closed:
            raise StoreError(f"writer for {self.path} is closed")
        _check_id(item_id)
        if item_id in self._seen:
            raise ValueError(f"duplicate item id {item_id!r} in store {self.path}")
        arr = np.asarray(rows)
        if arr.shape[1:] != self.row_shape:
            raise ValueError(
                f"item {item_id!r}: rows of shape {arr.shape[1:]}, store {self.path} expects {self.row_shape}"
            )
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.size:
            self._data.write(memoryview(arr).cast("B"))
        self._ids.write(item_id + "\n")
        self._lengths.append(arr.shape[0])
        self._seen.add(item_id)

    def append_many(self, ids: Sequence[str], data, lengths) -> None:
        """Append ``len(ids)`` items stored back to back in one array, in one write.

        Parameters
        ----------
        ids : sequence of str
            The items' ids, in order.
        data : array, shape ``(sum(lengths), *row_shape)``
            Their rows, item after item.
        lengths : array of int
            Rows of each item (0 allowed).

        Nothing is written when a check fails: the ids, lengths and row shape are
        checked first. Costs one ``write`` per call instead of one per item.
        """
        if self._closed:
            raise StoreError(f"writer for {self.path} is closed")
        ids = list(ids)
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if lengths.size != len(ids):
            raise ValueError(f"store {self.path}: {len(ids)} ids but {lengths.size} lengths")
        if lengths.size and lengths.min() < 0:
            raise ValueError(f"store {self.path}: negative item length {int(lengths.min())}")
        arr = np.asarray(data)
        if arr.shape[1:] != self.row_shape or arr.shape[0] != int(lengths.sum()):
            raise ValueError(
                f"store {self.path}: data of shape {arr.shape}, expected {(int(lengths.sum()), *self.row_shape)} "
                "(the sum of lengths, then the row shape)"
            )
        text = "\n".join(ids) if all(type(i) is str for i in ids) else None
        if text is None or "\r" in text or text.count("\n") != max(len(ids) - 1, 0) or "" in ids:
            for item_id in ids:
                _check_id(item_id)  # names the bad one
        new = set(ids)
        if len(new) != len(ids) or not new.isdisjoint(self._seen):
            dup = next(i for k, i in enumerate(ids) if i in self._seen or i in ids[:k])
            raise ValueError(f"duplicate item id {dup!r} in store {self.path}")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if arr.size:
            self._data.write(memoryview(arr.reshape(-1)).cast("B"))
        if ids:
            self._ids.write(text + "\n")
        self._lengths.extend(lengths.tolist())
        self._seen.update(new)

    def sync(self) -> None:
        """Push the rows appended so far to the disk now (``fdatasync``), so a writer that
        runs beside other work does not leave all of it to :meth:`close`."""
        if self._closed:
            raise StoreError(f"writer for {self.path} is closed")
        self._data.flush()
        os.fdatasync(self._data.fileno())

    def extend(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Append every ``(id, rows)`` pair of ``items``."""
        for item_id, rows in items:
            self.append(item_id, rows)

    def __len__(self) -> int:
        return len(self._lengths)

    def close(self) -> Path:
        """Finish the store and rename it into place; returns its path.

        If finishing fails (a full disk, say), the temporary folder is removed and the
        error raised: the target is left as it was."""
        if self._closed:
            return self.path
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def _finish(self) -> None:
        lengths = np.asarray(self._lengths, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        for f in (self._data, self._ids):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        for name, arr in ((OFFSETS, offsets), (LENGTHS, lengths)):
            with open(self._tmp / name, "wb") as f:
                f.write(arr.tobytes())
                f.flush()
                os.fsync(f.fileno())
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "dtype": self.dtype.str,
            "row_shape": list(self.row_shape),
            "count": int(len(lengths)),
            "rows": int(offsets[-1]),
            "attrs": self.attrs,
        }
        with open(self._tmp / META, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        self._dir.commit()

    def abort(self) -> None:
        """Drop everything written; the target is left as it was.

        The temporary folder is removed even when closing its files fails (on a full
        disk, closing flushes the write buffer and raises ``ENOSPC`` again)."""
        if self._closed:
            return
        self._closed = True
        try:
            for f in (self._data, self._ids):
                _close_quietly(f)
        finally:
            self._dir.abort()



class ShardedRaggedWriter(_Writer):
    """Append items to a folder of ragged stores of at most ``shard_items`` items each;
    atomic on close.

    For outputs too large for one store (rule augment's copies). The folder::

        part-0000/    ragged stores (the format above) holding the items in append order:
        part-0001/    part k holds items k * shard_items to (k + 1) * shard_items - 1, and
        ...           its meta.json attrs are ``attrs`` plus {"part": k}
        NAME          any file added with :meth:`write_text` (an index of the parts, say)

    A writer that receives no item leaves one empty ``part-0000``. Ids must be unique; each
    part checks its own. The folder is built beside ``path`` and renamed into place by
    :meth:`close` (:class:`atomic_dir`), so a reader never sees some parts without the rest.

    Parameters
    ----------
    path : path-like
        Folder of the finished parts. Created (or replaced) only when the writer closes
        without an exception.
    dtype, row_shape, attrs
        As for :class:`RaggedWriter`, for every part.
    shard_items : int
        Largest number of items in one part (>= 1).

    Examples
    --------
    >>> with ShardedRaggedWriter("out/augmented", np.uint16, (40,), shard_items=2) as w:   # doctest: +SKIP
    ...     for k in range(5):
    ...         w.append(f"clip{k}", np.zeros((100, 40), np.uint16))
    ...     w.write_text("parts.json", json.dumps(w.parts))
    >>> [p["count"] for p in w.parts]                                                       # doctest: +SKIP
    [2, 2, 1]
    """

    def __init__(self, path, dtype, row_shape: Sequence[int] = (), shard_items: int = 100_000,
                 attrs: dict | None = None):
        if isinstance(shard_items, bool) or not isinstance(shard_items, (int, np.integer)) or shard_items < 1:
            raise ValueError(f"store {path}: shard_items must be a positive integer, got {shard_items!r}")
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.shard_items = int(shard_items)
        self.attrs = dict(attrs or {})
        #: ``{"name", "count", "rows"}`` of every part so far, in order.
        self.parts: list[dict] = []
        self._dir = atomic_dir(self.path)
        self._writer: RaggedWriter | None = None
        self._closed = False
        try:
            self._next_part()
        except BaseException:
            self._dir.abort()
            raise

    def _next_part(self) -> RaggedWriter:
        if self._writer is not None:
            self._writer.close()
        k = len(self.parts)
        name = f"part-{k:04d}"
        self._writer = RaggedWriter(self._dir.tmp / name, self.dtype, self.row_shape, attrs=dict(self.attrs, part=k))
        self.parts.append({"name": name, "count": 0, "rows": 0})
        return self._writer

    def _room(self) -> int:
        """Items the current part still takes, after opening the next one if it is full."""
        if self.parts[-1]["count"] == self.shard_items:
            self._next_part()
        return self.shard_items - self.parts[-1]["count"]

    def append(self, item_id: str, rows) -> None:
        """Append one item; ``rows`` has shape ``(n, *row_shape)`` (n may be 0)."""
        if self._closed:
            raise StoreError(f"writer for {self.path} is closed")
        self._room()
        self._writer.append(item_id, rows)
        self.parts[-1]["count"] += 1
        self.parts[-1]["rows"] += int(np.shape(rows)[0])

    def append_many(self, ids: Sequence[str], data, lengths) -> None:
        """Append ``len(ids)`` items stored back to back in ``data`` (as
        :meth:`RaggedWriter.append_many`), one write per part they fall in."""
        if self._closed:
            raise StoreError(f"writer for {self.path} is closed")
        ids = list(ids)
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        data = np.asarray(data)
        if lengths.size != len(ids) or data.shape[0] != int(lengths.sum()):
            raise ValueError(f"store {self.path}: {len(ids)} ids, {lengths.size} lengths summing to "
                             f"{int(lengths.sum())} rows, and {data.shape[0]} rows of data: they must agree")
        first, row = 0, 0
        while first < len(ids):
            stop = min(len(ids), first + self._room())
            rows = int(lengths[first:stop].sum())
            self._writer.append_many(ids[first:stop], data[row : row + rows], lengths[first:stop])
            self.parts[-1]["count"] += stop - first
            self.parts[-1]["rows"] += rows
            first, row = stop, row + rows

    def write_text(self, name: str, text: str) -> None:
        """Add file ``name`` (UTF-8 ``text``) to the folder; it appears with the parts."""
        if self._closed:
            raise StoreError(f"writer for {self.path} is closed")
        if not name or "/" in name or name.startswith((".", "part-")):
            raise ValueError(f"store {self.path}: {name!r} is not a file name the writer can add")
        with open(self._dir.tmp / name, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def __len__(self) -> int:
        return sum(p["count"] for p in self.parts)

    def close(self) -> Path:
        """Finish the last part and rename the folder into place; returns its path.

        If finishing fails, everything written is removed and the error raised: the
        target is left as it was."""
        if self._closed:
            return self.path
        try:
            self._writer.close()
            self._dir.commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.abort()
        finally:
            self._dir.abort()


class RaggedStore:
    """Read-only view of a ragged store, backed by ``numpy.memmap``.

    Supports ``len``, integer and id indexing, slicing (a list of arrays) and
    iteration. Items are views into the memory map: copy them to keep them after
    the store is gone.

    Examples
    --------
    >>> s = RaggedStore("results/shards/demo_positive/s000/features")   # doctest: +SKIP
    >>> len(s), s[0].shape, s.ids[0]                                     # doctest: +SKIP
    (12, (148, 40), 'demo_positive/en-us/000')
    """

    def __init__(self, path):
        self.path = Path(path)
        meta_path = self.path / META
        if not meta_path.is_file():
            raise StoreError(f"{self.path} is not a finished ragged store (no {META})")
        with open(meta_path, encoding="utf-8") as f:
            self.meta = json.load(f)
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise StoreError(f"{self.path}: unknown store format {self.meta.get('format')!r} v{self.meta.get('version')}")
        self.dtype = np.dtype(self.meta["dtype"])
        self.row_shape = tuple(self.meta["row_shape"])
        n, rows = int(self.meta["count"]), int(self.meta["rows"])
        self.offsets = np.fromfile(self.path / OFFSETS, dtype=np.int64)
        self.lengths = np.fromfile(self.path / LENGTHS, dtype=np.int64)
        if len(self.offsets) != n + 1 or len(self.lengths) != n or (n and self.offsets[-1] != rows):
            raise StoreError(f"{self.path}: offsets/lengths do not match meta.json (count {n}, rows {rows})")
        with open(self.path / IDS, encoding="utf-8") as f:
            self.ids = f.read().splitlines()
        if len(self.ids) != n:
            raise StoreError(f"{self.path}: {len(self.ids)} ids for {n} items")
        expected = rows * self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))
        size = os.path.getsize(self.path / DATA)
        if size != expected:
            raise StoreError(f"{self.path}: data.bin has {size} bytes, expected {expected}")
        if rows == 0:
            self.data = np.zeros((0, *self.row_shape), dtype=self.dtype)
        else:
            self.data = np.memmap(self.path / DATA, dtype=self.dtype, mode="r", shape=(rows, *self.row_shape))
        self._index: dict[str, int] | None = None

    @property
    def attrs(self) -> dict:
        return self.meta.get("attrs", {})

    def __len__(self) -> int:
        return len(self.lengths)

    def index_of(self, item_id: str) -> int:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.ids)}
        try:
            return self._index[item_id]
        except KeyError:
            raise KeyError(f"{item_id!r} is not in store {self.path}") from None

    def __contains__(self, item_id: str) -> bool:
        try:
            self.index_of(item_id)
        except KeyError:
            return False
        return True

    def __getitem__(self, key):
        if isinstance(key, str):
            key = self.index_of(key)
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self)))]
        i = int(key)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"item {key} out of range for store of {len(self)} items")
        return self.data[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(id, rows)`` pairs in store order."""
        for i, item_id in enumerate(self.ids):
            yield item_id, self[i]

    def __repr__(self) -> str:
        return f"RaggedStore({str(self.path)!r}, count={len(self)}, dtype={self.dtype}, row_shape={self.row_shape})"


def merge_stores(
    sources: Sequence,
    target,
    *,
    ids: Sequence[str] | None = None,
    attrs: dict | None = None,
) -> Path:
    """Merge ragged stores into one, streaming item by item.

    Parameters
    ----------
    sources : sequence of path-like
        Stores with the same dtype and row shape.
    target : path-like
        Folder of the merged store.
    ids : sequence of str, optional
        Which items to copy, in this order. Default: every item of every source,
        in source order. An id missing from every source raises ``KeyError``.
    attrs : dict, optional
        ``meta.json`` attributes of the result.

    Memory stays bounded by one item at a time (plus the id index).
    """
    stores = [RaggedStore(p) for p in sources]
    if not stores:
        raise ValueError("merge_stores needs at least one source store")
    dtype, row_shape = stores[0].dtype, stores[0].row_shape
    for s in stores[1:]:
        if s.dtype != dtype or s.row_shape != row_shape:
            raise StoreError(f"cannot merge {s.path} ({s.dtype}, {s.row_shape}) with {stores[0].path} ({dtype}, {row_shape})")
    with RaggedWriter(target, dtype, row_shape, attrs=attrs) as w:
        if ids is None:
            for s in stores:
                w.extend(s.items())
        else:
            where = {}
            for k, s in enumerate(stores):
                for i, item_id in enumerate(s.ids):
                    where.setdefault(item_id, (k, i))
            for item_id in ids:
                if item_id not in where:
                    raise KeyError(f"{item_id!r} is in none of the source stores")
                k, i = where[item_id]
                w.append(item_id, stores[k][i])
    return Path(target)
