// SpecAugment of uint16 feature codes: one fused kernel per ragged batch.
//
// Loaded and compiled at run time by wakeprep/augment/gpu.py (CuPy RawKernel, NVRTC),
// which passes -DCHUNK_ROWS. The draws are those of wakeprep/augment/masks.py
// (draw_masks), integer for integer; docs/augment.md explains both.

typedef unsigned long long u64;
#define GOLDEN 0x9E3779B97F4A7C15ULL
#ifndef CHUNK_ROWS
#error "compile with -DCHUNK_ROWS=<frames per chunk> (wakeprep.augment.gpu passes it)"
#endif

__device__ __forceinline__ u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// size uniform in [0, max_size] clamped to n; start uniform in [0, n - size]
__device__ __forceinline__ void size_start(u64 h, u64 max_size, u64 n, u64 &start, u64 &size) {
    size = ((h >> 32) * (max_size + 1)) >> 32;
    if (size > n) size = n;
    start = ((h & 0xFFFFFFFFULL) * (n - size + 1)) >> 32;
}

// Blend two uint16 codes in a 32-bit word: bit 0 of sel2 replaces the low half, bit 1 the high.
__device__ __forceinline__ unsigned int blend(unsigned int w, unsigned int sel2, unsigned int fill) {
    unsigned int m = ((sel2 & 1u) ? 0x0000FFFFu : 0u) | ((sel2 & 2u) ? 0xFFFF0000u : 0u);
    return (w & ~m) | (fill & m);
}

// One block per chunk of up to 32 frames of one clip; one thread per 16-byte vector
// (8 codes). Each thread reads its vector once and writes it to every copy.
extern "C" __global__ void specaugment_u16(
    const uint4* __restrict__ src,          // batch frames, vpr vectors per frame
    uint4* __restrict__ dst,                // copies * rows frames
    const long long* __restrict__ offsets,  // n + 1 frame offsets of the batch's clips
    const int2* __restrict__ chunks,        // (clip in batch, first frame) per chunk
    const long long clip_base,              // store index of the batch's first clip
    const u64 seed,
    const int copies, const int n_time, const int time_max,
    const int n_freq, const int freq_max,
    const int vpr,                          // 16-byte vectors per frame (bins / 8)
    const unsigned int fill)                // mask code in both halves
{
    extern __shared__ u64 smem[];
    u64* fbits = smem;                                    // [copies] masked bins
    unsigned int* tbits = (unsigned int*)(smem + copies); // [copies] masked frames of this chunk

    const int2 ch = chunks[blockIdx.x];
    const long long off = offsets[ch.x];
    const long long len = offsets[ch.x + 1] - off;
    const long long r0 = ch.y;

    const u64 k1 = mix64(mix64(seed + GOLDEN) ^ (u64)(clip_base + ch.x));
    for (int c = threadIdx.x; c < copies; c += blockDim.x) {
        const u64 k2 = mix64(k1 ^ (u64)c);
        unsigned int tb = 0u;
        for (int j = 0; j < n_time; ++j) {
            u64 start, size;
            size_start(mix64(k2 + (u64)(2 * j + 1) * GOLDEN), (u64)time_max, (u64)len, start, size);
            const long long a = (long long)start > r0 ? (long long)start : r0;
            const long long e = (long long)(start + size);
            const long long b = e < r0 + CHUNK_ROWS ? e : r0 + CHUNK_ROWS;
            if (a < b) {
                const int w = (int)(b - a);
                const unsigned int run = w >= 32 ? 0xFFFFFFFFu : ((1u << w) - 1u);
                tb |= run << (int)(a - r0);
            }
        }
        u64 fb = 0ull;
        for (int j = 0; j < n_freq; ++j) {
            u64 start, size;
            size_start(mix64(k2 + (u64)(2 * j + 2) * GOLDEN), (u64)freq_max, (u64)(vpr * 8), start, size);
            const u64 run = size >= 64 ? ~0ull : ((1ull << size) - 1ull);
            fb |= run << start;
        }
        fbits[c] = fb;
        tbits[c] = tb;
    }
    __syncthreads();

    const int rl = threadIdx.x / vpr;
    const int g = threadIdx.x - rl * vpr;
    const long long row = r0 + rl;
    if (rl >= CHUNK_ROWS || row >= len) return;
    const uint4 v = src[(off + row) * vpr + g];
    const long long base = off * copies + row;   // copy c starts at copies * off + c * len
    for (int c = 0; c < copies; ++c) {
        uint4 o;
        if ((tbits[c] >> rl) & 1u) {
            o = make_uint4(fill, fill, fill, fill);
        } else {
            const unsigned int sel = (unsigned int)(fbits[c] >> (8 * g)) & 0xFFu;
            if (sel == 0u) {
                o = v;
            } else {
                o.x = blend(v.x, sel, fill);
                o.y = blend(v.y, sel >> 2, fill);
                o.z = blend(v.z, sel >> 4, fill);
                o.w = blend(v.w, sel >> 6, fill);
            }
        }
        dst[(base + (long long)c * len) * vpr + g] = o;
    }
}
