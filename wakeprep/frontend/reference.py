"""The reference: pymicro-features, fed the way microWakeWord feeds it.

microWakeWord's ``generate_features_for_clip`` hands the frontend 10 ms (320 bytes) at a
time and advances by what it reports it read, **while** ``index + 320 < len(bytes)``
(strictly), so a final exact 10 ms block is never fed: 16,000 samples give 97 frames.
Both APIs are accepted: 2.x ``MicroFrontend.process_samples`` and 1.x
``MicroFrontend.ProcessSamples`` (microWakeWord's own environment).
"""

from __future__ import annotations

import numpy as np

from . import tables as T

try:
    from pymicro_features import MicroFrontend
except ImportError:  # pragma: no cover - only the reference needs pymicro-features
    MicroFrontend = None

CHUNK_BYTES = T.STEP * 2


def _process(frontend):
    fn = getattr(frontend, "process_samples", None) or getattr(frontend, "ProcessSamples", None)
    if fn is None:
        raise RuntimeError(
            "pymicro-features has neither MicroFrontend.process_samples (2.x) nor ProcessSamples (1.x); "
            "install pymicro-features 1.x or 2.x"
        )
    return fn


def reference_features(samples: np.ndarray) -> np.ndarray:
    """Float32 ``[frames, 40]`` features of int16 16 kHz ``samples``, from pymicro-features."""
    if MicroFrontend is None:
        raise RuntimeError("the reference frontend needs pymicro-features: pip install 'pymicro-features>=1.0,<3'")
    audio = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    process = _process(MicroFrontend())
    frames = []
    i, n = 0, len(audio)
    while i + CHUNK_BYTES < n:
        out = process(audio[i : i + CHUNK_BYTES])
        if out.features:
            frames.append(out.features)
        if out.samples_read == 0:  # never happens with a 10 ms block; guards the loop
            break
        i += out.samples_read * 2
    if not frames:
        return np.zeros((0, T.N_CHANNELS), dtype=np.float32)
    return np.asarray(frames, dtype=np.float32)
