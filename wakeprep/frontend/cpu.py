"""The micro frontend on the CPU over a batch of clips, no Python per frame: two kernels,
one answer.

- ``"c"``: ``cpu_kernel.c``, built by ``setup.py`` at install time when a C compiler is
  present and loaded with ctypes (:mod:`.ckernel`): about a millisecond to load, so a job's
  first features cost no start-up;
- ``"numba"``: the same algorithm compiled with numba (:mod:`.numba_kernel`), used when the
  C library is not built (no compiler) or cannot be loaded; its first call in a process
  imports numba and loads the cached machine code (about 0.26 CPU s).

Both are the same blocked integer algorithm over the same tables (:func:`tables`, built by
:mod:`.tables`) and give pymicro-features' codes, bit for bit (``tests/test_features.py``
runs every equality test on each). :data:`KERNEL` says which one :func:`features_batch`
runs; the environment variable ``WAKEPREP_CPU_KERNEL`` (``auto``, the default; ``c``;
``numba``) forces one, for tests and benchmarks. Importing this module and running the C
kernel imports neither numba nor SciPy.

A batch is many clips back to back (``samples`` with clip ``offsets``); the per-clip
state (window, noise estimate) starts from zero for each clip, as a fresh
``MicroFrontend`` does.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from . import ckernel
from . import tables as T

log = logging.getLogger(__name__)

KERNELS = ("c", "numba")
#: Environment variable that picks the kernel: ``auto`` (C when built, else numba), ``c``, ``numba``.
ENV = "WAKEPREP_CPU_KERNEL"


def choose_kernel(want: str | None = None) -> str:
    """The kernel for ``want`` (default: ``$WAKEPREP_CPU_KERNEL``, else ``auto``)."""
    if want is None:
        want = os.environ.get(ENV, "") or "auto"
    want = want.strip().lower()
    if want not in ("auto", *KERNELS):
        raise ValueError(f"{ENV} must be auto, c or numba, got {want!r}")
    if want == "numba":
        return "numba"
    if ckernel.load() is not None:
        return "c"
    if want == "c":
        raise RuntimeError(f"{ENV}=c, but the C frontend kernel is not available: {ckernel.why()}. To proceed, "
                           f"install a C compiler and run `pip install -e .` in the repository, or unset {ENV}")
    return "numba"


#: The kernel :func:`features_batch` runs: ``"c"`` or ``"numba"``.
KERNEL = choose_kernel()
_logged = False


_TABLES = None


def tables() -> tuple:
    """The kernels' arguments after the batch: window, FFT twiddles, real-split twiddles,
    digit-reversal permutation, filterbank (start, end, channel, weight, unweight), PCAN
    gain table, log table, noise constants (even, odd, minimum remaining)."""
    global _TABLES
    if _TABLES is None:
        start, end, ch, w, u = T.filterbank()
        even, odd, minrem = T.noise_constants()
        _TABLES = (
            T.window_coefficients(), T.fft_twiddles(), T.rfft_twiddles(), T.fft_digit_reversal(),
            start, end, ch, w, u, T.pcan_lut(), T.log_lut(), even, odd, minrem,
        )
    return _TABLES


def features_batch(samples: np.ndarray, offsets: np.ndarray, kernel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint16 codes of every clip of a batch.

    Parameters
    ----------
    samples : int16 array
        The clips back to back.
    offsets : int64 array, length clips + 1
        Clip ``i`` is ``samples[offsets[i]:offsets[i + 1]]``.
    kernel : ``"c"``, ``"numba"`` or None
        Which kernel runs; None: :data:`KERNEL`.

    Returns
    -------
    codes : uint16 array ``[frames, 40]``
    frame_offsets : int64 array, length clips + 1
        Clip ``i``'s frames are ``codes[frame_offsets[i]:frame_offsets[i + 1]]``.
    """
    global _logged
    kernel = KERNEL if kernel is None else kernel
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
    if not _logged:
        log.debug("CPU frontend kernel: %s (C library: %s)", kernel, ckernel.why())
        _logged = True
    samples = np.ascontiguousarray(samples, dtype=np.int16)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    frame_offsets = T.frame_offsets(offsets)
    out = np.empty((int(frame_offsets[-1]), T.N_CHANNELS), np.uint16)
    if len(out):
        if kernel == "c":
            ckernel.run(samples, offsets, frame_offsets, out, tables())
        else:
            from . import numba_kernel

            numba_kernel.run(samples, offsets, frame_offsets, out, tables())
    return out, frame_offsets
