"""A hostile corpus through the real workflow: every file ends ok or rejected with a
specific reason, no rule crashes, the summary adds up, nothing is written outside results/."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from helpers import REPO, make_small_corpus, run_snakemake, tone, workflow_config, write_audio
from wakeprep.table import read_table

pytestmark = pytest.mark.slow


def make_hostile_corpus(root):
    """Write the hostile files; returns {relative path: expected status or reject reason}."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = write_audio(root / "good.wav", tone(1.0, 16000), 16000)
    data = good.read_bytes()
    exp = {"good.wav": "ok"}
    (root / "truncated_header.wav").write_bytes(data[:30]); exp["truncated_header.wav"] = "unreadable"
    (root / "truncated_data.wav").write_bytes(data[: len(data) // 2]); exp["truncated_data.wav"] = "truncated"
    flac = write_audio(root / "tmp.flac", tone(2.0, 44100), 44100, "FLAC")
    fdata = flac.read_bytes()
    flac.unlink()
    (root / "truncated_flac.flac").write_bytes(fdata[: len(fdata) // 2]); exp["truncated_flac.flac"] = "truncated"
    # same path but for the extension: one clip id, so the second is rejected, not lost
    (root / "truncated_flac.wav").write_bytes(data); exp["truncated_flac.wav"] = "duplicate_id"
    (root / "zero.wav").write_bytes(b""); exp["zero.wav"] = "empty"
    for ext in ("wav", "flac", "mp3", "ogg"):
        (root / f"random_{ext}.{ext}").write_bytes(rng.bytes(40000)); exp[f"random_{ext}.{ext}"] = "unreadable"
    (root / "flac_inside.wav").write_bytes(fdata); exp["flac_inside.wav"] = "ok"  # valid audio, wrong extension
    (root / "wav_inside.mp3").write_bytes(data); exp["wav_inside.mp3"] = "ok"
    sf.write(root / "nan.wav", np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT"); exp["nan.wav"] = "non_finite"
    x = tone(1.0, 16000)
    x[100] = np.inf
    sf.write(root / "inf.wav", x, 16000, subtype="FLOAT"); exp["inf.wav"] = "non_finite"
    write_audio(root / "beyond_full_scale.wav", tone(1.0, 16000, amp=3.0), 16000, "WAV", "FLOAT"); exp["beyond_full_scale.wav"] = "ok"
    sf.write(root / "one_sample.wav", np.array([0.5], np.float32), 16000); exp["one_sample.wav"] = "too_short"
    write_audio(root / "ten_minutes.flac", tone(600.0, 16000, amp=0.1), 16000, "FLAC"); exp["ten_minutes.flac"] = "ok"
    write_audio(root / "rate_192k.wav", tone(1.0, 192000), 192000, "WAV", "PCM_24"); exp["rate_192k.wav"] = "ok"
    write_audio(root / "eight_channels.wav", tone(1.0, 48000), 48000, "WAV", "PCM_16", 8); exp["eight_channels.wav"] = "ok"
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000); exp["silent.wav"] = "silent"
    os.symlink(root / "gone.wav", root / "broken_link.wav"); exp["broken_link.wav"] = "missing"
    weird = os.fsdecode(b"caf\xe9 \xff.wav")  # not UTF-8
    shutil.copy(good, root / weird); exp[weird] = "ok"
    (root / "sub dir").mkdir()
    shutil.copy(good, root / "sub dir" / "name with  spaces.wav"); exp["sub dir/name with  spaces.wav"] = "ok"
    shutil.copy(good, root / "...wav"); exp["...wav"] = "ok"  # clip id 'hostile/..': never used as a path
    write_audio(root / "dup_a.wav", tone(1.5, 22050, freq=300), 22050); exp["dup_a.wav"] = "ok"
    shutil.copy(root / "dup_a.wav", root / "dup_b.wav"); exp["dup_b.wav"] = "ok"
    return exp


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, have_espeak):
    root = tmp_path_factory.mktemp("hostile")
    corpora = make_small_corpus(root / "corpora", n_speech=6, n_noise=2)
    expected = make_hostile_corpus(root / "corpora" / "hostile")
    cfg = workflow_config(corpora, shard_size=8)
    cfg["corpora"].append({"name": "hostile", "path": str(root / "corpora" / "hostile"), "label": "negative"})
    work = root / "work"
    work.mkdir()
    before = set(os.listdir(root))
    run_snakemake(work, config=cfg)
    return work, expected, root, before


def test_every_file_ok_or_rejected_with_its_reason(hostile_run):
    work, expected, _, _ = hostile_run
    rows = {r["source"]: r for r in read_table(work / "results" / "clips.tsv") if r["corpus"] == "hostile"}
    from wakeprep.corpus import printable

    got = {}
    for rel in expected:
        row = rows[printable(rel)]
        got[rel] = row["status"] if row["status"] == "ok" else row["reason"]
        if row["status"] != "ok":
            assert row["detail"], row
    assert got == expected
    assert len(rows) == len(expected)
    assert int(rows["beyond_full_scale.wav"]["clipped"]) > 0
    assert rows["flac_inside.wav"]["format"] == "FLAC" and rows["wav_inside.mp3"]["format"] == "WAV"
    assert rows["eight_channels.wav"]["channels"] == "8" and rows["rate_192k.wav"]["source_rate"] == "192000"
    assert float(rows["ten_minutes.flac"]["duration_s"]) == pytest.approx(600.0)


def test_summary_adds_up(hostile_run):
    work, expected, _, _ = hostile_run
    table = list(read_table(work / "results" / "clips.tsv"))
    s = json.loads((work / "results" / "summary.json").read_text())
    assert s["files"] == len(table) == s["ok"] + s["rejected"]
    assert s["ok"] == sum(r["status"] == "ok" for r in table)
    reasons = {}
    for r in table:
        if r["status"] != "ok":
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    assert s["rejected_by_reason"] == reasons
    assert s["corpora"]["hostile"]["files"] == len(expected)


def test_duplicate_content_used_once(hostile_run):
    work, _, _, _ = hostile_run
    split = {r["clip_id"]: r for r in read_table(work / "results" / "split" / "split.tsv")}
    a, b = split["hostile/dup_a"], split["hostile/dup_b"]
    assert a["group"] == b["group"] and a["split"] == b["split"]
    assert (a["use"], b["use"]) == ("1", "0") and "duplicate_content" in b["note"]


def test_nothing_written_outside_results(hostile_run):
    work, _, root, before = hostile_run
    assert set(os.listdir(root)) == before
    allowed = {"results", ".snakemake", "config.yaml"}
    assert set(os.listdir(work)) <= allowed, os.listdir(work)
    results = os.path.realpath(work / "results")
    for dirpath, dirnames, filenames in os.walk(work / "results"):
        for name in filenames + dirnames:
            assert os.path.realpath(os.path.join(dirpath, name)).startswith(results + os.sep)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop capabilities")
def test_unreadable_permissions_rejected(tmp_path):
    """Root reads any file, so the converter runs without the capabilities that allow it."""
    p = write_audio(tmp_path / "locked.wav", tone(1.0, 16000), 16000)
    p.chmod(0)
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "from wakeprep.audio import convert_file, AudioSettings\n"
        "r = convert_file(%r, AudioSettings()); print(r.status, r.reason, r.detail)"
    ) % (str(REPO), str(p))
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    out = subprocess.run([*drop, sys.executable, "-c", code],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("rejected unreadable cannot open: Permission denied"), out
