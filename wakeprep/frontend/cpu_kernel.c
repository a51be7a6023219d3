/* The micro frontend on the CPU in C: the integer algorithm of wakeprep/frontend/cpu.py's
 * numba kernel (_run and its helpers), transliterated function for function.
 *
 * Built by setup.py as the extension wakeprep.frontend._cpu_kernel (optional: without a C
 * compiler wakeprep installs and uses the numba kernel) and loaded with ctypes by
 * wakeprep/frontend/ckernel.py, so that a process pays milliseconds, not numba's import and
 * cache load (about 0.26 CPU s), before its first features. The Python module it also
 * defines has no methods; it is there so that setuptools can build and link it.
 *
 * Layout as in the numba kernel: BLOCK frames of one clip are transformed together, every
 * buffer is [row][BLOCK] with the frames innermost, so the compiler vectorises each step
 * across the frames. The tables are the ones wakeprep/frontend/tables.py builds (passed in
 * by the loader exactly as cpu.tables() returns them); no table is duplicated here.
 *
 * Integer widths: the numba code computes in int64 and wraps with _w16/_w32 or with
 * truncating int16/int32 stores; here every such place is an explicit cast to int16_t,
 * int32_t or uint32_t (conversions that gcc and clang define as modulo 2^n), left shifts
 * of values that may be negative are done on unsigned types, and right shifts of negative
 * values are arithmetic (as gcc and clang define them). The build also passes -fwrapv, so
 * that no signed overflow is undefined even where none can occur.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef WP_NO_PYTHON
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif

/* Frames of one clip transformed together (numba_kernel.BLOCK there); any size gives the
 * same codes. */
#define BLOCK 16

/* Version of wp_frontend_run's arguments: ckernel.ABI (the loader checks it). */
#define WP_ABI 1

#if defined(__GNUC__)
#define WP_INLINE static inline __attribute__((always_inline))
#define WP_RESTRICT __restrict__
#else
#define WP_INLINE static inline
#define WP_RESTRICT
#endif

/* One machine-code version per x86-64 level, the best the CPU runs chosen when the library
 * is loaded (glibc's ifunc), as numba compiles for the host CPU: baseline (SSE2), v2
 * (SSE4.2), v3 (AVX2) and v4 (AVX-512). Measured on a 2-core AMD EPYC VM (AVX-512), CPU s
 * for 304 s of audio: baseline only 0.052, v2 only 0.038, v3 0.028, v4 0.023; numba 0.043.
 * gcc 11 or later (the level names); elsewhere (clang, musl, macOS, other CPUs) one version
 * for the compiler's default target. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && \
    !defined(WP_NO_CLONES)
#define WP_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v2", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define WP_CLONES
#endif

typedef int16_t i16;
typedef int32_t i32;
typedef int64_t i64;
typedef uint32_t u32;
typedef uint64_t u64;

/* _msb: bits needed for x >= 0 (0 for 0). */
WP_INLINE int msb64(u64 x) { return x ? 64 - __builtin_clzll(x) : 0; }

/* _w16, _w32: the low 16 or 32 bits as a signed value. */
WP_INLINE i64 w16(i64 x) { return (i16)(uint16_t)(u64)x; }
WP_INLINE i64 w32(i64 x) { return (i32)(u32)(u64)x; }

/* _sqrt_round: rounded square root of a 64-bit energy sum, as the frontend's Sqrt64. */
static u64 sqrt_round(u64 acc) {
  if (acc == 0) return 0;
  u64 r = (u64)sqrt((double)acc);
  if (r > 4294967295u) r = 4294967295u;
  while (acc < r * r) --r;
  while (r < 4294967295u && !(acc < (r + 1) * (r + 1))) ++r;
  const u64 rem = acc - r * r;
  const u64 cap = acc < 4294967296u ? 65535 : 4294967295u;
  if (rem > r && r != cap) ++r;
  return r;
}

/* _wide_dynamic: the piecewise-quadratic PCAN gain of a noise estimate x (0 <= x < 2^32). */
WP_INLINE i64 wide_dynamic(i64 x, const i16* WP_RESTRICT lut) {
  if (x <= 2) return lut[x];
  const int interval = msb64((u64)x);
  const int base = 4 * interval - 6;
  const i64 frac = (interval < 11 ? (x << (11 - interval)) : (x >> (interval - 11))) & 0x3FF;
  i64 result = ((i64)lut[base + 2] * frac) >> 5;
  result += (i64)lut[base + 1] * 32;
  result = w32(result * frac);
  result = (result + 16384) >> 15;
  result += lut[base];
  return w16(result);
}

/* _log_scale: fixed-point natural log (x > 1), scaled by 2^6. */
WP_INLINE i64 log_scale(i64 x, const uint16_t* WP_RESTRICT loglut) {
  const i64 integer = msb64((u64)x) - 1;
  i64 frac = x - ((i64)1 << integer);
  if (integer < 16)
    frac <<= 16 - integer;
  else
    frac >>= integer - 16;
  const i64 seg = frac >> 9;
  const i64 c0 = loglut[seg];
  const i64 c1 = loglut[seg + 1];
  const i64 rel = ((c1 - c0) * (frac - 512 * seg)) >> 16;
  const i64 log2 = (integer << 16) + frac + c0 + rel;
  const i64 loge = (45426 * log2 + 32768) >> 16;
  return (((loge << 6) & 0xFFFFFFFF) + 32768) >> 16;
}

/* _window: frame b of the block, 480 samples from s times the Q12 window into x[b]; returns
 * the block scale of its FFT input (15 minus the bits of its peak). */
WP_INLINE i64 window(const i16* WP_RESTRICT s, const i16* WP_RESTRICT win, i32* WP_RESTRICT xb) {
  i32 pk = 0;
  for (int j = 0; j < 480; ++j) {
    /* |sample * window| <= 2^27: int32 lanes */
    const i32 v = ((i32)s[j] * (i32)win[j]) >> 12;
    xb[j] = v;
    /* |v| as an int16: -32768 stays negative and never counts */
    const i32 a = (v < 0 ? -v : v) & 0x7FFF;
    pk = a > pk ? a : pk;
  }
  return 15 - msb64((u64)pk);
}

/* _fft_input: the packed real input (scaled up by the block shift, zero padded to 512) of
 * the 256-point complex FFT, in digit-reversed order. */
WP_INLINE void fft_input(i32 (*WP_RESTRICT x)[512], const i64* WP_RESTRICT shift, const i64* WP_RESTRICT rev,
                         i16 (*WP_RESTRICT zr)[BLOCK], i16 (*WP_RESTRICT zi)[BLOCK]) {
  for (int p = 0; p < 256; ++p) {
    const i64 q = rev[p];
    for (int b = 0; b < BLOCK; ++b) {
      const int sh = (int)shift[b];
      /* the int16 store keeps the low 16 bits */
      zr[p][b] = (i16)((u32)x[b][2 * q] << sh);
      zi[p][b] = (i16)((u32)x[b][2 * q + 1] << sh);
    }
  }
}

/* _butterfly: one radix-4 butterfly on rows r0..r3 (i0 + {0, 1, 2, 3} m) of every frame of the
 * block, each input scaled down by 4 with rounding, int16 wrap-around on every sum (the
 * sums are exact in int32; only the int16 stores wrap, arithmetic being mod 2^16). */
WP_INLINE void butterfly(i16* WP_RESTRICT r0r, i16* WP_RESTRICT r0i, i16* WP_RESTRICT r1r, i16* WP_RESTRICT r1i,
                         i16* WP_RESTRICT r2r, i16* WP_RESTRICT r2i, i16* WP_RESTRICT r3r, i16* WP_RESTRICT r3i,
                         i32 w1r, i32 w1i, i32 w2r, i32 w2i, i32 w3r, i32 w3i) {
  for (int b = 0; b < BLOCK; ++b) {
    i32 a0r = ((i32)r0r[b] * 8191 + 16384) >> 15;
    i32 a0i = ((i32)r0i[b] * 8191 + 16384) >> 15;
    const i32 a1r = ((i32)r1r[b] * 8191 + 16384) >> 15;
    const i32 a1i = ((i32)r1i[b] * 8191 + 16384) >> 15;
    const i32 a2r = ((i32)r2r[b] * 8191 + 16384) >> 15;
    const i32 a2i = ((i32)r2i[b] * 8191 + 16384) >> 15;
    const i32 a3r = ((i32)r3r[b] * 8191 + 16384) >> 15;
    const i32 a3i = ((i32)r3i[b] * 8191 + 16384) >> 15;
    /* |a| <= 8192 and |w| <= 32767: the products stay in int16 after rounding */
    const i32 b1r = (a1r * w1r - a1i * w1i + 16384) >> 15;
    const i32 b1i = (a1r * w1i + a1i * w1r + 16384) >> 15;
    const i32 b2r = (a2r * w2r - a2i * w2i + 16384) >> 15;
    const i32 b2i = (a2r * w2i + a2i * w2r + 16384) >> 15;
    const i32 b3r = (a3r * w3r - a3i * w3i + 16384) >> 15;
    const i32 b3i = (a3r * w3i + a3i * w3r + 16384) >> 15;
    const i32 dr = a0r - b2r;
    const i32 di = a0i - b2i;
    a0r += b2r;
    a0i += b2i;
    const i32 sr = b1r + b3r;
    const i32 si = b1i + b3i;
    const i32 er = b1r - b3r;
    const i32 ei = b1i - b3i;
    r2r[b] = (i16)(a0r - sr);
    r2i[b] = (i16)(a0i - si);
    r0r[b] = (i16)(a0r + sr);
    r0i[b] = (i16)(a0i + si);
    r1r[b] = (i16)(dr + ei);
    r1i[b] = (i16)(di - er);
    r3r[b] = (i16)(dr - ei);
    r3i[b] = (i16)(di + er);
  }
}

/* _fft256: in place, the 4 radix-4 stages of the 256-point complex FFT (Q15 twiddles tw,
 * [256][2] as cos, sin). */
WP_INLINE void fft256(i16 (*WP_RESTRICT zr)[BLOCK], i16 (*WP_RESTRICT zi)[BLOCK], const i16* WP_RESTRICT tw) {
  int fstride = 64;
  for (int m = 1; m < 256; m *= 4, fstride /= 4) {
    for (int s = 0; s < 256; s += 4 * m) {
      for (int u = 0; u < m; ++u) {
        const int t1 = u * fstride;
        const int i0 = s + u, i1 = i0 + m, i2 = i1 + m, i3 = i2 + m;
        butterfly(zr[i0], zi[i0], zr[i1], zi[i1], zr[i2], zi[i2], zr[i3], zi[i3],
                  tw[2 * t1], tw[2 * t1 + 1], tw[4 * t1], tw[4 * t1 + 1], tw[6 * t1], tw[6 * t1 + 1]);
      }
    }
  }
}

/* _half: (z * 16383 + 16384) >> 15 of an int16 z: |result| <= 16383. */
WP_INLINE i32 half(i32 z) { return (z * 16383 + 16384) >> 15; }

/* _energy: energy of the bin (r2 >> 1) + i (i2 >> 1); the sum of squares wraps as an int32. */
WP_INLINE i32 energy(i32 r2, i32 i2) {
  const i32 r = r2 >> 1;
  const i32 i = i2 >> 1;
  return (i32)((u32)(r * r) + (u32)(i * i));
}

/* _rfft_energies: energies (int32, wrapped) of the real FFT's bins lo <= k < hi (0 < lo,
 * hi <= 256) from the complex FFT of the packed input (the real-FFT split): bin k <= 128 in
 * el[k], bin k >= 128 in eh[k]. The int16 casts truncate: the int16 wrap-around of the
 * twiddled difference. */
WP_INLINE void rfft_energies(i16 (*WP_RESTRICT zr)[BLOCK], i16 (*WP_RESTRICT zi)[BLOCK], const i16* WP_RESTRICT stw,
                             i64 lo, i64 hi, i32 (*WP_RESTRICT el)[BLOCK], i32 (*WP_RESTRICT eh)[BLOCK]) {
  for (int k = 1; k < 129; ++k) {
    if (!((lo <= k && k < hi) || (lo <= 256 - k && 256 - k < hi))) continue;
    const i32 vr = stw[2 * (k - 1)];
    const i32 vi = stw[2 * (k - 1) + 1];
    for (int b = 0; b < BLOCK; ++b) {
      const i32 pr = half(zr[k][b]);
      const i32 pi = half(zi[k][b]);
      const i32 nr = half(zr[256 - k][b]);
      const i32 ni = half((i16)(-(i32)zi[256 - k][b]));
      const i32 g1r = pr + nr;
      const i32 g1i = pi + ni;
      const i32 g2r = pr - nr;
      const i32 g2i = pi - ni;
      const i32 hr = (i16)((g2r * vr - g2i * vi + 16384) >> 15);
      const i32 hi_ = (i16)((g2r * vi + g2i * vr + 16384) >> 15);
      el[k][b] = energy(g1r + hr, g1i + hi_);
      eh[256 - k][b] = energy(g1r - hr, hi_ - g1i);
    }
  }
}

/* _bins: bins lo <= k < hi of e into the accumulators; an int32 energy is read back as a
 * (sign-extended) 64-bit value. */
WP_INLINE void bins(i32 (*WP_RESTRICT e)[BLOCK], i64 lo, i64 hi, i64 fb_start, const i32* WP_RESTRICT fb_ch,
                    const i16* WP_RESTRICT fb_w, const i16* WP_RESTRICT fb_u, i64 (*WP_RESTRICT acc)[BLOCK]) {
  for (i64 k = lo; k < hi; ++k) {
    const i32 ch = fb_ch[k - fb_start];
    const i64 wk = fb_w[k - fb_start];
    const i64 uk = fb_u[k - fb_start];
    i64* WP_RESTRICT a0 = acc[ch];
    i64* WP_RESTRICT a1 = acc[ch + 1];
    for (int b = 0; b < BLOCK; ++b) {
      const i64 v = e[k][b];
      a0[b] += wk * v;
      a1[b] += uk * v;
    }
  }
}

/* _filterbank: bin energies (el up to bin 128, eh above) into the mel filterbank
 * accumulators acc (42 rows; the last channel's unweights land in 41, unused). */
WP_INLINE void filterbank(i32 (*WP_RESTRICT el)[BLOCK], i32 (*WP_RESTRICT eh)[BLOCK], i64 fb_start, i64 fb_end,
                          const i32* WP_RESTRICT fb_ch, const i16* WP_RESTRICT fb_w, const i16* WP_RESTRICT fb_u,
                          i64 (*WP_RESTRICT acc)[BLOCK]) {
  memset(acc, 0, sizeof(i64) * 42 * BLOCK);
  bins(el, fb_start, fb_end < 129 ? fb_end : 129, fb_start, fb_ch, fb_w, fb_u, acc);
  bins(eh, fb_start > 129 ? fb_start : 129, fb_end, fb_start, fb_ch, fb_w, fb_u, acc);
}

/* _roots: rounded square roots of the 40 channels, scaled down by each frame's block shift:
 * exact through float64 below 2^52 (one correction at most), the general routine otherwise
 * (only a wrapped int32 energy gets there). */
WP_INLINE void roots(i64 (*WP_RESTRICT acc)[BLOCK], const i64* WP_RESTRICT shift, i64 (*WP_RESTRICT root)[BLOCK]) {
  int small = 1;
  for (int i = 1; i < 41; ++i)
    for (int b = 0; b < BLOCK; ++b) {
      const i64 a = acc[i][b];
      small &= (a >= 0) & (a < 4503599627370496LL);
    }
  if (small) {
    for (int i = 0; i < 40; ++i)
      for (int b = 0; b < BLOCK; ++b) {
        const i64 a = acc[i + 1][b];
        i64 r = (i64)sqrt((double)a);
        r -= (i64)(r * r > a);
        const i64 cap = a < 4294967296LL ? 65535 : 4294967295LL;
        r += (i64)((a - r * r > r) & (r != cap));
        root[i][b] = r >> shift[b];
      }
  } else {
    for (int i = 0; i < 40; ++i)
      for (int b = 0; b < BLOCK; ++b) root[i][b] = (i64)(sqrt_round((u64)acc[i + 1][b]) >> shift[b]);
  }
}

/* _channel_code: code of channel i of one frame from its root sig: noise reduction (updates
 * the running estimate est[i]), PCAN gain control and the log scale, capped to uint16. */
WP_INLINE uint16_t channel_code(i64 sig, int i, i64* WP_RESTRICT est, i64 even, i64 odd, i64 min_remaining,
                                const i16* WP_RESTRICT lut, const uint16_t* WP_RESTRICT loglut) {
  /* noise reduction */
  const i64 up = (sig << 10) & 0xFFFFFFFF;
  const i64 sm = (i & 1) == 0 ? even : odd;
  i64 e = (up * sm + est[i] * (16384 - sm)) >> 14;
  est[i] = e;
  if (e > up) e = up;
  const i64 floor_ = (sig * min_remaining) >> 14;
  const i64 sub = (up - e) >> 10;
  sig = sub > floor_ ? sub : floor_;
  /* PCAN gain control */
  const i64 gain = wide_dynamic(est[i], lut) & 0xFFFFFFFF;
  const i64 snr = ((sig * gain) >> 6) & 0xFFFFFFFF;
  if (snr < 8192)
    sig = (snr * snr) >> 20;
  else
    sig = (snr >> 6) - 64;
  /* log scale */
  i64 v = (sig << 3) & 0xFFFFFFFF;
  v = v > 1 ? log_scale(v, loglut) : 0;
  return (uint16_t)(v < 65535 ? v : 65535);
}

/* Work space of one call, [row][BLOCK] as in the numba kernel. */
struct work {
  i32 x[BLOCK][512];
  i16 zr[256][BLOCK];
  i16 zi[256][BLOCK];
  i32 el[257][BLOCK];
  i32 eh[257][BLOCK];
  i64 acc[42][BLOCK];
  i64 root[40][BLOCK];
  i64 shift[BLOCK];
  i64 est[40];
};

int wp_frontend_abi(void) { return WP_ABI; }

/* _run: the uint16 codes out[frames][40] of n_clips clips back to back in samples; clip c is
 * samples[offsets[c]:offsets[c + 1]] and its frames are out[frame_offsets[c]:frame_offsets[c + 1]].
 * The tables are cpu.tables(), in order: win int16[480], tw int16[256][2], stw int16[128][2], rev
 * int64[256], fb_ch int32 / fb_w int16 / fb_u int16 [fb_end - fb_start], lut int16[125],
 * loglut uint16[130]. Returns 0, or -1 when the work space cannot be allocated. */
WP_CLONES int wp_frontend_run(const i16* WP_RESTRICT samples, const i64* WP_RESTRICT offsets,
                              const i64* WP_RESTRICT frame_offsets, i64 n_clips, uint16_t* WP_RESTRICT out,
                              const i16* WP_RESTRICT win, const i16* WP_RESTRICT tw, const i16* WP_RESTRICT stw,
                              const i64* WP_RESTRICT rev, i64 fb_start, i64 fb_end, const i32* WP_RESTRICT fb_ch,
                              const i16* WP_RESTRICT fb_w, const i16* WP_RESTRICT fb_u, const i16* WP_RESTRICT lut,
                              const uint16_t* WP_RESTRICT loglut, i64 even, i64 odd, i64 min_remaining) {
  struct work* w = (struct work*)calloc(1, sizeof(struct work));
  if (!w) return -1;
  for (i64 c = 0; c < n_clips; ++c) {
    memset(w->est, 0, sizeof w->est);
    const i64 nf = frame_offsets[c + 1] - frame_offsets[c];
    for (i64 f0 = 0; f0 < nf; f0 += BLOCK) {
      const i64 nb = nf - f0 < BLOCK ? nf - f0 : BLOCK;
      for (i64 b = 0; b < nb; ++b) w->shift[b] = window(samples + offsets[c] + 160 * (f0 + b), win, w->x[b]);
      fft_input(w->x, w->shift, rev, w->zr, w->zi);
      fft256(w->zr, w->zi, tw);
      rfft_energies(w->zr, w->zi, stw, fb_start, fb_end, w->el, w->eh);
      filterbank(w->el, w->eh, fb_start, fb_end, fb_ch, fb_w, fb_u, w->acc);
      roots(w->acc, w->shift, w->root);
      for (i64 b = 0; b < nb; ++b) {
        uint16_t* WP_RESTRICT row = out + 40 * (frame_offsets[c] + f0 + b);
        for (int i = 0; i < 40; ++i)
          row[i] = channel_code(w->root[i][b], i, w->est, even, odd, min_remaining, lut, loglut);
      }
    }
  }
  free(w);
  return 0;
}

#ifndef WP_NO_PYTHON
/* A module without methods: setuptools builds and links it as an extension; wakeprep loads
 * the same file with ctypes and calls the functions above. */
static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cpu_kernel",
    "The micro frontend's CPU kernel in C; loaded with ctypes by wakeprep.frontend.ckernel.", -1, NULL,
};

PyMODINIT_FUNC PyInit__cpu_kernel(void) { return PyModule_Create(&module); }
#endif
