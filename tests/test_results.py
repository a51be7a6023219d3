"""results/ holds what the config produces: stale paths found (only in the workflow's
own layout), removed safely, and the index of current stores."""

import json
import os

import pytest

from wakeprep.results import Expected, clean_and_index, remove_paths, stale_paths


def _config(corpora, augment=True, export=True, speech=("positive", "negative", "hard_negative")):
    return {
        "corpora": [{"name": n, "path": f"data/{n}", "label": l} for n, l in corpora.items()],
        "embed": {"labels": list(speech)},
        "augment": {"enabled": augment},
        "export": {"microwakeword": export},
    }


def _touch(root, *rels):
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("/"):
            p.mkdir(exist_ok=True)
        else:
            p.write_text("x")


def _results_of(root, corpora, shards):
    """A results/ tree as a run of ``corpora`` ({name: label}) with ``shards`` leaves it."""
    labels = sorted(set(corpora.values()))
    for name, label in corpora.items():
        _touch(root, f"manifests/{name}/layout.json")
        (root / f"manifests/{name}/layout.json").write_text(json.dumps({"nonempty": shards[name], "files": 3}))
        for s in shards[name]:
            _touch(root, f"manifests/{name}/{s}.jsonl", f"shards/{name}/{s}/audio/meta.json", f"shards/{name}/{s}/clips.tsv")
            if label != "background":
                _touch(root, f"shards/{name}/{s}/embeddings/meta.json", f"logs/embed/{name}/{s}.log")
            for rule in ("convert", "features"):
                _touch(root, f"logs/{rule}/{name}/{s}.log", f"benchmarks/{rule}/{name}/{s}.tsv")
    for label in labels:
        for split in ("train", "validation", "test"):
            _touch(root, f"mmap/{split}/{label}/features/meta.json", f"logs/assemble/{split}/{label}.log",
                   f"benchmarks/assemble/{split}/{label}.tsv")
        _touch(root, f"augmented/{label}/part-0000/meta.json", f"logs/augment/{label}.log",
               f"report/features_{label}.png")
    _touch(root, "microwakeword/training_parameters.yaml", "logs/export_microwakeword.log", "summary.txt")


def test_nothing_stale_in_a_current_tree(tmp_path):
    corpora = {"pos": "positive", "noise": "background"}
    _results_of(tmp_path, corpora, {"pos": ["s0000", "s0001"], "noise": ["s0000"]})
    exp = Expected.from_config(_config(corpora), {"pos": ["s0000", "s0001"], "noise": ["s0000"]})
    assert stale_paths(tmp_path, exp) == []


def test_removed_corpus_label_and_emptied_shard_are_stale_and_nothing_else(tmp_path):
    corpora = {"pos": "positive", "noise": "background", "hn": "hard_negative"}
    _results_of(tmp_path, corpora, {"pos": ["s0000", "s0001"], "noise": ["s0000"], "hn": ["s0000"]})
    # things a user put there, and names outside the workflow's layout: never touched
    _touch(tmp_path, "mmap/train/my_notes.txt", "shards/pos/README", "notes/", "mmap/train/.keep", "shards/_x/")
    _touch(tmp_path, "mmap/train/.hard_negative.tmp-1-abc/")  # a killed writer's leftover
    now = {"pos": "positive", "noise": "background"}
    exp = Expected.from_config(_config(now), {"pos": ["s0000"], "noise": ["s0000"]})
    stale = dict(stale_paths(tmp_path, exp))
    assert sorted(stale) == sorted([
        "manifests/hn", "shards/hn", "logs/convert/hn", "logs/features/hn", "logs/embed/hn",
        "benchmarks/convert/hn", "benchmarks/features/hn",
        *[f"{top}/{split}/hard_negative{sfx}" for split in ("train", "validation", "test")
          for top, sfx in (("mmap", ""), ("logs/assemble", ".log"), ("benchmarks/assemble", ".tsv"))],
        "mmap/train/.hard_negative.tmp-1-abc",
        "augmented/hard_negative", "logs/augment/hard_negative.log", "report/features_hard_negative.png",
        "shards/pos/s0001", "logs/convert/pos/s0001.log", "logs/features/pos/s0001.log", "logs/embed/pos/s0001.log",
        "benchmarks/convert/pos/s0001.tsv", "benchmarks/features/pos/s0001.tsv",
    ])
    assert stale["shards/hn"] == "corpus 'hn' is no longer in the config"
    assert stale["shards/pos/s0001"] == "shard pos/s0001 holds no file any more"
    # rule index reads the shards from the manifests, which the start-up scan rewrote
    (tmp_path / "manifests/pos/layout.json").write_text(json.dumps({"nonempty": ["s0000"], "files": 2}))
    clean_and_index(tmp_path, _config(now), tmp_path / "index.json")
    assert not any(os.path.lexists(tmp_path / p) for p in stale)
    assert all((tmp_path / p).exists() for p in ("mmap/train/my_notes.txt", "shards/pos/README", "notes",
                                                "mmap/train/.keep", "shards/_x", "shards/pos/s0000/audio/meta.json"))
    index = json.loads((tmp_path / "index.json").read_text())
    assert sorted(index["corpora"]) == ["noise", "pos"]
    assert [s["path"] for s in index["stores"]] == [
        "mmap/train/background", "mmap/train/positive", "mmap/validation/background", "mmap/validation/positive",
        "mmap/test/background", "mmap/test/positive", "augmented/background", "augmented/positive", "microwakeword"]
    assert stale_paths(tmp_path, exp) == []


def test_disabled_outputs_and_unembedded_corpus_are_stale(tmp_path):
    corpora = {"pos": "positive", "neg": "negative"}
    _results_of(tmp_path, corpora, {"pos": ["s0000"], "neg": ["s0000"]})
    exp = Expected.from_config(_config(corpora, augment=False, export=False, speech=("positive",)),
                               {"pos": ["s0000"], "neg": ["s0000"]})
    assert sorted(p for p, _ in stale_paths(tmp_path, exp)) == sorted([
        "augmented/negative", "augmented/positive", "logs/augment/negative.log", "logs/augment/positive.log",
        "microwakeword", "logs/export_microwakeword.log", "shards/neg/s0000/embeddings", "logs/embed/neg",
    ])


def test_unknown_shards_are_left_alone(tmp_path):
    """A corpus whose shards are not known yet (the demo before it is generated)."""
    _results_of(tmp_path, {"pos": "positive"}, {"pos": ["s0000", "s0003"]})
    exp = Expected.from_config(_config({"pos": "positive"}), {"pos": None})
    assert stale_paths(tmp_path, exp) == []


def test_remove_paths_stays_inside_results_and_does_not_follow_links(tmp_path):
    results, outside = tmp_path / "results", tmp_path / "precious"
    _touch(outside, "keep.bin", "mmap/train/negative/data.bin")
    _touch(results, "mmap/train/")
    os.symlink(outside / "mmap" / "train" / "negative", results / "mmap" / "train" / "negative")
    assert remove_paths(results, ["mmap/train/negative"]) == ["mmap/train/negative"]
    assert (outside / "mmap/train/negative/data.bin").exists() and not os.path.lexists(results / "mmap/train/negative")
    for bad in ("../precious", "/etc", "mmap/../../precious", ""):
        with pytest.raises(ValueError, match="refusing to remove"):
            remove_paths(results, [bad])
    os.symlink(outside, results / "linked")  # a folder link inside results/ leads outside it
    with pytest.raises(ValueError, match="lies outside"):
        remove_paths(results, ["linked/keep.bin"])
    assert (outside / "keep.bin").exists()


def test_results_folder_may_itself_be_a_link(tmp_path):
    real = tmp_path / "disk" / "results"
    _results_of(real, {"a": "positive", "b": "negative"}, {"a": ["s0000"], "b": ["s0000"]})
    os.symlink(real, tmp_path / "results")
    exp = Expected.from_config(_config({"a": "positive"}), {"a": ["s0000"]})
    stale = [p for p, _ in stale_paths(tmp_path / "results", exp)]
    assert "shards/b" in stale
    remove_paths(tmp_path / "results", stale)
    assert not (real / "shards" / "b").exists() and (real / "shards" / "a").exists()
