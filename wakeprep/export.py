"""The microWakeWord export: train-ready feature sets and their training config.

``results/microwakeword/`` (rule ``export_microwakeword``)::

    training_parameters.yaml        microWakeWord's training config, generated (see below)
    export.json                     items, frames and hours of every set, and where they came from
    {label}/training/wakeword_mmap      fixed-length positives / windowed negatives (rule windows)
    {label}/training/specaugment_mmap   the SpecAugment copies of results/augmented/{label}
                                        (export.specaugment)
    {label}/{training,validation,testing}/waveaug_mmap
                                    the waveform-augmented copies of rule augment_audio
                                    (results/augment_audio/{split}/{label}, every part of
                                    its parts.json in one map; export.augment_audio)
    {label}/validation/wakeword_mmap, {label}/testing/wakeword_mmap
    background/validation_ambient/wakeword_mmap, background/testing_ambient/wakeword_mmap
                                    long clips of export.ambient_labels, for false accepts per hour

Every ``*_mmap`` folder is an ``mmap_ninja`` ragged map of ``[frames, 40]`` features
(float32 by default, as microWakeWord's own feature generation writes them; ``export.dtype:
uint16`` halves the bytes and microWakeWord scales uint16 sets itself). Each label folder is
one entry of the config's ``features:`` list (``features_dir``, ``truth``,
``sampling_weight``, ``penalty_weight``, ``truncation_strategy``, ``type: mmap``; the
weights from ``export.sets``), and microWakeWord finds every ``*_mmap`` folder under its
``training``, ``validation``, ``testing`` and ``*_ambient`` folders (its FeatureHandler
globs ``{features_dir}/{mode}/**/*_mmap/``). The augmented copies therefore join their
label's set and share its weights, as the SpecAugment copies do: a label keeps its share
of each batch whether or not it is augmented. A comment block at the top of the config
lists the maps under each set with their items. The config also sets
``window_step_ms: 10`` (our features' step: without it microWakeWord assumes 20 ms and
halves the false accepts per hour it reports), ``clip_duration_ms`` and the trainer
settings of ``export.trainer``, whose defaults are those of microWakeWord's training
notebook.

Before writing, the export adds up the bytes it needs and stops with an error naming the
disk and the figures when the disk has less free space (a full disk under a memory map is
a SIGBUS, not an error message); the maps are written with plain writes
(:mod:`wakeprep.ninja`).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .features import dequantise
from .fileio import atomic_write
from .ninja import NinjaRaggedWriter, ragged_bytes
from .store import RaggedStore, atomic_dir

log = logging.getLogger("wakeprep")

#: microWakeWord's folder for each of our splits; validation/test of ambient labels get ``_ambient``.
MWW_SPLIT = {"train": "training", "validation": "validation", "test": "testing"}
#: The keys of a ``features:`` entry that microWakeWord's FeatureHandler reads.
SET_KEYS = ("features_dir", "sampling_weight", "penalty_weight", "truth", "truncation_strategy", "type")
STEP_MS = 10

#: Per-label defaults, after microWakeWord's training notebook: its generated positives
#: (2.0, truncate_start), speech and dinner-party negatives (10.0, random), no-speech
#: background (5.0, random).
DEFAULT_SETS = {
    "positive": {"sampling_weight": 2.0, "penalty_weight": 1.0, "truncation_strategy": "truncate_start"},
    "negative": {"sampling_weight": 10.0, "penalty_weight": 1.0, "truncation_strategy": "random"},
    "hard_negative": {"sampling_weight": 10.0, "penalty_weight": 1.0, "truncation_strategy": "random"},
    "background": {"sampling_weight": 5.0, "penalty_weight": 1.0, "truncation_strategy": "random"},
}
#: microWakeWord's notebook values for the rest of the training config.
DEFAULT_TRAINER = {
    "train_dir": "trained_models/wakeword",
    "training_steps": [10000],
    "positive_class_weight": [1],
    "negative_class_weight": [20],
    "learning_rates": [0.001],
    "batch_size": 128,
    "time_mask_max_size": [0],
    "time_mask_count": [0],
    "freq_mask_max_size": [0],
    "freq_mask_count": [0],
    "eval_step_interval": 500,
    "clip_duration_ms": 1500,
    "target_minimization": 0.9,
    "minimization_metric": None,
    "maximization_metric": "average_viable_recall",
}


class DiskSpaceError(OSError):
    """Not enough free space for the export; the message names the disk and the bytes."""


@dataclass(frozen=True)
class ExportSettings:
    """Export settings (``export:`` in config.yaml).

    Example
    -------
    >>> s = ExportSettings.from_config({"microwakeword": True, "sets": {"positive": {"sampling_weight": 3}}})
    >>> s.sets["positive"]["sampling_weight"], s.sets["positive"]["truncation_strategy"]
    (3, 'truncate_start')
    """

    microwakeword: bool = False
    openwakeword: bool = False
    openwakeword_model_name: str = "wakeword"
    specaugment: bool = True
    augment_audio: bool = True
    dtype: str = "float32"
    ambient_labels: tuple = ("background",)
    sets: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_SETS.items()})
    trainer: dict = field(default_factory=lambda: dict(DEFAULT_TRAINER))

    @classmethod
    def from_config(cls, cfg: dict | None) -> "ExportSettings":
        cfg = dict(cfg or {})
        sets = {k: dict(v) for k, v in DEFAULT_SETS.items()}
        for label, v in (cfg.pop("sets", None) or {}).items():
            sets.setdefault(label, {}).update(v or {})
        trainer = dict(DEFAULT_TRAINER)
        trainer.update(cfg.pop("trainer", None) or {})
        if "ambient_labels" in cfg:
            cfg["ambient_labels"] = tuple(cfg["ambient_labels"])
        keys = cls.__dataclass_fields__
        unknown = sorted(set(cfg) - set(keys))
        if unknown:
            raise ValueError(f"export.{unknown[0]}: unknown key (allowed: {', '.join(keys)})")
        if cfg.get("dtype", "float32") not in ("float32", "uint16"):
            raise ValueError(f"export.dtype: {cfg['dtype']!r} is not one of 'float32', 'uint16'")
        return cls(**cfg, sets=sets, trainer=trainer)


def mww_folder(split: str, label: str, ambient_labels) -> str:
    """microWakeWord's folder name for our split of ``label``."""
    sub = MWW_SPLIT[split]
    return sub + "_ambient" if split != "train" and label in ambient_labels else sub


def training_parameters_text(config: dict, sets: dict) -> str:
    """The text of ``training_parameters.yaml``: a header, then a comment listing the maps
    microWakeWord will find under each ``features_dir`` (``sets``: export.json's ``sets``,
    keyed ``{label}/{mode}/{name}``, with their items), then ``config`` as YAML."""
    lines = ["# Generated by wakeprep (rule export_microwakeword); see README.md, \"Train with microWakeWord\".",
             "# Maps under each features_dir (items), all loaded by microWakeWord's FeatureHandler:"]
    by_label: dict = {}
    for key, v in sets.items():
        label, rest = key.split("/", 1)
        if v["items"] and v["frames"]:
            by_label.setdefault(label, []).append(f"{rest} {v['items']}")
    for fs in config["features"]:  # in the order of the features list
        label = Path(fs["features_dir"]).name
        lines.append(f"#   {label}: " + ", ".join(sorted(by_label.get(label, []))))
    return "\n".join(lines) + "\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def training_parameters(present: dict, features_root: str, settings: ExportSettings) -> dict:
    """microWakeWord's training config for the exported sets.

    ``present`` maps each label with at least one item to True; ``features_root`` is the
    export folder as the trainer will see it (relative to where it runs).
    """
    config = {"window_step_ms": STEP_MS}
    trainer = dict(settings.trainer)
    config["train_dir"] = trainer.pop("train_dir")
    config["features"] = []
    for label in ("positive", "negative", "hard_negative", "background"):
        if not present.get(label):
            continue
        s = settings.sets[label]
        config["features"].append({
            "features_dir": f"{features_root}/{label}",
            "sampling_weight": float(s["sampling_weight"]),
            "penalty_weight": float(s["penalty_weight"]),
            "truth": label == "positive",
            "truncation_strategy": s["truncation_strategy"],
            "type": "mmap",
        })
    config.update(trainer)
    return config


def _mount_point(path: Path) -> Path:
    p = path.resolve()
    while not p.exists():
        p = p.parent
    while not os.path.ismount(p):
        p = p.parent
    return p


def check_free_space(target: Path, need: int) -> None:
    """Raise :class:`DiskSpaceError` when the disk holding ``target`` has less than ``need`` bytes free."""
    probe = Path(target).resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        mount = _mount_point(probe)
        raise DiskSpaceError(
            errno.ENOSPC,
            f"not enough disk space for {target}: the export needs {need:,} bytes ({need / 1e9:.2f} GB) and the disk "
            f"mounted at {mount} has {free:,} bytes ({free / 1e9:.2f} GB) free; free some space, write results/ to a "
            f"larger disk, or set export.dtype: uint16 (half the bytes)",
        )


def _augmented_stores(folder) -> list[RaggedStore]:
    folder = Path(folder)
    with open(folder / "augment.json", encoding="utf-8") as f:
        parts = json.load(f)["parts"]
    return [RaggedStore(folder / p["name"]) for p in parts]


def waveaug_stores(parts_json) -> list[RaggedStore]:
    """The feature stores of rule augment_audio's parts listed in a ``parts.json``, in order.
    Each part folder lies beside the ``parts.json`` (the file lists them relative to the
    workflow's folder), so the stores are found wherever the export runs."""
    parts_json = Path(parts_json)
    with open(parts_json, encoding="utf-8") as f:
        parts = json.load(f)["parts"]
    stores = []
    for p in parts:
        path = parts_json.parent / Path(p["features"]).parent.name / "features"
        store = RaggedStore(path)
        if len(store) != p["items"]:
            raise ValueError(f"{path}: {len(store)} items, but {parts_json} lists {p['items']}; "
                             f"rerun rule augment_audio for it")
        stores.append(store)
    return stores


def export_microwakeword(sources: dict, out_dir, settings: ExportSettings, *, augmented: dict | None = None,
                         waveaug: dict | None = None, features_root: str | None = None, window_reports=()) -> dict:
    """Write microWakeWord's layout and ``training_parameters.yaml`` (see the module docstring).

    Parameters
    ----------
    sources : dict
        ``(split, label)`` to a folder holding a ``features/`` store: the windows of rule
        ``windows`` or, for sets kept whole, the assembled folder.
    out_dir : path-like
        ``results/microwakeword``; built beside and renamed into place.
    settings : ExportSettings
    augmented : dict, optional
        ``label`` to a ``results/augmented/{label}`` folder (used when ``settings.specaugment``).
    waveaug : dict, optional
        ``(split, label)`` to rule augment_audio's ``results/augment_audio/{split}/{label}/parts.json``
        (used when ``settings.augment_audio``); its parts go to one ``waveaug_mmap``.
    features_root : str, optional
        How the config names ``out_dir`` (default: ``out_dir`` as given).
    window_reports : sequence of path-like
        ``windows.json`` files, summarised in ``export.json``.

    Returns
    -------
    dict
        What ``export.json`` records.
    """
    out_dir = Path(out_dir)
    features_root = str(features_root if features_root is not None else out_dir)
    dtype = np.dtype(settings.dtype)
    plan = _plan(sources, settings, augmented, waveaug)
    need = _needed_bytes(plan, dtype)
    check_free_space(out_dir, need + (1 << 20))
    report = {"dtype": dtype.name, "window_step_ms": STEP_MS, "sets": {}, "needed_bytes": need}
    try:
        with atomic_dir(out_dir) as tmp:
            present = _write_sets(plan, tmp, dtype, report["sets"])
            config = training_parameters(present, features_root, settings)
            atomic_write(tmp / "training_parameters.yaml", training_parameters_text(config, report["sets"]))
            report["window_reports"] = _window_summary(window_reports)
            atomic_write(tmp / "export.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
    except OSError as e:
        if e.errno == errno.ENOSPC and not isinstance(e, DiskSpaceError):
            raise DiskSpaceError(errno.ENOSPC, f"disk full while writing {out_dir} ({e.filename or e}): the export "
                                 f"needs about {need:,} bytes; free some space and rerun") from e
        raise
    log.info("microWakeWord export: %s", ", ".join(f"{k} {v['items']}" for k, v in report["sets"].items()))
    return report


def _plan(sources: dict, settings: ExportSettings, augmented: dict | None, waveaug: dict | None) -> list:
    """The maps to write, in order: ``(label, folder, mmap name, stores)``."""
    plan = []
    for (split, label), folder in sorted(sources.items()):
        plan.append((label, mww_folder(split, label, settings.ambient_labels), "wakeword_mmap",
                     [RaggedStore(Path(folder) / "features")]))
    if settings.specaugment and augmented:
        for label, folder in sorted(augmented.items()):
            plan.append((label, "training", "specaugment_mmap", _augmented_stores(folder)))
    if settings.augment_audio and waveaug:
        for (split, label), parts_json in sorted(waveaug.items()):
            plan.append((label, mww_folder(split, label, settings.ambient_labels), "waveaug_mmap",
                         waveaug_stores(parts_json)))
    return plan


def _needed_bytes(plan: list, dtype: np.dtype) -> int:
    """Bytes the maps of ``plan`` take on disk (maps without data are not written)."""
    need = 0
    for *_, stores in plan:
        items, rows = sum(len(s) for s in stores), sum(int(s.lengths.sum()) for s in stores)
        if rows:
            need += ragged_bytes(items, rows, 40, dtype.itemsize)
    return need


def _write_sets(plan: list, tmp: Path, dtype: np.dtype, sets: dict) -> dict:
    """Write each map of ``plan`` under ``tmp``, recording it in ``sets`` (export.json's
    ``sets``); returns the labels with at least one map written, mapped to True."""
    present: dict = {}
    for label, sub, name, stores in plan:
        items = sum(len(s) for s in stores)
        rows = sum(int(s.lengths.sum()) for s in stores)
        key = f"{label}/{sub}/{name}"
        sets[key] = {"items": items, "frames": rows, "hours": round(rows * STEP_MS / 3.6e6, 6),
                     "sources": [str(s.path) for s in stores]}
        if not rows:  # mmap_ninja cannot open a map without data; microWakeWord then sees no set
            continue
        present[label] = True
        with NinjaRaggedWriter(tmp / label / sub / name, dtype) as w:
            for s in stores:
                for codes in s:
                    w.append(codes if dtype == np.uint16 else dequantise(codes))
    return present


def _window_summary(paths) -> dict:
    from .stats import summarise_windows

    reports = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            reports.append(json.load(f))
    return summarise_windows(reports)


__all__ = ["ExportSettings", "DiskSpaceError", "export_microwakeword", "training_parameters", "check_free_space",
           "mww_folder", "waveaug_stores"]
