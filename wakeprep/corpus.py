"""Corpus scanning, clip ids and stable shard manifests.

At start-up the workflow walks each corpus folder once, assigns every audio file to a
shard by a stable hash of its clip key, and writes one small manifest per shard, only
when its content changed. A shard job's only input is its manifest, so Snakemake's
scheduler never sees the audio files themselves, and a manifest's mtime changes
exactly when one of its files is added, removed or edited.

Shard counts are powers of two, kept in ``layout.json`` beside the manifests. They
grow (doubling, which splits every shard in two) only when the average shard exceeds
twice the configured size; adding one file never moves any other file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import atomic_write

LAYOUT = "layout.json"
MANIFEST_SUFFIX = ".jsonl"
DEFAULT_INCLUDE = ["*.wav", "*.flac", "*.ogg", "*.oga", "*.opus", "*.mp3", "*.aif", "*.aiff", "*.au", "*.caf", "*.w64"]


@dataclass(frozen=True)
class ManifestEntry:
    """One audio file of a shard: path relative to the corpus folder, size, mtime."""

    path: str
    size: int
    mtime_ns: int

    def to_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, d: dict) -> "ManifestEntry":
        return cls(d["path"], int(d["size"]), int(d["mtime_ns"]))


@dataclass
class ScanResult:
    """What one scan of a corpus found."""

    corpus: str
    files: list[ManifestEntry] = field(default_factory=list)
    ignored: int = 0


def printable(text: str) -> str:
    """Text safe for one line of UTF-8: undecodable bytes and control characters escaped."""
    raw = os.fsencode(text)
    out = raw.decode("utf-8", "backslashreplace")
    if any(ord(c) < 32 or c == "\x7f" for c in out):
        out = "".join(c if ord(c) >= 32 and c != "\x7f" else f"\\x{ord(c):02x}" for c in out)
    return out


def clip_key(relpath: str) -> str:
    """Relative path without its extension: two files that differ only by extension share it."""
    stem, _ = os.path.splitext(relpath)
    return stem


def clip_id(corpus: str, relpath: str) -> str:
    """The clip id, ``{corpus}/{relative path without extension}``, printable and single-line."""
    return f"{corpus}/{printable(clip_key(relpath).replace(os.sep, '/'))}"


def shard_of(relpath: str, n_shards: int) -> int:
    """Stable shard index of a file: hash of its clip key modulo a power of two."""
    digest = hashlib.sha1(os.fsencode(clip_key(relpath))).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def shard_name(index: int) -> str:
    return f"s{index:04d}"


def choose_shard_count(n_files: int, shard_size: int, current: int | None = None) -> int:
    """Power-of-two shard count for ``n_files``.

    An existing count is kept while the average shard holds at most twice
    ``shard_size`` files; otherwise (and for a new corpus) the smallest power of two
    whose average is at most ``shard_size``.
    """
    if current and current & (current - 1) == 0 and n_files <= 2 * shard_size * current:
        return current
    count = 1
    while n_files > shard_size * count:
        count *= 2
    if current:
        count = max(count, current)
    return count


def _matches(rel: str, patterns) -> bool:
    low = rel.lower()
    return any(fnmatch.fnmatchcase(low, p.lower()) for p in patterns)


def scan_corpus(corpus: str, folder, include=None, exclude=()) -> ScanResult:
    """Walk ``folder`` (not following folder symlinks) and list the files matching
    ``include`` and not ``exclude`` (fnmatch patterns on the relative path, ``*``
    crossing folders, case-insensitive). Unstattable entries (broken links) are
    listed with size -1 so that conversion rejects them with a reason."""
    folder = Path(folder)
    include = list(include or DEFAULT_INCLUDE)
    result = ScanResult(corpus)
    stack = [""]
    while stack:
        sub = stack.pop()
        try:
            entries = list(os.scandir(folder / sub if sub else folder))
        except OSError:
            continue
        for e in entries:
            rel = f"{sub}/{e.name}" if sub else e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append(rel)
                continue
            if not _matches(rel, include) or _matches(rel, exclude):
                result.ignored += 1
                continue
            try:
                st = e.stat(follow_symlinks=True)
                result.files.append(ManifestEntry(rel, int(st.st_size), int(st.st_mtime_ns)))
            except OSError:
                result.files.append(ManifestEntry(rel, -1, 0))
    result.files.sort(key=lambda m: os.fsencode(m.path))
    return result


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write(path, text)
    return True


def manifest_text(entries) -> str:
    """One JSON object per line, keys sorted: the same text as ``json.dumps(e.to_dict(),
    sort_keys=True)`` for each entry, built three times faster (it runs at every start-up).
    ``json.dumps`` of the path keeps undecodable names (lone surrogates) round-trippable."""
    dumps = json.dumps
    return "".join(f'{{"mtime_ns": {e.mtime_ns}, "path": {dumps(e.path)}, "size": {e.size}}}\n' for e in entries)


def read_manifest(path) -> list[ManifestEntry]:
    with open(path, encoding="utf-8") as f:
        return [ManifestEntry.from_dict(json.loads(line)) for line in f if line.strip()]


def write_manifests(scan: ScanResult, out_dir, shard_size: int) -> list[str]:
    """Write the shard manifests of a scanned corpus under ``out_dir``.

    Only manifests whose content changed are rewritten (atomically); manifests of
    shards that became empty are removed. Returns the names of non-empty shards.
    """
    out_dir = Path(out_dir)
    layout_path = out_dir / LAYOUT
    current = None
    if layout_path.is_file():
        try:
            current = int(json.loads(layout_path.read_text())["shards"])
        except (ValueError, KeyError, OSError):
            current = None
    n_shards = choose_shard_count(len(scan.files), shard_size, current)
    buckets: dict[int, list[ManifestEntry]] = {}
    for entry in scan.files:
        buckets.setdefault(shard_of(entry.path, n_shards), []).append(entry)
    names = []
    for index in sorted(buckets):
        name = shard_name(index)
        _write_if_changed(out_dir / f"{name}{MANIFEST_SUFFIX}", manifest_text(buckets[index]))
        names.append(name)
    keep = {f"{n}{MANIFEST_SUFFIX}" for n in names}
    if out_dir.is_dir():
        for p in out_dir.glob(f"s*{MANIFEST_SUFFIX}"):
            if p.name not in keep:
                p.unlink()
    layout = {"shards": n_shards, "files": len(scan.files), "ignored": scan.ignored, "nonempty": names}
    _write_if_changed(layout_path, json.dumps(layout, indent=1, sort_keys=True) + "\n")
    return names


def existing_shards(out_dir) -> list[str]:
    """Shard names from manifests already on disk (no scan): for job processes."""
    layout_path = Path(out_dir) / LAYOUT
    if layout_path.is_file():
        return list(json.loads(layout_path.read_text())["nonempty"])
    return sorted(p.name[: -len(MANIFEST_SUFFIX)] for p in Path(out_dir).glob(f"s*{MANIFEST_SUFFIX}"))


def speaker_from_path(relpath: str, pattern: str | None) -> str:
    """Known speaker id from a relative path via the corpus's regex (group ``speaker``
    or group 1); empty when there is no pattern or no match."""
    if not pattern:
        return ""
    m = re.search(pattern, relpath.replace(os.sep, "/"))
    if not m:
        return ""
    if "speaker" in m.re.groupindex:
        return printable(m.group("speaker") or "")
    return printable(m.group(1) if m.re.groups else m.group(0))
