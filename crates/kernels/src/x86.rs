//! AVX2 + FMA versions of the inner loops, chosen at run time when the CPU has them (never at
//! compile time: a binary built here must run on any x86-64).
//!
//! These are the portable loops recompiled with AVX2 + FMA enabled (8-wide vectors, fused
//! multiply-add). The batch-1 sparse GEMV stays scalar: `vgatherdps` versions (over `u32`
//! columns with a codebook double gather, and over `RowPacked`'s `u16` columns and expanded
//! values) were measured slower than the scalar loop on the AMD EPYC (Zen 3) this was developed
//! on — 1.6x and 1.5x (bench/kernels.md).

use crate::sparse::Vals;
use crate::Csr;

/// True if the AVX2 + FMA paths can run (the standard library caches the CPUID answer).
#[inline]
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The portable sparse × dense loop, compiled for AVX2 + FMA.
///
/// # Safety
/// AVX2 and FMA are available, plus the contract of [`crate::sparse::spmm_rows`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn spmm_rows<V: Vals + ?Sized>(
    csr: &Csr,
    v: &V,
    b: &[f32],
    n: usize,
    y: &mut [f32],
    r0: usize,
) {
    crate::sparse::spmm_rows(csr, v, b, n, y, r0)
}

/// The dense dot product with four 8-lane FMA accumulators. (The portable loop recompiled for
/// AVX2 came out as shuffled 4-lane code with spills, 4x slower than the `gemm` crate.)
///
/// # Safety
/// AVX2 and FMA are available.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let o = i + 8 * k;
            *s = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(o)), _mm256_loadu_ps(pb.add(o)), *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let mut s = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)));
    while i < n {
        s += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    s
}

/// The portable batch-1 GEMV over a [`crate::RowPacked`], compiled for AVX2 (VEX encoding;
/// measured 1.3x faster than the SSE2 build). Multiply and add stay separate: `mul_add` with four
/// sums was slower (the FMA latency chain).
///
/// # Safety
/// AVX2 and FMA are available, plus the contract of [`crate::packed::gemv_portable`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn packed_gemv(
    row_ptr: &[u32],
    col: &[u16],
    val: &[f32],
    x: &[f32],
    y: &mut [f32],
    r0: usize,
) {
    crate::packed::gemv_portable(row_ptr, col, val, x, y, r0)
}

/// The portable activation-sparse scatter over a [`crate::RowPacked`], compiled for AVX2.
///
/// # Safety
/// AVX2 and FMA are available, plus the contract of [`crate::packed::scatter_portable`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn packed_scatter(
    row_ptr: &[u32],
    col: &[u16],
    val: &[f32],
    x: &[f32],
    c: f32,
    y: &mut [f32],
) {
    crate::packed::scatter_portable(row_ptr, col, val, x, c, y)
}

/// The batch-1 GEMV over a [`crate::BlockPacked`]: two blocks per 8-lane fused multiply-add (the
/// four values of consecutive blocks are contiguous; the two 4-wide slices of `x` are joined in
/// one register), two accumulators to cover the FMA latency.
///
/// # Safety
/// AVX2 and FMA are available, plus the contract of [`crate::block::gemv_portable`].
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn block_gemv(row_ptr: &[u32], col: &[u16], val: &[f32], x: &[f32], y: &mut [f32]) {
    use std::arch::x86_64::*;
    let (px, pv, pc) = (x.as_ptr(), val.as_ptr(), col.as_ptr());
    let pair = |b: usize| {
        let lo = _mm_loadu_ps(px.add(*pc.add(b) as usize));
        let hi = _mm_loadu_ps(px.add(*pc.add(b + 1) as usize));
        _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(lo), hi)
    };
    for (r, yr) in y.iter_mut().enumerate() {
        let (s, e) = (*row_ptr.get_unchecked(r) as usize, *row_ptr.get_unchecked(r + 1) as usize);
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = s;
        while b + 4 <= e {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pv.add(b * 4)), pair(b), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(pv.add(b * 4 + 8)), pair(b + 2), a1);
            b += 4;
        }
        if b + 2 <= e {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pv.add(b * 4)), pair(b), a0);
            b += 2;
        }
        let v = _mm256_add_ps(a0, a1);
        let mut h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        if b < e {
            h = _mm_fmadd_ps(_mm_loadu_ps(pv.add(b * 4)), _mm_loadu_ps(px.add(*pc.add(b) as usize)), h);
        }
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        *yr = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps::<1>(h, h)));
    }
}
