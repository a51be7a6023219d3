"""microWakeWord's augmentation chain on a dense ``[B, N]`` float32 batch, for NumPy or CuPy.

One implementation serves both paths: every function takes a :class:`Backend` (NumPy
with ``scipy.fft`` on the CPU, CuPy with cuFFT on the GPU) and works on whole batches,
a transform touching only the rows whose coin said apply. The random parameters come
from :func:`wakeprep.waveaug.draws.draw_params` on the host, so both paths use the
same numbers; their audio differs only by floating-point rounding (FFT libraries,
fused operations), measured in ``docs/augment_audio.md``.

How each transform matches audiomentations (the library microWakeWord's
``Augmentation`` calls), in chain order:

* ``SevenBandParametricEQ``, ``BandStopFilter``: the same biquads (audiomentations'
  shelf and peaking formulas; ``scipy.signal.butter`` for the band-stop) with the same
  initial state (``sosfilt_zi * x[0]``): ``scipy.signal.sosfilt`` on the CPU; on the GPU
  in the frequency domain (a recursive filter is a sequential loop): the first N
  outputs of an IIR filter depend only on the first N samples of its impulse response,
  so a product with its frequency response on an FFT of at least 2N points gives
  ``sosfilt``'s output up to the impulse response's energy beyond N samples (nil for
  these stable low-order filters) and rounding.
* ``TanhDistortion``: exact (percentile with linear interpolation, RMS matched).
* ``PitchShift``: audiomentations calls the signalsmith-stretch C++ library clip by
  clip; here the algorithm of ``librosa.effects.pitch_shift`` (phase-vocoder stretch,
  then resampling; audiomentations' other method; each output frame keeps its analysis
  frame's phases, advanced by the bins' measured frequencies, so partials stay coherent), batched with a ratio per row
  (1024-point frames, hop 256, cubic resampling). Same parameter and intent, a
  different algorithm: the pitch moves by exactly the drawn semitones.
* ``AddColorNoise``: Gaussian noise from the counter-based generator, shaped to the drawn
  slope (dB/octave) above 125 Hz (audiomentations' 128-point FIR resolution; flat
  below), unit RMS, added at ``clean_rms / 10**(snr/20)``.
* ``AddBackgroundNoise``: a noise clip from the split's noise set, from the drawn offset,
  repeated when shorter than the window, scaled by its RMS (before repetition) to
  ``clean_rms / 10**(snr/20)``; a silent noise clip (RMS < 1e-9) adds nothing.
* ``Gain``, ``GainTransition``: exact (the fade is linear in dB between two gains).
* ``RIR`` (``ApplyImpulseResponse``): full convolution, scaled so that its peak is 0.5,
  then cut to the window, as audiomentations does.
* ``Normalize(apply_to="only_too_loud_sounds")``: divide by the peak when it is >= 1.

On the GPU the filters' frequency responses come from one fused CUDA kernel each
(:func:`_cuda_response`), the band-stops are designed by :func:`bandstop_zpk` (scipy's
``butter`` steps, vectorised), and the rows of FFT transforms are padded to a multiple of
:data:`ROW_BUCKET` so cuFFT plans are reused; nothing waits for the device inside the
chain (:func:`run_chain` keeps the measured values there).

Audio comes in as int16 / 32768 and leaves as ``clip(x * 32768, -32768, 32767)``
truncated to int16, as microWakeWord's ``generate_features_for_clip`` converts it.
"""

from __future__ import annotations

import numpy as np

from .draws import COLOR_SAMPLES, ChainParams, transform_key
from .settings import COLOR_N_FFT, SAMPLE_RATE

_G = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
PITCH_N_FFT = 1024
PITCH_HOP = 256


class Backend:
    """Array module and FFT module of one device: ``Backend("cpu")`` or ``Backend("cuda")``."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        if device == "cpu":
            import scipy.fft

            self.xp, self.fft = np, scipy.fft
            self.name = "cpu (numpy, scipy.fft)"
        elif device == "cuda":
            import cupy
            import cupyx.scipy.fft

            self.xp, self.fft = cupy, cupyx.scipy.fft
            self.name = "cuda (cupy, cufft)"
        else:
            raise ValueError(f"augment_audio.device must be 'cuda' or 'cpu', got {device!r}")

    def asarray(self, a, dtype=None):
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a) -> np.ndarray:
        return a if isinstance(a, np.ndarray) else a.get()

    def next_fast_len(self, n: int) -> int:
        import scipy.fft

        return int(scipy.fft.next_fast_len(int(n), real=True))


# --------------------------------------------------------------------------- helpers


def mix64(xp, z):
    """SplitMix64's finaliser for NumPy or CuPy uint64 arrays (wrapping)."""
    u = xp.uint64
    z = (z ^ (z >> u(30))) * u(_M1)
    z = (z ^ (z >> u(27))) * u(_M2)
    return z ^ (z >> u(31))


def gaussian_noise(be: Backend, keys: np.ndarray, n: int):
    """``[len(keys), n]`` float32 standard normals from the counter-based generator:
    sample ``i`` of row ``r`` is Box-Muller on ``h = mix64(keys[r] + (i + 1) * G)``
    (high 32 bits -> radius, low 32 bits -> angle)."""
    xp = be.xp
    k = be.asarray(keys, xp.uint64)[:, None]
    i = xp.arange(1, n + 1, dtype=xp.uint64)[None, :]
    with np.errstate(over="ignore"):
        h = mix64(xp, k + i * xp.uint64(_G))
    u1 = ((h >> xp.uint64(32)).astype(xp.float64) + 0.5) * 2.0**-32
    u2 = (h & xp.uint64(0xFFFFFFFF)).astype(xp.float64) * 2.0**-32
    return (xp.sqrt(-2.0 * xp.log(u1)) * xp.cos(2.0 * np.pi * u2)).astype(xp.float32)


def rms(be: Backend, x):
    """Root mean square of each row (float64 accumulation)."""
    xp = be.xp
    return xp.sqrt(xp.mean(xp.square(x, dtype=xp.float32), axis=1, dtype=xp.float64))


def shelf_peak_sos(kind: str, f0, gain_db, q) -> np.ndarray:
    """audiomentations' biquads (``low_shelf``, ``peaking``, ``high_shelf``) for arrays of
    parameters: ``[..., 6]`` float64 sos rows (b0, b1, b2, 1, a1, a2)."""
    f0 = np.minimum(np.asarray(f0, dtype=np.float64), (SAMPLE_RATE // 2) * 0.9999)
    w = 2 * np.pi * f0 / SAMPLE_RATE
    A = 10 ** (np.asarray(gain_db, dtype=np.float64) / 40)
    alpha = np.sin(w) / 2 / np.asarray(q, dtype=np.float64)
    c, sA = np.cos(w), np.sqrt(A)
    if kind == "peaking":
        b = (1 + alpha * A, -2 * c, 1 - alpha * A)
        a = (1 + alpha / A, -2 * c, 1 - alpha / A)
    elif kind == "low_shelf":
        b = (A * ((A + 1) - (A - 1) * c + 2 * sA * alpha), 2 * A * ((A - 1) - (A + 1) * c),
             A * ((A + 1) - (A - 1) * c - 2 * sA * alpha))
        a = ((A + 1) + (A - 1) * c + 2 * sA * alpha, -2 * ((A - 1) + (A + 1) * c),
             (A + 1) + (A - 1) * c - 2 * sA * alpha)
    elif kind == "high_shelf":
        b = (A * ((A + 1) + (A - 1) * c + 2 * sA * alpha), -2 * A * ((A - 1) + (A + 1) * c),
             A * ((A + 1) + (A - 1) * c - 2 * sA * alpha))
        a = ((A + 1) - (A - 1) * c + 2 * sA * alpha, 2 * ((A - 1) - (A + 1) * c),
             (A + 1) - (A - 1) * c - 2 * sA * alpha)
    else:
        raise ValueError(kind)
    return np.stack([b[0] / a[0], b[1] / a[0], b[2] / a[0], np.ones_like(w), a[1] / a[0], a[2] / a[0]], axis=-1)


def eq_sos(center_hz, gain_db, q) -> np.ndarray:
    """``[R, 7, 6]``: low shelf, five peaking filters, high shelf (SevenBandParametricEQ)."""
    kinds = ["low_shelf"] + ["peaking"] * 5 + ["high_shelf"]
    return np.stack([shelf_peak_sos(k, center_hz[:, j], gain_db[:, j], q[:, j]) for j, k in enumerate(kinds)], axis=1)


def bandstop_sos(order, center_hz, bandwidth_hz, sections: int = 4) -> np.ndarray:
    """``[R, sections, 6]``: ``scipy.signal.butter`` band-stops as BandStopFilter designs
    them (upper edge capped at 0.9999 of Nyquist), padded with identity sections."""
    from scipy.signal import butter

    R = len(order)
    out = np.zeros((R, sections, 6))
    out[:, :, 0] = out[:, :, 3] = 1.0
    for r in range(R):  # a few rows per batch (the transform's probability): design on the host
        lo = center_hz[r] - bandwidth_hz[r] / 2
        hi = min(center_hz[r] + bandwidth_hz[r] / 2, (SAMPLE_RATE // 2) * 0.9999)
        sos = butter(int(order[r]), [lo, hi], btype="bandstop", fs=SAMPLE_RATE, output="sos")
        out[r, : len(sos)] = sos
    return out


def bandstop_zpk(order, center_hz, bandwidth_hz, width: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digital zeros, poles and gain of :func:`bandstop_sos`'s filters, vectorised:
    ``scipy.signal.butter``'s own steps (``buttap``, pre-warping, ``lp2bs_zpk``,
    ``bilinear_zpk``) on arrays, without its per-filter pairing into sections (the FFT
    path only needs the product). ``[R, width]`` complex zeros and poles, padded with 0
    (a factor of 1), and ``[R]`` gains."""
    order = np.asarray(order, dtype=np.int64)
    R = order.size
    z, p, k = np.zeros((R, width), complex), np.zeros((R, width), complex), np.ones(R)
    lo = np.asarray(center_hz, dtype=np.float64) - np.asarray(bandwidth_hz, dtype=np.float64) / 2
    hi = np.minimum(np.asarray(center_hz, dtype=np.float64) + np.asarray(bandwidth_hz, dtype=np.float64) / 2,
                    (SAMPLE_RATE // 2) * 0.9999)
    for n in np.unique(order).tolist():
        r = np.flatnonzero(order == n)
        fs = 2.0
        w0, w1 = (2 * fs * np.tan(np.pi * (2 * e[r] / SAMPLE_RATE) / fs) for e in (lo, hi))
        wo, bw = np.sqrt(w0 * w1)[:, None], (w1 - w0)[:, None]
        pa = -np.exp(1j * np.pi * np.arange(-n + 1, n, 2) / (2 * n))[None, :]  # buttap
        php = (bw / 2) / pa
        root = np.sqrt(php**2 - wo**2)
        pbs = np.concatenate([php + root, php - root], axis=1)
        zbs = np.concatenate([np.repeat(1j * wo, n, axis=1), np.repeat(-1j * wo, n, axis=1)], axis=1)
        kbs = np.real(1.0 / np.prod(-pa, axis=1))  # lp2bs_zpk's gain: the prototype's poles
        fs2 = 2.0 * fs
        z[r, : 2 * n] = (fs2 + zbs) / (fs2 - zbs)
        p[r, : 2 * n] = (fs2 + pbs) / (fs2 - pbs)
        k[r] = kbs * np.real(np.prod(fs2 - zbs, axis=1) / np.prod(fs2 - pbs, axis=1))
    return z, p, k


def sos_filter_fft(be: Backend, x, sos: np.ndarray):
    """:func:`sos_filter` by FFT on any backend (the GPU path's algorithm)."""
    return sos_filter(be, x, sos, fft_on_cpu=True)


def _unit_circle(be: Backend, n: int):
    """FFT length for filtering ``n`` samples and ``z**-1`` on its rfft grid."""
    xp = be.xp
    M = be.next_fast_len(2 * n)
    return M, xp.exp(-1j * 2 * np.pi * xp.arange(M // 2 + 1, dtype=xp.float64) / M)[None, :]


def _filter_by_response(be: Backend, x, M: int, H, dc: np.ndarray):
    """Zero-state response (by FFT, ``M`` points) to ``x - x[:, :1]`` plus ``x[:, :1] * dc``."""
    xp, fft = be.xp, be.fft
    N = x.shape[1]
    x0 = x[:, :1]
    y = fft.irfft(fft.rfft(x - x0, n=M, axis=1) * H.astype(xp.complex64), n=M, axis=1)[:, :N]
    return (y + x0 * be.asarray(dc, xp.float32)[:, None]).astype(xp.float32)


def zpk_filter_fft(be: Backend, x, z: np.ndarray, p: np.ndarray, k: np.ndarray):
    """Each row through the filter ``k[r] * prod(1 - z[r] / s) / prod(1 - p[r] / s)`` (``s``
    the unit delay's inverse), with the initial state of a constant input, by FFT."""
    xp = be.xp
    dc = np.real(k * np.prod(1 - z, axis=1) / np.prod(1 - p, axis=1))
    dz, dp, dk = be.asarray(z, xp.complex128), be.asarray(p, xp.complex128), be.asarray(k, xp.float64)
    if be.device == "cuda":
        M = be.next_fast_len(2 * x.shape[1])
        H = _cuda_response("zpk", M, len(k), dz, dp, dk, np.int32(z.shape[1]))
        return _filter_by_response(be, x, M, H, dc)
    M, w = _unit_circle(be, x.shape[1])
    H = xp.broadcast_to(dk[:, None], (len(k), w.shape[1])).astype(xp.complex128)
    for i in range(z.shape[1]):
        H *= (1 - dz[:, i : i + 1] * w) / (1 - dp[:, i : i + 1] * w)
    return _filter_by_response(be, x, M, H, dc)


_RESPONSE_CODE = {
    # H[r, f] = prod_j (b0 + b1 z + b2 z^2) / (1 + a1 z + a2 z^2), z = exp(-2 pi i f / M)
    "sos": ("raw float64 sos, int32 S", """
        complex<double> h(1.0, 0.0);
        for (int j = 0; j < S; ++j) {
            const double* q = &sos[(r * S + j) * 6];
            h *= (q[0] + q[1] * z + q[2] * (z * z)) / (1.0 + q[4] * z + q[5] * (z * z));
        }"""),
    # H[r, f] = k prod_j (1 - zero_j z) / (1 - pole_j z)
    "zpk": ("raw complex128 zr, raw complex128 pl, raw float64 k, int32 S", """
        complex<double> h(k[r], 0.0);
        for (int j = 0; j < S; ++j) h *= (1.0 - zr[r * S + j] * z) / (1.0 - pl[r * S + j] * z);"""),
}
_RESPONSE_KERNELS: dict = {}


def _cuda_response(kind: str, M: int, R: int, *args):
    """``[R, M // 2 + 1]`` complex64 frequency responses in one fused CUDA kernel (the GPU's
    form of the loops above: one pass instead of a dozen array operations per section)."""
    import cupy

    if kind not in _RESPONSE_KERNELS:
        params, body = _RESPONSE_CODE[kind]
        _RESPONSE_KERNELS[kind] = cupy.ElementwiseKernel(
            params + ", int64 F, int64 M", "complex64 H",
            """
            const long long r = i / F, f = i % F;
            double sn, cs;
            sincos(-2.0 * 3.141592653589793 * (double)f / (double)M, &sn, &cs);
            const complex<double> z(cs, sn);""" + body + """
            H = complex<float>(h);""",
            f"wakeprep_{kind}_response")
    F = M // 2 + 1
    H = cupy.empty((R, F), dtype=cupy.complex64)
    _RESPONSE_KERNELS[kind](*args, np.int64(F), np.int64(M), H)
    return H


def sos_filter(be: Backend, x, sos: np.ndarray, fft_on_cpu: bool = False):
    """``sosfilt(sos[r], x[r], zi=sosfilt_zi(sos[r]) * x[r, 0])`` for every row.

    On the CPU that call itself, row by row; on the GPU by FFT: with the initial state
    of a constant input ``x0``, the output is the zero-state response to ``x - x0`` plus
    ``x0`` times the DC gain (see the module docstring for why the FFT is exact up to
    rounding). :func:`sos_filter_fft` is the FFT form on any backend.
    """
    xp = be.xp
    R, N = x.shape
    if xp is np and not fft_on_cpu:  # on the CPU scipy's sosfilt is exact and about 5x faster than the FFT
        from scipy.signal import sosfilt, sosfilt_zi

        return np.stack([sosfilt(sos[r], x[r], zi=sosfilt_zi(sos[r]) * x[r, 0])[0] for r in range(R)]).astype(np.float32) \
            if R else x
    dc = np.prod(sos[:, :, :3].sum(axis=2) / (1 + sos[:, :, 4] + sos[:, :, 5]), axis=1)
    s = be.asarray(np.ascontiguousarray(sos, dtype=np.float64), xp.float64)
    if be.device == "cuda":
        M = be.next_fast_len(2 * N)
        return _filter_by_response(be, x, M, _cuda_response("sos", M, R, s, np.int32(sos.shape[1])), dc)
    M, z1 = _unit_circle(be, N)
    z2 = z1 * z1
    H = xp.ones((R, z1.shape[1]), dtype=xp.complex128)
    for j in range(sos.shape[1]):
        b0, b1, b2, _, a1, a2 = (s[:, j, i][:, None] for i in range(6))
        H *= (b0 + b1 * z1 + b2 * z2) / (1 + a1 * z1 + a2 * z2)
    return _filter_by_response(be, x, M, H, dc)


def tanh_distortion(be: Backend, x, amount: np.ndarray):
    """audiomentations' TanhDistortion, row by row in one go."""
    xp = be.xp
    R, N = x.shape
    q = (100.0 - 99.0 * np.asarray(amount, dtype=np.float64)) / 100.0 * (N - 1)  # np.percentile, linear
    lo = np.floor(q).astype(np.int64)
    hi = np.minimum(lo + 1, N - 1)
    frac = be.asarray(q - lo, xp.float64)
    srt = xp.sort(xp.abs(x), axis=1)
    rows = xp.arange(R)
    thr = srt[rows, be.asarray(lo)] * (1 - frac) + srt[rows, be.asarray(hi)] * frac
    gain = (0.5 / (thr + 1e-6)).astype(xp.float32)
    y = xp.tanh(gain[:, None] * x)
    before, after = rms(be, x), rms(be, y)
    post = xp.where(before > 1e-9, before / xp.maximum(after, 1e-30), 1.0).astype(xp.float32)
    return (y * post[:, None]).astype(xp.float32)


def _cubic_gather(xp, y, u):
    """``y[r]`` read at fractional positions ``u[r, n]`` (Catmull-Rom cubic, zero outside)."""
    R, L = y.shape
    yp = xp.zeros((R, L + 4), dtype=xp.float32)  # two zeros each side: every tap is in range
    yp[:, 2 : L + 2] = y
    base = xp.clip(xp.floor(u), -2, L)
    f = xp.clip(u - base, 0, 1).astype(xp.float32)
    base = base.astype(xp.int64) + 1  # index of tap -1 in yp
    rows = (xp.arange(R, dtype=xp.int64) * (L + 4))[:, None]
    flat = yp.reshape(-1)
    i = base + rows
    f2 = f * f
    f3 = f2 * f
    out = flat[i] * (-0.5 * f3 + f2 - 0.5 * f)
    out += flat[i + 1] * (1.5 * f3 - 2.5 * f2 + 1)
    out += flat[i + 2] * (-1.5 * f3 + 2 * f2 + 0.5 * f)
    out += flat[i + 3] * (0.5 * f3 - 0.5 * f2)
    return out


def _polar(xp, m, ph):
    """``m * exp(1j * ph)`` as complex64, without a complex exp (several times slower on the CPU)."""
    if xp is np:
        out = np.empty(m.shape, dtype=np.complex64)
        out.real = m * np.cos(ph)
        out.imag = m * np.sin(ph)
        return out
    out = (m * xp.cos(ph)).astype(xp.complex64)
    out += xp.complex64(1j) * (m * xp.sin(ph)).astype(xp.float32)
    return out


def pitch_shift(be: Backend, x, semitones: np.ndarray, n_fft: int = PITCH_N_FFT, hop: int = PITCH_HOP):
    """Shift every row's pitch by its ``semitones``, keeping its length.

    As ``librosa.effects.pitch_shift``, batched with a ratio per row: a phase vocoder
    stretches the row by ``1 / rate`` (``rate = 2**(-semitones/12)``; magnitudes
    interpolated between analysis frames; each output frame takes the phases of its
    analysis frame advanced by each bin's measured frequency times the time between
    them, which keeps the bins of one partial coherent), and the stretched signal is
    read back at ``1 / rate`` times the speed (cubic interpolation), frame centres
    aligned. float32 throughout; the bin-centre part of each phase advance is applied
    exactly (a multiple of a quarter turn, as hop = n_fft / 4).
    """
    xp, fft = be.xp, be.fft
    if n_fft != 4 * hop:
        raise ValueError("pitch_shift needs hop = n_fft / 4")
    R, N = x.shape
    rate_h = 2.0 ** (-np.asarray(semitones, dtype=np.float64) / 12.0)
    rate = be.asarray(rate_h, xp.float64)
    pad = n_fft - hop
    T = -(-(N + pad) // hop)
    padded = xp.zeros((R, (T - 1) * hop + n_fft), dtype=xp.float32)
    padded[:, pad : pad + N] = x
    n = xp.arange(n_fft)
    win = (0.5 - 0.5 * xp.cos(2 * np.pi * n / n_fft)).astype(xp.float32)
    idx = xp.arange(T)[:, None] * hop + n[None, :]
    S = fft.rfft(padded[:, idx] * win, axis=-1)  # [R, T, F] complex64
    F = n_fft // 2 + 1
    mag = xp.abs(S)
    phase = xp.angle(S)
    k = xp.arange(F)
    omega = (k * (2 * np.pi * hop / n_fft)).astype(xp.float32)
    d = phase[:, 1:] - phase[:, :-1] - omega
    dev = d - xp.float32(2 * np.pi) * xp.rint(d / xp.float32(2 * np.pi))  # measured minus bin-centre advance
    T_out = int(np.ceil((T - 1) / rate_h.min())) + 1 if R else 1
    pos = xp.arange(T_out, dtype=xp.float64)[None, :] * rate[:, None]  # analysis frame of each output frame
    valid = pos <= T - 1
    f0 = xp.clip(xp.floor(pos), 0, T - 2).astype(xp.int64)
    alpha = xp.clip(pos - f0, 0.0, 1.0).astype(xp.float32)[:, :, None]
    shape = (R, T_out, F)
    g0 = xp.broadcast_to(f0[:, :, None], shape)
    a0 = xp.take_along_axis(mag, g0, axis=1)
    a1 = xp.take_along_axis(mag, g0 + 1, axis=1)
    m = (a0 * (1 - alpha) + a1 * alpha) * valid[:, :, None]
    # Phase from the nearer analysis frame (a choice that depends on the positions only, so
    # float rounding cannot flip it), unless that frame is 60 dB weaker in this bin than the
    # other: an onset after silence must not take a silent frame's meaningless phase.
    later = ((pos - f0) >= 0.5)[:, :, None]
    near, far = xp.where(later, a1, a0), xp.where(later, a0, a1)
    src = g0 + (later ^ (near * 1000 < far))
    lag = xp.arange(T_out)[None, :, None] - src  # output frames since that analysis frame (may be < 0)
    quarter = ((k[None, None, :] * lag) % 4).astype(xp.float32) * xp.float32(np.pi / 2)
    step = xp.take_along_axis(dev, xp.minimum(src, T - 2), axis=1)  # its own frequency estimate
    ph = xp.take_along_axis(phase, src, axis=1) + step * lag.astype(xp.float32) + quarter
    Y = _polar(xp, m, ph)
    frames = fft.irfft(Y, n=n_fft, axis=-1).astype(xp.float32) * win
    q = n_fft // hop
    blocks = xp.zeros((R, T_out + q - 1, hop), dtype=xp.float32)
    wblocks = xp.zeros((T_out + q - 1, hop), dtype=xp.float32)
    f4 = frames.reshape(R, T_out, q, hop)
    w4 = (win * win).reshape(q, hop)
    for j in range(q):
        blocks[:, j : j + T_out] += f4[:, :, j]
        wblocks[j : j + T_out] += w4[j]
    stretched = blocks.reshape(R, -1) / xp.maximum(wblocks.reshape(-1), 1e-3)
    c = n_fft / 2
    u = (xp.arange(N, dtype=xp.float64)[None, :] + pad - c) / rate[:, None] + c  # output sample n <- stretched u
    return _cubic_gather(xp, stretched, u)


def color_noise(be: Backend, keys: np.ndarray, f_decay: np.ndarray, n: int):
    """Unit-RMS noise whose power falls ``f_decay`` dB per octave (above 125 Hz)."""
    xp, fft = be.xp, be.fft
    white = gaussian_noise(be, keys, n)
    F = n // 2 + 1
    f = xp.arange(F, dtype=xp.float64) * SAMPLE_RATE / n
    f1 = SAMPLE_RATE / COLOR_N_FFT
    beta = be.asarray(np.asarray(f_decay, dtype=np.float64) / -10.0 / np.log10(2.0), xp.float64)  # decay_to_beta
    shape = (xp.maximum(f, f1)[None, :] / f1) ** (-beta[:, None] / 2)
    y = fft.irfft(fft.rfft(white, axis=1) * shape.astype(xp.float32), n=n, axis=1).astype(xp.float32)
    return y / rms(be, y).astype(xp.float32)[:, None]


def gain_transition(be: Backend, x, fade, t0, start_db, end_db):
    xp = be.xp
    R, N = x.shape
    t = xp.arange(N, dtype=xp.float64)[None, :]
    f, s = be.asarray(fade, xp.float64)[:, None], be.asarray(t0, xp.float64)[:, None]
    a, b = be.asarray(start_db, xp.float64)[:, None], be.asarray(end_db, xp.float64)[:, None]
    db = a + (b - a) * xp.clip((t - s) / (f - 1), 0.0, 1.0)
    return (x * (10.0 ** (db / 20.0)).astype(xp.float32)).astype(xp.float32)


def convolve_rir(be: Backend, x, rirs):
    """audiomentations' ApplyImpulseResponse: full convolution scaled to a 0.5 peak, cut to N."""
    xp, fft = be.xp, be.fft
    R, N = x.shape
    L = rirs.shape[1]
    M = be.next_fast_len(N + L - 1)
    y = fft.irfft(fft.rfft(x, n=M, axis=1) * fft.rfft(rirs, n=M, axis=1), n=M, axis=1)[:, : N + L - 1]
    peak = xp.max(xp.abs(y), axis=1)
    scale = xp.where(peak > 0, 0.5 / xp.where(peak > 0, peak, 1), 1).astype(xp.float32)
    return (y[:, :N] * scale[:, None]).astype(xp.float32)


# --------------------------------------------------------------------------- the chain


#: Transforms that run FFTs: on the GPU their rows are padded (with copies of the last
#: one, dropped afterwards) to a multiple of ROW_BUCKET, so batches reuse a few cuFFT
#: plans instead of planning for every row count (about 8 ms a batch measured on an H100).
FFT_TRANSFORMS = frozenset({"SevenBandParametricEQ", "PitchShift", "BandStopFilter", "AddColorNoise", "RIR"})
ROW_BUCKET = 64
#: What :func:`apply_chain` measures per row, in the order of its ``[4, B]`` device array.
MEASURED = ("signal_rms", "noise_rms", "color_rms", "normalised_by")


def _bandstop(be: Backend, v, p: ChainParams, r):
    if be.xp is np:  # the CPU path: scipy's design and sosfilt
        return sos_filter(be, v, bandstop_sos(p.bandstop_order[r], p.bandstop_center_hz[r], p.bandstop_bandwidth_hz[r]))
    return zpk_filter_fft(be, v, *bandstop_zpk(p.bandstop_order[r], p.bandstop_center_hz[r], p.bandstop_bandwidth_hz[r]))


def _add_color(be: Backend, v, p: ChainParams, r, d, measured):
    xp = be.xp
    want = rms(be, v) / be.asarray(10.0 ** (p.color_snr_db[r] / 20.0))
    noise_c = color_noise(be, transform_key(p.keys[r], COLOR_SAMPLES), p.color_f_decay[r], v.shape[1])
    measured[2, d] = want
    return (v + noise_c * want.astype(xp.float32)[:, None]).astype(xp.float32)


def _add_background(be: Backend, v, p: ChainParams, r, d, measured, noise, noise_rms):
    xp = be.xp
    clean = rms(be, v)
    nr = be.asarray(noise_rms, xp.float64)
    ok = nr >= 1e-9
    gain = xp.where(ok, clean / be.asarray(10.0 ** (p.background_snr_db[r] / 20.0)) / xp.where(ok, nr, 1.0), 0.0)
    measured[0, d] = clean
    measured[1, d] = gain * nr
    return (v + noise * gain.astype(xp.float32)[:, None]).astype(xp.float32)


def _steps(be: Backend, p: ChainParams, measured, noise, noise_rms, rirs):
    """``(transform, fn(v, host rows, device rows))`` in chain order."""
    xp = be.xp
    return (
        ("SevenBandParametricEQ", lambda v, r, d: sos_filter(be, v, eq_sos(p.eq_center_hz[r], p.eq_gain_db[r], p.eq_q[r]))),
        ("TanhDistortion", lambda v, r, d: tanh_distortion(be, v, p.tanh_distortion[r])),
        ("PitchShift", lambda v, r, d: pitch_shift(be, v, p.pitch_semitones[r])),
        ("BandStopFilter", lambda v, r, d: _bandstop(be, v, p, r)),
        ("AddColorNoise", lambda v, r, d: _add_color(be, v, p, r, d, measured)),
        ("AddBackgroundNoise", lambda v, r, d: _add_background(be, v, p, r, d, measured, noise, noise_rms)),
        ("Gain", lambda v, r, d: (v * be.asarray((10.0 ** (p.gain_db[r] / 20.0)).astype(np.float32))[:, None]).astype(xp.float32)),
        ("GainTransition", lambda v, r, d: gain_transition(
            be, v, p.transition_samples[r], p.transition_t0[r], p.transition_start_db[r], p.transition_end_db[r])),
        ("RIR", lambda v, r, d: convolve_rir(be, v, rirs if len(rirs) == len(v) else rirs[be.asarray(np.minimum(
            np.arange(len(v)), len(rirs) - 1))])),
    )


def run_chain(be: Backend, x, p: ChainParams, noise=None, noise_rms=None, rirs=None):
    """:func:`apply_chain` without copying anything back: returns ``x`` and the measured
    values as one ``[4, B]`` float64 array on the device (rows :data:`MEASURED`), so a
    GPU caller queues the whole chain without waiting for the device."""
    xp = be.xp
    B = x.shape[0]
    measured = xp.zeros((len(MEASURED), B), dtype=xp.float64)
    for name, fn in _steps(be, p, measured, noise, noise_rms, rirs):
        rows = np.flatnonzero(p.apply[name])
        n = rows.size
        if n == B:  # every row (Gain at p = 1): no gather, no scatter
            x = fn(x, rows, slice(None))
        elif n:
            if xp is not np and name in FFT_TRANSFORMS:  # a few row counts, so cuFFT plans are reused
                rows = np.concatenate([rows, np.full(-n % ROW_BUCKET, rows[-1])])
            d = be.asarray(rows)
            x[d[:n]] = fn(x[d], rows, d)[:n]
    peak = xp.max(xp.abs(x), axis=1)
    div = xp.where(peak >= 1.0, peak, 1.0).astype(xp.float32)
    x /= div[:, None]
    measured[3] = div
    return x, measured


def apply_chain(be: Backend, x, p: ChainParams, noise=None, noise_rms=None, rirs=None) -> tuple[object, dict]:
    """Run microWakeWord's chain on ``x`` (``[B, N]`` float32 on the backend's device).

    Parameters
    ----------
    be : Backend
    x : array ``[B, N]`` float32
        Audio in [-1, 1); modified in place and returned.
    p : ChainParams
        The rows' parameters (:func:`draw_params`).
    noise : array ``[rows with AddBackgroundNoise, N]`` float32, optional
        Each such row's noise segment (from its offset, repeated to N), in row order.
    noise_rms : float64 array, optional
        RMS of each segment before repetition (as audiomentations measures it).
    rirs : array ``[rows with RIR, L]`` float32, optional
        Each such row's impulse response, zero-padded to the longest.

    Returns
    -------
    x, measured
        ``measured`` (host arrays of length B): ``signal_rms`` (the clean RMS the
        background noise was scaled against), ``noise_rms`` (RMS of the background
        noise added), ``color_rms`` (of the coloured noise added), ``normalised_by``.
    """
    x, m = run_chain(be, x, p, noise, noise_rms, rirs)
    m = be.to_host(m)
    return x, {k: np.asarray(m[i], dtype=np.float64) for i, k in enumerate(MEASURED)}


def to_float(be: Backend, audio_i16):
    """int16 windows to float32 in [-1, 1) on the backend's device."""
    return be.asarray(audio_i16).astype(be.xp.float32) * be.xp.float32(1 / 32768)


def to_int16(be: Backend, x):
    """microWakeWord's conversion: ``clip(x * 32768, -32768, 32767).astype(int16)``."""
    xp = be.xp
    return xp.clip(x * xp.float32(32768), -32768, 32767).astype(xp.int16)
