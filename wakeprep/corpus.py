"""Corpus scanning, clip ids and stable shard manifests.

At start-up the workflow walks each corpus folder once, assigns every audio file to a
shard by a stable hash of its clip key, and writes one small manifest per shard, only
when its content changed. A shard job's only input is its manifest, so Snakemake's
scheduler never sees the audio files themselves, and a manifest's mtime changes
exactly when one of its files is added, removed or edited.

Shard counts are powers of two, kept in ``layout.json`` beside the manifests. They
grow (doubling, which splits every shard in two) only when the average shard exceeds
twice the configured size; adding one file never moves any other file.

Per corpus (:class:`CorpusSettings`, from its ``corpora[i]`` entry): symbolic links are
followed, kept inside the folder or skipped (``symlinks``), with loops detected and the
resolved path of a linked file recorded in its manifest line (``target``); a file's
change is seen by size and mtime, or by content (``manifest: sha256``, hashes cached in
``checksums.jsonl``); an empty corpus is an error unless ``allow_empty``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from json.encoder import encode_basestring_ascii
from typing import NamedTuple

LAYOUT = "layout.json"
MANIFEST_SUFFIX = ".jsonl"
DEFAULT_INCLUDE = ["*.wav", "*.flac", "*.ogg", "*.oga", "*.opus", "*.mp3", "*.aif", "*.aiff", "*.au", "*.caf", "*.w64"]


class ManifestEntry(NamedTuple):
    """One audio file of a shard: path relative to the corpus folder, size, mtime, and
    (when set) the file's sha256 and the resolved path of a file reached through a
    symbolic link.

    >>> ManifestEntry("spk1/a.wav", 3200, 1700000000000000000).to_dict()
    {'mtime_ns': 1700000000000000000, 'path': 'spk1/a.wav', 'size': 3200}
    """

    path: str
    size: int
    mtime_ns: int
    sha256: str = ""
    target: str = ""

    def to_dict(self) -> dict:
        """The manifest line's keys: ``mtime_ns`` is left out in ``sha256`` mode (the
        content decides), ``sha256`` and ``target`` only when set."""
        d = {"path": self.path, "size": self.size}
        if self.sha256:
            d["sha256"] = self.sha256
        else:
            d["mtime_ns"] = self.mtime_ns
        if self.target:
            d["target"] = self.target
        return dict(sorted(d.items()))

    @classmethod
    def from_dict(cls, d: dict) -> "ManifestEntry":
        return cls(d["path"], int(d["size"]), int(d.get("mtime_ns", 0)), d.get("sha256", ""), d.get("target", ""))


@dataclass
class ScanResult:
    """What one scan of a corpus found: the files, how many entries the patterns or the
    link policy left out, the symbolic-link loops met (their relative paths), and the
    folder's resolved path."""

    corpus: str
    files: list[ManifestEntry] = field(default_factory=list)
    ignored: int = 0
    loops: list[str] = field(default_factory=list)
    root: str = ""
    #: (ctime_ns, inode) of each file, gathered only for ``manifest: sha256``
    stamps: dict = field(default_factory=dict)


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


SYMLINK_POLICIES = ("follow", "inside", "skip")


class CorpusError(ValueError):
    """A corpus cannot be used as configured (empty, or not a folder); the message names it."""


@dataclass(frozen=True)
class CorpusSettings:
    """How one corpus is scanned: built from its ``corpora[i]`` entry of config.yaml.

    >>> s = CorpusSettings.from_config({"name": "pos", "path": "data/pos", "label": "positive"})
    >>> s.symlinks, s.manifest, s.allow_empty
    ('follow', 'mtime', False)
    """

    name: str
    path: str
    include: tuple = tuple(DEFAULT_INCLUDE)
    exclude: tuple = ()
    symlinks: str = "follow"
    manifest: str = "mtime"
    allow_empty: bool = False

    @classmethod
    def from_config(cls, corpus: dict) -> "CorpusSettings":
        return cls(
            name=corpus["name"],
            path=str(corpus["path"]),
            include=tuple(corpus.get("include") or DEFAULT_INCLUDE),
            exclude=tuple(corpus.get("exclude") or ()),
            symlinks=corpus.get("symlinks", "follow"),
            manifest=corpus.get("manifest", "mtime"),
            allow_empty=bool(corpus.get("allow_empty", False)),
        )


def _compile(patterns):
    """fnmatch ``patterns``, compared lower-cased, as (suffixes, regex match): plain
    ``*.ext`` patterns become one ``str.endswith`` tuple, the others one regex."""
    pats = [p.lower() for p in patterns]
    plain = [p for p in pats if p.startswith("*") and not any(c in p[1:] for c in "*?[")]
    rest = [p for p in pats if p not in plain]
    regex = re.compile("|".join(fnmatch.translate(p) for p in rest)).match if rest else None
    return tuple(p[1:] for p in plain), regex


def _matcher(patterns):
    """A function telling whether a lower-cased relative path matches any of ``patterns``."""
    suffixes, regex = _compile(patterns)
    return lambda low: low.endswith(suffixes) or (regex is not None and regex(low) is not None)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def scan_corpus(corpus: str, folder, include=None, exclude=(), symlinks: str = "follow", stamps: bool = False) -> ScanResult:
    """Walk ``folder`` and list the files matching ``include`` and not ``exclude``
    (fnmatch patterns on the relative path, ``*`` crossing folders, case-insensitive).

    Symbolic links, by ``symlinks``:

    - ``follow`` (default): links to files and to folders are followed wherever they
      point; a folder link that leads back into a folder already on its path (a loop) is
      not entered and is listed in ``loops``;
    - ``inside``: only links whose target lies inside ``folder`` are followed, others
      are ignored (counted in ``ignored``);
    - ``skip``: no link is followed; links are ignored.

    A file reached through a link records its resolved path as ``target``. Unstattable
    entries (broken links) are listed with size -1 so that conversion rejects them with a
    reason. ``stamps`` also records each file's (ctime_ns, inode) for ``manifest: sha256``.
    """
    if symlinks not in SYMLINK_POLICIES:
        raise ValueError(f"symlinks must be one of {', '.join(SYMLINK_POLICIES)}, not {symlinks!r}")
    folder = os.fspath(folder)
    root = os.path.realpath(folder)
    inc_suffixes, inc_regex = _compile(include or DEFAULT_INCLUDE)
    exc_suffixes, exc_regex = _compile(exclude or ())
    new = tuple.__new__  # ManifestEntry(...) without its Python-level __new__: 1M calls
    result = ScanResult(corpus, root=root)
    files = []
    add = files.append
    stamp = result.stamps
    ignored = 0
    # stack items: (relative folder, its real path or "" when it is root-relative,
    #               real paths of the folders left through a link on the way)
    stack = [("", root, ())]
    while stack:
        sub, real, departed = stack.pop()
        try:
            it = os.scandir(os.path.join(folder, sub) if sub else folder)
        except OSError:
            continue
        prefix = f"{sub}/" if sub else ""
        with it:
            for e in it:
                rel = prefix + e.name
                link = e.is_symlink()
                if link and symlinks == "skip":
                    ignored += 1
                    continue
                try:
                    is_dir = e.is_dir()  # follows links
                except OSError:
                    is_dir = False
                if is_dir:
                    ignored += _enter_folder(stack, result.loops, folder, root, rel, e.name, link, real,
                                             departed, symlinks)
                    continue
                low = rel.lower()  # the matching, inlined: this runs once per file
                if not (low.endswith(inc_suffixes) or (inc_regex is not None and inc_regex(low) is not None)) or (
                    low.endswith(exc_suffixes) or (exc_regex is not None and exc_regex(low) is not None)
                ):
                    ignored += 1
                    continue
                target = ""
                if link or departed:
                    target = _file_target(folder, root, rel, e.name, link, real, symlinks)
                    if target is None:
                        ignored += 1
                        continue
                try:
                    st = e.stat()
                except OSError:
                    add(new(ManifestEntry, (rel, -1, 0, "", target)))
                    continue
                add(new(ManifestEntry, (rel, st.st_size, st.st_mtime_ns, "", target)))
                if stamps:
                    stamp[rel] = (st.st_ctime_ns, st.st_ino)
    result.ignored = ignored
    result.loops.sort()
    result.files = _sorted_by_bytes(files)
    return result


def _enter_folder(stack: list, loops: list, folder: str, root: str, rel: str, name: str, link: bool,
                  real: str, departed: tuple, symlinks: str) -> int:
    """Put the folder ``rel`` (entry ``name`` of the folder whose real path is ``real``) on
    :func:`scan_corpus`'s stack, unless it is a link the policy leaves out (returns 1, one
    ignored entry) or a link back into a folder on its path (added to ``loops``)."""
    if not link:
        stack.append((rel, os.path.join(real, name), departed))
        return 0
    target = os.path.realpath(os.path.join(folder, rel))
    if symlinks == "inside" and not _inside(target, root):
        return 1
    if any(_inside(d, target) for d in (real, *departed)):
        loops.append(rel)
    else:
        stack.append((rel, target, departed + (real,)))
    return 0


def _file_target(folder: str, root: str, rel: str, name: str, link: bool, real: str,
                 symlinks: str) -> str | None:
    """Resolved path of a file that is a link or was reached through a folder link; ``None``
    when the link policy leaves it out."""
    if link:
        target = os.path.realpath(os.path.join(folder, rel))
        return None if symlinks == "inside" and not _inside(target, root) else target
    return os.path.join(real, name)  # reached through a folder link


def _sorted_by_bytes(files: list) -> list:
    """``files`` sorted by path as bytes (the plain sort where every path is ASCII)."""
    if all(f.path.isascii() for f in files):
        files.sort()
    else:
        files.sort(key=lambda m: os.fsencode(m.path))
    return files


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


CHECKSUMS = "checksums.jsonl"


def add_checksums(scan: ScanResult, folder, cache_path) -> ScanResult:
    """Fill in the sha256 of every file of ``scan`` (for ``manifest: sha256``).

    A file is read again only when its size, mtime, ctime or inode differ from the
    last scan's (kept in ``cache_path``): a content change made with ``cp -p`` or
    ``rsync -t`` keeps size and mtime but not ctime and inode, which only the kernel
    sets. Unreadable files keep an empty checksum (conversion rejects them).
    """
    cache_path = Path(cache_path)
    cache: dict = {}
    try:
        with open(cache_path, encoding="utf-8") as f:
            for line in f:
                path, size, mtime, ctime, ino, digest = json.loads(line)
                cache[path] = ((size, mtime, ctime, ino), digest)
    except (OSError, ValueError):
        cache = {}
    folder = os.fspath(folder)
    out, lines = [], []
    for e in scan.files:
        ctime, ino = scan.stamps.get(e.path, (0, 0))
        key = (e.size, e.mtime_ns, ctime, ino)
        digest = ""
        if e.size >= 0:
            hit = cache.get(e.path)
            if hit is not None and tuple(hit[0]) == key:
                digest = hit[1]
            else:
                try:
                    digest = _sha256(os.path.join(folder, e.path))
                except OSError:
                    digest = ""
        if digest:
            lines.append(json.dumps([e.path, *key, digest]) + "\n")
        out.append(e._replace(sha256=digest or "unreadable"))
    scan.files = out
    _write_if_changed(cache_path, "".join(lines))
    return scan


def scan(settings: CorpusSettings) -> ScanResult:
    """Scan the corpus of ``settings``. Raises :class:`CorpusError` naming the corpus
    when its path is a file, or when its folder holds no matching file and
    ``allow_empty`` is off. Writes nothing (see :func:`prepare_manifests`)."""
    if os.path.isfile(settings.path):
        raise CorpusError(f"corpus '{settings.name}': path '{settings.path}' is a file, not a folder (set its path to the folder that holds its audio)")
    result = scan_corpus(settings.name, settings.path, settings.include, settings.exclude, settings.symlinks,
                         stamps=settings.manifest == "sha256")
    if not result.files and not settings.allow_empty:
        what = "no files" if not result.ignored else f"no file matching its include/exclude patterns ({result.ignored} other entries)"
        raise CorpusError(
            f"corpus '{settings.name}': {what} in '{settings.path}' "
            "(check its path and patterns, or set allow_empty: true for this corpus)"
        )
    return result


def prepare_manifests(settings: CorpusSettings, found: ScanResult, out_dir, shard_size: int) -> list[str]:
    """Write the shard manifests of a scanned corpus (after hashing its files in
    ``sha256`` mode, with the cache in ``out_dir``); returns the non-empty shards."""
    if settings.manifest == "sha256":
        add_checksums(found, settings.path, Path(out_dir) / CHECKSUMS)
    return write_manifests(found, out_dir, shard_size)


def _write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds it: a temporary file renamed
    into place, without fsync. A manifest is recomputed from the corpus at every
    start-up and compared with what is on disk, so one lost or torn by a crash is
    rewritten by the next start-up (and its shard reruns); an fsync per manifest cost
    more than half of a fresh start-up's manifest writing."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def _remove_dead_temporaries(folder: Path) -> None:
    """Remove temporary files that a start-up killed while writing left in ``folder``."""
    for p in folder.glob(".*.tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still running
            except ProcessLookupError:
                pass
            except OSError:
                continue
            with contextlib.suppress(OSError):
                p.unlink()


def manifest_text(entries) -> str:
    """One JSON object per line, keys sorted: the same text as ``json.dumps(e.to_dict(),
    sort_keys=True)`` for each entry, built three times faster (it runs at every start-up).
    ``json.dumps`` of the path keeps undecodable names (lone surrogates) round-trippable."""
    dumps = json.dumps
    quote = encode_basestring_ascii  # what json.dumps does for a str, without its overhead
    return "".join(
        f'{{"mtime_ns": {e.mtime_ns}, "path": {quote(e.path)}, "size": {e.size}}}\n'
        if not (e.sha256 or e.target)
        else dumps(e.to_dict(), sort_keys=True) + "\n"
        for e in entries
    )


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
    # shard_of, inlined: this loop runs once per file at every start-up
    sha1, from_bytes = hashlib.sha1, int.from_bytes
    for entry in scan.files:
        path = entry.path  # clip_key, inlined: os.path.splitext's rule, without its calls
        dot = path.rfind(".")
        base = path.rfind("/") + 1
        stem = path[:dot] if dot > base and path[base:dot].strip(".") else path
        try:
            raw = stem.encode()  # the bytes of os.fsencode for any name without lone surrogates
        except UnicodeEncodeError:
            raw = os.fsencode(stem)
        index = from_bytes(sha1(raw).digest()[:8], "big") % n_shards
        bucket = buckets.get(index)
        if bucket is None:
            buckets[index] = [entry]
        else:
            bucket.append(entry)
    names = []
    for index in sorted(buckets):
        name = shard_name(index)
        _write_if_changed(out_dir / f"{name}{MANIFEST_SUFFIX}", manifest_text(buckets[index]))
        names.append(name)
    keep = {f"{n}{MANIFEST_SUFFIX}" for n in names}
    _remove_dead_temporaries(out_dir)
    if out_dir.is_dir():
        for p in out_dir.glob(f"s[0-9][0-9][0-9][0-9]{MANIFEST_SUFFIX}"):
            if p.name not in keep:
                p.unlink()
    layout = {"shards": n_shards, "files": len(scan.files), "ignored": scan.ignored, "nonempty": names}
    if scan.loops:
        layout["symlink_loops"] = scan.loops
    _write_if_changed(layout_path, json.dumps(layout, indent=1, sort_keys=True) + "\n")
    return names


def existing_shards(out_dir) -> list[str]:
    """Shard names from manifests already on disk (no scan): for job processes."""
    layout_path = Path(out_dir) / LAYOUT
    if layout_path.is_file():
        return list(json.loads(layout_path.read_text())["nonempty"])
    return sorted(p.name[: -len(MANIFEST_SUFFIX)] for p in Path(out_dir).glob(f"s[0-9][0-9][0-9][0-9]{MANIFEST_SUFFIX}"))


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
