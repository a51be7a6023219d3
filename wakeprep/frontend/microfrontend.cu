// The TFLite micro frontend (pymicro-features' settings) as two CUDA kernels over a batch
// of clips; written for wakeprep from the algorithm's public description, loaded at run
// time by wakeprep/frontend/gpu.py (CuPy RawModule).
//
//   mf_frames:   one thread per frame: Q12 window, block scaling, 256-point complex
//                fixed-point FFT (radix 4) of the packed 512 real samples, real split,
//                energies, mel filterbank, rounded square root. Frames are independent.
//   mf_channels: one thread per (clip, channel): noise reduction, PCAN gain control and
//                log scale, sequential over the clip's frames (the noise estimate recurs).
//
// The integer types and wrap-arounds are the C library's, so the uint16 codes are equal,
// bit for bit. Built with -DMF_HOST, the same code compiles as plain C++ for the CPU
// (tests/test_features.py runs it there against pymicro-features).

#ifdef MF_HOST
#include <math.h>
#define MF_DEV static inline
#define MF_RESTRICT __restrict__
#else
#define MF_DEV __device__ __forceinline__
#define MF_RESTRICT __restrict__
#endif

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;

// Tables, built in Python (wakeprep/frontend/tables.py) and passed in one int32 array:
//   [0, 480)       window, Q12
//   [480, 992)     FFT twiddles (cos, sin) x 256, Q15
//   [992, 1248)    real-split twiddles (cos, sin) x 128, Q15
//   [1248, 1373)   PCAN gain table (125)
//   [1373, 1503)   log table (130)
//   [1503, ...)    filterbank: per bin from fb_start to fb_end: channel, weight, unweight
#define T_WIN 0
#define T_TW 480
#define T_STW 992
#define T_PCAN 1248
#define T_LOG 1373
#define T_FB 1503

MF_DEV int mf_msb32(u32 x) {
#ifdef MF_HOST
  return x ? 32 - __builtin_clz(x) : 0;
#else
  return 32 - __clz((int)x);
#endif
}

// Rounded square root of a 64-bit energy sum, as the frontend's: floor root, plus one when
// the remainder exceeds it, capped at 0xFFFF below 2^32 and 0xFFFFFFFF above.
MF_DEV u32 mf_sqrt64(u64 num) {
  if (num == 0) return 0;
  u64 r = (u64)sqrt((double)num);
  if (r > 0xFFFFFFFFull) r = 0xFFFFFFFFull;
  while (r * r > num) --r;
  while (r < 0xFFFFFFFFull && (r + 1) * (r + 1) <= num) ++r;
  const u64 rem = num - r * r;
  const u64 cap = (num >> 32) ? 0xFFFFFFFFull : 0xFFFFull;
  if (rem > r && r != cap) ++r;
  return (u32)r;
}

// Piecewise-quadratic PCAN gain of a noise estimate.
MF_DEV short mf_gain(u32 x, const int* MF_RESTRICT lut) {
  if (x <= 2) return (short)lut[x];
  const int interval = mf_msb32(x);
  const int* l = lut + 4 * interval - 6;
  const int frac = (int)(((interval < 11) ? (x << (11 - interval)) : (x >> (interval - 11))) & 0x3FF);
  int result = (l[2] * frac) >> 5;
  result += (int)((u32)l[1] << 5);
  result = (int)((u32)result * (u32)frac);
  result = (result + (1 << 14)) >> 15;
  result += l[0];
  return (short)result;
}

// Fixed-point natural log, scaled by 2^6.
MF_DEV u32 mf_log(u32 x, const int* MF_RESTRICT lut) {
  const u32 integer = (u32)mf_msb32(x) - 1;
  int frac = (int)(x - (1u << integer));
  if (integer < 16) frac <<= 16 - integer;
  else frac >>= integer - 16;
  const u32 seg = (u32)frac >> 9;
  const int c0 = lut[seg];
  const int c1 = lut[seg + 1];
  const int rel = ((c1 - c0) * (frac - (int)(512 * seg))) >> 16;
  const u32 log2 = (integer << 16) + (u32)(frac + c0 + rel);
  const u32 loge = (u32)(((u64)45426 * log2 + 32768) >> 16);
  return ((loge << 6) + 32768) >> 16;
}

MF_DEV int mf_rev4(int q) {
  return ((q & 3) << 6) | (((q >> 2) & 3) << 4) | (((q >> 4) & 3) << 2) | ((q >> 6) & 3);
}

#define FIXDIV4(v) ((short)(((int)(v) * 8191 + 16384) >> 15))
#define FIXDIV2(v) ((short)(((int)(v) * 16383 + 16384) >> 15))

// One frame: clip found by binary search over frame offsets; writes 40 uint32 filterbank
// magnitudes (after the block shift) to sig[g * 40 ...].
MF_DEV void mf_frame(i64 g, const short* MF_RESTRICT samples, const i64* MF_RESTRICT offsets,
                     const i64* MF_RESTRICT frame_offsets, int n_clips, const int* MF_RESTRICT t,
                     int fb_start, int fb_end, u32* MF_RESTRICT sig) {
  int lo = 0, hi = n_clips;
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (frame_offsets[mid] <= g) lo = mid;
    else hi = mid;
  }
  const short* s = samples + offsets[lo] + 160 * (g - frame_offsets[lo]);
  const int* win = t + T_WIN;
  int peak = 0;
  for (int j = 0; j < 480; ++j) {
    const short v = (short)(((int)s[j] * win[j]) >> 12);
    short a = v < 0 ? (short)-v : v;
    if (a > peak) peak = a;
  }
  const int shift = 15 - mf_msb32((u32)peak);
  short zr[256], zi[256];
  for (int q = 0; q < 256; ++q) {
    const int p = mf_rev4(q);
    short re = 0, im = 0;
    if (2 * q < 480) {
      re = (short)(((int)s[2 * q] * win[2 * q]) >> 12);
      im = (short)(((int)s[2 * q + 1] * win[2 * q + 1]) >> 12);
      re = (short)((unsigned short)re << shift);
      im = (short)((unsigned short)im << shift);
    }
    zr[p] = re;
    zi[p] = im;
  }
  const int* tw = t + T_TW;
  int fstride = 64;
  for (int m = 1; m < 256; m *= 4, fstride >>= 2) {
    for (int s0 = 0; s0 < 256; s0 += 4 * m) {
      for (int u = 0; u < m; ++u) {
        const int i0 = s0 + u, i1 = i0 + m, i2 = i1 + m, i3 = i2 + m;
        const int t1 = u * fstride;
        const int w1r = tw[2 * t1], w1i = tw[2 * t1 + 1];
        const int w2r = tw[4 * t1], w2i = tw[4 * t1 + 1];
        const int w3r = tw[6 * t1], w3i = tw[6 * t1 + 1];
        short a0r = FIXDIV4(zr[i0]), a0i = FIXDIV4(zi[i0]);
        const short a1r = FIXDIV4(zr[i1]), a1i = FIXDIV4(zi[i1]);
        const short a2r = FIXDIV4(zr[i2]), a2i = FIXDIV4(zi[i2]);
        const short a3r = FIXDIV4(zr[i3]), a3i = FIXDIV4(zi[i3]);
        const short b1r = (short)((a1r * w1r - a1i * w1i + 16384) >> 15);
        const short b1i = (short)((a1r * w1i + a1i * w1r + 16384) >> 15);
        const short b2r = (short)((a2r * w2r - a2i * w2i + 16384) >> 15);
        const short b2i = (short)((a2r * w2i + a2i * w2r + 16384) >> 15);
        const short b3r = (short)((a3r * w3r - a3i * w3i + 16384) >> 15);
        const short b3i = (short)((a3r * w3i + a3i * w3r + 16384) >> 15);
        const short dr = (short)(a0r - b2r), di = (short)(a0i - b2i);
        a0r = (short)(a0r + b2r);
        a0i = (short)(a0i + b2i);
        const short sr = (short)(b1r + b3r), si = (short)(b1i + b3i);
        const short er = (short)(b1r - b3r), ei = (short)(b1i - b3i);
        zr[i2] = (short)(a0r - sr);
        zi[i2] = (short)(a0i - si);
        zr[i0] = (short)(a0r + sr);
        zi[i0] = (short)(a0i + si);
        zr[i1] = (short)(dr + ei);
        zi[i1] = (short)(di - er);
        zr[i3] = (short)(dr - ei);
        zi[i3] = (short)(di + er);
      }
    }
  }
  // Real split and energies, bin by bin, straight into the filterbank accumulators:
  // bin k adds weight * energy to channel fb[k] and unweight * energy to the next one.
  const int* stw = t + T_STW;
  const int* fb = t + T_FB;
  u64 wacc = 0, uacc = 0;
  int ch = 0;
  for (int k = fb_start; k < fb_end; ++k) {
    int re, im;
    if (k == 0) {
      const short tr = FIXDIV2(zr[0]), ti = FIXDIV2(zi[0]);
      re = (short)(tr + ti);
      im = 0;
    } else {
      // bins k and 256 - k come from the same pair; take the half that gives bin k
      const int kk = k <= 128 ? k : 256 - k;
      const short pr = FIXDIV2(zr[kk]), pi = FIXDIV2(zi[kk]);
      const short nr = FIXDIV2(zr[256 - kk]), ni = FIXDIV2((short)-zi[256 - kk]);
      const short g1r = (short)(pr + nr), g1i = (short)(pi + ni);
      const short g2r = (short)(pr - nr), g2i = (short)(pi - ni);
      const int vr = stw[2 * (kk - 1)], vi = stw[2 * (kk - 1) + 1];
      const short hr = (short)((g2r * vr - g2i * vi + 16384) >> 15);
      const short hi = (short)((g2r * vi + g2i * vr + 16384) >> 15);
      if (k < 128) {
        re = (short)((g1r + hr) >> 1);
        im = (short)((g1i + hi) >> 1);
      } else {  // k = 128 is written last by the split loop, from its second formula
        re = (short)((g1r - hr) >> 1);
        im = (short)((hi - g1i) >> 1);
      }
    }
    const u32 energy = (u32)(re * re) + (u32)(im * im);
    const u64 e = (u64)(i64)(int)energy;
    const int c = fb[3 * (k - fb_start)];
    while (ch < c) {
      if (ch >= 1) sig[g * 40 + ch - 1] = mf_sqrt64(wacc) >> shift;
      wacc = uacc;
      uacc = 0;
      ++ch;
    }
    wacc += (u64)fb[3 * (k - fb_start) + 1] * e;
    uacc += (u64)fb[3 * (k - fb_start) + 2] * e;
  }
  while (ch <= 40) {
    if (ch >= 1) sig[g * 40 + ch - 1] = mf_sqrt64(wacc) >> shift;
    wacc = uacc;
    uacc = 0;
    ++ch;
  }
}

// One channel of one clip, over its frames in order.
MF_DEV void mf_channel(i64 g, const u32* MF_RESTRICT sig, const i64* MF_RESTRICT frame_offsets,
                       int n_clips, const int* MF_RESTRICT t, int even, int odd, int min_remaining,
                       unsigned short* MF_RESTRICT out) {
  const i64 clip = g / 40;
  const int i = (int)(g % 40);
  if (clip >= n_clips) return;
  const u32 smoothing = (i & 1) ? (u32)odd : (u32)even;
  u32 estimate = 0;
  for (i64 row = frame_offsets[clip]; row < frame_offsets[clip + 1]; ++row) {
    const u32 x = sig[row * 40 + i];
    // noise reduction
    const u32 up = x << 10;
    u32 e = (u32)(((u64)up * smoothing + (u64)estimate * (16384 - smoothing)) >> 14);
    estimate = e;
    if (e > up) e = up;
    const u32 floor = (u32)(((u64)x * (u32)min_remaining) >> 14);
    const u32 sub = (up - e) >> 10;
    u32 v = sub > floor ? sub : floor;
    // PCAN gain control
    const u32 gain = (u32)(int)mf_gain(estimate, t + T_PCAN);
    const u32 snr = (u32)(((u64)v * gain) >> 6);
    v = snr < 8192 ? (snr * snr) >> 20 : (snr >> 6) - 64;
    // log scale
    v <<= 3;
    v = v > 1 ? mf_log(v, t + T_LOG) : 0;
    out[row * 40 + i] = (unsigned short)(v < 0xFFFF ? v : 0xFFFF);
  }
}

#ifdef MF_HOST
extern "C" void mf_host(const short* samples, const i64* offsets, const i64* frame_offsets, int n_clips,
                        const int* t, int fb_start, int fb_end, int even, int odd, int min_remaining,
                        u32* sig, unsigned short* out) {
  const i64 n_frames = frame_offsets[n_clips];
  for (i64 g = 0; g < n_frames; ++g)
    mf_frame(g, samples, offsets, frame_offsets, n_clips, t, fb_start, fb_end, sig);
  for (i64 g = 0; g < (i64)n_clips * 40; ++g)
    mf_channel(g, sig, frame_offsets, n_clips, t, even, odd, min_remaining, out);
}
#else
extern "C" __global__ void mf_frames(const short* MF_RESTRICT samples, const i64* MF_RESTRICT offsets,
                                     const i64* MF_RESTRICT frame_offsets, int n_clips, i64 n_frames,
                                     const int* MF_RESTRICT t, int fb_start, int fb_end,
                                     u32* MF_RESTRICT sig) {
  const i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (g < n_frames) mf_frame(g, samples, offsets, frame_offsets, n_clips, t, fb_start, fb_end, sig);
}

extern "C" __global__ void mf_channels(const u32* MF_RESTRICT sig, const i64* MF_RESTRICT frame_offsets,
                                       int n_clips, const int* MF_RESTRICT t, int even, int odd,
                                       int min_remaining, unsigned short* MF_RESTRICT out) {
  const i64 g = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  mf_channel(g, sig, frame_offsets, n_clips, t, even, odd, min_remaining, out);
}
#endif
