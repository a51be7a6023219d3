"""What ``results/`` holds for a config: the current stores, the stale paths, the index.

``results/`` must hold exactly what the current config produces: a store of a corpus,
label or shard that is no longer configured would otherwise stay there, valid-looking,
and anything that globs ``results/mmap/train/*`` would train on it. This module knows
the workflow's layout (one place: a rule that adds a per-corpus, per-shard or per-label
output registers it here)::

    manifests/{corpus}/                 layout.json, s0000.jsonl ...
    shards/{corpus}/{shard}/            audio, features, features_convert, embeddings (speech labels), clips.tsv
    logs|benchmarks/{convert,features,embed}/{corpus}/{shard}.log|.tsv
    mmap/{split}/{label}/               logs|benchmarks/assemble/{split}/{label}.log|.tsv
    windows/{split}/{label}/            logs|benchmarks/windows/{split}/{label}.log|.tsv
    augment_audio/{split}/{label}/      logs|benchmarks/augment_audio/{split}/{label}/
    augmented/{label}/                  logs|benchmarks/augment/{label}.log|.tsv (augment.enabled)
    report/features_{label}.png
    microwakeword/                      logs/export_microwakeword.log (export.microwakeword)
    openwakeword/                       logs/export_openwakeword.log (export.openwakeword)

:func:`stale_paths` lists what lies in those places but is not produced by the config:
only names of the workflow's own form (corpus names, shard names ``s0000``, labels,
splits), never anything else a user put under ``results/``. Rule ``index`` removes them
(:func:`remove_paths`, which refuses any path outside ``results/``) and writes
``results/index.json`` (:func:`write_index`): the one list of current stores.

>>> exp = Expected.from_config({"corpora": [{"name": "a", "path": "a", "label": "positive"}],
...     "embed": {"labels": ["positive"]}, "augment": {"enabled": False},
...     "export": {"microwakeword": False}}, shards={"a": ["s0000"]})
>>> sorted(exp.labels), exp.speech
(['positive'], frozenset({'a'}))
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import atomic_write

log = logging.getLogger(__name__)

INDEX = "index.json"
SPLITS = ("train", "validation", "test")
LABELS = ("positive", "negative", "hard_negative", "background", "noise", "rir")
SHARD_RULES = ("convert", "features", "embed")
_CORPUS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_SHARD = re.compile(r"s[0-9]{4}\Z")


@dataclass(frozen=True)
class Expected:
    """What the config produces under ``results/``.

    ``shards`` maps each corpus to its non-empty shard names, or to None while they are
    not known yet (a corpus the demo has still to generate): its shards are then left alone.
    """

    corpora: dict  # name -> {"label", "path"}
    shards: dict  # name -> list of shard names or None
    speech: frozenset
    labels: frozenset
    splits: tuple = SPLITS
    augment: bool = True
    export: bool = True
    openwakeword: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict, shards: dict) -> "Expected":
        corpora = {c["name"]: {"label": c["label"], "path": str(c["path"])} for c in config["corpora"]}
        speech_labels = set((config.get("embed") or {}).get("labels", ["positive", "negative", "hard_negative"]))
        return cls(
            corpora=corpora,
            shards={name: (list(shards[name]) if shards.get(name) is not None else None) for name in corpora},
            speech=frozenset(n for n, c in corpora.items() if c["label"] in speech_labels),
            labels=frozenset(c["label"] for c in corpora.values()),
            augment=bool((config.get("augment") or {}).get("enabled", True)),
            export=bool((config.get("export") or {}).get("microwakeword", True)),
            openwakeword=bool((config.get("export") or {}).get("openwakeword", False)),
        )


def _entries(folder: Path):
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _siblings(path: Path, names) -> list[Path]:
    """``path`` plus what interrupted writers of it left beside it (``.NAME.*``)."""
    prefix = f".{path.name}."
    return [path] + [path.parent / n for n in names if n.startswith(prefix)]


def stale_paths(results, expected: Expected) -> list[tuple[str, str]]:
    """Paths under ``results`` (relative, sorted) that the config no longer produces,
    each with the reason. Only the workflow's own layout is looked at."""
    results = Path(results)
    out: list[tuple[str, str]] = []

    def add(path: Path, why: str, names=()):
        for p in _siblings(path, names):
            if os.path.lexists(p):
                out.append((p.relative_to(results).as_posix(), why))

    _stale_corpora(results, expected, add)
    _stale_shard_logs(results, expected, add)
    _stale_per_split(results, expected, add)
    _stale_per_label(results, expected, add)
    _stale_exports(results, expected, add)
    seen, unique = set(), []
    for rel, why in sorted(out):
        if rel not in seen and not any(rel.startswith(s + "/") for s in seen):
            seen.add(rel)
            unique.append((rel, why))
    return unique


def _stale_corpora(results: Path, expected: Expected, add) -> None:
    """Per corpus: manifests and shard stores of corpora gone from the config, shards that hold
    no file any more, embeddings of corpora no longer embedded."""
    for top in ("manifests", "shards"):
        entries = _entries(results / top)
        names = [e.name for e in entries]
        for e in entries:
            if _CORPUS.match(e.name) and e.name not in expected.corpora:
                add(results / top / e.name, f"corpus '{e.name}' is no longer in the config", names)
    for corpus in sorted(expected.corpora):
        known = expected.shards.get(corpus)
        folder = results / "shards" / corpus
        entries = _entries(folder)
        names = [e.name for e in entries]
        for e in entries:
            if not _SHARD.match(e.name):
                continue
            if known is not None and e.name not in known:
                add(folder / e.name, f"shard {corpus}/{e.name} holds no file any more", names)
            elif corpus not in expected.speech:
                emb = folder / e.name / "embeddings"
                if os.path.lexists(emb):
                    add(emb, f"corpus '{corpus}' is no longer embedded (its label is not in embed.labels)",
                        os.listdir(folder / e.name))


def _stale_shard_logs(results: Path, expected: Expected, add) -> None:
    """The per-shard rules' logs and benchmarks of stale corpora and shards."""
    for kind in ("logs", "benchmarks"):
        suffix = ".log" if kind == "logs" else ".tsv"
        for rule in SHARD_RULES:
            base = results / kind / rule
            entries = _entries(base)
            names = [e.name for e in entries]
            for e in entries:
                if not _CORPUS.match(e.name):
                    continue
                if e.name not in expected.corpora:
                    add(base / e.name, f"corpus '{e.name}' is no longer in the config", names)
                elif rule == "embed" and e.name not in expected.speech:
                    add(base / e.name, f"corpus '{e.name}' is no longer embedded", names)
                elif expected.shards.get(e.name) is not None:
                    _stale_shard_files(base / e.name, suffix, set(expected.shards[e.name]), add)


def _stale_shard_files(folder: Path, suffix: str, known: set, add) -> None:
    """Files ``SHARD{suffix}`` in ``folder`` whose shard is not in ``known``."""
    files = _entries(folder)
    fnames = [f.name for f in files]
    for f in files:
        stem = f.name[: -len(suffix)] if f.name.endswith(suffix) else ""
        if _SHARD.match(stem) and stem not in known:
            add(folder / f.name, f"shard {folder.name}/{stem} holds no file any more", fnames)


def _label_of(name: str, suffix: str) -> str:
    """The label an entry ``LABEL{suffix}`` names ("" when it does not end in ``suffix``)."""
    return name[: -len(suffix)] if suffix and name.endswith(suffix) else (name if not suffix else "")


def _stale_per_split(results: Path, expected: Expected, add) -> None:
    """Per split and label: splits and labels no longer produced."""
    per_split = {"mmap": "", "logs/assemble": ".log", "benchmarks/assemble": ".tsv",
                 "windows": "", "logs/windows": ".log", "benchmarks/windows": ".tsv",
                 "augment_audio": "", "logs/augment_audio": "", "benchmarks/augment_audio": ""}
    for top, suffix in per_split.items():
        base = results / top
        splits = _entries(base)
        snames = [e.name for e in splits]
        for s in splits:
            if s.name not in SPLITS:
                continue
            if s.name not in expected.splits:
                add(base / s.name, f"split '{s.name}' is no longer produced", snames)
                continue
            labels = _entries(base / s.name)
            lnames = [e.name for e in labels]
            for e in labels:
                label = _label_of(e.name, suffix)
                if label in LABELS and label not in expected.labels:
                    add(base / s.name / e.name, f"label '{label}' has no corpus any more", lnames)


def _stale_per_label(results: Path, expected: Expected, add) -> None:
    """Per label: augmented stores and feature images of labels gone or no longer augmented."""
    for top, suffix in (("augmented", ""), ("logs/augment", ".log"), ("benchmarks/augment", ".tsv")):
        base = results / top
        entries = _entries(base)
        names = [e.name for e in entries]
        for e in entries:
            label = _label_of(e.name, suffix)
            if label not in LABELS:
                continue
            if not expected.augment:
                add(base / e.name, "augment.enabled is false", names)
            elif label not in expected.labels:
                add(base / e.name, f"label '{label}' has no corpus any more", names)
    report = results / "report"
    entries = _entries(report)
    names = [e.name for e in entries]
    for e in entries:
        m = re.fullmatch(r"features_(\w+)\.png", e.name)
        if m and m.group(1) in LABELS and m.group(1) not in expected.labels:
            add(report / e.name, f"label '{m.group(1)}' has no corpus any more", names)


def _stale_exports(results: Path, expected: Expected, add) -> None:
    """The export folders and logs of exports turned off."""
    if not expected.export:
        top = _entries(results)
        names = [e.name for e in top]
        add(results / "microwakeword", "export.microwakeword is false", names)
        add(results / "logs" / "export_microwakeword.log", "export.microwakeword is false")
    if not expected.openwakeword:
        names = [e.name for e in _entries(results)]
        add(results / "openwakeword", "export.openwakeword is false", names)
        add(results / "logs" / "export_openwakeword.log", "export.openwakeword is false")


def remove_paths(results, paths) -> list[str]:
    """Remove ``paths`` (relative to ``results``); links are removed, not followed.

    Refuses (ValueError) any path that is absolute, climbs with ``..`` or whose parent
    does not lie inside ``results``. Returns the paths removed.
    """
    results = Path(results)
    base = os.path.realpath(results)
    done = []
    for rel in paths:
        if os.path.isabs(rel) or ".." in Path(rel).parts or not Path(rel).parts:
            raise ValueError(f"refusing to remove '{rel}': not a path inside {results}")
        path = results / rel
        parent = os.path.realpath(path.parent)
        if parent != base and not parent.startswith(base + os.sep):
            raise ValueError(f"refusing to remove '{path}': it lies outside {results}")
        if path.is_symlink() or not path.is_dir():
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        else:
            shutil.rmtree(path)
        done.append(rel)
    return done


def _store_counts(folder: Path) -> dict:
    """``{sub-store: item count}`` of the ragged stores directly in ``folder``."""
    counts = {}
    for e in _entries(folder):
        meta = Path(e.path) / "meta.json"
        if e.is_dir() and not e.name.startswith(".") and meta.is_file():
            try:
                counts[e.name] = int(json.loads(meta.read_text())["count"])
            except (ValueError, KeyError, OSError):
                counts[e.name] = None
    return counts


def index(results, expected: Expected) -> dict:
    """The index of current stores (``results/index.json``): every corpus with its
    label, folder, file count and shards, and every assembled, augmented and exported
    store with the item counts of its ragged stores. Paths are relative to ``results``."""
    results = Path(results)
    corpora = {}
    for name, c in sorted(expected.corpora.items()):
        try:
            layout = json.loads((results / "manifests" / name / "layout.json").read_text())
        except (OSError, ValueError):
            layout = {}
        stores = ["audio", "features"] + (["embeddings"] if name in expected.speech else [])
        corpora[name] = {
            **c,
            "files": int(layout.get("files", 0)),
            "shards": list(expected.shards.get(name) or layout.get("nonempty", [])),
            "shard_stores": [f"shards/{name}/{{shard}}/{s}" for s in stores],
        }
    stores = []
    for split in expected.splits:
        for label in sorted(expected.labels):
            rel = f"mmap/{split}/{label}"
            stores.append({"path": rel, "kind": "assembled", "split": split, "label": label,
                           "items": _store_counts(results / rel)})
    if expected.augment:
        for label in sorted(expected.labels):
            rel = f"augmented/{label}"
            stores.append({"path": rel, "kind": "augmented", "split": "train", "label": label,
                           "items": _store_counts(results / rel)})
    if expected.export:
        stores.append({"path": "microwakeword", "kind": "microwakeword"})
    return {"format": "wakeprep-index", "version": 1, "corpora": corpora, "stores": stores}


def shards_on_disk(results, names) -> dict:
    """``{corpus: non-empty shard names}`` from the manifests' layouts under ``results``
    (None for a corpus without one)."""
    out = {}
    for name in names:
        try:
            out[name] = list(json.loads((Path(results) / "manifests" / name / "layout.json").read_text())["nonempty"])
        except (OSError, ValueError, KeyError):
            out[name] = None
    return out


def clean_and_index(results, config: dict, out, remove: bool = True) -> list[str]:
    """Rule ``index``: remove the stale paths (when ``remove``), then write the index to
    ``out``. ``config`` holds what :meth:`Expected.from_config` reads (corpora,
    embed.labels, augment.enabled, export.microwakeword); shards come from the manifests.
    Returns the paths removed (or, with ``remove`` off, the stale ones kept)."""
    names = [c["name"] for c in config["corpora"]]
    expected = Expected.from_config(config, shards_on_disk(results, names))
    stale = stale_paths(results, expected)
    for rel, why in stale:
        log.info("%s %s: %s", "removing" if remove else "keeping stale", rel, why)
    done = remove_paths(results, [rel for rel, _ in stale]) if remove else [rel for rel, _ in stale]
    listing = index(results, expected)
    atomic_write(out, json.dumps(listing, indent=1, sort_keys=True) + "\n")
    log.info("index of %d corpora and %d stores written to %s", len(listing["corpora"]), len(listing["stores"]), out)
    return done
