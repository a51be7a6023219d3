"""40-bin micro-frontend log-mel features, exactly as microWakeWord computes them.

The frontend is the TFLite micro frontend with pymicro-features' settings (30 ms window,
10 ms step, 40 channels). Its output is integer: pymicro-features returns those integers
times 0.0390625 (= 1/25.6) as floats, so the features are stored losslessly as the uint16
codes themselves (``code = round(feature * FEATURE_SCALE)``); readers divide by
:data:`FEATURE_SCALE` to get the floats back.

Frame count: microWakeWord feeds 10 ms blocks only while ``index + 320 bytes < length``,
so a clip of ``n`` samples gives ``max(0, (n - 1) // 160 - 2)`` frames (16,000 samples:
97). :func:`frame_count` says so, and every implementation agrees.

Three implementations (:mod:`wakeprep.frontend`), one answer, code for code:

- ``reference``: pymicro-features itself, 1.x or 2.x (:func:`reference_features`);
- ``cpu``: the integer algorithm over a whole batch, no Python per frame (the default): a C
  kernel built at install time, or numba where it is not built (:mod:`wakeprep.frontend.cpu`);
- ``cuda``: the same algorithm as CUDA kernels (CuPy); see docs/features.md for when it pays.

Examples
--------
>>> import numpy as np
>>> from wakeprep.features import micro_features_u16, frame_count
>>> x = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
>>> micro_features_u16(x).shape, frame_count(16000)
((97, 40), 97)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .frontend import tables as _T
from .frontend.reference import CHUNK_BYTES, reference_features  # noqa: F401  (re-exported)

#: uint16 code = round(feature * FEATURE_SCALE); float feature = code / FEATURE_SCALE.
FEATURE_SCALE = 25.6
N_BINS = _T.N_CHANNELS
#: Where features can be computed (config ``features.device``).
DEVICES = ("cpu", "cuda")

NO_GPU_HELP = (
    "set `features.device: cpu` in config.yaml (the same codes, computed on the CPU), or run "
    "this step on a machine with an NVIDIA GPU, its driver and CuPy"
)


@dataclass(frozen=True)
class FeatureSettings:
    """How the features rule computes features (config section ``features``).

    Parameters
    ----------
    pad_ms : int
        Milliseconds of digital silence added before and after each clip.
    device : str
        ``cpu`` (the C or numba kernel) or ``cuda`` (CuPy kernels; fails when no GPU is usable).
    batch_mb : int
        Audio handed to the frontend per call, in MiB of int16 samples.
    """

    pad_ms: int = 0
    device: str = "cpu"
    batch_mb: int = 64

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ValueError(f"features.device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not 0 <= int(self.pad_ms) <= 5000:
            raise ValueError(f"features.pad_ms must be between 0 and 5000, got {self.pad_ms!r}")
        if int(self.batch_mb) < 1:
            raise ValueError(f"features.batch_mb must be at least 1, got {self.batch_mb!r}")

    @classmethod
    def from_config(cls, section: dict | None) -> "FeatureSettings":
        """Settings from the config's ``features`` section (missing keys take the defaults)."""
        section = dict(section or {})
        known = {"pad_ms", "device", "batch_mb"}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"features: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**section)


def frame_count(n_samples: int) -> int:
    """Frames microWakeWord's feeding loop gets from a clip of ``n_samples`` samples."""
    return int(max(0, (int(n_samples) - 1) // _T.STEP - 2))


def require_gpu() -> str:
    """The GPU's description, or :class:`wakeprep.augment.NoGpuError` saying what to do."""
    from .augment import NoGpuError, gpu_status

    ok, what = gpu_status()
    if not ok:
        raise NoGpuError(f"features: no usable GPU was found: {what}. To proceed, {NO_GPU_HELP}.")
    return what


def features_batch(samples: np.ndarray, offsets, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """uint16 codes of many clips in one call.

    Parameters
    ----------
    samples : int16 array
        The clips back to back (16 kHz mono).
    offsets : int64 array, length clips + 1
        Clip ``i`` is ``samples[offsets[i]:offsets[i + 1]]``.
    device : ``"cpu"`` or ``"cuda"``

    Returns
    -------
    codes : uint16 NumPy array ``[frames, 40]``
    frame_offsets : int64 NumPy array, length clips + 1
        Clip ``i``'s frames are ``codes[frame_offsets[i]:frame_offsets[i + 1]]``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] > len(samples):
        raise ValueError("offsets must start at 0, never decrease and end within the samples")
    if device == "cpu":
        from .frontend import cpu

        return cpu.features_batch(samples, offsets)
    if device == "cuda":
        require_gpu()
        from .frontend import gpu

        frame_offsets = _T.frame_offsets(offsets)
        codes = gpu.features_batch(samples, offsets, frame_offsets)
        return codes.get(), frame_offsets
    raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")


def micro_features_u16(samples: np.ndarray, device: str = "cpu") -> np.ndarray:
    """uint16 codes ``[frames, 40]`` of int16 mono 16 kHz ``samples``."""
    samples = np.ascontiguousarray(samples, dtype=np.int16)
    codes, _ = features_batch(samples, np.array([0, len(samples)]), device)
    return codes


def micro_features(samples: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Features of int16 mono 16 kHz ``samples`` as a ``[frames, 40]`` float32 array.

    Equal to what microWakeWord's ``generate_features_for_clip`` returns for them.
    """
    return dequantise(micro_features_u16(samples, device))


def quantise(features: np.ndarray) -> np.ndarray:
    """Float features to their lossless uint16 codes."""
    codes = np.rint(np.asarray(features, dtype=np.float64) * FEATURE_SCALE)
    if codes.size and (codes.min() < 0 or codes.max() > np.iinfo(np.uint16).max):
        raise ValueError("feature values outside the uint16 code range")
    return codes.astype(np.uint16)


def dequantise(codes: np.ndarray) -> np.ndarray:
    """uint16 codes back to float32 features."""
    # 1 / 25.6 = 5 / 128 is exact in binary, so this multiplication is exact.
    return np.asarray(codes, dtype=np.float32) * np.float32(1 / FEATURE_SCALE)


def reference_u16(samples: np.ndarray) -> np.ndarray:
    """uint16 codes from pymicro-features itself (slow; the truth the fast paths are tested against)."""
    return quantise(reference_features(samples))
