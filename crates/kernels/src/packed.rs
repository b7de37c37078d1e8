//! The batch-1 GEMV layout: `u16` column indices and one `f32` value per non-zero.
//!
//! A batch-1 sparse GEMV is bound by loads, not arithmetic: each non-zero costs a column index,
//! a value and a gathered `x[col]`. This layout makes the first two cheaper — two bytes of
//! column instead of four, and the value as a plain float (a codebook is expanded once at load
//! time, so the look-up leaves the inner loop; the *file* stays codebook-coded). Compiled for
//! AVX2, a non-zero then costs ≈ 0.32 ns on an idle 3 GHz Zen 3 (three loads, a multiply, an
//! add), against 0.39 ns for `u32` columns in the SSE2 build and 0.55 ns with a codebook look-up
//! (bench/kernels.md).
//!
//! Memory per non-zero: 6 bytes.

use crate::csr::SparseWeights;
use crate::error::{expect_len, KernelError};

/// A row-major copy of a [`SparseWeights`] for batch-1 products (`cols` at most 65 536).
#[derive(Debug, Clone, PartialEq)]
pub struct RowPacked {
    rows: usize,
    cols: usize,
    row_ptr: Vec<u32>,
    /// Column of every non-zero.
    col: Vec<u16>,
    /// Value of every non-zero.
    val: Vec<f32>,
}

impl RowPacked {
    /// The packed copy of `w`, or `None` if `w` has more than 65 536 columns.
    pub fn new(w: &SparseWeights) -> Option<RowPacked> {
        let csr = w.csr();
        if csr.cols() > 1 << 16 {
            return None;
        }
        let col: Vec<u16> = csr.col_idx().iter().map(|&c| c as u16).collect();
        let val: Vec<f32> = (0..csr.nnz()).map(|j| w.values().get(j)).collect();
        Some(RowPacked { rows: csr.rows(), cols: csr.cols(), row_ptr: csr.row_ptr().to_vec(), col, val })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `y = W x` (`x` of length `cols`, `y` of length `rows`) on the calling thread, with the
    /// fastest kernel the CPU runs.
    pub fn gemv(&self, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("y", y.len(), self.rows)?;
        self.gemv_rows(x, y, 0)
    }

    /// [`RowPacked::gemv`] with the rows split between the calling thread and the helper thread
    /// ([`crate::pair_chunks_mut`]) when there are at least [`PAIR_MIN_NNZ`] non-zeros. Faster
    /// only when the second core is idle (bench/kernels.md).
    pub fn gemv_paired(&self, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("y", y.len(), self.rows)?;
        expect_len("x", x.len(), self.cols)?;
        if self.val.len() < PAIR_MIN_NNZ {
            return self.gemv_rows(x, y, 0);
        }
        crate::pair_chunks_mut(y, self.rows.div_ceil(PAIR_CHUNKS), |r0, ys| {
            // SAFETY: lengths checked above; every chunk is a row range inside the matrix.
            unsafe { self.rows_unchecked(x, ys, r0) }
        });
        Ok(())
    }

    /// Rows `r0..r0 + y.len()` of `y = W x` on the calling thread.
    pub fn gemv_rows(&self, x: &[f32], y: &mut [f32], r0: usize) -> Result<(), KernelError> {
        expect_len("x", x.len(), self.cols)?;
        if r0.checked_add(y.len()).is_none_or(|end| end > self.rows) {
            return Err(KernelError::Length {
                what: "y",
                expected: self.rows - r0.min(self.rows),
                got: y.len(),
            });
        }
        // SAFETY: checked just above.
        unsafe { self.rows_unchecked(x, y, r0) };
        Ok(())
    }

    /// # Safety
    /// `x.len() == self.cols` and `r0 + y.len() <= self.rows`.
    #[inline(always)]
    unsafe fn rows_unchecked(&self, x: &[f32], y: &mut [f32], r0: usize) {
        #[cfg(target_arch = "x86_64")]
        if crate::x86::available() {
            // SAFETY: features checked just above; the CSR invariants were checked when the
            // source weights were built; the caller checked the lengths.
            return crate::x86::packed_gemv(&self.row_ptr, &self.col, &self.val, x, y, r0);
        }
        gemv_portable(&self.row_ptr, &self.col, &self.val, x, y, r0)
    }

    /// `y = Aᵀ x` for this matrix `A` (`x` of length `rows`, `y` of length `cols`), skipping the
    /// rows whose `x` is zero: each non-zero `x[r]` scatters `x[r] · A[r, :]` into `y`. Built on
    /// `Wᵀ`, this is the activation-sparse GEMV `y = W x` (EIE, Han et al. 2016).
    pub fn scatter(&self, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        self.scatter_around(x, 0.0, y)
    }

    /// `y = Aᵀ (x − c)`: [`RowPacked::scatter`] on the input shifted by `c`, skipping the rows
    /// whose `x` equals `c` (the shift is applied on the fly; nothing is allocated).
    pub fn scatter_around(&self, x: &[f32], c: f32, y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), self.rows)?;
        expect_len("y", y.len(), self.cols)?;
        #[cfg(target_arch = "x86_64")]
        if crate::x86::available() {
            // SAFETY: features checked just above; lengths checked above; CSR invariants hold.
            unsafe { crate::x86::packed_scatter(&self.row_ptr, &self.col, &self.val, x, c, y) };
            return Ok(());
        }
        // SAFETY: as above.
        unsafe { scatter_portable(&self.row_ptr, &self.col, &self.val, x, c, y) };
        Ok(())
    }
}

/// The portable scatter kernel: `y = Aᵀ (x − c)`, skipping rows where `x` equals `c`.
///
/// # Safety
/// `row_ptr` is a valid CSR offset array over `col`/`val` with `x.len() + 1` entries, and every
/// column is below `y.len()`.
#[inline(always)]
pub(crate) unsafe fn scatter_portable(
    row_ptr: &[u32],
    col: &[u16],
    val: &[f32],
    x: &[f32],
    c: f32,
    y: &mut [f32],
) {
    y.fill(0.0);
    // Gather the rows to scatter first, without branches (which row of an image is blank is
    // unpredictable: the branchy loop lost about a third of its time to mispredictions), a
    // block at a time on the stack.
    const BLOCK: usize = 256;
    let mut rows = [0u32; BLOCK];
    let mut ds = [0.0f32; BLOCK];
    for (b, xs) in x.chunks(BLOCK).enumerate() {
        let mut n = 0;
        for (i, &xr) in xs.iter().enumerate() {
            let d = xr - c;
            *rows.get_unchecked_mut(n) = (b * BLOCK + i) as u32;
            *ds.get_unchecked_mut(n) = d;
            n += (d != 0.0) as usize;
        }
        for k in 0..n {
            let (r, d) = (*rows.get_unchecked(k) as usize, *ds.get_unchecked(k));
            let (s, e) = (*row_ptr.get_unchecked(r) as usize, *row_ptr.get_unchecked(r + 1) as usize);
            for j in s..e {
                *y.get_unchecked_mut(*col.get_unchecked(j) as usize) += *val.get_unchecked(j) * d;
            }
        }
    }
}

/// Non-zeros from which a batch-1 GEMV splits its rows with the helper thread (measured:
/// bench/kernels.md).
pub const PAIR_MIN_NNZ: usize = 2_000;

/// Row chunks per GEMV when it is split: the caller and the helper claim them one at a time.
const PAIR_CHUNKS: usize = 4;

/// The portable kernel: four independent sums per row so the gathers and adds overlap (eight
/// measured no faster).
///
/// # Safety
/// `row_ptr` is a valid CSR offset array over `col`/`val`, every column is
/// below `x.len()`, and `r0 + y.len() < row_ptr.len()`.
#[inline(always)]
pub(crate) unsafe fn gemv_portable(
    row_ptr: &[u32],
    col: &[u16],
    val: &[f32],
    x: &[f32],
    y: &mut [f32],
    r0: usize,
) {
    for (i, yr) in y.iter_mut().enumerate() {
        let (s, e) = (*row_ptr.get_unchecked(r0 + i) as usize, *row_ptr.get_unchecked(r0 + i + 1) as usize);
        let term = |j: usize| *val.get_unchecked(j) * *x.get_unchecked(*col.get_unchecked(j) as usize);
        let mut a = [0.0f32; 4];
        let mut j = s;
        while j + 4 <= e {
            a[0] += term(j);
            a[1] += term(j + 1);
            a[2] += term(j + 2);
            a[3] += term(j + 3);
            j += 4;
        }
        let mut k = 0;
        while j < e {
            a[k] += term(j);
            j += 1;
            k += 1;
        }
        *yr = (a[0] + a[1]) + (a[2] + a[3]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{self, tests_support::*};
    use crate::{Csr, Values};
    use proptest::prelude::*;

    proptest! {
        /// Both kernels (portable and, where the CPU has it, AVX2) against the reference, for
        /// float and codebook values, whole matrices and row ranges.
        #[test]
        fn matches_reference(rows in 1usize..40, cols in 1usize..400, density in 0.0f32..1.0, seed in any::<u64>(), lut in any::<bool>()) {
            let u = vector(rows * cols, seed);
            let (mut rp, mut ci) = (vec![0u32], Vec::new());
            for r in 0..rows {
                ci.extend((0..cols).filter(|c| (u[r * cols + c] + 1.0) / 2.0 < density).map(|c| c as u32));
                rp.push(ci.len() as u32);
            }
            let csr = Csr::new(rows, cols, rp.clone(), ci.clone()).unwrap();
            let values = if lut {
                let codes: Vec<u16> = ci.iter().map(|&c| (c % 29) as u16).collect();
                Values::lut(vector(29, seed ^ 2), &codes)
            } else {
                Values::F32(vector(ci.len(), seed ^ 1))
            };
            let w = SparseWeights::new(csr, values.clone()).unwrap();
            let p = RowPacked::new(&w).unwrap();
            let x = vector(cols, seed ^ 3);
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let (mut want, mut scale) = (vec![0.0; rows], vec![0.0; rows]);
            reference::csr_matmul(rows, cols, &rp, &ci, |j| values.get(j), &x, 1, &mut want);
            reference::csr_matmul(rows, cols, &rp, &ci, |j| values.get(j).abs(), &xa, 1, &mut scale);
            let mut y = vec![f32::NAN; rows];
            p.gemv(&x, &mut y).unwrap();
            assert_close(&y, &want, &scale)?;
            let mut y = vec![f32::NAN; rows];
            p.gemv_paired(&x, &mut y).unwrap();
            assert_close(&y, &want, &scale)?;
            let r0 = rows / 3;
            let mut part = vec![f32::NAN; rows - r0];
            p.gemv_rows(&x, &mut part, r0).unwrap();
            assert_close(&part, &want[r0..], &scale[r0..])?;
            let mut y = vec![f32::NAN; rows];
            w.clone().with_packed_rows().matmul(&x, 1, &mut y).unwrap();
            assert_close(&y, &want, &scale)?;
            // The scatter kernel on Wᵀ computes the same product.
            let pt = RowPacked::new(&w.transpose()).unwrap();
            let mut y = vec![f32::NAN; rows];
            pt.scatter(&x, &mut y).unwrap();
            assert_close(&y, &want, &scale)?;
            let xz: Vec<f32> = x.iter().enumerate().map(|(i, v)| if i % 3 == 0 { 0.0 } else { *v }).collect();
            let (mut wz, mut yz) = (vec![0.0; rows], vec![f32::NAN; rows]);
            reference::csr_matmul(rows, cols, &rp, &ci, |j| values.get(j), &xz, 1, &mut wz);
            pt.scatter(&xz, &mut yz).unwrap();
            assert_close(&yz, &wz, &scale)?;
            let mut y = vec![f32::NAN; rows];
            // SAFETY: `p` was built from a checked CSR and the buffers fit.
            unsafe { gemv_portable(&p.row_ptr, &p.col, &p.val, &x, &mut y, 0) };
            assert_close(&y, &want, &scale)?;
        }
    }

    #[test]
    fn rejects_bad_lengths_and_ranges() {
        let csr = Csr::new(2, 3, vec![0, 1, 2], vec![0, 2]).unwrap();
        let p = RowPacked::new(&SparseWeights::new(csr, Values::F32(vec![1.0, 2.0])).unwrap()).unwrap();
        assert!(p.gemv(&[0.0; 2], &mut [0.0; 2]).is_err());
        assert!(p.gemv(&[0.0; 3], &mut [0.0; 3]).is_err());
        assert!(p.gemv_rows(&[0.0; 3], &mut [0.0; 2], 1).is_err());
        assert!(p.gemv_rows(&[0.0; 3], &mut [0.0; 1], usize::MAX).is_err());
        let mut y = [0.0; 1];
        p.gemv_rows(&[1.0, 1.0, 5.0], &mut y, 1).unwrap();
        assert_eq!(y, [10.0]);
    }

    #[test]
    fn refuses_more_than_u16_columns() {
        let csr = Csr::new(1, 70_000, vec![0, 1], vec![69_999]).unwrap();
        assert!(RowPacked::new(&SparseWeights::new(csr, Values::F32(vec![1.0])).unwrap()).is_none());
    }
}
