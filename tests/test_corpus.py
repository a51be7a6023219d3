import os
import time

from wakeprep.corpus import (
    choose_shard_count,
    clip_id,
    existing_shards,
    read_manifest,
    scan_corpus,
    shard_of,
    speaker_from_path,
    write_manifests,
)


def _tiny_corpus(root, n):
    for i in range(n):
        d = root / f"spk{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.wav").write_bytes(b"x" * (i % 13 + 1))


def _snapshot(folder):
    return {p.name: (p.read_text(), p.stat().st_mtime_ns) for p in sorted(folder.glob("s*.jsonl"))}


def test_shard_count_is_power_of_two_and_sticky():
    assert choose_shard_count(0, 100) == 1
    assert choose_shard_count(100, 100) == 1
    assert choose_shard_count(101, 100) == 2
    assert choose_shard_count(1000, 100) == 16
    # kept while shards stay under twice the target size
    assert choose_shard_count(1001, 100, current=16) == 16
    assert choose_shard_count(3200, 100, current=16) == 16
    assert choose_shard_count(3201, 100, current=16) == 64
    # never shrinks by itself
    assert choose_shard_count(10, 100, current=16) == 16


def test_one_change_touches_one_manifest(tmp_path):
    corpus, out = tmp_path / "c", tmp_path / "m"
    _tiny_corpus(corpus, 1000)
    names = write_manifests(scan_corpus("c", corpus), out, shard_size=64)
    assert len(names) == 16
    assert sum(len(read_manifest(out / f"{n}.jsonl")) for n in names) == 1000
    before = _snapshot(out)
    time.sleep(0.01)
    # nothing changed: nothing rewritten
    write_manifests(scan_corpus("c", corpus), out, shard_size=64)
    assert _snapshot(out) == before

    def changed(before, after):
        return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    # add one file
    (corpus / "spk0" / "new.wav").write_bytes(b"new")
    write_manifests(scan_corpus("c", corpus), out, shard_size=64)
    after = _snapshot(out)
    assert changed(before, after) == [f"s{shard_of('spk0/new.wav', 16):04d}.jsonl"]
    # edit one file (new mtime)
    target = corpus / "spk3" / "f00010.wav"
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    write_manifests(scan_corpus("c", corpus), out, shard_size=64)
    after2 = _snapshot(out)
    assert changed(after, after2) == [f"s{shard_of('spk3/f00010.wav', 16):04d}.jsonl"]
    # remove one file
    (corpus / "spk1" / "f00008.wav").unlink()
    write_manifests(scan_corpus("c", corpus), out, shard_size=64)
    assert changed(after2, _snapshot(out)) == [f"s{shard_of('spk1/f00008.wav', 16):04d}.jsonl"]
    assert existing_shards(out) == sorted(p.name[:-6] for p in out.glob("s*.jsonl"))


def test_files_differing_only_by_extension_share_a_shard():
    for n in (2, 16, 256):
        assert shard_of("a/b/x.wav", n) == shard_of("a/b/x.flac", n)


def test_scan_patterns_and_broken_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.WAV").write_bytes(b"1")
    (tmp_path / "a" / "notes.txt").write_text("n")
    (tmp_path / "a" / "skip.wav").write_bytes(b"1")
    os.symlink(tmp_path / "missing.wav", tmp_path / "a" / "dangling.wav")
    scan = scan_corpus("c", tmp_path, exclude=["*skip*"])
    assert [(e.path, e.size) for e in scan.files] == [("a/dangling.wav", -1), ("a/x.WAV", 1)]
    assert scan.ignored == 2


def test_clip_ids_are_printable_and_speakers_extracted():
    assert clip_id("c", "spk1/take 2.wav") == "c/spk1/take 2"
    weird = os.fsdecode(b"bad\xff\nname.wav")
    cid = clip_id("c", weird)
    assert "\n" not in cid and cid.isprintable() and cid.startswith("c/bad")
    assert speaker_from_path("spk1/take.wav", r"^([^/]+)/") == "spk1"
    assert speaker_from_path("p225_003.wav", r"(?P<speaker>p\d+)_") == "p225"
    assert speaker_from_path("x.wav", r"^([^/]+)/") == ""


def test_manifest_lines_are_plain_json():
    import json

    from wakeprep.corpus import ManifestEntry, manifest_text

    entries = [ManifestEntry("a/b c.wav", 10, 123), ManifestEntry(os.fsdecode(b"x\xff\t\".wav"), -1, 0)]
    text = manifest_text(entries)
    assert text == "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in entries)
    assert [ManifestEntry.from_dict(json.loads(line)) for line in text.splitlines()] == entries


# ------------------------------------------------------------------ empty corpora, paths

import json

import pytest

from wakeprep.config import ConfigError, check_config
from wakeprep.corpus import CorpusError, CorpusSettings, ManifestEntry, prepare_manifests, scan


def _settings(path, **kw):
    return CorpusSettings.from_config({"name": "c", "path": str(path), "label": "negative", **kw})


def test_empty_corpus_stops_unless_allowed(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(CorpusError, match=r"^corpus 'c': no files in .*allow_empty: true"):
        scan(_settings(tmp_path / "c"))
    (tmp_path / "c" / "notes.txt").write_text("x")
    with pytest.raises(CorpusError, match=r"^corpus 'c': no file matching its include/exclude patterns"):
        scan(_settings(tmp_path / "c"))
    (tmp_path / "c" / "a.wav").write_bytes(b"1")
    with pytest.raises(CorpusError, match="no file matching"):
        scan(_settings(tmp_path / "c", exclude=["*.wav"]))
    found = scan(_settings(tmp_path / "c", exclude=["*.wav"], allow_empty=True))
    assert found.files == [] and "\n" not in str(found)
    assert prepare_manifests(_settings(tmp_path / "c"), found, tmp_path / "m", 16) == []


def test_corpus_path_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "a.wav"
    f.write_bytes(b"1")
    cfg = {"corpora": [{"name": "a", "path": str(f), "label": "positive"}]}
    with pytest.raises(ConfigError, match=r"corpora\[0\]\.path: corpus 'a': '.*a\.wav' is a file, not a folder"):
        check_config(cfg)
    with pytest.raises(CorpusError, match="is a file, not a folder"):
        scan(_settings(f))


def test_summary_lists_an_empty_corpus_with_zero_files():
    from wakeprep.stats import CorpusCount, compute_stats
    from wakeprep.summary import format_summary

    rows = [{"corpus": "a", "label": "positive", "status": "ok", "duration_s": "1.0", "reason": ""}]
    s = compute_stats(rows, corpora={"a": "positive", "e": "background"})
    assert s.corpora["e"] == CorpusCount("background", files=0, ok=0, rejected=0, hours=0.0)
    assert any(line.split()[:3] == ["e", "background", "0"] for line in format_summary(s).splitlines())


# ------------------------------------------------------------------ symbolic links


def _links_corpus(tmp_path):
    """corpus/ with a real speaker folder, a speaker folder that is a link to a folder
    outside, a file link to a file outside, a loop back to the corpus root, and a link
    inside the corpus."""
    corpus, outside = tmp_path / "corpus", tmp_path / "elsewhere"
    (corpus / "spk_real").mkdir(parents=True)
    (corpus / "spk_real" / "a.wav").write_bytes(b"aa")
    (outside / "spk_linked").mkdir(parents=True)
    (outside / "spk_linked" / "b.wav").write_bytes(b"bbb")
    (outside / "c.wav").write_bytes(b"c")
    os.symlink(outside / "spk_linked", corpus / "spk_linked")
    os.symlink(outside / "c.wav", corpus / "spk_real" / "c.wav")
    os.symlink(corpus, corpus / "spk_real" / "loop")  # back to the root
    os.symlink("spk_real", corpus / "alias")  # inside the corpus
    return corpus, outside


def test_symlinks_followed_by_default_with_loops_detected(tmp_path):
    corpus, outside = _links_corpus(tmp_path)
    found = scan(_settings(corpus))
    got = {e.path: (e.size, e.target) for e in found.files}
    real = os.path.realpath
    assert got == {
        "alias/a.wav": (2, real(corpus / "spk_real" / "a.wav")),
        "alias/c.wav": (1, real(outside / "c.wav")),
        "spk_linked/b.wav": (3, real(outside / "spk_linked" / "b.wav")),
        "spk_real/a.wav": (2, ""),
        "spk_real/c.wav": (1, real(outside / "c.wav")),
    }
    assert sorted(found.loops) == ["alias/loop", "spk_real/loop"]
    # the resolved path is in the manifest; a plain file's line is unchanged
    names = prepare_manifests(_settings(corpus), found, tmp_path / "m", 100)
    lines = [json.loads(x) for x in (tmp_path / "m" / f"{names[0]}.jsonl").read_text().splitlines()]
    by_path = {d["path"]: d for d in lines}
    assert by_path["spk_linked/b.wav"]["target"] == real(outside / "spk_linked" / "b.wav")
    assert set(by_path["spk_real/a.wav"]) == {"mtime_ns", "path", "size"}
    assert json.loads((tmp_path / "m" / "layout.json").read_text())["symlink_loops"] == ["alias/loop", "spk_real/loop"]
    assert read_manifest(tmp_path / "m" / f"{names[0]}.jsonl") == sorted(found.files)


def test_symlink_policies_inside_and_skip(tmp_path):
    corpus, _ = _links_corpus(tmp_path)
    inside = scan(_settings(corpus, symlinks="inside"))
    assert [e.path for e in inside.files] == ["alias/a.wav", "spk_real/a.wav"]
    skip = scan(_settings(corpus, symlinks="skip"))
    assert [e.path for e in skip.files] == ["spk_real/a.wav"]
    assert skip.loops == [] and skip.ignored == 4


def test_symlink_loop_through_two_sibling_links(tmp_path):
    corpus = tmp_path / "c"
    (corpus / "a").mkdir(parents=True)
    (corpus / "b").mkdir()
    (corpus / "a" / "x.wav").write_bytes(b"1")
    os.symlink("../b", corpus / "a" / "to_b")
    os.symlink("../a", corpus / "b" / "to_a")
    found = scan(_settings(corpus))
    # a/to_b/to_a leads back to a, a folder on its own path: a loop, not entered
    assert [e.path for e in found.files] == ["a/x.wav", "b/to_a/x.wav"]
    assert found.loops == ["a/to_b/to_a", "b/to_a/to_b"]


# ------------------------------------------------------------------ manifest: sha256


def _same_size_same_mtime_edit(path, data):
    st = path.stat()
    path.write_bytes(data)  # what `cp -p` / `rsync -t` leave: new content, old size and mtime
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_manifest_sha256_sees_content_changes_that_keep_size_and_mtime(tmp_path, monkeypatch):
    import wakeprep.corpus as corpus_mod

    corpus = tmp_path / "c"
    _tiny_corpus(corpus, 40)
    target = corpus / "spk3" / "f00010.wav"
    for mode in ("mtime", "sha256"):
        out = tmp_path / f"m_{mode}"
        s = _settings(corpus, manifest=mode)
        prepare_manifests(s, scan(s), out, 8)
        before = _snapshot(out)
        _same_size_same_mtime_edit(target, (b"Y" if mode == "mtime" else b"Z") * target.stat().st_size)
        prepare_manifests(s, scan(s), out, 8)
        changed = [k for k in before if before[k] != _snapshot(out)[k]]
        if mode == "mtime":
            assert changed == [], "documented limitation of the default mode"
        else:
            assert changed == [f"s{shard_of('spk3/f00010.wav', 8):04d}.jsonl"]
            assert all('"sha256": "' in line and "mtime_ns" not in line for line in _snapshot(out)[changed[0]][0].splitlines())
    # sha256 mode: an unchanged file is not read again, a touch changes no manifest
    out = tmp_path / "m_sha256"
    s = _settings(corpus, manifest="sha256")
    reads = []
    real_sha = corpus_mod._sha256
    monkeypatch.setattr(corpus_mod, "_sha256", lambda p: reads.append(p) or real_sha(p))
    before = _snapshot(out)
    prepare_manifests(s, scan(s), out, 8)
    assert reads == [] and _snapshot(out) == before
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    prepare_manifests(s, scan(s), out, 8)
    assert reads == [str(target)]
    assert {k: v[0] for k, v in _snapshot(out).items()} == {k: v[0] for k, v in before.items()}


def test_write_manifests_assigns_the_shard_of_shard_of(tmp_path):
    """write_manifests inlines shard_of and clip_key for speed: same shards, odd names too."""
    from wakeprep.corpus import ScanResult

    names = ["a/b.wav", "a/.hidden", "a/..x.wav", "x", "a.b/c", "a/b./c.wav", ".a.b", "d/e.tar.gz",
             os.fsdecode(b"bad\xff.wav"), "caf\u00e9/\u00e9t\u00e9.flac", "a/...", "sp ace/t\tab.wav"]
    found = ScanResult("c", files=sorted(ManifestEntry(n, 1, 2) for n in names))
    names_out = write_manifests(found, tmp_path / "m", shard_size=2)
    where = {e.path: name for name in names_out for e in read_manifest(tmp_path / "m" / f"{name}.jsonl")}
    assert where == {n: f"s{shard_of(n, 8):04d}" for n in names}
