//! The sparse inner loops. Callers ([`crate::SparseWeights`]) have checked the CSR invariants
//! and the buffer lengths, which is what makes the unchecked indexing here sound.

use rayon::prelude::*;

use crate::{Csr, PAR_MIN_WORK};

/// Where the value of non-zero `j` comes from: a float array or a codebook look-up.
pub(crate) trait Vals: Sync {
    /// Value of non-zero `j`.
    ///
    /// # Safety
    /// `j` is below the number of non-zeros the source was checked against (and, for a
    /// codebook, every code was checked to be inside the codebook).
    unsafe fn at(&self, j: usize) -> f32;
}

impl Vals for [f32] {
    #[inline(always)]
    unsafe fn at(&self, j: usize) -> f32 {
        *self.get_unchecked(j)
    }
}

/// A codebook index type.
pub(crate) trait Code: Copy + Sync {
    fn idx(self) -> usize;
}

impl Code for u8 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

impl Code for u16 {
    #[inline(always)]
    fn idx(self) -> usize {
        self as usize
    }
}

/// Codebook values: `w_j = centroids[codes[j]]`.
pub(crate) struct Lut<'a, C> {
    pub centroids: &'a [f32],
    pub codes: &'a [C],
}

impl<C: Code> Vals for Lut<'_, C> {
    #[inline(always)]
    unsafe fn at(&self, j: usize) -> f32 {
        *self.centroids.get_unchecked(self.codes.get_unchecked(j).idx())
    }
}

/// Rows per parallel task: about four tasks per worker, for load balance.
fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(4 * rayon::current_num_threads()).max(1)
}

fn parallel(work: usize) -> bool {
    work >= PAR_MIN_WORK && rayon::current_num_threads() > 1
}

/// `y[r] = Σ_j v_j x[col_j]` over the non-zeros of row `r`. Requires `x.len() == cols` and
/// `y.len() == rows`.
pub(crate) fn gemv<V: Vals + ?Sized>(csr: &Csr, v: &V, x: &[f32], y: &mut [f32]) {
    debug_assert!(x.len() == csr.cols() && y.len() == csr.rows());
    if parallel(csr.nnz()) {
        let chunk = rows_per_task(csr.rows());
        y.par_chunks_mut(chunk).enumerate().for_each(|(t, ys)| {
            // SAFETY: the chunk's rows are inside the matrix; see `gemv_rows`.
            unsafe { gemv_rows(csr, v, x, ys, t * chunk) }
        });
    } else {
        // SAFETY: see `gemv_rows`.
        unsafe { gemv_rows(csr, v, x, y, 0) }
    }
}

/// [`spmm_rows`] on the best instruction set the CPU has.
///
/// # Safety
/// As [`spmm_rows`].
#[inline(always)]
unsafe fn spmm_any<V: Vals + ?Sized>(csr: &Csr, v: &V, b: &[f32], n: usize, y: &mut [f32], r0: usize) {
    #[cfg(target_arch = "x86_64")]
    if crate::x86::available() {
        // SAFETY: features checked just above.
        return crate::x86::spmm_rows(csr, v, b, n, y, r0);
    }
    spmm_rows(csr, v, b, n, y, r0)
}

/// Rows `r0..r0 + y.len()` of the GEMV.
///
/// # Safety
/// `csr` satisfies its invariants, `v` was checked against `csr.nnz()`, `x.len() == csr.cols()`
/// and `r0 + y.len() <= csr.rows()`.
#[inline(always)]
unsafe fn gemv_rows<V: Vals + ?Sized>(csr: &Csr, v: &V, x: &[f32], y: &mut [f32], r0: usize) {
    let (rp, ci) = (csr.row_ptr(), csr.col_idx());
    for (i, yr) in y.iter_mut().enumerate() {
        let r = r0 + i;
        let (s, e) = (*rp.get_unchecked(r) as usize, *rp.get_unchecked(r + 1) as usize);
        let xv = |j: usize| *x.get_unchecked(*ci.get_unchecked(j) as usize);
        // Four independent sums so consecutive gathers do not wait on one another.
        let mut a = [0.0f32; 4];
        let mut j = s;
        while j + 4 <= e {
            a[0] += v.at(j) * xv(j);
            a[1] += v.at(j + 1) * xv(j + 1);
            a[2] += v.at(j + 2) * xv(j + 2);
            a[3] += v.at(j + 3) * xv(j + 3);
            j += 4;
        }
        while j < e {
            a[0] += v.at(j) * xv(j);
            j += 1;
        }
        *yr = (a[0] + a[1]) + (a[2] + a[3]);
    }
}

/// `y = W x` from the column-major copy of `W` (`wt` = `Wᵀ` in CSR, `cols x rows`), skipping
/// the columns whose `x` is zero: each non-zero `x[c]` scatters `x[c] * W[:, c]` into `y`. This
/// is EIE's (Han et al. 2016) use of activation sparsity — MNIST pixels are ~80% zero and ReLU
/// outputs about half. Requires `x.len() == wt.rows()` and `y.len() == wt.cols()`.
///
/// With `shift` non-zero it computes `W (x − shift)`, skipping the columns where `x == shift`.
pub(crate) fn gemv_cols<V: Vals + ?Sized>(wt: &Csr, v: &V, x: &[f32], shift: f32, y: &mut [f32]) {
    debug_assert!(x.len() == wt.rows() && y.len() == wt.cols());
    y.fill(0.0);
    let (cp, ri) = (wt.row_ptr(), wt.col_idx());
    for (c, &xv) in x.iter().enumerate() {
        let xc = xv - shift;
        if xc == 0.0 {
            continue;
        }
        // SAFETY: `wt` satisfies the CSR invariants, so `c + 1 < cp.len()`, every `j` is below
        // its non-zero count (which `v` was checked against) and every row index is below
        // `wt.cols() == y.len()`.
        unsafe {
            let (s, e) = (*cp.get_unchecked(c) as usize, *cp.get_unchecked(c + 1) as usize);
            for j in s..e {
                *y.get_unchecked_mut(*ri.get_unchecked(j) as usize) += v.at(j) * xc;
            }
        }
    }
}

/// `Y = W × B` with `B` `[cols, n]` and `Y` `[rows, n]`, both row-major. Requires
/// `b.len() == cols * n` and `y.len() == rows * n`.
pub(crate) fn spmm<V: Vals + ?Sized>(csr: &Csr, v: &V, b: &[f32], n: usize, y: &mut [f32]) {
    debug_assert!(b.len() == csr.cols() * n && y.len() == csr.rows() * n);
    if n == 0 {
        return;
    }
    if parallel(csr.nnz().saturating_mul(n)) {
        let chunk = rows_per_task(csr.rows());
        y.par_chunks_mut(chunk * n).enumerate().for_each(|(t, ys)| {
            // SAFETY: the chunk's rows are inside the matrix; see `spmm_rows`.
            unsafe { spmm_any(csr, v, b, n, ys, t * chunk) }
        });
    } else {
        // SAFETY: see `spmm_rows`.
        unsafe { spmm_any(csr, v, b, n, y, 0) }
    }
}

/// Rows `r0..r0 + y.len() / n` of the sparse × dense product.
///
/// # Safety
/// `csr` satisfies its invariants, `v` was checked against `csr.nnz()`, `n > 0`,
/// `b.len() == csr.cols() * n` and `r0 + y.len() / n <= csr.rows()`.
#[inline(always)]
pub(crate) unsafe fn spmm_rows<V: Vals + ?Sized>(
    csr: &Csr,
    v: &V,
    b: &[f32],
    n: usize,
    y: &mut [f32],
    r0: usize,
) {
    let (rp, ci) = (csr.row_ptr(), csr.col_idx());
    let brow = |j: usize| {
        let c = *ci.get_unchecked(j) as usize;
        b.get_unchecked(c * n..c * n + n)
    };
    for (i, yr) in y.chunks_exact_mut(n).enumerate() {
        let r = r0 + i;
        let (s, e) = (*rp.get_unchecked(r) as usize, *rp.get_unchecked(r + 1) as usize);
        yr.fill(0.0);
        // Two non-zeros per pass over the output row: half the loads and stores of `Y`.
        let mut j = s;
        while j + 2 <= e {
            let (w0, w1) = (v.at(j), v.at(j + 1));
            let (b0, b1) = (brow(j), brow(j + 1));
            for ((o, p), q) in yr.iter_mut().zip(b0).zip(b1) {
                *o += w0 * p + w1 * q;
            }
            j += 2;
        }
        if j < e {
            let w0 = v.at(j);
            for (o, p) in yr.iter_mut().zip(brow(j)) {
                *o += w0 * p;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each instruction-set variant against the reference directly (the public API only reaches
    //! the best one the test machine has).
    use super::*;
    use crate::reference::{self, tests_support::*};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_variant_matches_reference(
            rows in 1usize..30, cols in 1usize..80, density in 0.0f32..1.0, n in 1usize..20, seed in any::<u64>(),
        ) {
            let u = vector(rows * cols, seed);
            let (mut rp, mut ci) = (vec![0u32], Vec::new());
            for r in 0..rows {
                ci.extend((0..cols).filter(|c| (u[r * cols + c] + 1.0) / 2.0 < density).map(|c| c as u32));
                rp.push(ci.len() as u32);
            }
            let csr = Csr::new(rows, cols, rp.clone(), ci.clone()).unwrap();
            let vals = vector(ci.len(), seed ^ 1);
            let centroids = vector(300, seed ^ 2);
            let c8: Vec<u8> = ci.iter().map(|&c| (c % 251) as u8).collect();
            let c16: Vec<u16> = ci.iter().map(|&c| (c * 7 % 300) as u16).collect();
            let x = vector(cols * n, seed ^ 3);
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let sources: [(&dyn Fn(usize) -> f32, u8); 3] = [
                (&|j| vals[j], 0),
                (&|j| centroids[c8[j] as usize], 1),
                (&|j| centroids[c16[j] as usize], 2),
            ];
            for (value, which) in sources {
                let (mut want, mut scale) = (vec![0.0; rows], vec![0.0; rows]);
                reference::csr_matmul(rows, cols, &rp, &ci, value, &x[..cols], 1, &mut want);
                reference::csr_matmul(rows, cols, &rp, &ci, |j| value(j).abs(), &xa[..cols], 1, &mut scale);
                let (mut wy, mut sy) = (vec![0.0; rows * n], vec![0.0; rows * n]);
                reference::csr_spmm(rows, cols, &rp, &ci, value, &x, n, &mut wy);
                reference::csr_spmm(rows, cols, &rp, &ci, |j| value(j).abs(), &xa, n, &mut sy);
                let run = |gemv: &dyn Fn(&mut [f32]), spmm: &dyn Fn(&mut [f32])| -> Result<(), TestCaseError> {
                    let mut y = vec![f32::NAN; rows];
                    gemv(&mut y);
                    assert_close(&y, &want, &scale)?;
                    let mut y = vec![f32::NAN; rows * n];
                    spmm(&mut y);
                    assert_close(&y, &wy, &sy)
                };
                let lut8 = Lut { centroids: &centroids, codes: &c8 };
                let lut16 = Lut { centroids: &centroids, codes: &c16 };
                // SAFETY (all calls below): the CSR was checked, codes are below 300 and the
                // buffers have the sizes the kernels require.
                macro_rules! variants {
                    ($v:expr) => {{
                        run(&|y| unsafe { gemv_rows(&csr, $v, &x[..cols], y, 0) },
                            &|y| unsafe { spmm_rows(&csr, $v, &x, n, y, 0) })?;
                        #[cfg(target_arch = "x86_64")]
                        if crate::x86::available() {
                            run(&|y| unsafe { gemv_rows(&csr, $v, &x[..cols], y, 0) },
                                &|y| unsafe { crate::x86::spmm_rows(&csr, $v, &x, n, y, 0) })?;
                        }
                    }};
                }
                match which {
                    0 => variants!(&vals[..]),
                    1 => variants!(&lut8),
                    _ => variants!(&lut16),
                }
            }
        }
    }
}
