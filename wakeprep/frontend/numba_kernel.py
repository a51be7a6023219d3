"""The micro frontend's CPU kernel compiled with numba: the fallback of :mod:`.cpu`.

:mod:`.cpu` runs the C transliteration of this kernel (``cpu_kernel.c``, :mod:`.ckernel`)
when it is built, and this one otherwise (no C compiler at install time) or when asked
(``WAKEPREP_CPU_KERNEL=numba``). Both give the same codes; this file is the algorithm's
reference text for the C one.

Every step is the TFLite micro frontend's integer arithmetic with pymicro-features'
settings, written out from its public description: 30 ms Hann window (Q12), a 512-point
real FFT done as a 256-point complex fixed-point FFT (radix 4, Q15 twiddles, each stage
scaled down by 4 with rounding, then the real-FFT split), energies of bins 5..240,
triangular mel filterbank (Q12) into 41 accumulators, rounded square root, noise
reduction (a per-channel running estimate over frames), PCAN gain control and a
fixed-point natural log. Integer widths and wrap-arounds follow the C types (int16
butterflies wrap, the FFT energy is an int32 read back as unsigned, and so on), so the
codes are those of pymicro-features, bit for bit; ``tests/test_features.py`` holds it to
that.

The first call in a process imports numba and loads the cached machine code (about 0.26
CPU s; compiling it the first time takes seconds), the C kernel's reason to be.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

import numpy as np



@contextmanager
def _without_scipy():
    """SciPy made unimportable for a moment, unless it is already imported.

    The first call of a jitted function makes numba set up its typing registries, and one of
    them imports ``scipy.linalg.cython_blas`` to see whether ``np.dot`` and ``np.linalg`` can
    be compiled: 0.16 to 0.2 CPU s of a job's start-up (a convert job's whole frontend work on
    a shard is about 0.6 s). The frontend uses no BLAS, so that probe is answered "no" here; the
    only effect is that numba code compiled later in the same process cannot use ``np.dot`` or
    ``np.linalg`` (none in wakeprep does). SciPy itself imports normally afterwards.
    """
    if "scipy" in sys.modules:
        yield
        return
    sys.modules["scipy"] = None  # "import scipy..." now raises ImportError at once
    try:
        yield
    finally:
        if "scipy" in sys.modules and sys.modules["scipy"] is None:
            del sys.modules["scipy"]


with _without_scipy():  # numba's import checks SciPy's version, which imports SciPy (0.03 s)
    from numba import njit
    from numba.cpython.unsafe.numbers import leading_zeros


@njit(cache=True, inline="always")
def _w16(x):
    return ((x + 32768) & 0xFFFF) - 32768


@njit(cache=True, inline="always")
def _w32(x):
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


@njit(cache=True, inline="always")
def _i32(x):
    """``x`` as an int32 (numba computes in int64). Only where ``x`` fits: every int64 step
    between two casts then runs in 32-bit vector lanes, the values unchanged."""
    return np.int32(x)


@njit(cache=True, inline="always")
def _msb(x):
    """Bits needed for x >= 0 (0 for 0): one count-leading-zeros instruction (LLVM's ctlz,
    defined for 0)."""
    return 64 - leading_zeros(np.int64(x))


@njit(cache=True, inline="always")
def _ult(a, b):
    """a < b for the uint64 bit patterns held in int64 a, b."""
    return (a ^ -9223372036854775808) < (b ^ -9223372036854775808)


@njit(cache=True, inline="always")
def _sqrt_round(acc):
    """Rounded square root of the uint64 bit pattern ``acc``, as the frontend's Sqrt64."""
    if acc == 0:
        return 0
    fv = float(acc) if acc >= 0 else float(acc) + 18446744073709551616.0
    r = int(np.sqrt(fv))
    if r > 4294967295:
        r = 4294967295
    while _ult(acc, r * r):
        r -= 1
    while r < 4294967295 and not _ult(acc, (r + 1) * (r + 1)):
        r += 1
    rem = acc - r * r
    cap = 65535 if (acc >= 0 and acc < 4294967296) else 4294967295
    if rem > r and r != cap:
        r += 1
    return r


@njit(cache=True, inline="always")
def _wide_dynamic(x, lut):
    if x <= 2:
        return np.int64(lut[x])
    interval = _msb(x)
    base = 4 * interval - 6
    if interval < 11:
        frac = (x << (11 - interval)) & 0x3FF
    else:
        frac = (x >> (interval - 11)) & 0x3FF
    result = (np.int64(lut[base + 2]) * frac) >> 5
    result += np.int64(lut[base + 1]) * 32
    result = _w32(result * frac)
    result = (result + 16384) >> 15
    result += np.int64(lut[base])
    return _w16(result)


@njit(cache=True, inline="always")
def _log_scale(x, loglut):
    integer = _msb(x) - 1
    frac = x - (1 << integer)
    if integer < 16:
        frac <<= 16 - integer
    else:
        frac >>= integer - 16
    seg = frac >> 9
    c0 = np.int64(loglut[seg])
    c1 = np.int64(loglut[seg + 1])
    rel = ((c1 - c0) * (frac - 512 * seg)) >> 16
    log2 = (integer << 16) + frac + c0 + rel
    loge = (45426 * log2 + 32768) >> 16
    return (((loge << 6) & 0xFFFFFFFF) + 32768) >> 16


#: Frames of one clip transformed together, the innermost (vectorised) loop of the FFT.
BLOCK = 16


@njit(cache=True, inline="always")
def _window(samples, s0, win, x, b):
    """Frame ``b`` of the block: 480 samples from ``s0`` times the Q12 window into ``x[b]``;
    returns the block scale of its FFT input (15 minus the bits of its peak)."""
    pk = np.int32(0)
    for j in range(480):
        # |sample * window| <= 2**27: int32 lanes
        v = _i32(_i32(np.int32(samples[s0 + j]) * np.int32(win[j])) >> 12)
        x[b, j] = v
        # |v| as an int16: -32768 stays negative and never counts
        pk = max(pk, _i32(abs(v) & 0x7FFF))
    return 15 - _msb(pk)


@njit(cache=True, inline="always")
def _fft_input(x, shift, rev, zr, zi):
    """The packed real input (scaled up by the block shift, zero padded to 512) of the
    256-point complex FFT, in digit-reversed order."""
    for p in range(256):
        q = rev[p]
        for b in range(BLOCK):
            sh = shift[b]
            zr[p, b] = np.int64(x[b, 2 * q]) << sh  # the int16 store keeps the low 16 bits
            zi[p, b] = np.int64(x[b, 2 * q + 1]) << sh


@njit(cache=True, inline="always")
def _butterfly(zr, zi, i0, m, w1r, w1i, w2r, w2i, w3r, w3i):
    """One radix-4 butterfly on rows ``i0 + {0, 1, 2, 3} * m`` of every frame of the block,
    each input scaled down by 4 with rounding, int16 wrap-around on every sum."""
    i1 = i0 + m
    i2 = i1 + m
    i3 = i2 + m
    for b in range(BLOCK):
        a0r = (np.int64(zr[i0, b]) * 8191 + 16384) >> 15
        a0i = (np.int64(zi[i0, b]) * 8191 + 16384) >> 15
        a1r = (np.int64(zr[i1, b]) * 8191 + 16384) >> 15
        a1i = (np.int64(zi[i1, b]) * 8191 + 16384) >> 15
        a2r = (np.int64(zr[i2, b]) * 8191 + 16384) >> 15
        a2i = (np.int64(zi[i2, b]) * 8191 + 16384) >> 15
        a3r = (np.int64(zr[i3, b]) * 8191 + 16384) >> 15
        a3i = (np.int64(zi[i3, b]) * 8191 + 16384) >> 15
        # |a| <= 8192 and |w| <= 32767: the products stay in int16 after rounding
        b1r = (a1r * w1r - a1i * w1i + 16384) >> 15
        b1i = (a1r * w1i + a1i * w1r + 16384) >> 15
        b2r = (a2r * w2r - a2i * w2i + 16384) >> 15
        b2i = (a2r * w2i + a2i * w2r + 16384) >> 15
        b3r = (a3r * w3r - a3i * w3i + 16384) >> 15
        b3i = (a3r * w3i + a3i * w3r + 16384) >> 15
        # wrap-around is arithmetic mod 2**16: only the stores (int16, truncating) wrap
        dr = a0r - b2r
        di = a0i - b2i
        a0r += b2r
        a0i += b2i
        sr = b1r + b3r
        si = b1i + b3i
        er = b1r - b3r
        ei = b1i - b3i
        zr[i2, b] = a0r - sr
        zi[i2, b] = a0i - si
        zr[i0, b] = a0r + sr
        zi[i0, b] = a0i + si
        zr[i1, b] = dr + ei
        zi[i1, b] = di - er
        zr[i3, b] = dr - ei
        zi[i3, b] = di + er


@njit(cache=True, inline="always")
def _fft256(zr, zi, tw):
    """In place: the 4 radix-4 stages of the 256-point complex FFT (Q15 twiddles ``tw``)."""
    m = 1
    fstride = 64
    while m < 256:
        for s in range(0, 256, 4 * m):
            for u in range(m):
                t1 = u * fstride
                _butterfly(zr, zi, s + u, m,
                           np.int64(tw[t1, 0]), np.int64(tw[t1, 1]),
                           np.int64(tw[2 * t1, 0]), np.int64(tw[2 * t1, 1]),
                           np.int64(tw[3 * t1, 0]), np.int64(tw[3 * t1, 1]))
        m *= 4
        fstride //= 4


@njit(cache=True, inline="always")
def _half(z):
    """``(z * 16383 + 16384) >> 15`` of an int16 ``z``: |result| <= 16383."""
    return _i32(_i32(np.int32(z) * 16383 + 16384) >> 15)


@njit(cache=True, inline="always")
def _energy(r2, i2):
    """Energy of the bin ``(r2 >> 1) + i (i2 >> 1)``: |r2|, |i2| < 2**16, so the halves need no
    int16 wrap; the sum of squares wraps as an int32 (the cast truncates)."""
    r = _i32(r2 >> 1)
    i = _i32(i2 >> 1)
    return np.int32(r * r + i * i)


@njit(cache=True, inline="always")
def _rfft_energies(zr, zi, stw, lo, hi, el, eh):
    """Energies (int32, wrapped) of the real FFT's bins ``lo <= k < hi`` (0 < lo, hi <= 256)
    from the complex FFT of the packed input (the real-FFT split): bin ``k <= 128`` in
    ``el[k]``, bin ``k >= 128`` in ``eh[k]`` (two arrays, so that the compiler's overlap
    check of the stores passes and the loop over the block runs vectorised).

    Everything fits an int32: |p|, |n| <= 16383 (see ``_half``), so their sums need no int16
    wrap, and |g2 . v| <= |g2| |v| < 2**31 (|g2| <= sqrt(2) 32766, |v| <= 32768). The int16
    casts truncate: the int16 wrap-around of the twiddled difference."""
    for k in range(1, 129):
        if not (lo <= k < hi or lo <= 256 - k < hi):
            continue
        vr = np.int32(stw[k - 1, 0])
        vi = np.int32(stw[k - 1, 1])
        for b in range(BLOCK):
            pr = _half(zr[k, b])
            pi = _half(zi[k, b])
            nr = _half(zr[256 - k, b])
            ni = _half(np.int16(-np.int32(zi[256 - k, b])))
            g1r = _i32(pr + nr)
            g1i = _i32(pi + ni)
            g2r = _i32(pr - nr)
            g2i = _i32(pi - ni)
            hr = _i32(np.int16(_i32(g2r * vr - g2i * vi + 16384) >> 15))
            hi_ = _i32(np.int16(_i32(g2r * vi + g2i * vr + 16384) >> 15))
            el[k, b] = _energy(_i32(g1r + hr), _i32(g1i + hi_))
            eh[256 - k, b] = _energy(_i32(g1r - hr), _i32(hi_ - g1i))


@njit(cache=True, inline="always")
def _filterbank(el, eh, fb_start, fb_end, fb_ch, fb_w, fb_u, acc):
    """Bin energies (``el`` up to bin 128, ``eh`` above) into the mel filterbank accumulators
    ``acc``; an int32 energy is read back as uint64."""
    acc[:] = 0
    _bins(el, fb_start, min(fb_end, 129), fb_start, fb_ch, fb_w, fb_u, acc)
    _bins(eh, max(fb_start, 129), fb_end, fb_start, fb_ch, fb_w, fb_u, acc)


@njit(cache=True, inline="always")
def _bins(e, lo, hi, fb_start, fb_ch, fb_w, fb_u, acc):
    """Bins ``lo <= k < hi`` of ``e`` into the accumulators."""
    for k in range(lo, hi):
        ch = fb_ch[k - fb_start]
        wk = np.int64(fb_w[k - fb_start])
        uk = np.int64(fb_u[k - fb_start])
        for b in range(BLOCK):
            v = np.int64(e[k, b])
            acc[ch, b] += wk * v
            acc[ch + 1, b] += uk * v


@njit(cache=True, inline="always")
def _roots(acc, shift, root):
    """Rounded square roots of the 40 channels, scaled down by each frame's block shift: exact
    through float64 below 2**52 (one correction at most), the general routine otherwise (only
    a wrapped int32 energy gets there)."""
    small = True
    for i in range(1, 41):
        for b in range(BLOCK):
            a = acc[i, b]
            small &= (a >= 0) & (a < 4503599627370496)
    if small:
        for i in range(40):
            for b in range(BLOCK):
                a = acc[i + 1, b]
                r = np.int64(np.sqrt(np.float64(a)))
                r -= np.int64(r * r > a)
                cap = 65535 if a < 4294967296 else 4294967295
                r += np.int64((a - r * r > r) & (r != cap))
                root[i, b] = r >> shift[b]
    else:
        for i in range(40):
            for b in range(BLOCK):
                root[i, b] = _sqrt_round(acc[i + 1, b]) >> shift[b]


@njit(cache=True, inline="always")
def _channel_code(sig, i, est, even, odd, min_remaining, lut, loglut):
    """Code of channel ``i`` of one frame from its root ``sig``: noise reduction (updates the
    running estimate ``est[i]``), PCAN gain control and the log scale, capped to uint16."""
    # noise reduction
    up = (sig << 10) & 0xFFFFFFFF
    sm = even if (i & 1) == 0 else odd
    e = (up * sm + est[i] * (16384 - sm)) >> 14
    est[i] = e
    if e > up:
        e = up
    floor = (sig * min_remaining) >> 14
    sub = (up - e) >> 10
    sig = sub if sub > floor else floor
    # PCAN gain control
    gain = _wide_dynamic(est[i], lut) & 0xFFFFFFFF
    snr = ((sig * gain) >> 6) & 0xFFFFFFFF
    if snr < 8192:
        sig = (snr * snr) >> 20
    else:
        sig = (snr >> 6) - 64
    # log scale
    v = (sig << 3) & 0xFFFFFFFF
    v = _log_scale(v, loglut) if v > 1 else 0
    return v if v < 65535 else 65535


@njit(cache=True, nogil=True)
def _run(samples, offsets, frame_offsets, out, win, tw, stw, rev, fb_start, fb_end, fb_ch, fb_w, fb_u,
         lut, loglut, even, odd, min_remaining):
    B = BLOCK
    x = np.zeros((B, 512), np.int32)
    zr = np.empty((256, B), np.int16)
    zi = np.empty((256, B), np.int16)
    el = np.empty((257, B), np.int32)
    eh = np.empty((257, B), np.int32)
    acc = np.empty((42, B), np.int64)  # the last channel's unweights land in 41, unused
    shift = np.zeros(B, np.int64)
    est = np.empty(40, np.int64)
    root = np.empty((40, B), np.int64)
    for c in range(len(offsets) - 1):
        est[:] = 0
        nf = frame_offsets[c + 1] - frame_offsets[c]
        for f0 in range(0, nf, B):
            nb = min(B, nf - f0)
            for b in range(nb):
                shift[b] = _window(samples, offsets[c] + 160 * (f0 + b), win, x, b)
            _fft_input(x, shift, rev, zr, zi)
            _fft256(zr, zi, tw)
            _rfft_energies(zr, zi, stw, fb_start, fb_end, el, eh)
            _filterbank(el, eh, fb_start, fb_end, fb_ch, fb_w, fb_u, acc)
            _roots(acc, shift, root)
            for b in range(nb):
                row = frame_offsets[c] + f0 + b
                for i in range(40):
                    out[row, i] = _channel_code(root[i, b], i, est, even, odd, min_remaining, lut, loglut)


_LOADED = False


def run(samples: np.ndarray, offsets: np.ndarray, frame_offsets: np.ndarray, out: np.ndarray, tables: tuple) -> None:
    """Codes of a batch into ``out`` (``[frames, 40]`` uint16), as :func:`.cpu.features_batch`
    prepares its arguments; ``tables`` is :func:`.cpu.tables`."""
    global _LOADED
    if not samples.flags.writeable:
        # a read-only array (a store's memory map) would be a second signature for numba to
        # compile and cache; one copy of the batch costs about 1 % of its frontend time
        samples = samples.copy()
    if not _LOADED:
        with _without_scipy():  # the first call loads the cached machine code
            _run(samples, offsets, frame_offsets, out, *tables)
        _LOADED = True
    else:
        _run(samples, offsets, frame_offsets, out, *tables)
