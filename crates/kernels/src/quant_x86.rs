//! AVX2 inner loops of the integer kernels ([`crate::quant`], [`crate::binary`]), chosen at run
//! time. Each has a portable twin that the tests compare it with.

use std::arch::x86_64::*;

/// True if the AVX2 integer paths can run (the standard library caches the CPUID answer).
#[inline]
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// True if the `popcnt` instruction is there.
#[inline]
pub(crate) fn has_popcnt() -> bool {
    is_x86_feature_detected!("popcnt")
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b01_00_11_10>(h));
    let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h));
    _mm_cvtsi128_si32(h)
}

/// The eight sums of eight vectors' lanes, in order.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum8_i32(a: &[__m256i; 8]) -> [i32; 8] {
    let u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
    let u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]), _mm256_hadd_epi32(a[6], a[7]));
    let s = _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(u0, u1),
        _mm256_permute2x128_si256::<0x31>(u0, u1),
    );
    let mut out = [0i32; 8];
    _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, s);
    out
}

/// `|w| · (sign(w) x)` summed in pairs, widened to `i32` lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul_i8(w: __m256i, x: __m256i, ones: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)), ones)
}

/// Prefetch distance of [`dot_i8_x8`] in bytes: four tile blocks ahead.
const PREFETCH_AHEAD: usize = 4 * 256;

/// The dot products of the eight rows of one tile of [`crate::quant::Int8Weights`] (block `k`
/// of row `i` at `tile[(8k + i) * 32..]`) with `x`: one activation load per block for all eight
/// rows, one sequential weight stream, prefetched a few blocks ahead. With `no_min` (no weight
/// is -128) the sign trick is turned around as in GGML: `|x|` once per block, `sign(w, x)` per
/// row — one instruction less per row and block; `-128` would overflow `sign`, so it needs the
/// flag.
///
/// # Safety
/// AVX2 is available; `tile.len() == 8 * x.len()`, `x.len()` a multiple of 32; with `no_min`,
/// no weight is -128.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot_i8_x8(tile: &[i8], x: &[i8], no_min: bool) -> [i32; 8] {
    debug_assert!(tile.len() == 8 * x.len() && x.len().is_multiple_of(32));
    let nb = x.len() / 32;
    let px = x.as_ptr() as *const __m256i;
    let pw = tile.as_ptr();
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); 8];
    for k in 0..nb {
        let xv = _mm256_loadu_si256(px.add(k));
        let blk = pw.add(256 * k);
        // Near the end of a tile this runs into the next tile (rows are contiguous), which is
        // what comes next; a prefetch is only a hint and never faults past the allocation.
        let ahead = blk.wrapping_add(PREFETCH_AHEAD);
        for line in 0..4 {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line));
        }
        let pb = blk as *const __m256i;
        if no_min {
            let ax = _mm256_abs_epi8(xv);
            for (i, a) in acc.iter_mut().enumerate() {
                let sw = _mm256_sign_epi8(_mm256_loadu_si256(pb.add(i)), xv);
                *a = _mm256_add_epi32(*a, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), ones));
            }
        } else {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_epi32(*a, mul_i8(_mm256_loadu_si256(pb.add(i)), xv, ones));
            }
        }
    }
    hsum8_i32(&acc)
}

/// Blocks of 32 bytes whose products may add up in `i16` lanes before widening: a 4-bit block
/// adds at most `2 · 2 · 15 · 127 = 7620` per lane (four blocks: 30480), a 2-bit block
/// `4 · 2 · 3 · 127 = 3048` (ten blocks: 30480); both stay below `2^15`.
fn blocks_per_flush(bits: u32) -> usize {
    if bits == 4 {
        4
    } else {
        10
    }
}

/// `Σ q x` for the eight rows of one tile of [`crate::quant::LowBitWeights`] (block `b` of row
/// `i` at `tile[(8b + i) * 32..]`, `bits` 4 or 2) against activations reordered as in
/// [`crate::quant::LowBitWeights::dot_rows`]: block `b`, sub-block `s`, lane `j` at
/// `xp[(b * per + s) * 32 + j]`. Products add up in `i16` over [`blocks_per_flush`] blocks and
/// are widened to `i32` once per such run (one `vpmaddwd` per row and run instead of per block).
///
/// # Safety
/// AVX2 is available; `tile` has `8 * 32 * nb` bytes, `xp` at least `32 * nb * 8 / bits`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dot_lowbit_x8(tile: &[u8], xp: &[i8], nb: usize, bits: u32) -> [i32; 8] {
    let per = 8 / bits as usize;
    debug_assert!(tile.len() == 256 * nb && xp.len() >= 32 * nb * per);
    let pw = tile.as_ptr();
    let px = xp.as_ptr() as *const __m256i;
    let mask = _mm256_set1_epi8(((1u16 << bits) - 1) as i8);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); 8];
    let run = blocks_per_flush(bits);
    let mut b0 = 0;
    while b0 < nb {
        let b1 = (b0 + run).min(nb);
        let mut part = [_mm256_setzero_si256(); 8];
        for b in b0..b1 {
            let blk = pw.add(256 * b);
            let ahead = blk.wrapping_add(PREFETCH_AHEAD);
            for line in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line) as *const i8);
            }
            let pb = blk as *const __m256i;
            if bits == 4 {
                let (x0, x1) = (_mm256_loadu_si256(px.add(2 * b)), _mm256_loadu_si256(px.add(2 * b + 1)));
                for (i, p) in part.iter_mut().enumerate() {
                    let w = _mm256_loadu_si256(pb.add(i));
                    let lo = _mm256_and_si256(w, mask);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(w), mask);
                    let s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_maddubs_epi16(hi, x1));
                    *p = _mm256_add_epi16(*p, s);
                }
            } else {
                let xs = [0, 1, 2, 3].map(|s| _mm256_loadu_si256(px.add(4 * b + s)));
                for (i, p) in part.iter_mut().enumerate() {
                    let w = _mm256_loadu_si256(pb.add(i));
                    let q0 = _mm256_and_si256(w, mask);
                    let q1 = _mm256_and_si256(_mm256_srli_epi16::<2>(w), mask);
                    let q2 = _mm256_and_si256(_mm256_srli_epi16::<4>(w), mask);
                    let q3 = _mm256_and_si256(_mm256_srli_epi16::<6>(w), mask);
                    let s01 =
                        _mm256_add_epi16(_mm256_maddubs_epi16(q0, xs[0]), _mm256_maddubs_epi16(q1, xs[1]));
                    let s23 =
                        _mm256_add_epi16(_mm256_maddubs_epi16(q2, xs[2]), _mm256_maddubs_epi16(q3, xs[3]));
                    *p = _mm256_add_epi16(*p, _mm256_add_epi16(s01, s23));
                }
            }
        }
        for (a, p) in acc.iter_mut().zip(part) {
            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, ones));
        }
        b0 = b1;
    }
    hsum8_i32(&acc)
}

/// `max |x|` over the finite `x` (see [`crate::quant::finite_amax`]), 8 lanes at a time.
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn finite_amax(x: &[f32]) -> f32 {
    let n = x.len();
    let px = x.as_ptr();
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let big = _mm256_set1_ps(f32::MAX);
    let mut mx = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let a = _mm256_and_ps(_mm256_loadu_ps(px.add(i)), abs_mask);
        mx = _mm256_max_ps(mx, _mm256_and_ps(a, _mm256_cmp_ps::<_CMP_LE_OQ>(a, big)));
        i += 8;
    }
    let mut m = [0.0f32; 8];
    _mm256_storeu_ps(m.as_mut_ptr(), mx);
    crate::quant::finite_amax(&x[i..]).max(crate::quant::finite_amax(&m))
}

/// Activation codes `q = clamp(round(x · inv), -127, 127)` (ties to even, NaN to 0; see
/// [`crate::quant::quantize_one`]), 32 at a time. Returns `Σq`.
///
/// # Safety
/// AVX2 is available; `q.len() == x.len()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_codes(x: &[f32], q: &mut [i8], inv: f32) -> i32 {
    let n = x.len();
    let px = x.as_ptr();
    let (vinv, lo, hi) = (_mm256_set1_ps(inv), _mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    let code = |o: usize| {
        let t = _mm256_mul_ps(_mm256_loadu_ps(px.add(o)), vinv);
        let t = _mm256_and_ps(t, _mm256_cmp_ps::<_CMP_ORD_Q>(t, t)); // NaN -> 0
        _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(t, lo), hi))
    };
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut sum = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        let (a, b, c, d) = (code(i), code(i + 8), code(i + 16), code(i + 24));
        sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_add_epi32(a, b), _mm256_add_epi32(c, d)));
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        let packed = _mm256_permutevar8x32_epi32(packed, perm);
        _mm256_storeu_si256(q.as_mut_ptr().add(i) as *mut __m256i, packed);
        i += 32;
    }
    let mut s = hsum_i32(sum);
    for j in i..n {
        q[j] = crate::quant::quantize_one(x[j], inv);
        s += q[j] as i32;
    }
    s
}

/// The portable XNOR-popcount row sum compiled with `popcnt`.
///
/// # Safety
/// `popcnt` is available.
#[target_feature(enable = "popcnt")]
pub(crate) unsafe fn xor_popcount(a: &[u64], b: &[u64]) -> u32 {
    crate::binary::xor_popcount(a, b)
}

/// `Σ x[c]` over the set bits `c` of `words` (see [`crate::binary::masked_sum`]): each byte of
/// bits is broadcast, compared with the lane bits `1, 2, ..., 128` and masks 8 floats.
///
/// # Safety
/// AVX2 is available; `x.len() <= 64 * words.len()`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn masked_sum(words: &[u64], x: &[f32]) -> f32 {
    let sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let mut acc = [_mm256_setzero_ps(); 4];
    let full = x.len() / 8;
    let px = x.as_ptr();
    for k in 0..full {
        let byte = (words[k / 8] >> (8 * (k % 8))) as i32 & 0xff;
        let m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), sel), sel);
        let v = _mm256_and_ps(_mm256_castsi256_ps(m), _mm256_loadu_ps(px.add(8 * k)));
        acc[k % 4] = _mm256_add_ps(acc[k % 4], v);
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
    let mut s: f32 = lanes.iter().sum();
    for (c, &xv) in x.iter().enumerate().skip(8 * full) {
        if words[c / 64] >> (c % 64) & 1 == 1 {
            s += xv;
        }
    }
    s
}
