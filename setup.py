"""Build of the optional C extension; everything else about the package is in pyproject.toml.

``wakeprep.frontend._cpu_kernel`` is the micro frontend's CPU kernel in C
(``wakeprep/frontend/cpu_kernel.c``, loaded with ctypes by ``wakeprep.frontend.ckernel``).
It is optional: without a working C compiler the install still succeeds and the frontend
runs its numba kernel, which gives the same codes after about 0.26 CPU s of start-up per
process. ``pip install -e .`` builds the library in place, beside the module.

Flags: -O3 -fwrapv -fno-math-errno (``docs/benchmarks.md`` has what was measured). -fwrapv
makes every signed overflow wrap, as the kernel's integer arithmetic assumes (it is written
with explicit casts too, and tested under gcc's undefined-behaviour sanitizer without
-fwrapv); -fno-math-errno lets the square roots run as vector instructions. No -march: the
library must run on any machine of its architecture; on x86-64 with glibc (gcc 11 or later)
the kernel carries one version per x86-64 level, the best one chosen when it is loaded.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wakeprep.frontend._cpu_kernel",
            ["wakeprep/frontend/cpu_kernel.c"],
            optional=True,
            extra_compile_args=["-O3", "-fwrapv", "-fno-math-errno"],
        )
    ]
)
