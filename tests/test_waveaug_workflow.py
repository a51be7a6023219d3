"""Rule augment_audio end to end through Snakemake, on the CPU: the positives placed in
their fixed-length windows by rule windows, augmented with the split's own noise and RIRs,
exported for microWakeWord and listed in the summary and report."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import by_rule, make_small_corpus, planned_jobs, run_snakemake, workflow_config
from wakeprep.demo_resources import make_noise_and_rirs
from wakeprep.store import RaggedStore
from wakeprep.table import read_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def augmented(tmp_path_factory, have_espeak):
    root = tmp_path_factory.mktemp("wa")
    corpora = make_small_corpus(root / "corpora", n_speech=12, n_noise=2)
    make_noise_and_rirs(root / "corpora" / "res", seed=3)
    work = root / "work"
    work.mkdir()
    cfg = workflow_config(corpora)
    cfg["corpora"] += [
        {"name": "my_noise", "path": str(root / "corpora" / "res" / "noise"), "label": "noise"},
        {"name": "my_rirs", "path": str(root / "corpora" / "res" / "rir"), "label": "rir"},
    ]
    cfg["split"] = {"ratios": {"train": 0.6, "validation": 0.2, "test": 0.2}}
    cfg["augment_audio"] = {"enabled": True, "device": "cpu", "labels": ["positive"], "part_items": 3,
                            "probabilities": {"AddBackgroundNoise": 1.0, "RIR": 1.0}}
    cfg["export"] = {"microwakeword": True}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    jobs = by_rule(planned_jobs(work))
    run_snakemake(work)
    return work, cfg, jobs


def test_parts_features_and_split_hygiene(augmented):
    work, cfg, jobs = augmented
    assert jobs["augment_audio_plan"] == 3 and jobs["augment_audio_parts"] == 3 and jobs["windows"] >= 3
    split_of = {r["clip_id"]: r["split"] for r in read_table(work / "results" / "split" / "split.tsv")}
    seen = {}
    for split, reps in (("train", 2), ("validation", 1), ("test", 1)):
        base = work / "results" / "augment_audio" / split / "positive"
        index = yaml.safe_load((base / "parts.json").read_text())
        windows = RaggedStore(work / "results" / "windows" / split / "positive" / "audio")
        assert index["items"] == reps * len(windows)
        assert len(index["parts"]) == max(1, -(-len(windows) // 3))
        # background corpora serve as noise too
        assert index["noise"]["corpora"] == ["my_noise", "noise"] and index["rir"]["corpora"] == ["my_rirs"]
        used = set()
        for part in index["parts"]:
            f = RaggedStore(work / part["features"])  # paths relative to the working folder
            assert f.dtype == np.uint16 and f.row_shape == (40,)
            for r in read_table(work / part["params"]):
                used |= {r["noise_clip"], r["rir_clip"]}
        assert all(split_of[u] == split for u in used), (split, used)
        seen[split] = used
    assert seen["train"].isdisjoint(seen["validation"] | seen["test"])
    overview = (work / "results" / "augment_audio" / "overview.txt").read_text()
    assert "train       positive" in overview and "my_noise, noise" in overview and "my_rirs" in overview
    assert planned_jobs(work) == []  # nothing reruns


def test_export_summary_and_report_list_the_augmented_sets(augmented):
    from mmap_ninja.ragged import RaggedMmap

    work, cfg, jobs = augmented
    res = work / "results"
    assert jobs["export_microwakeword"] == 1
    text = (res / "microwakeword" / "training_parameters.yaml").read_text()
    config = yaml.safe_load(text)
    export = json.loads((res / "microwakeword" / "export.json").read_text())
    for split, mode in (("train", "training"), ("validation", "validation"), ("test", "testing")):
        index = json.loads((res / "augment_audio" / split / "positive" / "parts.json").read_text())
        # microWakeWord's FeatureHandler globs {features_dir}/{mode}/**/*_mmap/ of each set
        (fs,) = [f for f in config["features"] if Path(f["features_dir"]).name == "positive"]
        found = {p.name: p for p in (work / fs["features_dir"] / mode).glob("**/*_mmap/")}
        assert export["sets"][f"positive/{mode}/waveaug_mmap"]["items"] == index["items"]
        if not index["items"]:  # this small corpus may leave a split without positives: no map
            assert split == "test" and "waveaug_mmap" not in found
            continue
        m = RaggedMmap(str(found["waveaug_mmap"]))
        assert len(m) == index["items"]
        assert m[0].shape[1] == 40 and m[0].dtype == np.float32
        assert f"{mode}/waveaug_mmap {index['items']}" in text
    summary = (res / "summary.txt").read_text()
    overview = (res / "augment_audio" / "overview.txt").read_text()
    assert overview in summary and "my_noise, noise" in summary
    page = (res / "report" / "summary.html").read_text()
    assert "<b>augment_audio:</b>" in page and ">my_rirs</td>" in page
    # the parts.json files are inputs: augmented sets that change rerun the export and the summary
    changed = dict(cfg, augment_audio=dict(cfg["augment_audio"], repetitions={"train": 2, "validation": 2, "test": 1}))
    (work / "config.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    try:
        planned = by_rule(planned_jobs(work))
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert planned.get("export_microwakeword") == 1 and planned.get("summary") == 1, planned
    assert planned_jobs(work) == []


def test_device_cuda_without_gpu_stops_the_part_jobs(augmented):
    from wakeprep.augment import gpu_status

    if gpu_status()[0]:
        pytest.skip("a GPU is usable here")
    work, cfg, _ = augmented
    bad = dict(cfg, augment_audio=dict(cfg["augment_audio"], device="cuda"))
    (work / "config.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    try:
        target = "results/augment_audio/train/positive/parts.json"
        proc = run_snakemake(work, target, "--forcerun", "augment_audio", check=False)
        assert proc.returncode != 0
        log = (work / "results" / "logs" / "augment_audio" / "train" / "positive" / "part-0000.log").read_text()
        assert "no usable GPU was found" in log, log
    finally:
        (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
