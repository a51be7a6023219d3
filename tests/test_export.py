"""The microWakeWord export (every set in training_parameters.yaml exists and opens with
mmap_ninja, values equal the stores, the config round-trips with microWakeWord's keys, a
full disk is an error message) and the openWakeWord folders (16 kHz mono WAVs equal to the
stores); one demo run checks both end to end, with the ambient sets and the summary."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from wakeprep.export import SET_KEYS, DiskSpaceError, ExportSettings, export_microwakeword
from wakeprep.features import dequantise
from wakeprep.openwakeword import export_openwakeword, file_name
from wakeprep.store import RaggedStore, RaggedWriter

SPLITS = ("train", "validation", "test")
LABELS = ("positive", "negative", "hard_negative", "background")
MODES = ("training", "validation", "testing", "validation_ambient", "testing_ambient")
#: The keys microWakeWord's FeatureHandler and trainer read from training_parameters.yaml.
MWW_KEYS = {"window_step_ms", "train_dir", "features", "training_steps", "positive_class_weight",
            "negative_class_weight", "learning_rates", "batch_size", "time_mask_max_size", "time_mask_count",
            "freq_mask_max_size", "freq_mask_count", "eval_step_interval", "clip_duration_ms",
            "target_minimization", "minimization_metric", "maximization_metric"}


def _store(folder, items: dict, rng):
    with RaggedWriter(folder / "features", np.uint16, (40,)) as wf, RaggedWriter(folder / "audio", np.int16) as wa:
        for cid, n in items.items():
            wf.append(cid, rng.integers(0, 900, (n, 40)).astype(np.uint16))
            wa.append(cid, rng.integers(-9000, 9000, n * 160).astype(np.int16))
    return folder


@pytest.fixture()
def sources(tmp_path):
    rng = np.random.default_rng(1)
    out = {}
    for s in SPLITS:
        for label in LABELS:
            n = 0 if (s, label) == ("test", "hard_negative") else 3
            out[(s, label)] = _store(tmp_path / "src" / s / label, {f"{label}/{s}/{i}": 50 + 7 * i for i in range(n)}, rng)
    aug = tmp_path / "aug" / "positive"
    with RaggedWriter(aug / "part-0000", np.uint16, (40,)) as w:
        for i in range(2):
            w.append(f"positive/train/{i}#aug0", rng.integers(0, 900, (50, 40)).astype(np.uint16))
    (aug / "augment.json").write_text(json.dumps({"parts": [{"name": "part-0000"}]}))
    return tmp_path, out, {"positive": aug}


def _sets(config):
    """(features_dir, mode, mmap folder) of every map microWakeWord finds, as its loader globs them."""
    for fs in config["features"]:
        for mode in MODES:
            for p in sorted(Path(fs["features_dir"], mode).glob("**/*_mmap/")):
                yield fs, mode, p


def test_every_set_opens_with_mmap_ninja_and_equals_the_stores(sources):
    from mmap_ninja.ragged import RaggedMmap

    root, src, aug = sources
    out = root / "mww"
    report = export_microwakeword(src, out, ExportSettings(microwakeword=True), augmented=aug)
    config = yaml.safe_load((out / "training_parameters.yaml").read_text())
    assert [fs["features_dir"] for fs in config["features"]] == [str(out / l) for l in LABELS]
    found = {}
    for fs, mode, path in _sets(config):
        m = RaggedMmap(str(path))
        assert len(m) > 0
        found[(Path(fs["features_dir"]).name, mode, path.name)] = m
    assert found.keys() == {(l, "training", "wakeword_mmap") for l in LABELS} | {("positive", "training", "specaugment_mmap")} | {
        (l, m, "wakeword_mmap") for l in ("positive", "negative") for m in ("validation", "testing")} | {
        ("hard_negative", "validation", "wakeword_mmap"),
        ("background", "validation_ambient", "wakeword_mmap"), ("background", "testing_ambient", "wakeword_mmap")}
    for (split, label), folder in src.items():
        mode = {"train": "training", "validation": "validation", "test": "testing"}[split]
        if label == "background" and split != "train":
            mode += "_ambient"
        store = RaggedStore(folder / "features")
        if not len(store):
            assert (label, mode, "wakeword_mmap") not in found
            continue
        m = found[(label, mode, "wakeword_mmap")]
        assert len(m) == len(store) == report["sets"][f"{label}/{mode}/wakeword_mmap"]["items"]
        for i in range(len(store)):
            assert m[i].dtype == np.float32
            np.testing.assert_array_equal(m[i], dequantise(store[i]))
    aug_store = RaggedStore(aug["positive"] / "part-0000")
    np.testing.assert_array_equal(found[("positive", "training", "specaugment_mmap")][1], dequantise(aug_store[1]))


def test_config_round_trips_with_microwakewords_keys(sources):
    root, src, _ = sources
    settings = ExportSettings.from_config({"microwakeword": True, "sets": {"negative": {"sampling_weight": 4.5}},
                                           "trainer": {"clip_duration_ms": 1200}})
    export_microwakeword(src, root / "mww", settings, features_root="results/microwakeword")
    text = (root / "mww" / "training_parameters.yaml").read_text()
    config = yaml.safe_load(text)
    assert set(config) == MWW_KEYS
    assert config["window_step_ms"] == 10 and config["clip_duration_ms"] == 1200
    assert yaml.safe_load(yaml.safe_dump(config)) == config
    for fs in config["features"]:
        assert set(fs) == set(SET_KEYS) and fs["type"] == "mmap"
        assert fs["features_dir"].startswith("results/microwakeword/")
    by = {Path(fs["features_dir"]).name: fs for fs in config["features"]}
    assert by["positive"]["truth"] is True and by["positive"]["truncation_strategy"] == "truncate_start"
    assert by["negative"]["sampling_weight"] == 4.5 and by["negative"]["truth"] is False
    assert (by["positive"]["sampling_weight"], by["background"]["sampling_weight"]) == (2.0, 5.0)


def test_uint16_export_keeps_the_codes(sources):
    from mmap_ninja.ragged import RaggedMmap

    root, src, _ = sources
    export_microwakeword(src, root / "u16", ExportSettings(microwakeword=True, dtype="uint16", specaugment=False))
    m = RaggedMmap(str(root / "u16" / "negative" / "training" / "wakeword_mmap"))
    assert m[0].dtype == np.uint16
    np.testing.assert_array_equal(m[0], RaggedStore(src[("train", "negative")] / "features")[0])


def test_full_disk_is_a_message_naming_the_disk_and_bytes(sources, monkeypatch):
    import shutil
    from collections import namedtuple

    root, src, _ = sources
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskSpaceError, match=r"needs [\d,]+ bytes .* mounted at /.* has 1,000 bytes"):
        export_microwakeword(src, root / "mww", ExportSettings(microwakeword=True))
    assert not (root / "mww").exists() and not list(root.glob(".mww.*"))


def test_openwakeword_folders_hold_the_clips(sources):
    root, src, _ = sources
    counts = export_openwakeword(src, root / "oww", model_name="hey")
    _check_openwakeword(root / "oww", src, "hey")
    assert counts["hey/positive_train"] == 3 and counts["hey/negative_test"] == 3 + 3 + 0 + 3


def _check_openwakeword(out, assembled, model):
    """Every clip of the assembled stores is one 16 kHz mono PCM WAV in openWakeWord's folder."""
    expect = {}
    for (split, label), folder in assembled.items():
        part = "train" if split == "train" else "test"
        sub = f"background_{part}" if label == "background" else f"{model}/{'positive' if label == 'positive' else 'negative'}_{part}"
        for cid, x in RaggedStore(Path(folder) / "audio").items():
            expect[f"{sub}/{file_name(cid)}"] = np.asarray(x)
    for sub in ("positive_train", "positive_test", "negative_train", "negative_test"):
        assert (out / model / sub).is_dir()
        assert all(p.suffix == ".wav" for p in (out / model / sub).iterdir())  # openWakeWord counts the entries
    wavs = sorted(str(p.relative_to(out)) for p in out.rglob("*.wav"))
    assert wavs == sorted(expect)
    for rel, x in expect.items():
        info = sf.info(str(out / rel))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        y, _ = sf.read(str(out / rel), dtype="int16")
        np.testing.assert_array_equal(y, x)


def _waveaug(root, split, label, sizes, rng):
    """A ``parts.json`` as rule augment_audio_parts writes it, over parts of ``sizes`` items
    (paths listed relative to the workflow folder, as the rule lists them)."""
    base = root / "augment_audio" / split / label
    parts = []
    for k, n in enumerate(sizes):
        with RaggedWriter(base / f"part-{k:04d}" / "features", np.uint16, (40,)) as w:
            for i in range(n):
                w.append(f"{label}/{split}/{k}-{i}#aug0", rng.integers(0, 900, (30 + i, 40)).astype(np.uint16))
        parts.append({"features": f"results/augment_audio/{split}/{label}/part-{k:04d}/features", "items": n})
    (base / "parts.json").write_text(json.dumps({"items": sum(sizes), "parts": parts}))
    return base / "parts.json"


def test_waveform_augmented_copies_join_their_labels_sets(sources):
    from mmap_ninja.ragged import RaggedMmap

    root, src, aug = sources
    rng = np.random.default_rng(5)
    waveaug = {("train", "positive"): _waveaug(root, "train", "positive", [3, 2], rng),
               ("validation", "positive"): _waveaug(root, "validation", "positive", [2], rng),
               ("test", "negative"): _waveaug(root, "test", "negative", [1, 0], rng)}
    out = root / "mww"
    report = export_microwakeword(src, out, ExportSettings(microwakeword=True), augmented=aug, waveaug=waveaug)
    text = (out / "training_parameters.yaml").read_text()
    config = yaml.safe_load(text)
    found = {(Path(fs["features_dir"]).name, mode, p.name): RaggedMmap(str(p)) for fs, mode, p in _sets(config)}
    for (split, label), parts_json in waveaug.items():
        mode = {"train": "training", "validation": "validation", "test": "testing"}[split]
        m = found[(label, mode, "waveaug_mmap")]  # found by microWakeWord's glob of the label's set
        parts = json.loads(parts_json.read_text())["parts"]
        stores = [RaggedStore(parts_json.parent / f"part-{k:04d}" / "features") for k in range(len(parts))]
        expect = [x for s in stores for x in s]  # parts in order, items in order
        assert len(m) == len(expect) == sum(p["items"] for p in parts)
        assert report["sets"][f"{label}/{mode}/waveaug_mmap"]["items"] == len(expect)
        for i, x in enumerate(expect):
            np.testing.assert_array_equal(m[i], dequantise(x))
    # the specaugment copies and the label's own windows are still there, weights unchanged
    assert ("positive", "training", "specaugment_mmap") in found and ("positive", "training", "wakeword_mmap") in found
    assert [Path(fs["features_dir"]).name for fs in config["features"]] == list(LABELS)
    assert "#   positive: testing/wakeword_mmap 3, training/specaugment_mmap 2, training/wakeword_mmap 3, " \
           "training/waveaug_mmap 5, validation/wakeword_mmap 3, validation/waveaug_mmap 2" in text
    assert "#   negative: testing/wakeword_mmap 3, testing/waveaug_mmap 1, training/wakeword_mmap 3" in text

    # export.augment_audio: false leaves them out; a part that lost items is an error naming it
    export_microwakeword(src, root / "off", ExportSettings(microwakeword=True, augment_audio=False), waveaug=waveaug)
    assert not list((root / "off").glob("*/*/waveaug_mmap"))
    pj = waveaug[("validation", "positive")]
    ix = json.loads(pj.read_text())
    ix["parts"][0]["items"] = 7
    pj.write_text(json.dumps(ix))
    with pytest.raises(ValueError, match=r"part-0000/features: 2 items, but .*parts.json lists 7"):
        export_microwakeword(src, root / "bad", ExportSettings(microwakeword=True), waveaug=waveaug)
    assert not (root / "bad").exists()


# --------------------------------------------------------------------------- the demo, end to end


@pytest.fixture(scope="module")
def demo(tmp_path_factory, have_espeak):
    from helpers import REPO, run_snakemake

    work = tmp_path_factory.mktemp("demo_export")
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["export"]["openwakeword"] = True
    cfg["windows"].update(negative_s=1.0, hop_s=0.5)  # the demo's clips are short: cut some
    run_snakemake(work, config=cfg)
    return work


@pytest.mark.slow
def test_demo_export_is_train_ready(demo):
    from mmap_ninja.ragged import RaggedMmap

    res = demo / "results"
    config = yaml.safe_load((res / "microwakeword" / "training_parameters.yaml").read_text())
    assert set(config) == MWW_KEYS and config["window_step_ms"] == 10
    counts = {}
    for fs, mode, path in _sets({"features": [{**f, "features_dir": str(demo / f["features_dir"])}
                                              for f in config["features"]]}):
        m = RaggedMmap(str(path))
        counts[(Path(fs["features_dir"]).name, mode)] = counts.get((Path(fs["features_dir"]).name, mode), 0) + len(m)
        if Path(fs["features_dir"]).name == "positive":  # fixed-length positives
            assert len({m[i].shape for i in range(len(m))}) == 1
    for fs in config["features"]:
        assert any(k[0] == Path(fs["features_dir"]).name for k in counts), fs
    # windows feed the sets: positives placed, long background cut
    pos = json.loads((res / "windows" / "train" / "positive" / "windows.json").read_text())
    assert counts[("positive", "training")] == pos["windows"] * 3  # + two SpecAugment copies each
    bg = json.loads((res / "windows" / "train" / "background" / "windows.json").read_text())
    assert bg["cut_clips"] == bg["clips"] > 0 and bg["windows"] > bg["clips"]
    assert config["clip_duration_ms"] <= 1000 * 3.2
    # openWakeWord folders equal the assembled stores
    assembled = {(s, l): res / "mmap" / s / l for s in SPLITS for l in LABELS}
    _check_openwakeword(res / "openwakeword", assembled, "wakeword")
    summary = (res / "summary.txt").read_text()
    assert "ambient hours (background): train" in summary


@pytest.mark.slow
def test_demo_ambient_sets_are_not_empty(demo):
    """Needs cluster_split to give every split background by duration (the split issue)."""
    res = demo / "results"
    for mode in ("validation_ambient", "testing_ambient"):
        assert list((res / "microwakeword" / "background" / mode).glob("*_mmap")), f"{mode} is empty"
    assert "warning: split" not in (res / "summary.txt").read_text()


def test_summary_states_ambient_hours_and_warns_for_an_empty_split():
    from wakeprep.stats import Groups, RunStats, ambient_stats
    from wakeprep.summary import format_summary

    rows = [{"label": "background", "use": "1", "split": "train", "duration_s": "1800"},
            {"label": "background", "use": "1", "split": "validation", "duration_s": "360"},
            {"label": "background", "use": "0", "split": "test", "duration_s": "360"},
            {"label": "positive", "use": "1", "split": "test", "duration_s": "2"}]
    amb = ambient_stats(rows)
    assert amb.hours == {"train": 0.5, "validation": 0.1, "test": 0.0}
    assert amb.warnings == ["warning: split 'test' has no background audio: microWakeWord's testing_ambient set "
                               "is empty, so false accepts per hour cannot be measured on it"]
    text = format_summary(RunStats(groups=Groups(), ambient=amb))
    assert "ambient hours (background): train 0.5000   validation 0.1000   test 0.0000" in text
    assert amb.warnings[0] in text
    none = ambient_stats(rows[3:])
    assert len(none.warnings) == 1 and none.warnings[0].startswith("warning: no background audio in any split")
