# Everything that is not a rule: config validation, corpus scan, input functions.
import json
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the wakeprep package, also when not installed

from wakeprep.config import ConfigError, check_config, demo_generates, use_checkout

use_checkout(workflow.basedir)  # jobs import this checkout's package; envs install it
from wakeprep.corpus import existing_shards, scan_corpus, write_manifests
from wakeprep.export import ExportSettings
from wakeprep.windows import WindowSettings, window_mode

try:
    check_config(config, schema_path=workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as e:
    raise WorkflowError(str(e)) from None
validate(config, schema="../schemas/config.schema.yaml")

RESULTS = "results"
CORPORA = {c["name"]: c for c in config["corpora"]}
MANIFESTS = f"{RESULTS}/manifests"
SHARD = f"{RESULTS}/shards/{{corpus}}/{{shard}}"


wildcard_constraints:
    corpus="[A-Za-z0-9][A-Za-z0-9_.-]*",
    shard="s[0-9]{4}",


_shards = {}


def canonical(value):
    """``value`` with every dict's keys sorted, so that reordering config.yaml does not
    look like a parameter change to Snakemake (it compares params by their repr)."""
    return json.loads(json.dumps(value, sort_keys=True))


def shards_of(corpus):
    """Non-empty shard names of a corpus. The main process scans the corpus folder once
    and (re)writes changed manifests; job processes read the layout already on disk."""
    if corpus not in _shards:
        c = CORPORA[corpus]
        if demo_generates(config, c["path"]):
            checkpoints.demo_corpus.get()
        out = f"{MANIFESTS}/{corpus}"
        if workflow.is_main_process:
            scan = scan_corpus(corpus, c["path"], c.get("include"), c.get("exclude", ()))
            _shards[corpus] = write_manifests(scan, out, config["shard_size"])
        else:
            _shards[corpus] = existing_shards(out)
    return _shards[corpus]


LABELS = sorted({c["label"] for c in config["corpora"]})
SPLITS = ["train", "validation", "test"]
SPEECH = [name for name, c in CORPORA.items() if c["label"] in config["embed"]["labels"]]


wildcard_constraints:
    split="train|validation|test",
    label="positive|negative|hard_negative|background",


def shard_paths(pattern, corpora=None):
    """``pattern`` (with {corpus} and {shard}) expanded over every shard of ``corpora``
    (default: every corpus)."""
    return [pattern.format(corpus=c, shard=s) for c in (CORPORA if corpora is None else corpora) for s in shards_of(c)]


def corpora_with_label(label):
    return [name for name, c in CORPORA.items() if c["label"] == label]


def assembled(split, label):
    return f"{RESULTS}/mmap/{split}/{label}"


def all_targets(wildcards):
    targets = [f"{RESULTS}/summary.txt", f"{RESULTS}/split/report.json"]
    targets += [assembled(s, l) for s in SPLITS for l in LABELS]
    targets.append(f"{RESULTS}/report/summary.html")
    if config["export"]["microwakeword"]:
        targets.append(f"{RESULTS}/microwakeword")
    if config["export"]["openwakeword"]:
        targets.append(f"{RESULTS}/openwakeword")
    targets += [windows_dir(s, l) for s in SPLITS for l in LABELS if windowed(s, l)]
    if config["augment"]["enabled"]:
        targets += [f"{RESULTS}/augmented/{l}" for l in LABELS]
    return targets


try:
    WINDOWS = WindowSettings.from_config(config["windows"])
    EXPORT = ExportSettings.from_config(config["export"])
except ValueError as e:
    raise WorkflowError(str(e)) from None


def windowed(split, label):
    """Whether rule windows makes fixed-length windows of this split and label."""
    return window_mode(split, label, WINDOWS, EXPORT.ambient_labels) != "whole"


def windows_dir(split, label):
    return f"{RESULTS}/windows/{split}/{label}"


def export_source(split, label):
    """The folder (with features/) the export and augment read for a split and label."""
    return windows_dir(split, label) if windowed(split, label) else assembled(split, label)


def train_features(label):
    return export_source("train", label)


def export_augmented():
    if config["augment"]["enabled"] and EXPORT.specaugment:
        return [f"{RESULTS}/augmented/{l}" for l in LABELS]
    return []


def print_summary():
    path = Path(RESULTS, "summary.txt")
    if path.is_file():
        print(path.read_text(), file=sys.stderr)
