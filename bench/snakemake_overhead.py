"""Snakemake planning and rerun overhead on large corpora of tiny files.

Usage::

    python3 bench/snakemake_overhead.py --files 10000,100000 --plan-only 1000000
    python3 bench/snakemake_overhead.py --small              # 200 files (CI smoke run)

For each size: a corpus of N tiny WAV files (0.1 s each, in folders of 1,000), then

- plan, fresh: ``snakemake -n`` in an empty work folder (start-up scan, every manifest
  written, a DAG with every job to do, each job printed): what a user waits for before a
  first run;
- plan again: the same dry run once more (manifests on disk and unchanged);

and, for the sizes of ``--files`` (not those of ``--plan-only``: a first full run of
1,000,000 files takes most of an hour on 2 cores), one full run and then the timings
that matter day to day:

- plan, nothing to do: ``snakemake -n`` after the full run;
- no-op rerun: ``snakemake --cores 2`` with nothing to do;
- touch one file: ``snakemake --cores 2`` after changing one file's mtime, and how many
  jobs of each rule it ran (target: one convert and one features job, plus the global steps).

Each dry run is repeated ``--repeat`` times (min and max are printed: the machine may be
shared) and its peak memory (max RSS) recorded. ``--label`` picks the corpus's label:
``background`` (default; nothing is embedded, 2 jobs per shard) or ``negative`` (speech,
3 jobs per shard; plan-only sizes only, since embedding 100,000 clips takes hours).
``--shard-size`` overrides the config's default. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import json
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
    """``n`` tiny WAV files in folders of 1,000 (kept between runs: made once per size)."""
    done = folder / ".complete"
    if done.is_file() and done.read_text() == str(n):
        return
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
    done.write_text(str(n))


def _run(work: Path, *args: str) -> tuple[float, str, int]:
    """Run snakemake; returns wall seconds, its output and its peak RSS in MB (read with
    GNU time where installed, else 0)."""
    time_bin = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    cmd = ["snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--cores", "2", *args]
    rss_file = work.parent / f".rss-{os.getpid()}"
    if time_bin:
        cmd = [time_bin, "-f", "%M", "-o", str(rss_file), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rss = 0
    if time_bin and rss_file.is_file():
        rss = int(rss_file.read_text().split()[-1]) // 1024
        rss_file.unlink()
    return wall, proc.stdout + proc.stderr, rss


def jobs_run(log: str) -> Counter:
    return Counter(re.findall(r"^\s*(?:local)?rule (\w+):", log, flags=re.M))


def _config(corpus: Path, label: str, shard_size: int | None) -> dict:
    cfg = {
        "demo": {"generate": False},
        "audio": {"min_duration_s": 0.05},
        "augment": {"device": "cpu"},
        "corpora": [{"name": "tiny", "path": str(corpus), "label": label}],
    }
    if shard_size:
        cfg["shard_size"] = shard_size
    return cfg


def _fresh(work: Path, cfg: dict) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))


def bench(n: int, root: Path, full: bool, label: str, shard_size: int | None, repeat: int) -> dict:
    corpus, work = root / f"corpus{n}", root / f"work{n}-{label}"
    make_tiny_corpus(corpus, n)
    cfg = _config(corpus, label, shard_size)
    fresh, again, rss = [], [], 0
    for _ in range(repeat):
        _fresh(work, cfg)
        t, out, m = _run(work, "-n")
        fresh.append(t)
        rss = max(rss, m)
        t, out, m = _run(work, "-n")
        again.append(t)
        rss = max(rss, m)
    layout = json.loads((work / "results" / "manifests" / "tiny" / "layout.json").read_text())
    total = re.search(r"^total\s+(\d+)\s*$", out, flags=re.M)
    jobs = int(total.group(1)) if total else None
    row = {"files": n, "label": label, "shards": len(layout["nonempty"]), "jobs": jobs,
           "fresh": fresh, "again": again, "rss": rss}
    if not full:
        return row
    row["full"], _, _ = _run(work, "--quiet", "all")
    plans = []
    for _ in range(repeat):
        t, out, m = _run(work, "-n")
        assert "Nothing to be done" in out, out[-2000:]
        plans.append(t)
    row["plan"] = plans
    row["noop"], _, _ = _run(work)
    target = corpus / "d0000" / "f0000007.wav"
    t = time.time() + 10
    os.utime(target, (t, t))
    row["touch"], log, _ = _run(work)
    row["touch_jobs"] = jobs_run(log)
    return row


def _span(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if len(values) == 1 or hi - lo < 0.005 else f"{lo:.2f}-{hi:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="10000,100000", help="sizes with a full run and rerun timings")
    ap.add_argument("--plan-only", default="", help="sizes with the dry-run timings only (e.g. 1000000)")
    ap.add_argument("--label", default="background", choices=["background", "negative"])
    ap.add_argument("--shard-size", type=int, default=None, help="default: the schema's default")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if args.small:
        sizes, repeat = [(200, True)], 1
    else:
        sizes = [(int(x), True) for x in args.files.split(",") if x] + [(int(x), False) for x in args.plan_only.split(",") if x]
        repeat = args.repeat
    if args.label == "negative" and any(full for _, full in sizes) and not args.small:
        raise SystemExit("--label negative embeds every clip in a full run: give its sizes with --plan-only")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="wakeprep-overhead-"))
    rows = []
    for n, full in sizes:
        r = bench(n, root, full, "background" if args.small else args.label, args.shard_size, repeat)
        print(f"{n} files done: {r}", file=sys.stderr)
        rows.append(r)
    shard = args.shard_size or "default"
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"snakemake --cores 2, shard_size {shard}, label {rows[0]['label']}, 0.1 s WAV files; "
          f"dry runs repeated {repeat}x (min-max)\n")
    print("| files | shards | jobs | plan, fresh s | plan again s | peak MB | first full run s | plan, nothing to do s "
          "| no-op rerun s | touch one file, rerun s | jobs in that rerun |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        tail = ["-"] * 5
        if "full" in r:
            jobs = ", ".join(f"{k} {v}" for k, v in sorted(r["touch_jobs"].items()))
            tail = [f"{r['full']:.1f}", _span(r["plan"]), f"{r['noop']:.2f}", f"{r['touch']:.2f}", jobs]
        print(f"| {r['files']} | {r['shards']} | {r['jobs'] or '-'} | {_span(r['fresh'])} | {_span(r['again'])} | "
              f"{r['rss']} | " + " | ".join(tail) + " |")


if __name__ == "__main__":
    main()
