"""Fixtures shared by the tests; plain helper functions are in helpers.py. Puts this
checkout first on sys.path, so that the tests import its ``wakeprep``."""

from __future__ import annotations

import shutil
import sys

import pytest

from helpers import REPO

sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def have_espeak():
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run ./setup.sh")
    return True
