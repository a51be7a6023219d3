"""The micro frontend's CPU kernel in C (``cpu_kernel.c``), loaded with ctypes.

``cpu_kernel.c`` transliterates the numba kernel (:mod:`.numba_kernel`) function for
function, with the same blocked layout and the same tables, and gives the same codes.
``setup.py`` builds it as the extension ``wakeprep.frontend._cpu_kernel`` (``pip install
-e .`` puts the shared library in this folder); it is optional, so without a C compiler
wakeprep still installs and :mod:`.cpu` uses numba.

The library is loaded with :mod:`ctypes`, not imported: it calls no Python API at run time,
so a build for any Python version in this folder will do, and loading it costs about a
millisecond where numba's import and cache load cost about 0.26 CPU s in every new process
(a convert job's whole frontend work on a one-hour shard is about 0.5 s). ctypes releases
the GIL during the call, as the numba kernel (``nogil``) does.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path

import numpy as np

#: Version of the C function's arguments; ``wp_frontend_abi()`` in ``cpu_kernel.c`` must
#: return the same number, so that a library left from an older source is not called.
ABI = 1

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "cpu_kernel.c"

_lib = None
_why = "not loaded yet"


def candidates() -> list[Path]:
    """Built libraries beside this module: this interpreter's own suffix first, then any
    other (``_cpu_kernel.cpython-312-x86_64-linux-gnu.so``, ``_cpu_kernel.abi3.so``, ...)."""
    own = [HERE / f"_cpu_kernel{s}" for s in importlib.machinery.EXTENSION_SUFFIXES]
    found = [p for p in own if p.is_file()]
    found += [p for p in sorted(HERE.glob("_cpu_kernel*.so")) + sorted(HERE.glob("_cpu_kernel*.pyd")) if p not in found]
    return found


def open_library(path) -> ctypes.CDLL:
    """The library at ``path`` with its function's types set; ``OSError`` when it cannot be
    loaded or was built for other arguments (:data:`ABI`)."""
    path = Path(path)
    lib = ctypes.CDLL(str(path))
    try:
        lib.wp_frontend_abi.restype = ctypes.c_int
        abi = lib.wp_frontend_abi()
        fn = lib.wp_frontend_run
    except AttributeError as e:
        raise OSError(f"{path.name}: not a wakeprep frontend kernel ({e})") from None
    if abi != ABI:
        raise OSError(f"{path.name}: built for argument version {abi}, this wakeprep needs {ABI} (rebuild: pip install -e .)")
    fn.restype = ctypes.c_int
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn.argtypes = [ptr, ptr, ptr, i64, ptr, ptr, ptr, ptr, ptr, i64, i64, ptr, ptr, ptr, ptr, ptr, i64, i64, i64]
    return lib


def load():
    """The library beside this module, loaded once, or ``None`` (then :func:`why` says why)."""
    global _lib, _why
    if _lib is not None:
        return _lib
    found = candidates()
    if not found:
        _why = f"no _cpu_kernel library in {HERE} (built by `pip install -e .` when a C compiler is present)"
        return None
    errors = []
    for path in found:
        try:
            _lib, _why = open_library(path), f"loaded from {path}"
            return _lib
        except OSError as e:
            errors.append(str(e))
    _why = "; ".join(errors)
    return None


def why() -> str:
    """What :func:`load` found: the library's path, or why there is none."""
    return _why


# the dtype of each table of cpu.tables(), in order (the C function's pointer types)
_TABLE_DTYPES = (np.int16, np.int16, np.int16, np.int64, None, None, np.int32, np.int16, np.int16, np.int16, np.uint16,
                 None, None, None)


def run(samples: np.ndarray, offsets: np.ndarray, frame_offsets: np.ndarray, out: np.ndarray, tables: tuple,
        lib: ctypes.CDLL | None = None) -> None:
    """Codes of a batch into ``out`` (``[frames, 40]`` uint16, C order), as
    :func:`.cpu.features_batch` prepares its arguments; ``tables`` is :func:`.cpu.tables`.
    ``lib``: a library from :func:`open_library` (tests build other variants); default
    :func:`load`'s."""
    lib = lib or load()
    if lib is None:
        raise RuntimeError(f"the C frontend kernel is not available: {_why}")
    if samples.dtype != np.int16 or offsets.dtype != np.int64 or frame_offsets.dtype != np.int64 or out.dtype != np.uint16:
        raise TypeError("ckernel.run: samples int16, offsets and frame_offsets int64, out uint16")
    for a in (samples, offsets, frame_offsets, out):
        if not a.flags.c_contiguous:
            raise ValueError("ckernel.run: arrays must be C-contiguous")
    if out.shape != (int(frame_offsets[-1]), 40) or len(frame_offsets) != len(offsets):
        raise ValueError("ckernel.run: out must be [frames, 40] and frame_offsets as long as offsets")
    # C reads what the offsets say: out of range would be a crash, not an error
    if len(offsets) < 1 or offsets[0] < 0 or offsets[-1] > len(samples) or np.any(np.diff(offsets) < 0):
        raise ValueError("ckernel.run: offsets must start at 0 or later, never decrease and end within the samples")
    args = []
    for t, dtype in zip(tables, _TABLE_DTYPES):
        if dtype is None:
            args.append(int(t))
        else:
            if t.dtype != dtype or not t.flags.c_contiguous:
                raise TypeError(f"ckernel.run: a table is {t.dtype}, expected contiguous {np.dtype(dtype)}")
            args.append(t.ctypes.data)
    rc = lib.wp_frontend_run(samples.ctypes.data, offsets.ctypes.data, frame_offsets.ctypes.data, len(offsets) - 1,
                             out.ctypes.data, *args)
    if rc != 0:
        raise MemoryError("the C frontend kernel could not allocate its work space")
