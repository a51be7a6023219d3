"""`snakemake --lint` finds nothing to complain about in the real workflow."""

import shutil

import pytest
import yaml

from helpers import REPO, run_snakemake, tone, workflow_config, write_audio

CLEAN = "Congratulations, your workflow is in a good condition!"


def _small_corpora(root):
    """Two tiny corpora (a few tone files): enough for the config to validate."""
    speech, noise = root / "speech", root / "noise"
    for i, voice in enumerate(["en-us", "en-gb"]):
        write_audio(speech / voice / f"clip{i}.wav", tone(0.5, 16000, 300 + 100 * i), 16000)
    write_audio(noise / "n0.flac", tone(1.0, 16000, 90), 16000, "FLAC")
    return {"speech": speech, "noise": noise}


def _assert_clean(proc):
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and CLEAN in out and "Lints for" not in out, (
        f"snakemake --lint is not clean (exit {proc.returncode}):\n{out}")


def test_lint_small_config(tmp_path):
    corpora = _small_corpora(tmp_path / "corpora")
    work = tmp_path / "work"
    work.mkdir()
    cfg = workflow_config(corpora, augment={"device": "cpu"})
    _assert_clean(run_snakemake(work, "--lint", config=cfg, check=False, timeout=300))
    assert not (work / "results").exists(), "--lint must not run anything"


def test_lint_shipped_config(tmp_path):
    """The repository's own config.yaml (the demo), linted where the demo does not exist."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    if cfg.get("demo", {}).get("generate") is False and not all(
            (tmp_path / c["path"]).exists() for c in cfg["corpora"]):
        pytest.skip("config.yaml names corpora that exist only where it is used")
    _assert_clean(run_snakemake(tmp_path, "--lint", check=False, timeout=300))


def test_package_docstring_names_every_module():
    """wakeprep/__init__.py's module list is current: every module and subpackage is named."""
    import wakeprep

    doc = wakeprep.__doc__
    pkg = REPO / "wakeprep"
    names = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in pkg.glob("*/__init__.py")}
    missing = sorted(n for n in names if f":mod:`wakeprep.{n}`" not in doc)
    assert not missing, f"wakeprep/__init__.py does not list: {', '.join(missing)}"
