//! AVX2 + FMA versions of the inner loops, chosen at run time when the CPU has them (never at
//! compile time: a binary built here must run on any x86-64).
//!
//! These are the portable loops recompiled with AVX2 + FMA enabled (8-wide vectors, fused
//! multiply-add). The sparse GEMV has no AVX2 version: an eight-lane `vgatherdps` GEMV (and a
//! double gather for codebook values) was measured no faster than the scalar loop for float values
//! and 1.6x slower for codebook values on the AMD EPYC this was developed on (bench/kernels.md).

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

/// The portable dense dot product, compiled for AVX2 + FMA.
///
/// # Safety
/// AVX2 and FMA are available.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::dense::dot(a, b)
}
