"""Plain helpers the tests import (``from helpers import ...``): generated audio files and
Snakemake runs in temporary folders. Fixtures live in conftest.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parent.parent


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path, x, rate, fmt="WAV", subtype="PCM_16", channels=1, gains=None):
    """Write mono ``x`` to ``path``; several channels get per-channel ``gains``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if channels > 1:
        gains = np.asarray(gains if gains is not None else np.ones(channels), dtype=np.float32)
        x = x[:, None] * gains[None, :]
    sf.write(path, x, rate, format=fmt, subtype=subtype)
    return path


def espeak_wav(path, text, voice="en-us", speed=170, pitch=50):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), text], check=True)
    return path


def make_small_corpus(root: Path, n_speech: int = 12, n_noise: int = 4, seed: int = 0) -> dict:
    """A few espeak-ng clips in two voices plus seeded noise; returns corpus folders."""
    rng = np.random.default_rng(seed)
    voices = ["en-us", "en-gb"]
    phrases = ["hey jarvis", "open the door", "hey jarvis please", "what time is it"]
    pos = root / "speech"
    for i in range(n_speech):
        v = voices[i % len(voices)]
        espeak_wav(pos / v / f"clip{i:03d}.wav", phrases[i % len(phrases)], voice=v, speed=150 + 5 * i)
    noise = root / "noise"
    for i in range(n_noise):
        x = (rng.standard_normal(16000 * 2) * 0.05).astype(np.float32)
        write_audio(noise / f"n{i:02d}.flac", x, 16000, "FLAC", "PCM_16")
    return {"speech": pos, "noise": noise}


def workflow_config(corpora: dict, **overrides) -> dict:
    cfg = {
        "seed": 7,
        "shard_size": 4,
        "demo": {"generate": False},
        "augment": {"device": "cpu"},  # CI has no GPU; the GPU path has its own tests
        "corpora": [
            {"name": "speech", "path": str(corpora["speech"]), "label": "positive", "speaker_regex": "^([^/]+)/"},
            {"name": "noise", "path": str(corpora["noise"]), "label": "background"},
        ],
    }
    cfg.update(overrides)
    return cfg


def run_snakemake(workdir, *args, config: dict | None = None, check=True, timeout=900):
    """Run the real Snakemake CLI on this repository's Snakefile in ``workdir``."""
    workdir = Path(workdir)
    if config is not None:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [shutil.which("snakemake") or "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2", *args]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


_JOB = re.compile(r"^\s*(?:local)?(?:rule|checkpoint) (\w+):\s*$")
_WILD = re.compile(r"^\s*wildcards: (.*)$")


def planned_jobs(workdir, *args) -> list[tuple[str, dict]]:
    """Jobs a dry run plans: ``[(rule, wildcards), ...]`` (empty when nothing to do)."""
    proc = run_snakemake(workdir, "--dry-run", *args)
    out = proc.stdout + proc.stderr
    jobs, current = [], None
    for line in out.splitlines():
        m = _JOB.match(line)
        if m:
            current = (m.group(1), {})
            jobs.append(current)
            continue
        m = _WILD.match(line)
        if m and current is not None:
            current[1].update(dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
    if not jobs:
        assert "Nothing to be done" in out, out
    return jobs


def by_rule(jobs) -> dict:
    out = {}
    for rule, _ in jobs:
        out[rule] = out.get(rule, 0) + 1
    return out
