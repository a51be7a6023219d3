"""Atomic writes of files and folders: a reader sees the old file (folder) or the whole new
one. Standard library only, so a job that only moves files imports no NumPy."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path


@contextlib.contextmanager
def atomic_open(path, binary: bool = False):
    """Open a temporary file beside ``path`` for writing; on a clean exit it is fsynced,
    made 0644 and renamed over ``path``; on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically."""
    with atomic_open(path, binary=isinstance(data, bytes)) as f:
        f.write(data)
    return Path(path)


class FolderError(RuntimeError):
    """A folder writer used after it was finished or dropped."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_tree(path) -> None:
    """Remove a folder and everything in it; quiet when it is already gone. Removing needs
    no free space, so this works on a full disk."""
    shutil.rmtree(path, ignore_errors=True)


def _remove_stale_temporaries(target: Path) -> None:
    """Remove what an interrupted writer of ``target`` left beside it (``.NAME.tmp-*``,
    ``.NAME.old-*``) when the process that made it is gone."""
    for p in target.parent.glob(f".{target.name}.*"):
        rest = p.name[len(target.name) + 2 :]
        kind, _, tail = rest.partition("-")
        if kind not in ("tmp", "old"):
            continue
        pid = tail.split("-", 1)[0]
        if kind == "tmp" and pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move folder ``tmp`` to ``target``, replacing whatever is there."""
    old = None
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        try:
            os.rmdir(target)  # empty folder, e.g. made by Snakemake for the outputs
        except OSError:
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
    os.rename(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class atomic_dir:
    """Build folder ``target`` under a temporary name beside it and rename it into place.

    The one way wakeprep builds an output folder: a reader sees the old folder (or none)
    or the whole new one. The temporary folder, ``.NAME.tmp-PID-RANDOM``, is made at once
    (after removing what interrupted writers of ``target`` left beside it); on a clean
    exit it is fsynced and replaces ``target`` (an empty folder that Snakemake made, an
    old output, or nothing); on any exception, including a full disk while finishing, it
    is removed and ``target`` is left as it was.

    Used as a context manager it yields the temporary folder. A writer that outlives one
    ``with`` block (:class:`RaggedWriter`) keeps the object and calls :meth:`commit` or
    :meth:`abort`.

    Examples
    --------
    >>> with atomic_dir("results/mmap/train/positive") as tmp:   # doctest: +SKIP
    ...     (tmp / "clips.tsv").write_text("...")
    """

    def __init__(self, target):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(self.target)
        self.tmp = self.target.with_name(f".{self.target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.tmp.mkdir()
        self.done = False

    def commit(self) -> Path:
        """fsync the temporary folder and rename it over the target; returns the target.
        On failure the temporary folder is removed and the error raised."""
        if self.done:
            raise FolderError(f"{self.target}: this folder was already finished or dropped")
        try:
            _fsync_dir(self.tmp)
            _replace_dir(self.tmp, self.target)
        except BaseException:
            self.abort()
            raise
        self.done = True
        return self.target

    def abort(self) -> None:
        """Remove the temporary folder; the target is left as it was."""
        self.done = True
        _remove_tree(self.tmp)

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
