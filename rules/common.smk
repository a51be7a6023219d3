# Everything that is not a rule: config validation, corpus scan, input functions.
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # the wakeprep package, also when not installed

from wakeprep.config import ConfigError, check_config, demo_generates, use_checkout

use_checkout(workflow.basedir)  # jobs import this checkout's package; envs install it
from wakeprep.corpus import CorpusError, CorpusSettings, existing_shards, prepare_manifests, scan
from wakeprep.export import ExportSettings
from wakeprep.stats import FORMAT as SUMMARY_FORMAT
from wakeprep.windows import WindowSettings, window_mode

try:
    # once: the schema's defaults filled in (as snakemake.utils.validate would), then the
    # checks across keys; every problem one line naming the key
    check_config(config, schema_path=workflow.source_path("../schemas/config.schema.yaml"))
except ConfigError as e:
    raise WorkflowError(str(e)) from None

RESULTS = "results"
CORPORA = {c["name"]: c for c in config["corpora"]}
MANIFESTS = f"{RESULTS}/manifests"
SHARD = f"{RESULTS}/shards/{{corpus}}/{{shard}}"


wildcard_constraints:
    corpus="[A-Za-z0-9][A-Za-z0-9_.-]*",
    shard="s[0-9]{4}",


_shards = {}
_scans = {}


def canonical(value):
    """``value`` with every dict's keys sorted, so that reordering config.yaml does not
    look like a parameter change to Snakemake (it compares params by their repr)."""
    return json.loads(json.dumps(value, sort_keys=True))


def _scan(corpus):
    """Scan a corpus folder (main process only); an empty one stops the run."""
    try:
        found = scan(CorpusSettings.from_config(CORPORA[corpus]))
    except CorpusError as e:
        raise WorkflowError(str(e)) from None
    for rel in found.loops:
        print(f"wakeprep: corpus '{corpus}': folder link '{rel}' leads back into its own path; not followed", file=sys.stderr)
    return found


def shards_of(corpus):
    """Non-empty shard names of a corpus. The main process scans the corpus folder once
    and (re)writes changed manifests; job processes read the layout already on disk."""
    if corpus not in _shards:
        if demo_generates(config, CORPORA[corpus]["path"]):
            checkpoints.demo_corpus.get()
        if workflow.is_main_process:
            found = _scans.pop(corpus, None) or _scan(corpus)
            settings = CorpusSettings.from_config(CORPORA[corpus])
            _shards[corpus] = prepare_manifests(settings, found, f"{MANIFESTS}/{corpus}", config["shard_size"])
        else:
            _shards[corpus] = existing_shards(f"{MANIFESTS}/{corpus}")
    return _shards[corpus]


if workflow.is_main_process:
    # Scan every corpus that exists now, so that an empty one stops the run at start-up
    # (the demo's corpora: once the demo checkpoint has made them). Manifests are
    # written when the DAG is built, so that --lint and the like write nothing.
    for _name, _c in CORPORA.items():
        if not demo_generates(config, _c["path"]):
            _scans[_name] = _scan(_name)


LABELS = sorted({c["label"] for c in config["corpora"]})
#: Labels of resource audio (noise, impulse responses): converted, split and assembled like
#: any corpus, but not training data (not exported, not SpecAugmented).
RESOURCE_LABELS = ("noise", "rir")
TRAINING_LABELS = [l for l in LABELS if l not in RESOURCE_LABELS]
SPLITS = ["train", "validation", "test"]
SPEECH = [name for name, c in CORPORA.items() if c["label"] in config["embed"]["labels"]]


wildcard_constraints:
    split="train|validation|test",
    label="positive|negative|hard_negative|background|noise|rir",
    part="[0-9]{4}",


def shard_paths(pattern, corpora=None):
    """``pattern`` (with {corpus} and {shard}) expanded over every shard of ``corpora``
    (default: every corpus)."""
    return [pattern.format(corpus=c, shard=s) for c in (CORPORA if corpora is None else corpora) for s in shards_of(c)]


def corpora_with_label(label):
    return [name for name, c in CORPORA.items() if c["label"] == label]


def assembled(split, label):
    return f"{RESULTS}/mmap/{split}/{label}"


def outputs(wildcards=None):
    """Every output the config asks for, but the index."""
    targets = [f"{RESULTS}/summary.txt", f"{RESULTS}/split/report.json"]
    targets += [assembled(s, l) for s in SPLITS for l in LABELS]
    targets.append(f"{RESULTS}/report/summary.html")
    if config["export"]["microwakeword"]:
        targets.append(f"{RESULTS}/microwakeword")
    if config["export"]["openwakeword"]:
        targets.append(f"{RESULTS}/openwakeword")
    targets += [windows_dir(s, l) for s in SPLITS for l in LABELS if windowed(s, l)]
    if config["augment"]["enabled"]:
        targets += [f"{RESULTS}/augmented/{l}" for l in TRAINING_LABELS]
    if config["augment_audio"]["enabled"]:
        targets.append(f"{RESULTS}/augment_audio/overview.txt")
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
        return [f"{RESULTS}/augmented/{l}" for l in TRAINING_LABELS]
    return []
# --------------------------------------------------------------------------- augment_audio

AUGMENT_AUDIO = f"{RESULTS}/augment_audio/{{split}}/{{label}}"


def windows_audio(split, label):
    """The folder of rule windows whose ``audio/`` store holds the fixed-length windows of a split
    and label (int16, every item the same length; placed labels only, see windows.place_labels)."""
    return windows_dir(split, label)


def augment_audio_sets(split, kind):
    """Assembled folders (results/mmap/{split}/{label}) of the noise or RIR set of ``split``,
    and the corpora behind them. Labels without any corpus give none."""
    section = config["augment_audio"]
    labels = section["noise_labels"] if kind == "noise" else ["rir"]
    labels = [l for l in labels if corpora_with_label(l)]
    return [assembled(split, l) for l in labels], [c for l in labels for c in corpora_with_label(l)]


def augment_audio_params():
    """The augment_audio section without the keys that cannot change a part's bytes (batch
    size, which labels run, enabled), so that changing those reruns nothing."""
    return canonical({k: v for k, v in config["augment_audio"].items() if k not in ("batch_items", "labels", "enabled")})


def augment_audio_targets():
    section = config["augment_audio"]
    if not section["enabled"]:
        return []
    return [
        f"{RESULTS}/augment_audio/{s}/{l}/parts.json"
        for s in SPLITS
        if section["repetitions"][s] > 0
        for l in section["labels"]
        if l in LABELS
    ]


def export_augment_audio():
    """The parts.json files whose augmented copies rule export_microwakeword adds to the
    training, validation and test sets (export.augment_audio), as [split, label] pairs
    and paths; none when augment_audio is off."""
    if not EXPORT.augment_audio:
        return [], []
    paths = [p for p in augment_audio_targets() if p.split("/")[-2] in TRAINING_LABELS]
    return [p.split("/")[-3:-1] for p in paths], paths


def augment_audio_parts(wildcards):
    """Part folders of one split and label, from the plan (a checkpoint)."""
    plan = checkpoints.augment_audio_plan.get(split=wildcards.split, label=wildcards.label).output.plan
    with open(plan, encoding="utf-8") as f:
        n = len(json.load(f)["parts"])
    base = AUGMENT_AUDIO.format(split=wildcards.split, label=wildcards.label)
    return [f"{base}/part-{k:04d}" for k in range(n)]
def all_targets(wildcards):
    return [INDEX, *outputs()]


def expected_results():
    """What results/ holds for this config (see wakeprep.results), as the index rule's
    params: no shard lists, which the job reads from the manifests."""
    return canonical(
        {
            "corpora": [{"name": n, "path": str(c["path"]), "label": c["label"]} for n, c in sorted(CORPORA.items())],
            "embed": {"labels": sorted(config["embed"]["labels"])},
            "augment": {"enabled": bool(config["augment"]["enabled"])},
            "export": {k: bool(config["export"][k]) for k in ("microwakeword", "openwakeword")},
        }
    )


INDEX = f"{RESULTS}/index.json"


def stale_results():
    """Paths under results/ that this config no longer produces, with the reason (see
    wakeprep.results). Cheap: a few folder listings, no per-file work."""
    from wakeprep.results import Expected, shards_on_disk, stale_paths

    if not Path(RESULTS).is_dir():
        return []
    on_disk = shards_on_disk(RESULTS, [n for n in CORPORA if n not in _shards])
    known = {n: _shards[n] if n in _shards else on_disk[n] for n in CORPORA}
    return stale_paths(RESULTS, Expected.from_config(expected_results(), known))


def check_stale_results():
    """At start-up: when results/ holds paths this config no longer produces, say so and
    remove the index, so that the run has work to do (onstart hooks run only then) and
    rule index lists the current stores again. A dry run removes nothing else."""
    stale = stale_results()
    if not stale:
        return
    action = "removed when the run starts (not by a dry run)" if config["remove_stale_results"] else "kept (remove_stale_results: false)"
    shown = ", ".join(rel for rel, _ in stale[:8]) + (f" and {len(stale) - 8} more" if len(stale) > 8 else "")
    print(f"wakeprep: results/ holds {len(stale)} paths the config no longer produces, {action}: {shown}", file=sys.stderr)
    if config["remove_stale_results"]:
        Path(INDEX).unlink(missing_ok=True)


def remove_stale_results():
    """onstart (a real run, not a dry run, under Snakemake's lock, before any job): remove
    what results/ holds that this config no longer produces, so that no step of this
    run (the report's run times, a glob over results/mmap) sees it."""
    from wakeprep.results import remove_paths

    if not config["remove_stale_results"]:
        return
    removed = remove_paths(RESULTS, [rel for rel, _ in stale_results()])
    for rel in removed[:20]:
        print(f"wakeprep: removed {RESULTS}/{rel}", file=sys.stderr)
    if len(removed) > 20:
        print(f"wakeprep: removed {len(removed) - 20} more stale paths under {RESULTS}/", file=sys.stderr)


if workflow.is_main_process:
    check_stale_results()


def print_summary():
    path = Path(RESULTS, "summary.txt")
    if path.is_file():
        print(path.read_text(), file=sys.stderr)
