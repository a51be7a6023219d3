"""Bad files are rejected with a specific reason, never crash a shard, never vanish."""

import numpy as np
import soundfile as sf

from helpers import tone, write_audio
from wakeprep.audio import REASONS, AudioSettings
from wakeprep.corpus import scan_corpus, write_manifests
from wakeprep.shards import convert_shard
from wakeprep.store import RaggedStore
from wakeprep.table import read_table


def make_bad_corpus(root):
    root.mkdir(parents=True, exist_ok=True)
    good = write_audio(root / "good.wav", tone(1.0, 16000), 16000)
    write_audio(root / "good2.flac", tone(1.0, 44100), 44100, "FLAC", "PCM_16")
    data = good.read_bytes()
    (root / "truncated_data.wav").write_bytes(data[: len(data) // 2])
    (root / "truncated_header.wav").write_bytes(data[:30])
    (root / "zero.wav").write_bytes(b"")
    (root / "text.wav").write_text("this is not audio\n" * 20)
    nan = np.full(16000, np.nan, dtype=np.float32)
    sf.write(root / "nans.wav", nan, 16000, subtype="FLOAT")
    sf.write(root / "one_sample.wav", np.array([0.5], np.float32), 16000, subtype="PCM_16")
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    write_audio(root / "long.wav", tone(3.0, 8000), 8000)
    return {
        "good": "ok",
        "good2": "ok",
        "truncated_data": "truncated",
        "truncated_header": "unreadable",
        "zero": "empty",
        "text": "unreadable",
        "nans": "non_finite",
        "one_sample": "too_short",
        "silent": "silent",
        "long": "too_long",
    }


def test_each_bad_file_rejected_with_its_reason(tmp_path):
    corpus = tmp_path / "bad"
    expected = make_bad_corpus(corpus)
    scan = scan_corpus("bad", corpus)
    assert write_manifests(scan, tmp_path / "m", shard_size=100) == ["s0000"]
    settings = AudioSettings(max_duration_s=2.0)
    counts = convert_shard(
        tmp_path / "m" / "s0000.jsonl",
        {"name": "bad", "path": str(corpus), "label": "negative"},
        settings,
        tmp_path / "audio",
        tmp_path / "clips.tsv",
    )
    rows = {r["clip_id"]: r for r in read_table(tmp_path / "clips.tsv")}
    assert len(rows) == len(expected), "every file has a row"
    for name, want in expected.items():
        row = rows[f"bad/{name}"]
        got = row["status"] if want == "ok" else row["reason"]
        assert got == want, (name, row)
        if want != "ok":
            assert row["status"] == "rejected" and row["detail"], row
            assert row["reason"] in REASONS
            assert str(tmp_path) not in row["detail"], "details must not depend on where the corpus lives"
    assert counts["ok"] == 2 and sum(counts.values()) == len(expected)
    store = RaggedStore(tmp_path / "audio")
    assert store.ids == ["bad/good", "bad/good2"]
    np.testing.assert_array_equal(store["bad/good"], sf.read(corpus / "good.wav", dtype="int16")[0])


def test_all_rejected_shard_succeeds_with_empty_store(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.wav").write_bytes(b"")
    (corpus / "b.wav").write_text("nope")
    write_manifests(scan_corpus("c", corpus), tmp_path / "m", 10)
    counts = convert_shard(tmp_path / "m" / "s0000.jsonl", {"name": "c", "path": str(corpus), "label": "negative"},
                           AudioSettings(), tmp_path / "audio", tmp_path / "t.tsv")
    assert counts["ok"] == 0 and sum(counts.values()) == 2
    assert len(RaggedStore(tmp_path / "audio")) == 0


def test_same_name_different_extension_is_a_duplicate_id(tmp_path):
    corpus = tmp_path / "c"
    write_audio(corpus / "x.wav", tone(1.0, 16000), 16000)
    write_audio(corpus / "x.flac", tone(1.0, 16000), 16000, "FLAC")
    write_manifests(scan_corpus("c", corpus), tmp_path / "m", 10)
    convert_shard(tmp_path / "m" / "s0000.jsonl", {"name": "c", "path": str(corpus), "label": "negative"},
                  AudioSettings(), tmp_path / "audio", tmp_path / "t.tsv")
    rows = list(read_table(tmp_path / "t.tsv"))
    assert [(r["source"], r["status"], r["reason"]) for r in rows] == [
        ("x.flac", "ok", ""),
        ("x.wav", "rejected", "duplicate_id"),
    ]
