"""The real Snakemake workflow, end to end, in temporary folders, and its reruns."""

import json
import os
import shutil
import time

import numpy as np
import pytest
import yaml

from helpers import REPO, by_rule, make_small_corpus, planned_jobs, run_snakemake, workflow_config
from wakeprep.corpus import shard_name, shard_of
from wakeprep.features import micro_features_u16
from wakeprep.report import SECTIONS
from wakeprep.store import RaggedStore
from wakeprep.table import read_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, have_espeak):
    root = tmp_path_factory.mktemp("wf")
    corpora = make_small_corpus(root / "corpora", n_speech=12, n_noise=4)
    work = root / "work"
    work.mkdir()
    cfg = workflow_config(corpora)
    run_snakemake(work, config=cfg)
    return work, corpora, cfg


def _shard(relpath, work, corpus="speech"):
    layout = yaml.safe_load((work / "results" / "manifests" / corpus / "layout.json").read_text())
    return shard_name(shard_of(relpath, layout["shards"]))


def test_end_to_end_outputs(workspace):
    work, corpora, cfg = workspace
    rows = list(read_table(work / "results" / "clips.tsv"))
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    assert {r["speaker"] for r in rows if r["corpus"] == "speech"} == {"en-us", "en-gb"}
    shards = sorted((work / "results" / "shards" / "speech").iterdir())
    assert len(shards) >= 2, "shard_size 4 splits 12 files over several shards"
    seen = 0
    for corpus in ("speech", "noise"):
        for shard in sorted((work / "results" / "shards" / corpus).iterdir()):
            audio = RaggedStore(shard / "audio")
            feats = RaggedStore(shard / "features")
            assert audio.ids == feats.ids
            # features.device cpu: the convert job computed them, the features job took them over
            assert (shard / "features" / "data.bin").stat().st_ino == (shard / "features_convert" / "data.bin").stat().st_ino
            for cid, samples in audio.items():
                np.testing.assert_array_equal(feats[cid], micro_features_u16(samples))
                seen += 1
    assert seen == 16
    # only speech labels are embedded
    assert all((d / "embeddings").is_dir() for d in (work / "results" / "shards" / "speech").iterdir())
    assert not any((d / "embeddings").exists() for d in (work / "results" / "shards" / "noise").iterdir())
    # embedded: exactly the clips in which speech was found (the embed job ends with os._exit)
    for d in (work / "results" / "shards" / "speech").iterdir():
        spoken = [r["clip_id"] for r in read_table(d / "clips.tsv") if r["status"] == "ok" and r["speech_end_s"]]
        assert spoken and RaggedStore(d / "embeddings").ids == spoken
    summary = (work / "results" / "summary.txt").read_text()
    assert "files seen: 16   ok: 16   rejected: 0" in summary
    # the split stores: every ok clip in exactly one split, bytes equal to its shard store
    report = json.loads((work / "results" / "split" / "report.json").read_text())
    assert report["leakage_check"]["passed"] and report["seed"] == cfg["seed"]
    placed = {}
    for split in ("train", "validation", "test"):
        for label in ("positive", "background"):
            out = work / "results" / "mmap" / split / label
            for cid, x in RaggedStore(out / "features").items():
                assert cid not in placed
                placed[cid] = x.tobytes()
    assert sorted(placed) == sorted(r["clip_id"] for r in rows)
    for corpus in ("speech", "noise"):
        for shard in (work / "results" / "shards" / corpus).iterdir():
            for cid, x in RaggedStore(shard / "features").items():
                assert placed[cid] == x.tobytes()


def test_nothing_changed_nothing_to_do(workspace):
    work, _, _ = workspace
    assert planned_jobs(work) == []


#: every (split, label) pair of the test config: speech is positive, noise is background
ASSEMBLED = 3 * 2
#: pairs rule windows makes windows of: positives in every split, background in train
WINDOWED = 3 + 1
#: the report's rules (one per section, and rule report last), each rerun when summary.json changes
REPORT_JOBS = {"report" if name == "summary" else f"report_{name}": 1 for name in SECTIONS}


def _assert_one_shard_reruns(work, relpath):
    jobs = planned_jobs(work)
    assert by_rule(jobs) == {
        "convert": 1, "features": 1, "embed": 1, "cluster_split": 1, "assemble": ASSEMBLED, "windows": WINDOWED, "augment": 2,
        "summary": 1, **REPORT_JOBS, "index": 1, "all": 1,
    }, jobs
    shard = _shard(relpath, work)
    for rule in ("convert", "features", "embed"):
        assert [w for r, w in jobs if r == rule] == [{"corpus": "speech", "shard": shard}], rule
    run_snakemake(work)
    assert planned_jobs(work) == []


def test_touching_one_file_reruns_its_shard_only(workspace):
    work, corpora, _ = workspace
    rel = "en-us/clip000.wav"
    t = time.time_ns() + 5 * 10**9
    os.utime(corpora["speech"] / rel, ns=(t, t))
    _assert_one_shard_reruns(work, rel)


def test_adding_one_file_reruns_its_shard_only(workspace):
    work, corpora, _ = workspace
    rel = "en-gb/added.wav"
    shutil.copy(corpora["speech"] / "en-gb" / "clip001.wav", corpora["speech"] / rel)
    _assert_one_shard_reruns(work, rel)
    rows = {r["clip_id"]: r for r in read_table(work / "results" / "clips.tsv")}
    assert rows["speech/en-gb/added"]["status"] == "ok"


def test_feature_parameter_reruns_features_not_conversion(workspace):
    work, _, cfg = workspace
    n_shards = sum(1 for c in ("speech", "noise") for _ in (work / "results" / "shards" / c).iterdir())
    changed = dict(cfg, features={"pad_ms": 20})
    (work / "config.yaml").write_text(yaml.safe_dump(changed))
    try:
        jobs = planned_jobs(work)
        assert by_rule(jobs) == {"features": n_shards, "assemble": ASSEMBLED, "windows": WINDOWED, "augment": 2, "summary": 1,
                                **REPORT_JOBS, "index": 1, "all": 1}, jobs
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert planned_jobs(work) == []


def test_feature_device_and_batch_rerun_nothing(workspace):
    """features.device and batch_mb do not change a byte of the features: switching them
    plans no job (the plan needs no GPU)."""
    work, _, cfg = workspace
    changed = dict(cfg, features={"pad_ms": 0, "device": "cuda", "batch_mb": 8})
    (work / "config.yaml").write_text(yaml.safe_dump(changed))
    try:
        assert planned_jobs(work) == []
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))

def test_shard_jobs_take_one_manifest_not_audio_files(workspace):
    work, corpora, _ = workspace
    t = time.time_ns() + 10 * 10**9
    os.utime(corpora["noise"] / "n00.flac", ns=(t, t))
    proc = run_snakemake(work, "--dry-run")
    block = proc.stdout.split("rule convert:")[1].split("\n[")[0]
    inputs = [line for line in block.splitlines() if line.strip().startswith("input:")]
    assert inputs == ["    input: results/manifests/noise/s0000.jsonl"], block
    run_snakemake(work)


def test_bad_files_do_not_stop_the_run(tmp_path, have_espeak):
    corpora = make_small_corpus(tmp_path / "corpora", n_speech=2, n_noise=2)
    bad = corpora["noise"]
    (bad / "zero.wav").write_bytes(b"")
    (bad / "text.wav").write_text("not audio")
    good = (bad / "n00.flac").read_bytes()
    (bad / "trunc.flac").write_bytes(good[: len(good) // 3])
    import soundfile as sf

    sf.write(bad / "nan.wav", np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    sf.write(bad / "one.wav", np.array([0.3], np.float32), 16000)
    work = tmp_path / "work"
    work.mkdir()
    run_snakemake(work, config=workflow_config(corpora))
    rows = {r["clip_id"]: r for r in read_table(work / "results" / "clips.tsv")}
    assert {k: rows[k]["reason"] for k in rows if rows[k]["status"] == "rejected"} == {
        "noise/zero": "empty",
        "noise/text": "unreadable",
        "noise/trunc": "truncated",
        "noise/nan": "non_finite",
        "noise/one": "too_short",
    }
    summary = (work / "results" / "summary.txt").read_text()
    assert "rejected: 5" in summary and "rejected empty: 1" in summary


def test_demo_config_runs(tmp_path, have_espeak):
    """The README's main job: the shipped config.yaml generates the demo and prepares it."""
    work = tmp_path / "demo_run"
    work.mkdir()
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    run_snakemake(work)
    assert (work / "demo" / "positive").is_dir()
    summary = (work / "results" / "summary.txt").read_text()
    assert "files seen: 126   ok: 126" in summary  # 106 + 10 noise + 10 impulse responses
    # ambient sets are never empty: background audio in every split (issue 12, item 4)
    rows = list(read_table(work / "results" / "split" / "split.tsv"))
    assert {r["split"] for r in rows if r["label"] == "background"} == {"train", "validation", "test"}
    assert planned_jobs(work) == []


def test_augment_on_cuda_without_gpu_fails_clearly(workspace):
    """No silent CPU fallback: device cuda on a machine without a usable GPU stops the rule."""
    from wakeprep.augment import gpu_status

    if gpu_status()[0]:
        pytest.skip("a GPU is usable here")
    work, _, cfg = workspace
    (work / "config.yaml").write_text(yaml.safe_dump(dict(cfg, augment={"device": "cuda"})))
    try:
        proc = run_snakemake(work, "results/augmented/positive", check=False)
        assert proc.returncode != 0
        log = (work / "results" / "logs" / "augment" / "positive.log").read_text()
        assert "no usable GPU was found" in log and "augment.device: cpu" in log, log
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(cfg))
        run_snakemake(work)
    assert planned_jobs(work) == []


def _tree(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_removed_corpus_and_emptied_shard_leave_nothing_behind(tmp_path):
    """results/ holds exactly what the config produces: after a corpus is removed from
    the config (and a shard of another loses its only file), the next run removes
    their stores, manifests, logs, benchmarks and report images; the index lists what
    is left, and a no-op run stays a no-op."""
    from helpers import write_audio

    rng = np.random.default_rng(3)
    noise, hn, empty = tmp_path / "noise", tmp_path / "hn", tmp_path / "empty"
    for i in range(6):
        write_audio(noise / f"n{i}.wav", (rng.standard_normal(8000) * 0.1).astype(np.float32), 16000)
    for i in range(2):
        write_audio(hn / f"h{i}.wav", (rng.standard_normal(8000) * 0.1).astype(np.float32), 16000)
    empty.mkdir()
    base = {
        "seed": 7, "shard_size": 2, "demo": {"generate": False}, "augment": {"device": "cpu"},
        "embed": {"labels": ["positive"]},  # nothing to embed: keeps the test fast
        "corpora": [
            {"name": "noise", "path": str(noise), "label": "background"},
            {"name": "empty", "path": str(empty), "label": "background", "allow_empty": True},
        ],
    }
    with_hn = dict(base, corpora=base["corpora"] + [{"name": "hn", "path": str(hn), "label": "hard_negative"}])
    work = tmp_path / "work"
    work.mkdir()
    run_snakemake(work, config=with_hn)
    results = work / "results"
    for rel in ("mmap/train/hard_negative", "augmented/hard_negative", "report/features_hard_negative.png",
                "shards/hn", "manifests/hn", "logs/convert/hn", "benchmarks/features/hn"):
        assert (results / rel).exists(), rel
    summary = (results / "summary.txt").read_text()
    assert [line.split()[:3] for line in summary.splitlines() if line.startswith("empty ")] == [["empty", "background", "0"]]
    index = json.loads((results / "index.json").read_text())
    assert index["corpora"]["empty"]["files"] == 0 and index["corpora"]["hn"]["files"] == 2
    # a file alone in its shard goes: that shard becomes empty
    layout = json.loads((results / "manifests" / "noise" / "layout.json").read_text())
    alone = [f"n{i}.wav" for i in range(6)
             if sum(shard_of(f"n{j}.wav", layout["shards"]) == shard_of(f"n{i}.wav", layout["shards"]) for j in range(6)) == 1]
    assert alone, "shard_size 2 over 6 files leaves some file alone in its shard"
    emptied = shard_name(shard_of(alone[0], layout["shards"]))
    (noise / alone[0]).unlink()
    (work / "config.yaml").write_text(yaml.safe_dump(base))
    before = _tree(results)
    proc = run_snakemake(work, "--dry-run")
    assert "paths the config no longer produces" in proc.stderr

    def kept(paths):  # the start-up scan rewrites manifests, a dry run too
        return [p for p in paths if p != "index.json" and not p.startswith("manifests/")]

    assert kept(_tree(results)) == kept(before), "a dry run removes nothing but the index"
    run_snakemake(work)
    left = _tree(results)
    assert [p for p in left if "hard_negative" in p or p.split("/")[1:2] == ["hn"] or "/hn/" in p] == []
    assert [p for p in left if f"/{emptied}" in p] == []
    index = json.loads((results / "index.json").read_text())
    assert sorted(index["corpora"]) == ["empty", "noise"]
    assert {s["label"] for s in index["stores"]} == {"background"}
    assert emptied not in index["corpora"]["noise"]["shards"]
    assert planned_jobs(work) == []


def test_empty_corpus_stops_the_run_at_start_up(tmp_path):
    from helpers import write_audio

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    write_audio(tmp_path / "ok" / "a.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    cfg = {"demo": {"generate": False}, "corpora": [
        {"name": "ok", "path": str(tmp_path / "ok"), "label": "negative"},
        {"name": "typo", "path": str(tmp_path / "empty"), "label": "negative"},
    ]}
    work = tmp_path / "work"
    work.mkdir()
    proc = run_snakemake(work, "--dry-run", config=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    lines = [line for line in out.splitlines() if "typo" in line]
    assert len(lines) == 1 and lines[0].startswith("corpus 'typo': no file matching its include/exclude patterns"), out
    assert "allow_empty: true" in lines[0]
