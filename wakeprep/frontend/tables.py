"""Constant tables of the TFLite micro frontend with pymicro-features' settings.

pymicro-features configures the frontend as microWakeWord expects: 30 ms Hann window
every 10 ms at 16 kHz (480 samples, 160 step, FFT size 512), 40 mel channels between 125
and 7500 Hz, noise reduction (smoothing bits 10, even/odd smoothing 0.025/0.06, minimum
signal remaining 0.05), PCAN gain control (strength 0.95, offset 80, gain bits 21) and a
log scale (scale shift 6). The C library turns those settings into integer tables with
single-precision float arithmetic (``cosf``, ``log1pf``, ``powf``); this module rebuilds
the same tables with NumPy float32 steps and the C math library's own float functions (through
ctypes). ``tests/test_features.py`` checks every table
against the ones the installed C library builds.

All three implementations in :mod:`wakeprep.frontend` (reference, CPU, GPU) share these
numbers; only the reference ignores them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16000
WINDOW = 480  # 30 ms
STEP = 160  # 10 ms
FFT_SIZE = 512
N_CHANNELS = 40
LOWER_HZ, UPPER_HZ = 125.0, 7500.0

WINDOW_BITS = 12
FILTERBANK_BITS = 12
NOISE_BITS = 14
SMOOTHING_BITS = 10
PCAN_SNR_BITS = 12
PCAN_OUTPUT_BITS = 6
PCAN_GAIN_BITS = 21
PCAN_STRENGTH = 0.95
PCAN_OFFSET = 80.0
LOG_SCALE_SHIFT = 6
LOG_COEFF = 45426  # round(2**16 * ln 2)
#: log2 of the FFT size, minus 1, minus half the filterbank bits: 3.
CORRECTION_BITS = int(FFT_SIZE).bit_length() - 1 - FILTERBANK_BITS // 2
#: PCAN: SNR shift of the gain product.
SNR_SHIFT = PCAN_GAIN_BITS - CORRECTION_BITS - PCAN_SNR_BITS

f32 = np.float32


def frame_counts(lengths) -> np.ndarray:
    """Frames microWakeWord gets from clips of ``lengths`` samples: it feeds 10 ms blocks
    while ``index + 160 < n`` (strictly), and the first frame needs 3 blocks."""
    n = np.asarray(lengths, dtype=np.int64)
    return np.maximum((n - 1) // STEP - 2, 0)


def frame_offsets(sample_offsets) -> np.ndarray:
    """First frame of each clip of a batch (length clips + 1), from its sample offsets."""
    offsets = np.asarray(sample_offsets, dtype=np.int64)
    out = np.zeros(len(offsets), np.int64)
    np.cumsum(frame_counts(np.diff(offsets)), out=out[1:])
    return out


def _libm(name: str, fallback, nargs: int = 1):
    """The C library's single-precision ``name`` (``cosf``, ``log1pf``, ``powf``).

    The frontend builds its tables with these, and glibc's ``log1pf`` is not correctly
    rounded (it differs from the rounded double result in the last bit for some inputs,
    which moves two filterbank weights by one), so the same functions are called here.
    Without a loadable C math library, the double-precision result rounded to float32.
    """
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        fn = getattr(lib, name)
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float] * nargs
        return lambda *a: np.float32(fn(*(float(x) for x in a)))
    except (OSError, AttributeError):  # pragma: no cover - no C math library
        return lambda *a: np.float32(fallback(*(float(x) for x in a)))


_cosf = _libm("cosf", math.cos)
_log1pf = _libm("log1pf", math.log1p)
_powf = _libm("powf", math.pow, 2)


@lru_cache(maxsize=None)
def window_coefficients() -> np.ndarray:
    """int16 Hann window, ``floor(w * 2**12 + 0.5)`` of ``0.5 - 0.5 cos(2 pi (i + 0.5) / 480)``."""
    arg = f32(f32(math.pi) * f32(2.0)) / f32(WINDOW)
    out = np.empty(WINDOW, np.int16)
    for i in range(WINDOW):
        c = _cosf(f32(arg * f32(f32(i) + f32(0.5))))
        w = f32(0.5) - f32(f32(0.5) * c)
        out[i] = math.floor(float(f32(f32(w * f32(1 << WINDOW_BITS)) + f32(0.5))))
    return out


def _twiddle(phase: float) -> tuple[int, int]:
    return math.floor(0.5 + 32767 * math.cos(phase)), math.floor(0.5 + 32767 * math.sin(phase))


@lru_cache(maxsize=None)
def fft_twiddles() -> np.ndarray:
    """``[256, 2]`` int16 twiddles (cos, sin) of the 256-point complex FFT, Q15."""
    n = FFT_SIZE // 2
    return np.array([_twiddle(-2 * math.pi * i / n) for i in range(n)], dtype=np.int16)


@lru_cache(maxsize=None)
def fft_digit_reversal() -> np.ndarray:
    """``[256]`` int64: where each input of the radix-4 256-point FFT comes from (its index's
    base-4 digits reversed)."""
    n = FFT_SIZE // 2
    digits = round(math.log(n, 4))
    out = np.empty(n, np.int64)
    for p in range(n):
        q, x = 0, p
        for _ in range(digits):
            q = q * 4 + x % 4
            x //= 4
        out[p] = q
    return out


@lru_cache(maxsize=None)
def rfft_twiddles() -> np.ndarray:
    """``[128, 2]`` int16 twiddles that turn the packed complex FFT into a real one."""
    n = FFT_SIZE // 2
    return np.array([_twiddle(-math.pi * ((i + 1) / n + 0.5)) for i in range(n // 2)], dtype=np.int16)


def _mel(freq) -> np.float32:
    return f32(f32(1127.0) * _log1pf(f32(f32(freq) / f32(700.0))))


@lru_cache(maxsize=None)
def filterbank() -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """The mel filterbank as ``(start, end, channel, weight, unweight)``.

    FFT bins ``start <= k < end`` take part. Bin ``k`` adds ``weight * energy`` to
    accumulator ``channel`` and ``unweight * energy`` to accumulator ``channel + 1``
    (41 accumulators; channel 0 is the band below the first output channel and is
    dropped). The arrays are indexed by ``k - start``; weights are Q12 int16.
    """
    n1 = N_CHANNELS + 1
    mel_low, mel_high = _mel(LOWER_HZ), _mel(UPPER_HZ)
    spacing = f32(f32(mel_high - mel_low) / f32(n1))
    centers = [f32(mel_low + f32(spacing * f32(i + 1))) for i in range(n1)]
    spectrum = FFT_SIZE // 2 + 1
    hz_per_bin = f32(f32(f32(0.5) * f32(SAMPLE_RATE)) / f32(f32(spectrum) - f32(1)))
    start = int(f32(f32(1.5) + f32(f32(LOWER_HZ) / hz_per_bin)))
    chans, weights, unweights = [], [], []
    k = start
    for ch in range(n1):
        denom = mel_low if ch == 0 else centers[ch - 1]
        while _mel(f32(f32(k) * hz_per_bin)) <= centers[ch]:
            w = f32(f32(centers[ch] - _mel(f32(f32(k) * hz_per_bin))) / f32(centers[ch] - denom))
            chans.append(ch)
            weights.append(math.floor(float(f32(f32(w * f32(1 << FILTERBANK_BITS)) + f32(0.5)))))
            unweights.append(math.floor(float(f32(f32(f32(1.0) - w) * f32(1 << FILTERBANK_BITS)) + f32(0.5))))
            k += 1
    end = k
    if end >= spectrum:
        raise AssertionError("filterbank end above the spectrum")
    return (start, end, np.array(chans, np.int32), np.array(weights, np.int16), np.array(unweights, np.int16))


def _pcan_gain(input_bits: int, x: int) -> int:
    xf = f32(f32(x) / f32(1 << input_bits))
    p = _powf(f32(xf + f32(PCAN_OFFSET)), -f32(PCAN_STRENGTH))
    g = f32(f32(1 << PCAN_GAIN_BITS) * p)
    if g > 0x7FFF:
        return 0x7FFF
    return int(f32(g + f32(0.5)))


@lru_cache(maxsize=None)
def pcan_lut() -> np.ndarray:
    """The PCAN gain's piecewise-quadratic table (125 int16, layout as the C library's).

    Entries 0 and 1 are the gains at 0 and 1; interval ``k`` (2..32, inputs with ``k``
    significant bits) keeps ``y0, a1, a2`` at ``4 k - 6 .. 4 k - 4``; the slots between
    are unused (0 here).
    """
    bits = 32
    lut = np.zeros(4 * bits - 3, np.int16)
    input_bits = SMOOTHING_BITS - CORRECTION_BITS
    lut[0] = _pcan_gain(input_bits, 0)
    lut[1] = _pcan_gain(input_bits, 1)
    for interval in range(2, bits + 1):
        x0 = 1 << (interval - 1)
        x1 = x0 + (x0 >> 1)
        x2 = x0 + (x0 - 1) if interval == bits else 2 * x0
        y0, y1, y2 = (_pcan_gain(input_bits, x) for x in (x0, x1, x2))
        a1 = 4 * (y1 - y0) - (y2 - y0)
        a2 = (y2 - y0) - a1
        base = 4 * interval - 6
        lut[base] = y0
        lut[base + 1] = np.int16(np.int32(a1).astype(np.int16))
        lut[base + 2] = np.int16(np.int32(a2).astype(np.int16))
    return lut


@lru_cache(maxsize=None)
def log_lut() -> np.ndarray:
    """130 uint16: ``round(2**16 (log2(1 + k/128) - k/128))`` for k = 0..128, then 0."""
    k = np.arange(129)
    v = np.rint(65536 * (np.log2(1 + k / 128) - k / 128)).astype(np.uint16)
    return np.concatenate([v, [0]]).astype(np.uint16)


def noise_constants() -> tuple[int, int, int]:
    """Noise reduction (even smoothing, odd smoothing, minimum signal remaining), Q14."""
    q = f32(1 << NOISE_BITS)
    return int(f32(f32(0.025) * q)), int(f32(f32(0.06) * q)), int(f32(f32(0.05) * q))


@lru_cache(maxsize=None)
def packed() -> np.ndarray:
    """Every table in one int32 array, in the layout ``microfrontend.cu`` reads (see there)."""
    start, end, ch, w, u = filterbank()
    parts = [
        window_coefficients(), fft_twiddles().ravel(), rfft_twiddles().ravel(), pcan_lut(), log_lut(),
        np.stack([ch, w, u], axis=1).ravel(),
    ]
    out = np.concatenate([p.astype(np.int32) for p in parts])
    out.flags.writeable = False
    return out
