"""40-bin micro-frontend log-mel features, as microWakeWord computes them.

``pymicro-features`` returns float features that are exact multiples of 1/25.6, so
they are stored losslessly as uint16 (``round(f * FEATURE_SCALE)``). Readers divide
by :data:`FEATURE_SCALE` to get the floats back.
"""

from __future__ import annotations

import numpy as np
from pymicro_features import MicroFrontend

#: uint16 code = round(feature * FEATURE_SCALE); float feature = code / FEATURE_SCALE.
FEATURE_SCALE = 25.6
N_BINS = 40
#: Bytes of 16-bit audio fed per call: 10 ms at 16 kHz, the frontend's step.
CHUNK_BYTES = 160 * 2


def micro_features(samples: np.ndarray) -> np.ndarray:
    """Features of int16 mono 16 kHz ``samples`` as a ``[frames, 40]`` float32 array.

    Fed 10 ms at a time, advancing by what the frontend reports it read, the way
    microWakeWord's ``generate_features_for_clip`` does; one frame per 10 ms once
    the 30 ms window is full (1.0 s gives 98 frames).
    """
    audio = np.ascontiguousarray(samples, dtype=np.int16).tobytes()
    frontend = MicroFrontend()
    frames = []
    i, n = 0, len(audio)
    while i + CHUNK_BYTES <= n:
        out = frontend.process_samples(audio[i : i + CHUNK_BYTES])
        i += out.samples_read * 2
        if out.features:
            frames.append(out.features)
        if out.samples_read == 0:
            break
    if not frames:
        return np.zeros((0, N_BINS), dtype=np.float32)
    return np.asarray(frames, dtype=np.float32)


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


def micro_features_u16(samples: np.ndarray) -> np.ndarray:
    """:func:`micro_features`, quantised to uint16."""
    return quantise(micro_features(samples))
