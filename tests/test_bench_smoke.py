"""Every benchmark in bench/ runs in its small form and prints its table, so they keep working."""

import subprocess
import sys

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow

BENCHES = {
    "convert_features.py": ["--small", "--cores", "1", "--without-speech", "--steady"],
    "features.py": ["--small"],
    "snakemake_overhead.py": ["--small"],
    "cluster.py": ["--small"],
    "embed.py": ["--small"],
    "augment.py": ["--cpu-only", "--small"],
    "dataset.py": ["--small", "--gpu"],
    "vad.py": ["--small"],
    "augment_audio.py": ["--small"],
}


@pytest.mark.parametrize("script", sorted(BENCHES))
def test_benchmark_smoke_run(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *BENCHES[script]],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len(table) >= 3, proc.stdout  # header, rule, at least one row
    assert "nan" not in "".join(table).lower()
