"""Interrupted runs, determinism and concurrent use, with the real Snakemake CLI."""

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO, make_small_corpus, run_snakemake, workflow_config, write_audio
from wakeprep.store import RaggedStore

pytestmark = pytest.mark.slow

#: Outputs that legitimately differ between runs: logs and timings, and Snakemake's own marker.
VOLATILE = ("logs/", "benchmarks/", "report/runtimes.")


def checksums(work: Path) -> dict:
    """sha256 of every output file under results/, by relative path."""
    out = {}
    root = work / "results"
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith(VOLATILE) and p.name != ".snakemake_timestamp":
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(work: Path) -> list:
    return sorted(str(p) for p in (work / "results").rglob(".*.tmp-*")) + sorted(
        str(p) for p in (work / "results").rglob(".*.old-*")
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, have_espeak):
    root = tmp_path_factory.mktemp("rel")
    corpora = make_small_corpus(root / "corpora", n_speech=8, n_noise=3)
    # one long clip, so that convert, features and assemble each take long enough to be hit
    rng = np.random.default_rng(1)
    write_audio(corpora["noise"] / "long.flac", (rng.standard_normal(16000 * 240) * 0.05).astype(np.float32), 16000, "FLAC")
    cfg = workflow_config(corpora)
    return root, cfg


@pytest.fixture(scope="module")
def reference(corpus):
    root, cfg = corpus
    work = root / "reference"
    work.mkdir()
    run_snakemake(work, config=cfg)
    return checksums(work)


def test_two_clean_runs_are_byte_identical(corpus, reference):
    root, cfg = corpus
    work = root / "elsewhere" / "second"
    work.mkdir(parents=True)
    run_snakemake(work, config=cfg)
    second = checksums(work)
    assert len(reference) > 50
    expected = {"clips.tsv", "summary.txt", "split/split.tsv", "split/report.json",
                "mmap/train/positive/features/data.bin", "mmap/train/positive/audio/data.bin"}
    assert expected <= set(reference)
    assert any(k.endswith("embeddings/data.bin") for k in reference)
    diff = sorted(k for k in set(reference) | set(second) if reference.get(k) != second.get(k))
    assert diff == []


def _started(work: Path, rule: str) -> bool:
    logs = work / "results" / "logs" / rule
    return logs.is_dir() and any(logs.rglob("*.log"))


@pytest.mark.parametrize("rule", ["convert", "features", "assemble"])
def test_killed_run_resumes_to_identical_outputs(corpus, reference, rule):
    root, cfg = corpus
    work = root / f"killed_{rule}"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "1"]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _started(work, rule):
        assert proc.poll() is None, f"the run ended before rule {rule} started"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # every store at a visible path is complete (partial ones live only in hidden temp folders)
    for meta in (work / "results").rglob("meta.json"):
        if any(part.startswith(".") for part in meta.parent.relative_to(work).parts):
            continue
        store = RaggedStore(meta.parent)  # raises on a partial store
        assert len(store.ids) == len(store)
    # Snakemake's lock survives a SIGKILL: unlock, then resume as a user would
    run_snakemake(work, "--unlock")
    run_snakemake(work, "--rerun-incomplete")
    assert leftovers(work) == []
    resumed = checksums(work)
    diff = sorted(k for k in set(reference) | set(resumed) if reference.get(k) != resumed.get(k))
    assert diff == []


def test_second_snakemake_is_refused_by_the_lock(corpus, reference):
    root, cfg = corpus
    work = root / "concurrent"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "1"]
    first = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (work / ".snakemake" / "locks").is_dir() or not any((work / ".snakemake" / "locks").iterdir()):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    # a plain second run is refused: by the lock, or (when it sees the first run's jobs in
    # progress first) by Snakemake's incomplete-files check, which comes before the lock
    second = run_snakemake(work, check=False)
    assert second.returncode != 0
    said = second.stdout + second.stderr
    assert "Directory cannot be locked" in said or "--rerun-incomplete" in said, said[-3000:]
    # with --rerun-incomplete (as profiles/local sets) it gets past that check to the lock
    third = run_snakemake(work, "--rerun-incomplete", check=False)
    assert third.returncode != 0
    assert "Directory cannot be locked" in third.stdout + third.stderr, (third.stdout + third.stderr)[-3000:]
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    assert checksums(work) == reference
