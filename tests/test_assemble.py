"""Assembled split stores hold every used clip exactly once, byte-equal to the shard stores,
and the microWakeWord export reads back with mmap_ninja item for item."""

import numpy as np
import pytest

from wakeprep.assemble import assemble, export_microwakeword
from wakeprep.features import dequantise
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


def test_microwakeword_export_reads_back_with_mmap_ninja(shards):
    from mmap_ninja.ragged import RaggedMmap

    root, feats, audio, _ = shards
    folders = {}
    for s in SPLITS:
        for label in ("positive", "background"):
            out = root / "mmap" / s / label
            assemble(root / "split.tsv", s, label, feats, audio, out, seed=1)
            folders[(s, label)] = out
    counts = export_microwakeword(folders, root / "mww")
    assert counts["background/testing_ambient"] == 0
    for s, sub in (("train", "training"), ("validation", "validation"), ("test", "testing")):
        ours = RaggedStore(folders[(s, "positive")] / "features")
        theirs = RaggedMmap(str(root / "mww" / "positive" / sub / "wakeword_mmap"))
        assert len(theirs) == len(ours) == counts[f"positive/{sub}"]
        for i in range(len(ours)):
            np.testing.assert_array_equal(theirs[i], dequantise(ours[i]))
            assert theirs[i].dtype == np.float32 and theirs[i].shape == (len(ours[i]), 40)
