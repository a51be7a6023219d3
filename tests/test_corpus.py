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
