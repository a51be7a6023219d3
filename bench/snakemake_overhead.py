"""Snakemake planning and rerun overhead on large corpora of tiny files.

Usage::

    python3 bench/snakemake_overhead.py --files 10000,100000
    python3 bench/snakemake_overhead.py --small              # 200 files (CI smoke run)

For each size: a corpus of N tiny WAV files (0.1 s each, background label, so no
embedding), one full run, then the timings that matter day to day:

- plan: ``snakemake -n`` with nothing to do (start-up scan, manifests, DAG);
- no-op rerun: ``snakemake --cores 2`` with nothing to do;
- touch one file: ``snakemake --cores 2`` after changing one file's mtime, and how many
  jobs of each rule it ran (target: one convert and one features job, plus the global steps).

Prints one markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parent.parent


def make_tiny_corpus(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(1600) * 0.1).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "template.wav"
    sf.write(template, x, 16000, subtype="PCM_16")
    data = template.read_bytes()
    template.unlink()
    for i in range(n):
        d = folder / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            d.mkdir(exist_ok=True)
        # same audio, different bytes (so duplicate detection does not collapse them)
        (d / f"f{i:07d}.wav").write_bytes(data[:-4] + i.to_bytes(4, "little"))


def snakemake(work: Path, *args: str) -> tuple[float, str]:
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def jobs_run(log: str) -> Counter:
    return Counter(re.findall(r"^\s*(?:local)?rule (\w+):", log, flags=re.M))


def bench(n: int, root: Path) -> dict:
    corpus, work = root / f"corpus{n}", root / f"work{n}"
    if not corpus.exists():
        make_tiny_corpus(corpus, n)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    cfg = {
        "shard_size": 256,
        "demo": {"generate": False},
        "audio": {"min_duration_s": 0.05},
        "augment": {"device": "cpu"},
        "corpora": [{"name": "tiny", "path": str(corpus), "label": "background"}],
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    full, _ = snakemake(work, "--quiet", "all")
    plan, out = snakemake(work, "-n")
    assert "Nothing to be done" in out, out[-2000:]
    noop, _ = snakemake(work)
    target = corpus / "d0000" / "f0000007.wav"
    t = time.time() + 10
    os.utime(target, (t, t))
    touch, log = snakemake(work)
    return {"files": n, "full": full, "plan": plan, "noop": noop, "touch": touch, "jobs": jobs_run(log)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="10000,100000")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    sizes = [200] if args.small else [int(x) for x in args.files.split(",")]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="wakeprep-overhead-"))
    rows = []
    for n in sizes:
        r = bench(n, root)
        print(f"{n} files done: {r}", file=sys.stderr)
        rows.append(r)
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"snakemake --cores 2, shard_size 256, 0.1 s WAV files\n")
    print("| files | first full run s | plan (dry run, nothing to do) s | no-op rerun s | touch one file, rerun s | jobs in that rerun |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(r["jobs"].items()))
        print(f"| {r['files']} | {r['full']:.1f} | {r['plan']:.2f} | {r['noop']:.2f} | {r['touch']:.2f} | {jobs} |")


if __name__ == "__main__":
    main()
