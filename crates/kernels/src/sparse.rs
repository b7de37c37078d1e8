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
            unsafe { spmm_rows(csr, v, b, n, ys, t * chunk) }
        });
    } else {
        // SAFETY: see `spmm_rows`.
        unsafe { spmm_rows(csr, v, b, n, y, 0) }
    }
}

/// Rows `r0..r0 + y.len() / n` of the sparse × dense product.
///
/// # Safety
/// `csr` satisfies its invariants, `v` was checked against `csr.nnz()`, `n > 0`,
/// `b.len() == csr.cols() * n` and `r0 + y.len() / n <= csr.rows()`.
#[inline(always)]
unsafe fn spmm_rows<V: Vals + ?Sized>(csr: &Csr, v: &V, b: &[f32], n: usize, y: &mut [f32], r0: usize) {
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
