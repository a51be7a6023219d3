"""Fixed-length windows: placed positives end their speech within the jitter range of the
window's end and all have one frame count; cut windows cover their source clips; a
positive without speech is reported, never placed by guesswork."""

import json

import numpy as np
import pytest

from wakeprep.assemble import INDEX_COLUMNS
from wakeprep.features import micro_features_u16
from wakeprep.store import RaggedStore, RaggedWriter
from wakeprep.table import read_table, write_table
from wakeprep.windows import (RATE, WindowSettings, cut_starts, draw_jitter, make_windows, place,
                              window_mode)


def _assembled(root, clips: dict, speech: dict, label="positive", split="train"):
    """An assembled folder like rule assemble's: ``clips`` id -> int16 samples,
    ``speech`` id -> (start_s, end_s) or None."""
    root.mkdir(parents=True)
    rows = []
    with RaggedWriter(root / "audio", np.int16) as wa, RaggedWriter(root / "features", np.uint16, (40,)) as wf:
        for cid in sorted(clips):
            x = clips[cid]
            wa.append(cid, x)
            codes = micro_features_u16(x)
            wf.append(cid, codes)
            s = speech.get(cid)
            rows.append({"clip_id": cid, "corpus": "c", "label": label, "group": "g", "split": split,
                         "duration_s": len(x) / RATE, "frames": len(codes),
                         "speech_start_s": "" if s is None else s[0], "speech_end_s": "" if s is None else s[1]})
    write_table(root / "clips.tsv", rows, INDEX_COLUMNS)
    return root


def _speechy(rng, lead_s, speech_s, tail_s):
    x = np.zeros(int((lead_s + speech_s + tail_s) * RATE), np.int16)
    a = int(lead_s * RATE)
    x[a: a + int(speech_s * RATE)] = rng.integers(-8000, 8000, int(speech_s * RATE))
    return x, (lead_s, lead_s + speech_s)


def test_jitter_is_keyed_and_in_range():
    lo, hi = 3120, 3280
    draws = [draw_jitter(7, f"c/{i}", 0, lo, hi) for i in range(2000)]
    assert min(draws) >= lo and max(draws) <= hi
    assert min(draws) < lo + 10 and max(draws) > hi - 10  # the whole range is used
    assert draws == [draw_jitter(7, f"c/{i}", 0, lo, hi) for i in range(2000)]
    assert draws != [draw_jitter(8, f"c/{i}", 0, lo, hi) for i in range(2000)]
    assert draws != [draw_jitter(7, f"c/{i}", 1, lo, hi) for i in range(2000)]


def test_place_puts_speech_end_at_jitter():
    x = np.arange(1, 1001, dtype=np.int16)
    w, off = place(x, 800, 5000, 100)
    assert len(w) == 5000 and off == 5000 - 100 - 800
    # audio after jitter past the speech end does not fit and is dropped
    assert np.array_equal(w[off:], x[: 5000 - off]) and not w[:off].any()
    w, off = place(x, 950, 5000, 100)
    assert np.array_equal(w[off:off + 1000], x) and not w[off + 1000:].any()
    w, off = place(x, 800, 500, 100)  # longer than the window: the end is kept
    assert off == -400 and np.array_equal(w, x[400:900])


@pytest.fixture()
def placed(tmp_path):
    rng = np.random.default_rng(3)
    clips, speech = {}, {}
    for i, (lead, dur, tail) in enumerate([(0.1, 0.6, 0.3), (0.0, 1.2, 0.0), (0.5, 0.4, 1.5), (1.0, 2.0, 0.2),
                                           (0.3, 3.5, 0.1), (0.2, 0.9, 0.05)]):
        clips[f"c/{i}"], speech[f"c/{i}"] = _speechy(rng, lead, dur, tail)
    clips["c/silent"] = np.zeros(RATE, np.int16)
    speech["c/silent"] = None
    src = _assembled(tmp_path / "mmap", clips, speech)
    return tmp_path, src, clips, speech


def test_placement_within_jitter_and_equal_frame_counts(placed):
    root, src, clips, speech = placed
    s = WindowSettings()
    report = make_windows(src, root / "win", "train", "positive", s, seed=11)
    feats, audio = RaggedStore(root / "win" / "features"), RaggedStore(root / "win" / "audio")
    index = {r["window_id"]: r for r in read_table(root / "win" / "windows.tsv")}
    expected_frames = len(micro_features_u16(np.zeros(s.positive_samples, np.int16)))
    assert set(feats.lengths.tolist()) == {expected_frames} == {report["frames_per_window"]}
    assert audio.ids == feats.ids == sorted(c for c in clips if speech[c] is not None)
    lo, hi = s.jitter_samples
    for cid, w in audio.items():
        r = index[cid]
        off, end = int(r["offset_samples"]), int(round(speech[cid][1] * RATE))
        assert len(w) == s.positive_samples
        jitter = round(float(r["jitter_s"]) * RATE)
        assert lo <= jitter <= hi and jitter == draw_jitter(11, cid, 0, lo, hi)
        # the speech end, from the recorded offset, lies exactly jitter before the window's end
        assert off + end == s.positive_samples - jitter
        assert round(float(r["speech_end_s"]) * RATE) == off + end
        x = clips[cid]
        a, b = max(0, off), min(len(w), off + len(x))
        np.testing.assert_array_equal(w[a:b], x[a - off: b - off])
        assert not w[:a].any() and not w[b:].any()  # silence around
        np.testing.assert_array_equal(feats[cid], micro_features_u16(w))
    assert report["speech_longer_than_window"] == ["c/4"]  # 3.5 s of speech in a 3.2 s window
    assert index["c/4"]["note"] == "speech_longer_than_window"
    assert json.loads((root / "win" / "windows.json").read_text())["no_speech"] == ["c/silent"]


def test_no_speech_positive_is_reported_rejected_or_placed_by_its_end(placed):
    root, src, clips, _ = placed
    r = make_windows(src, root / "rej", "train", "positive", WindowSettings(), seed=1)
    assert r["no_speech"] == ["c/silent"] and r["no_speech_action"] == "reject"
    assert "c/silent" not in RaggedStore(root / "rej" / "features").ids
    r = make_windows(src, root / "end", "train", "positive", WindowSettings(no_speech="clip_end"), seed=1)
    assert r["no_speech"] == ["c/silent"]
    row = next(x for x in read_table(root / "end" / "windows.tsv") if x["clip_id"] == "c/silent")
    assert row["note"] == "no_speech_clip_end"
    assert int(row["offset_samples"]) + RATE == WindowSettings().positive_samples - round(float(row["jitter_s"]) * RATE)


def test_summary_counts_no_speech_and_truncated(placed):
    from wakeprep.stats import RunStats, summarise_windows
    from wakeprep.summary import format_summary

    root, src, _, _ = placed
    make_windows(src, root / "win", "train", "positive", WindowSettings(), seed=1)
    w = summarise_windows([json.loads((root / "win" / "windows.json").read_text())])
    text = format_summary(RunStats(windows=w))
    assert "warning: train/positive: 1 clip(s) without detected speech, left out" in text
    assert "note: train/positive: 1 clip(s) with speech longer than the window keep their end" in text


@pytest.mark.parametrize("frames,width,hop,skip", [(100, 30, 30, 20), (500, 320, 320, 20), (351, 320, 320, 20),
                                                   (1000, 100, 37, 0), (340, 320, 320, 20), (10, 320, 320, 20)])
def test_cut_starts_cover_the_clip(frames, width, hop, skip):
    starts = cut_starts(frames, width, hop, skip)
    if frames <= skip + width:
        assert starts == []
        return
    regular = 1 + (frames - skip - width) // hop
    tail = skip + (regular - 1) * hop + width < frames
    assert len(starts) == regular + tail
    covered = np.zeros(frames, bool)
    for s in starts:
        assert 0 <= s and s + width <= frames
        covered[s: s + width] = True
    assert covered[skip:].all()


def test_cut_windows_cover_their_sources(tmp_path):
    rng = np.random.default_rng(5)
    clips = {f"n/{i}": rng.integers(-3000, 3000, int(sec * RATE)).astype(np.int16)
             for i, sec in enumerate([0.5, 1.25, 2.0, 4.1, 7.3])}
    src = _assembled(tmp_path / "mmap", clips, {}, label="negative")
    s = WindowSettings(negative_s=1.0, hop_s=0.5, skip_s=0.2)
    report = make_windows(src, tmp_path / "win", "train", "negative", s, seed=1)
    feats = RaggedStore(tmp_path / "win" / "features")
    source = RaggedStore(src / "features")
    index = list(read_table(tmp_path / "win" / "windows.tsv"))
    assert [r["window_id"] for r in index] == feats.ids
    total_windows = total_frames = 0
    for cid, codes in source.items():
        starts = cut_starts(len(codes), s.negative_frames, s.hop_frames, s.skip_frames)
        mine = [r for r in index if r["clip_id"] == cid]
        if not starts:  # short clips stay whole
            assert [r["kind"] for r in mine] == ["whole"]
            np.testing.assert_array_equal(feats[cid], codes)
            total_windows += 1
            total_frames += len(codes)
            continue
        assert [int(r["start_frame"]) for r in mine] == starts
        for k, r in enumerate(mine):
            assert r["window_id"] == f"{cid}#w{k:04d}" and r["kind"] == "cut"
            np.testing.assert_array_equal(feats[r["window_id"]], codes[starts[k]: starts[k] + s.negative_frames])
        total_windows += len(starts)
        total_frames += len(starts) * s.negative_frames
    assert report["windows"] == len(feats) == total_windows
    assert report["frames"] == int(feats.lengths.sum()) == total_frames
    assert report["cut_clips"] == 4 and report["whole_clips"] == 1  # 0.5 s is whole; 1.25 s > 1.0 + 0.2 s


def test_modes_keep_ambient_validation_and_test_whole():
    s = WindowSettings()
    assert window_mode("train", "positive", s) == "place"
    assert window_mode("test", "positive", s) == "place"
    assert window_mode("train", "background", s) == "cut"
    assert window_mode("validation", "background", s) == "whole"
    assert window_mode("test", "background", s) == "whole"
    assert window_mode("test", "negative", s) == "cut"
    assert window_mode("train", "hard_negative", WindowSettings(place_labels=("positive", "hard_negative"))) == "place"


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="windows.no_speech"):
        WindowSettings.from_config({"no_speech": "guess"})
    with pytest.raises(ValueError, match="windows.end_jitter_min_s"):
        WindowSettings.from_config({"end_jitter_min_s": 0.3, "end_jitter_max_s": 0.2})
    with pytest.raises(ValueError, match="windows.place_labels"):
        WindowSettings.from_config({"place_labels": ["background"]})


def test_config_checks_name_the_keys(tmp_path):
    from wakeprep.config import check_config, semantic_problems

    def filled(cfg):  # the schema's defaults filled in, as the workflow checks it
        check_config(cfg)
        return cfg

    base = {"corpora": [{"name": "p", "path": str(tmp_path), "label": "positive"}]}
    assert semantic_problems(filled(base)) == []
    cfg = {**base, "windows": {"place_labels": ["positive", "hard_negative"]}, "vad": {"labels": ["positive"]}}
    with pytest.raises(ValueError):
        filled(cfg)
    assert semantic_problems(cfg) == ["windows.place_labels: 'hard_negative' is placed by its speech end, which only "
                                      "clips of vad.labels get: add 'hard_negative' to vad.labels"]
    cfg = {**base, "windows": {"positive_s": 1.0}, "export": {"trainer": {"clip_duration_ms": 1500}}}
    with pytest.raises(ValueError):
        filled(cfg)
    lines = semantic_problems(cfg)
    assert lines and lines[-1].startswith("export.trainer.clip_duration_ms: 1500 ms is longer than windows.positive_s")
