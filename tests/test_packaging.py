"""The installed package has everything it loads at run time (the CUDA kernels' sources, the
C frontend kernel's source and its built library)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from helpers import REPO


def test_kernel_source_is_found_beside_the_module():
    from wakeprep.augment import CHUNK_ROWS, kernel_source

    src = kernel_source()
    assert 'extern "C" __global__ void specaugment_u16(' in src
    assert "#ifndef CHUNK_ROWS" in src and "#define CHUNK_ROWS" not in src, "CHUNK_ROWS comes from gpu.py"
    assert CHUNK_ROWS == 32


def test_missing_kernel_source_says_what_to_do(monkeypatch):
    from wakeprep.augment import gpu

    monkeypatch.setattr(gpu, "KERNEL_FILE", "no-such-kernel.cu")
    with pytest.raises(FileNotFoundError, match="reinstall wakeprep"):
        gpu.kernel_source()


def test_wheel_holds_every_file_of_the_package(tmp_path):
    """Build the wheel from a copy of the sources (the checkout stays clean) and compare
    its wakeprep/ files with the checkout's: a data file left out of pyproject's
    package-data (a .cu kernel, say) fails here, not on a user's GPU. Built libraries
    (``*.so``, from ``pip install -e .``) are not sources: the wheel builds its own."""
    files = {p.relative_to(REPO).as_posix() for p in (REPO / "wakeprep").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".pyd")}
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / f, src / f)
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("wakeprep-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packed = {n for n in z.namelist() if n.startswith("wakeprep/")}
    assert {"wakeprep/augment/specaugment.cu", "wakeprep/frontend/microfrontend.cu", "wakeprep/frontend/cpu_kernel.c"} <= packed
    assert sorted(files - packed) == [], "files of the package missing from the wheel (add them to package-data)"
    if shutil.which("cc") or shutil.which("gcc"):
        built = [n for n in packed if n.startswith("wakeprep/frontend/_cpu_kernel") and n.endswith((".so", ".pyd"))]
        assert len(built) == 1, f"the wheel has no C frontend kernel although a compiler is here: {sorted(packed)}"
        assert "-none-any" not in wheel.name, "a wheel with a compiled library needs a platform tag"
