import json
import os

import numpy as np
import pytest

from wakeprep.store import RaggedStore, RaggedWriter, StoreError, merge_stores


def _items(rng, n, row_shape=(), dtype=np.int16):
    out = []
    for i in range(n):
        rows = int(rng.integers(0, 50))
        out.append((f"c/{i:03d}", rng.integers(-1000, 1000, size=(rows, *row_shape)).astype(dtype)))
    return out


def test_round_trip_and_numpy_only_layout(tmp_path):
    rng = np.random.default_rng(0)
    items = _items(rng, 20, (40,), np.uint16)
    with RaggedWriter(tmp_path / "s", np.uint16, (40,), attrs={"k": 1}) as w:
        w.extend(items)
    s = RaggedStore(tmp_path / "s")
    assert len(s) == 20 and s.attrs == {"k": 1}
    for (cid, rows), got, i in zip(items, s, range(20)):
        np.testing.assert_array_equal(got, rows)
        np.testing.assert_array_equal(s[cid], rows)
        assert s.ids[i] == cid
    assert [x.shape for x in s[2:5]] == [x.shape for _, x in items[2:5]]
    np.testing.assert_array_equal(s[-1], items[-1][1])
    # the documented format, read with numpy alone
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    off = np.fromfile(tmp_path / "s" / "offsets.bin", dtype=np.int64)
    lens = np.fromfile(tmp_path / "s" / "lengths.bin", dtype=np.int64)
    data = np.memmap(tmp_path / "s" / "data.bin", dtype=meta["dtype"], mode="r").reshape(-1, 40)
    assert off[0] == 0 and len(off) == meta["count"] + 1
    np.testing.assert_array_equal(np.diff(off), lens)
    np.testing.assert_array_equal(data[off[7] : off[8]], items[7][1])


def test_empty_items_and_empty_store(tmp_path):
    with RaggedWriter(tmp_path / "e", np.int16) as w:
        w.append("a", np.zeros(0, np.int16))
        w.append("b", np.array([1, 2, 3], np.int16))
        w.append("c", np.zeros(0, np.int16))
    s = RaggedStore(tmp_path / "e")
    assert [len(x) for x in s] == [0, 3, 0]
    with RaggedWriter(tmp_path / "e40", np.uint16, (40,)) as w:
        w.append("a", np.zeros((0, 40), np.uint16))
        w.append("b", np.ones((2, 40), np.uint16))
    assert [x.shape for x in RaggedStore(tmp_path / "e40")] == [(0, 40), (2, 40)]
    with RaggedWriter(tmp_path / "none", np.int16):
        pass
    assert len(RaggedStore(tmp_path / "none")) == 0
    assert list(RaggedStore(tmp_path / "none")) == []


def test_large_item(tmp_path):
    big = np.arange(30_000_000, dtype=np.int64).astype(np.int16)  # 60 MB, beyond the write buffer
    with RaggedWriter(tmp_path / "big", np.int16) as w:
        w.append("small", np.ones(3, np.int16))
        w.append("big", big)
    s = RaggedStore(tmp_path / "big")
    assert s.lengths.tolist() == [3, len(big)]
    np.testing.assert_array_equal(s["big"], big)


def test_atomic_finalise(tmp_path):
    target = tmp_path / "store"
    w = RaggedWriter(target, np.int16)
    w.append("a", np.ones(5, np.int16))
    assert not target.exists(), "the store must not be visible before close()"
    with pytest.raises(StoreError):
        RaggedStore(target)
    w.close()
    assert len(RaggedStore(target)) == 1
    # an exception inside the context leaves the old store untouched and no temp folder
    with pytest.raises(RuntimeError):
        with RaggedWriter(target, np.int16) as w2:
            w2.append("b", np.ones(7, np.int16))
            raise RuntimeError("boom")
    assert RaggedStore(target).ids == ["a"]
    assert sorted(os.listdir(tmp_path)) == ["store"]
    # a finished writer replaces an existing store as a whole
    with RaggedWriter(target, np.int16) as w3:
        w3.append("c", np.ones(2, np.int16))
    assert RaggedStore(target).ids == ["c"]
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_rejects_bad_items(tmp_path):
    with RaggedWriter(tmp_path / "x", np.uint16, (40,)) as w:
        with pytest.raises(ValueError, match="expects"):
            w.append("a", np.zeros((3, 39), np.uint16))
        w.append("a", np.zeros((3, 40), np.uint16))
        with pytest.raises(ValueError, match="duplicate"):
            w.append("a", np.zeros((3, 40), np.uint16))
        with pytest.raises(ValueError, match="single-line"):
            w.append("bad\nid", np.zeros((3, 40), np.uint16))


def test_truncated_store_is_refused(tmp_path):
    with RaggedWriter(tmp_path / "t", np.int16) as w:
        w.append("a", np.ones(100, np.int16))
    with open(tmp_path / "t" / "data.bin", "r+b") as f:
        f.truncate(50)
    with pytest.raises(StoreError, match="data.bin"):
        RaggedStore(tmp_path / "t")


def test_merge(tmp_path):
    rng = np.random.default_rng(1)
    parts = []
    for k in range(3):
        items = [(f"p{k}/{i}", x) for i, (_, x) in enumerate(_items(rng, 5 + k))]
        with RaggedWriter(tmp_path / f"part{k}", np.int16) as w:
            w.extend(items)
        parts.append(items)
    merge_stores([tmp_path / f"part{k}" for k in range(3)], tmp_path / "all", attrs={"merged": True})
    s = RaggedStore(tmp_path / "all")
    flat = [it for p in parts for it in p]
    assert s.ids == [cid for cid, _ in flat]
    for cid, x in flat:
        np.testing.assert_array_equal(s[cid], x)
    # subset in a given order
    pick = ["p2/3", "p0/0", "p1/5"]
    merge_stores([tmp_path / f"part{k}" for k in range(3)], tmp_path / "sub", ids=pick)
    assert RaggedStore(tmp_path / "sub").ids == pick
    with pytest.raises(KeyError):
        merge_stores([tmp_path / "part0"], tmp_path / "bad", ids=["nope"])
    with RaggedWriter(tmp_path / "f", np.float32) as w:
        w.append("z", np.zeros(2, np.float32))
    with pytest.raises(StoreError, match="cannot merge"):
        merge_stores([tmp_path / "part0", tmp_path / "f"], tmp_path / "mixed")


def test_leftovers_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "store"
    dead = tmp_path / ".store.tmp-999999999-deadbeef"  # a pid that does not exist
    dead.mkdir()
    (dead / "data.bin").write_bytes(b"partial")
    old = tmp_path / ".store.old-12345678"
    old.mkdir()
    other = tmp_path / ".other.tmp-999999999-x"  # another target's: not ours to remove
    other.mkdir()
    with RaggedWriter(target, np.int16) as w:
        w.append("a", np.ones(2, np.int16))
    assert sorted(os.listdir(tmp_path)) == [".other.tmp-999999999-x", "store"]


class _FullDisk:
    """A file whose writes, flushes and close fail as on a full disk (close still releases
    the real file, as CPython's buffered files do)."""

    def __init__(self, f):
        self.f = f

    def _enospc(self):
        import errno

        return OSError(errno.ENOSPC, "No space left on device")

    def write(self, data):
        raise self._enospc()

    def flush(self):
        raise self._enospc()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        self.f.close()
        raise self._enospc()


def test_full_disk_while_writing_leaves_no_temporary_folder(tmp_path):
    """abort() removes the temporary folder although closing its files raises ENOSPC."""
    target = tmp_path / "store"
    with RaggedWriter(target, np.int16) as w:
        w.append("old", np.ones(3, np.int16))
    with pytest.raises(OSError, match="No space left"):
        with RaggedWriter(target, np.int16) as w:
            w.append("a", np.ones(5, np.int16))
            w._data = _FullDisk(w._data)
            w.append("b", np.ones(5, np.int16))
    assert sorted(os.listdir(tmp_path)) == ["store"]
    assert RaggedStore(target).ids == ["old"]


def test_full_disk_while_closing_leaves_no_temporary_folder(tmp_path):
    """close() that fails to flush (ENOSPC) removes its temporary folder and raises."""
    target = tmp_path / "store"
    with pytest.raises(OSError, match="No space left"):
        with RaggedWriter(target, np.int16) as w:
            w.append("a", np.ones(5, np.int16))
            w._ids = _FullDisk(w._ids)
    assert os.listdir(tmp_path) == []
    w = RaggedWriter(target, np.int16)
    w.append("a", np.ones(5, np.int16))
    w._data = _FullDisk(w._data)
    with pytest.raises(OSError, match="No space left"):
        w.close()
    assert os.listdir(tmp_path) == []
    w.abort()  # idempotent after a failed close


def test_atomic_dir_is_atomic_and_cleans_up(tmp_path):
    from wakeprep.fileio import atomic_dir

    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one"
    with pytest.raises(OSError, match="No space left"):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("two")
            raise _FullDisk(None)._enospc()
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert (target / "a.txt").read_text() == "one"


def test_atomic_dir_replaces_a_folder_snakemake_made_and_an_old_output(tmp_path):
    from wakeprep.fileio import FolderError, atomic_dir

    target = tmp_path / "out"
    target.mkdir()  # as Snakemake makes it for a directory() output
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("one")
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-") and not (target / "a.txt").exists()
    building = atomic_dir(target)  # a writer that outlives one block commits explicitly
    (building.tmp / "b.txt").write_text("two")
    assert building.commit() == target
    assert sorted(os.listdir(target)) == ["b.txt"] and sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(FolderError, match="already finished"):
        building.commit()


def test_no_module_imports_a_private_name_from_store():
    import re
    from pathlib import Path

    import wakeprep

    root = Path(wakeprep.__file__).parent
    bad = [str(f.relative_to(root)) for f in root.rglob("*.py")
           if re.search(r"from \.+store import [^\n]*\b_\w", f.read_text(encoding="utf-8"))]
    assert bad == []


def _sharded(path, items, shard_items, how="append"):
    from wakeprep.store import ShardedRaggedWriter

    with ShardedRaggedWriter(path, np.uint16, (40,), shard_items=shard_items, attrs={"k": 1}) as w:
        if how == "append":
            for cid, rows in items:
                w.append(cid, rows)
        else:  # in uneven runs of append_many
            k = 0
            for size in [1, 0, 7, 3, 20, 100]:
                run = items[k : k + size]
                if run:
                    w.append_many([c for c, _ in run], np.concatenate([r for _, r in run]), [len(r) for _, r in run])
                k += size
        w.write_text("index.json", json.dumps(w.parts))
    return path


@pytest.mark.parametrize("how", ["append", "append_many"])
def test_sharded_writer_cuts_parts_in_order(tmp_path, how):
    rng = np.random.default_rng(4)
    items = _items(rng, 23, (40,), np.uint16)
    out = _sharded(tmp_path / "out", items, 5, how)
    assert sorted(os.listdir(tmp_path)) == ["out"], "no temporary folder left beside the output"
    assert sorted(os.listdir(out)) == ["index.json"] + [f"part-{k:04d}" for k in range(5)]
    parts = json.loads((out / "index.json").read_text())
    assert [p["count"] for p in parts] == [5, 5, 5, 5, 3]
    got = []
    for k, p in enumerate(parts):
        s = RaggedStore(out / p["name"])
        assert s.attrs == {"k": 1, "part": k} and p["rows"] == int(s.lengths.sum())
        got += list(s.items())
    assert [c for c, _ in got] == [c for c, _ in items]
    for (_, a), (_, b) in zip(got, items):
        np.testing.assert_array_equal(a, b)
    other = _sharded(tmp_path / "other", items, 5, "append_many" if how == "append" else "append")
    for name in sorted(os.listdir(out)):
        if name.startswith("part-"):
            for f in sorted(os.listdir(out / name)):
                assert (out / name / f).read_bytes() == (other / name / f).read_bytes()


def test_sharded_writer_empty_abort_and_errors(tmp_path):
    from wakeprep.store import ShardedRaggedWriter

    with ShardedRaggedWriter(tmp_path / "empty", np.int16) as w:
        pass
    assert os.listdir(tmp_path / "empty") == ["part-0000"] and len(RaggedStore(tmp_path / "empty" / "part-0000")) == 0
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with ShardedRaggedWriter(tmp_path / "keep", np.int16, shard_items=1) as w:
            w.append("a", np.ones(3, np.int16))
            w.append("b", np.ones(3, np.int16))
            raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["empty", "keep"] and os.listdir(tmp_path / "keep") == ["old.txt"]
    with pytest.raises(ValueError, match=f"{tmp_path / 'bad'}.*shard_items"):
        ShardedRaggedWriter(tmp_path / "bad", np.int16, shard_items=0)
    with ShardedRaggedWriter(tmp_path / "x", np.int16) as w:
        with pytest.raises(ValueError, match=f"store {tmp_path / 'x'}: 2 ids, 1 lengths"):
            w.append_many(["a", "b"], np.ones(3, np.int16), [3])
        with pytest.raises(ValueError, match="not a file name"):
            w.write_text("part-0001", "x")
        assert len(w) == 0
    w.close()  # closing twice is harmless
    with pytest.raises(StoreError, match=f"writer for {tmp_path / 'x'} is closed"):
        w.append("a", np.ones(1, np.int16))


def test_atomic_file_writer_cleans_up_on_full_disk(tmp_path, monkeypatch):
    import errno

    from wakeprep import fileio

    target = tmp_path / "t.txt"
    fileio.atomic_write(target, "old\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write(target, "new\n")
    assert os.listdir(tmp_path) == ["t.txt"] and target.read_text() == "old\n"
def test_append_many_matches_append(tmp_path):
    rng = np.random.default_rng(3)
    items = _items(rng, 30, (40,), np.uint16)
    with RaggedWriter(tmp_path / "one", np.uint16, (40,)) as w:
        w.extend(items)
    with RaggedWriter(tmp_path / "bulk", np.uint16, (40,)) as w:
        w.append("first", items[0][1])  # mixes with single appends
        w.append_many(
            [i for i, _ in items[1:]],
            np.concatenate([r for _, r in items[1:]]),
            [len(r) for _, r in items[1:]],
        )
        w.append_many([], np.zeros((0, 40), np.uint16), [])
    a, b = RaggedStore(tmp_path / "one"), RaggedStore(tmp_path / "bulk")
    assert b.ids == ["first"] + a.ids[1:]
    for name in ("data.bin", "offsets.bin", "lengths.bin"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "bulk" / name).read_bytes()


def test_append_many_rejects_bad_calls_and_writes_nothing(tmp_path):
    with RaggedWriter(tmp_path / "s", np.int16) as w:
        w.append_many(["a", "b"], np.arange(5, dtype=np.int16), [2, 3])
        with pytest.raises(ValueError, match="2 ids but 1 lengths"):
            w.append_many(["c", "d"], np.arange(5, dtype=np.int16), [5])
        with pytest.raises(ValueError, match="expected \\(4,\\)"):
            w.append_many(["c", "d"], np.arange(5, dtype=np.int16), [2, 2])
        with pytest.raises(ValueError, match="duplicate item id 'a'"):
            w.append_many(["c", "a"], np.arange(4, dtype=np.int16), [2, 2])
        with pytest.raises(ValueError, match="duplicate item id 'c'"):
            w.append_many(["c", "c"], np.arange(4, dtype=np.int16), [2, 2])
        with pytest.raises(ValueError, match="negative"):
            w.append_many(["c", "d"], np.arange(4, dtype=np.int16), [5, -1])
        with pytest.raises(ValueError, match="single-line"):
            w.append_many(["c", "d\n"], np.arange(4, dtype=np.int16), [2, 2])
    s = RaggedStore(tmp_path / "s")
    assert s.ids == ["a", "b"] and s.lengths.tolist() == [2, 3]
    np.testing.assert_array_equal(s.data, np.arange(5))
