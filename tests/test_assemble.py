"""Assembled split stores hold every used clip exactly once, byte-equal to the shard stores,
and their index carries the clip tables' speech columns (the microWakeWord export is
tested in test_export.py)."""

import numpy as np
import pytest

from wakeprep.assemble import assemble
from wakeprep.split import SPLIT_COLUMNS
from wakeprep.store import RaggedStore, RaggedWriter
from wakeprep.table import read_table, write_table

SPLITS = ["train", "validation", "test"]


@pytest.fixture()
def shards(tmp_path):
    rng = np.random.default_rng(0)
    rows, feats, audio = [], [], []
    for k in range(3):
        fa, fb = tmp_path / f"s{k}" / "features", tmp_path / f"s{k}" / "audio"
        with RaggedWriter(fa, np.uint16, (40,)) as wf, RaggedWriter(fb, np.int16) as wa:
            for i in range(7):
                cid = f"c/s{k}/{i}"
                n = int(rng.integers(0, 30))
                wf.append(cid, rng.integers(0, 800, (n, 40)).astype(np.uint16))
                wa.append(cid, rng.integers(-3000, 3000, n * 160).astype(np.int16))
                split = SPLITS[int(rng.integers(3))]
                rows.append({"clip_id": cid, "corpus": "c", "label": "positive", "group": f"g{i}",
                             "split": split, "use": 0 if (k, i) == (0, 3) else 1, "duration_s": n / 100})
        feats.append(fa)
        audio.append(fb)
    # an empty shard store too
    with RaggedWriter(tmp_path / "empty" / "features", np.uint16, (40,)), RaggedWriter(tmp_path / "empty" / "audio", np.int16):
        pass
    feats.append(tmp_path / "empty" / "features")
    audio.append(tmp_path / "empty" / "audio")
    write_table(tmp_path / "split.tsv", sorted(rows, key=lambda r: r["clip_id"]), SPLIT_COLUMNS)
    return tmp_path, feats, audio, rows


def test_every_used_clip_in_exactly_one_split_bytes_equal(shards):
    root, feats, audio, rows = shards
    for s in SPLITS:
        assemble(root / "split.tsv", s, "positive", feats, audio, root / "mmap" / s / "positive", seed=1)
    seen = {}
    for s in SPLITS:
        out = root / "mmap" / s / "positive"
        f, a = RaggedStore(out / "features"), RaggedStore(out / "audio")
        assert f.ids == a.ids == sorted(f.ids)
        index = list(read_table(out / "clips.tsv"))
        assert [r["clip_id"] for r in index] == f.ids
        assert [int(r["frames"]) for r in index] == f.lengths.tolist()
        for cid in f.ids:
            assert cid not in seen
            seen[cid] = s
    used = {r["clip_id"]: r["split"] for r in rows if r["use"] == 1}
    assert seen == used
    # bytes equal to the shard stores
    for fa, fb in zip(feats, audio):
        for cid, x in RaggedStore(fa).items():
            if cid in used:
                out = root / "mmap" / used[cid] / "positive"
                assert RaggedStore(out / "features")[cid].tobytes() == x.tobytes()
                assert RaggedStore(out / "audio")[cid].tobytes() == RaggedStore(fb)[cid].tobytes()


def test_empty_split_gives_empty_stores(shards):
    root, feats, audio, _ = shards
    assemble(root / "split.tsv", "test", "negative", feats, audio, root / "neg", seed=1)
    assert len(RaggedStore(root / "neg" / "features")) == 0
    assert len(RaggedStore(root / "neg" / "audio")) == 0


def test_index_carries_the_speech_columns(shards):
    root, feats, audio, rows = shards
    tables = []
    for k in range(3):
        t = root / f"s{k}" / "clips.tsv"
        write_table(t, [{"clip_id": r["clip_id"], "speech_start_s": 0.1, "speech_end_s": 0.25 + k, "speech_ratio": 0.5,
                         "snr_db": 20.0} for r in rows if r["clip_id"].startswith(f"c/s{k}/")])
        tables.append(t)
    assemble(root / "split.tsv", "train", "positive", feats, audio, root / "out", seed=1, tables=tables)
    index = list(read_table(root / "out" / "clips.tsv"))
    assert index and all(r["speech_end_s"] == str(0.25 + int(r["clip_id"][3])) for r in index)
    assert all(r["speech_start_s"] == "0.1" and r["snr_db"] == "20" for r in index)
