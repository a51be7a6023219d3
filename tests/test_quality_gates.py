"""Optional quality gates of the convert step: audio.max_clipped_fraction (reason
``clipped``) and audio.min_snr_db (reason ``low_snr``, from the speech detector's SNR)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import espeak_wav
from wakeprep.audio import REASONS, AudioSettings, convert_file
from wakeprep.corpus import scan_corpus, write_manifests
from wakeprep.shards import convert_shard
from wakeprep.store import RaggedStore
from wakeprep.table import read_table
from wakeprep.vad import VadSettings


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, have_espeak):
    root = tmp_path_factory.mktemp("gates")
    clean = root / "clean.wav"
    espeak_wav(clean, "hey jarvis, turn on the light")
    x, rate = sf.read(clean, dtype="float32")
    rng = np.random.default_rng(0)
    peak = np.abs(x).max()
    sf.write(root / "noisy.wav", x + rng.normal(0, peak / 3, len(x)).astype(np.float32), rate, subtype="FLOAT")
    # clipped in the source: a loud sine cut at full scale
    t = np.arange(rate) / rate
    sf.write(root / "hot.wav", np.clip(1.5 * np.sin(2 * np.pi * 220 * t), -1, 1), rate, subtype="PCM_16")
    # clipped here: float samples beyond full scale
    sf.write(root / "over.wav", (1.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, subtype="FLOAT")
    sf.write(root / "hum.wav", 0.1 * rng.normal(size=rate).astype(np.float32), rate, subtype="FLOAT")
    return root


def _convert(tmp_path, root, settings, label="negative"):
    write_manifests(scan_corpus("g", root), tmp_path / "m", 10)
    counts = convert_shard(tmp_path / "m" / "s0000.jsonl", {"name": "g", "path": str(root), "label": label},
                           settings, tmp_path / "audio", tmp_path / "clips.tsv", VadSettings())
    rows = {r["clip_id"]: r for r in read_table(tmp_path / "clips.tsv")}
    return counts, rows


def test_reasons_are_documented():
    assert {"clipped", "low_snr"} <= set(REASONS)


def test_gates_are_off_by_default(tmp_path, corpus):
    counts, rows = _convert(tmp_path, corpus, AudioSettings())
    assert counts == {"ok": 5}, counts


def test_gates_reject_with_reasons(tmp_path, corpus):
    counts, rows = _convert(tmp_path, corpus, AudioSettings(max_clipped_fraction=0.01, min_snr_db=10))
    status = {cid: (r["status"], r["reason"]) for cid, r in rows.items()}
    assert status == {
        "g/clean": ("ok", ""),
        "g/noisy": ("rejected", "low_snr"),
        "g/hot": ("rejected", "clipped"),
        "g/over": ("rejected", "clipped"),
        "g/hum": ("ok", ""),  # no speech found, so no SNR: the SNR gate does not apply
    }, status
    assert float(rows["g/noisy"]["snr_db"]) < 10 and "min_snr_db 10" in rows["g/noisy"]["detail"]
    assert float(rows["g/clean"]["snr_db"]) >= 10
    assert rows["g/hum"]["speech_end_s"] == ""
    assert "at full scale" in rows["g/hot"]["detail"] and rows["g/hot"]["peak_dbfs"] != ""
    assert int(rows["g/over"]["clipped"]) > 0
    assert RaggedStore(tmp_path / "audio").ids == ["g/clean", "g/hum"]
    assert counts == {"ok": 2, "rejected:low_snr": 1, "rejected:clipped": 2}


def test_snr_gate_needs_speech_detection(tmp_path, corpus):
    """Labels outside vad.labels have no SNR: the SNR gate lets them pass, the clip gate does not."""
    counts, rows = _convert(tmp_path, corpus, AudioSettings(max_clipped_fraction=0.01, min_snr_db=10), "background")
    assert rows["g/noisy"]["status"] == "ok" and rows["g/noisy"]["snr_db"] == ""
    assert rows["g/hot"]["reason"] == "clipped"


def test_clipped_fraction_threshold(corpus):
    hot = convert_file(str(corpus / "hot.wav"), AudioSettings())
    frac = hot.full_scale / len(hot.samples)
    assert 0.1 < frac < 0.9
    assert convert_file(str(corpus / "hot.wav"), AudioSettings(max_clipped_fraction=frac)).status == "ok"
    assert convert_file(str(corpus / "hot.wav"), AudioSettings(max_clipped_fraction=frac * 0.99)).reason == "clipped"
    assert convert_file(str(corpus / "clean.wav"), AudioSettings(max_clipped_fraction=0)).status == "ok"
