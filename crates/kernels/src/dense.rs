//! The dense f32 baseline: what a pruned layer is compared against.

use crate::error::{expect_len, KernelError};

/// Lanes of the dot product: independent sums, so the loop vectorises and enough additions are in
/// flight to hide their latency (eight SSE or four AVX registers).
const LANES: usize = 32;

/// `y = W x` for a dense row-major `W` (`rows x cols`): the dense f32 GEMV that pruned layers
/// are measured against (a Gemm with `trans_b` at batch 1).
///
/// Each row is a dot product with 32 independent sums (four 8-lane AVX2 FMA accumulators when the
/// CPU has them). One thread: splitting a LeNet-size GEMV across rayon workers made it 3-4x
/// slower (the fork costs more than the 20 µs product; bench/kernels.md). The runtime's dense
/// baseline uses the `gemm` crate, which measured as fast or faster.
pub fn dense_gemv(rows: usize, cols: usize, w: &[f32], x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
    expect_len("w", w.len(), rows.checked_mul(cols).ok_or(KernelError::Csr("size overflows".into()))?)?;
    expect_len("x", x.len(), cols)?;
    expect_len("y", y.len(), rows)?;
    if cols == 0 {
        y.fill(0.0);
        return Ok(());
    }
    y.iter_mut().zip(w.chunks_exact(cols)).for_each(|(o, wr)| *o = dot_any(wr, x));
    Ok(())
}

/// Dot product on the best instruction set the CPU has.
#[inline(always)]
fn dot_any(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::x86::available() {
        // SAFETY: features checked just above.
        return unsafe { crate::x86::dot(a, b) };
    }
    dot(a, b)
}

#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(p, q)| p * q).sum();
    for (p, q) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += p[i] * q[i];
        }
    }
    let mut s = 0.0;
    for half in acc.chunks_exact(4) {
        s += (half[0] + half[1]) + (half[2] + half[3]);
    }
    s + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_reference(rows in 0usize..40, cols in 0usize..100, seed in any::<u64>()) {
            let w = crate::reference::tests_support::vector(rows * cols, seed);
            let x = crate::reference::tests_support::vector(cols, seed ^ 1);
            let (mut fast, mut slow) = (vec![0.0; rows], vec![0.0; rows]);
            dense_gemv(rows, cols, &w, &x, &mut fast).unwrap();
            crate::reference::dense_gemv(rows, cols, &w, &x, &mut slow);
            let scale = crate::reference::tests_support::abs_gemv(rows, cols, &w, &x);
            crate::reference::tests_support::assert_close(&fast, &slow, &scale)?;
        }
    }

    /// The portable and the AVX2 dot products against the reference, whichever the public
    /// function picks on this machine.
    #[test]
    fn every_dot_variant_matches_reference() {
        use crate::reference::tests_support::vector;
        for n in [0, 1, 15, 16, 17, 100, 784] {
            let (a, b) = (vector(n, n as u64), vector(n, 99));
            let want: f32 = a.iter().zip(&b).map(|(p, q)| p * q).sum();
            let scale: f32 = a.iter().zip(&b).map(|(p, q)| (p * q).abs()).sum();
            assert!((dot(&a, &b) - want).abs() <= 1e-5 * scale.max(f32::MIN_POSITIVE));
            #[cfg(target_arch = "x86_64")]
            if crate::x86::available() {
                // SAFETY: features checked just above.
                let d = unsafe { crate::x86::dot(&a, &b) };
                assert!((d - want).abs() <= 1e-5 * scale.max(f32::MIN_POSITIVE));
            }
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(dense_gemv(2, 3, &[0.0; 5], &[0.0; 3], &mut [0.0; 2]).is_err());
        assert!(dense_gemv(2, 3, &[0.0; 6], &[0.0; 2], &mut [0.0; 2]).is_err());
    }
}
