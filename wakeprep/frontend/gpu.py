"""The micro frontend on an NVIDIA GPU: ``microfrontend.cu`` compiled by CuPy at run time.

Input is a batch of int16 clips back to back (NumPy or CuPy), output the uint16 codes of
every frame on the device, equal bit for bit to the CPU paths. Two kernels: frames in
parallel (window, FFT, filterbank), then one thread per clip and channel for the
recursive part (noise reduction, PCAN, log). See docs/features.md for when the GPU pays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import tables as T

SOURCE = Path(__file__).with_name("microfrontend.cu")
THREADS = 128
_module = None


def _get_module():
    global _module
    if _module is None:
        import cupy

        _module = cupy.RawModule(code=SOURCE.read_text(encoding="utf-8"), options=("-std=c++17",))
    return _module


def features_batch(samples, offsets, frame_offsets=None):
    """uint16 codes ``[frames, 40]`` (a CuPy array) of every clip of a batch.

    Parameters
    ----------
    samples : int16 NumPy or CuPy array
        The clips back to back.
    offsets : int64 array, length clips + 1
        Clip ``i`` is ``samples[offsets[i]:offsets[i + 1]]`` (host or device).
    frame_offsets : int64 NumPy array, optional
        From :func:`wakeprep.frontend.tables.frame_offsets`; computed when not given.

    The caller checks for a GPU first (:func:`wakeprep.features.require_gpu`).
    """
    import cupy

    host_offsets = cupy.asnumpy(offsets).astype(np.int64) if not isinstance(offsets, np.ndarray) else offsets.astype(np.int64)
    if frame_offsets is None:
        frame_offsets = T.frame_offsets(host_offsets)
    n_clips = len(host_offsets) - 1
    n_frames = int(frame_offsets[-1])
    out = cupy.empty((n_frames, T.N_CHANNELS), dtype=cupy.uint16)
    if n_frames == 0:
        return out
    if n_clips >= 2**31 or n_clips * T.N_CHANNELS >= 2**62:
        raise ValueError("too many clips for one GPU batch")
    x = cupy.ascontiguousarray(cupy.asarray(samples, dtype=cupy.int16))
    d_offsets = cupy.asarray(host_offsets)
    d_frames = cupy.asarray(frame_offsets)
    tables = cupy.asarray(T.packed())
    start, end = T.filterbank()[:2]
    even, odd, min_remaining = T.noise_constants()
    sig = cupy.empty((n_frames, T.N_CHANNELS), dtype=cupy.uint32)
    mod = _get_module()
    i32, i64 = np.int32, np.int64
    mod.get_function("mf_frames")(
        ((n_frames + THREADS - 1) // THREADS,), (THREADS,),
        (x, d_offsets, d_frames, i32(n_clips), i64(n_frames), tables, i32(start), i32(end), sig),
    )
    lanes = n_clips * T.N_CHANNELS
    mod.get_function("mf_channels")(
        ((lanes + THREADS - 1) // THREADS,), (THREADS,),
        (sig, d_frames, i32(n_clips), tables, i32(even), i32(odd), i32(min_remaining), out),
    )
    return out
