"""The demo corpus: byte-identical every time, and never generated again once there."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from helpers import REPO, planned_jobs, run_snakemake
from wakeprep.demo import OGG_SERIAL, make_demo_corpus


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_is_byte_identical(tmp_path, have_espeak):
    """Two generations with one seed give the same bytes: OGG serial numbers and the time
    stamps of float WAV PEAK chunks are fixed (both varied before)."""
    a = make_demo_corpus(tmp_path / "a", seed=3, takes=1, marker=".done.json")
    b = make_demo_corpus(tmp_path / "b", seed=3, takes=1, marker=".done.json")
    assert a == b
    da, db = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert set(da) == set(db) and len(da) == 10 + 10 + 10 + 6 + 10 + 10 + 1  # + noise and RIR sets
    assert [k for k in da if da[k] != db[k]] == []
    exts = {Path(k).suffix for k in da}
    assert {".ogg", ".wav", ".flac", ".mp3"} <= exts
    # the rewritten files still decode, and the OGG pages carry the fixed serial
    ogg = sorted((tmp_path / "a").rglob("*.ogg"))[0]
    x, rate = sf.read(ogg)
    assert rate == 48000 and x.ndim == 2 and np.abs(x).max() > 0
    data = ogg.read_bytes()
    assert int.from_bytes(data[14:18], "little") == OGG_SERIAL
    float_wavs = [p for p in (tmp_path / "a").rglob("*.wav") if sf.info(p).subtype == "FLOAT"]
    assert float_wavs and all(len(sf.read(p)[0]) for p in float_wavs)
    # nothing left beside the folders, and they are readable by others
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert (tmp_path / "a").stat().st_mode & 0o755 == 0o755


def _clone(dst: Path) -> Path:
    """A fresh checkout of this repository's working tree somewhere else."""
    ignore = shutil.ignore_patterns(".git", "results", ".snakemake", "demo", "__pycache__", ".pytest_cache")
    shutil.copytree(REPO, dst, ignore=ignore)
    return dst


def test_existing_demo_is_not_generated_again(tmp_path, have_espeak):
    """A demo made by one checkout is used as it is by another (whose Snakemake records
    say the rule's code changed) and by a run without records; other takes make it again."""
    work = tmp_path / "work"
    work.mkdir()
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["demo"]["takes"] = 1
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    marker = work / "demo" / ".wakeprep-demo-seed1234-takes1.json"
    run_snakemake(work, str(marker.relative_to(work)))
    before = _digests(work / "demo")
    assert marker.is_file() and len(before) == 57  # 36 spoken and background, 10 noise, 10 RIRs, the marker

    def demo_jobs(*snakefile):
        return [r for r, _ in planned_jobs(work, *snakefile) if r == "demo_corpus"]

    assert demo_jobs() == []
    clone = _clone(tmp_path / "clone")
    assert demo_jobs("-s", str(clone / "Snakefile")) == []
    shutil.rmtree(work / ".snakemake")
    assert demo_jobs() == []
    assert _digests(work / "demo") == before
    # a demo generated with other parameters is generated again
    cfg["demo"]["takes"] = 2
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert demo_jobs() == ["demo_corpus"]
