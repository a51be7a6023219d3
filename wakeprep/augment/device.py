"""Is a GPU usable here? Probing for CuPy and CUDA, and the error that says what to do.

Every GPU step of wakeprep (rule augment, the dataset's on-the-fly masks, the GPU
frontend, rule augment_audio) asks here first, and fails with :class:`NoGpuError`
rather than falling back to the CPU.
"""

from __future__ import annotations

NO_GPU_HELP = (
    "set `augment.device: cpu` in config.yaml to run the same algorithm with NumPy on the "
    "CPU (byte-identical output, much slower), or run this step on a machine with an "
    "NVIDIA GPU, its driver and CuPy"
)


class NoGpuError(RuntimeError):
    """``device='cuda'`` was asked for, but CuPy or a usable GPU is missing."""


def gpu_status() -> tuple[bool, str]:
    """Whether CuPy and a usable GPU are here; the second value says which, or why not."""
    try:
        import cupy
    except Exception as e:  # ImportError, or a CuPy built for another CUDA
        return False, f"CuPy cannot be imported ({type(e).__name__}: {e})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return False, "CUDA reports no GPU"
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        _, total = cupy.cuda.runtime.memGetInfo()
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return True, f"cuda:{dev.id} {name} ({total / 2**30:.0f} GiB)"
    except Exception as e:  # no driver, driver too old, device busy or lost...
        return False, f"CUDA is not usable ({type(e).__name__}: {e})"


def require_gpu() -> str:
    """Return the GPU's description, or raise :class:`NoGpuError` saying what to do."""
    ok, what = gpu_status()
    if not ok:
        raise NoGpuError(f"augment: no usable GPU was found: {what}. To proceed, {NO_GPU_HELP}.")
    return what
