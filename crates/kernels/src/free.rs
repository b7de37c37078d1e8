//! The kernels as free functions on raw CSR slices. Each call checks and copies the structure
//! (O(non-zeros)); code that calls a kernel repeatedly builds a [`SparseWeights`] once instead.

use crate::{Csr, KernelError, SparseWeights, Values};

fn build(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    values: Values,
) -> Result<SparseWeights, KernelError> {
    SparseWeights::new(Csr::new(rows, cols, row_ptr.to_vec(), col_idx.to_vec())?, values)
}

/// `y = x · Wᵀ` for a CSR `W` (`rows x cols`) with float values: `y[b*rows + r] = Σ_j vals[j] *
/// x[b*cols + col_idx[j]]`, `x` row-major `[batch, cols]`, `y` `[batch, rows]` (a Gemm with
/// `trans_b`).
#[allow(clippy::too_many_arguments)]
pub fn csr_matmul_f32(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    vals: &[f32],
    x: &[f32],
    batch: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    build(rows, cols, row_ptr, col_idx, Values::F32(vals.to_vec()))?.matmul(x, batch, y)
}

/// [`csr_matmul_f32`] with shared weights: `vals[j] = centroids[codes[j]]`.
#[allow(clippy::too_many_arguments)]
pub fn csr_matmul_lut(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    centroids: &[f32],
    codes: &[u16],
    x: &[f32],
    batch: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    build(rows, cols, row_ptr, col_idx, Values::lut(centroids.to_vec(), codes))?.matmul(x, batch, y)
}

/// `Y = W × B` for a CSR `W` (`rows x cols`) with float values, `B` row-major `[cols, n]`, `Y`
/// `[rows, n]` (a convolution on its im2col matrix).
#[allow(clippy::too_many_arguments)]
pub fn csr_spmm_f32(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    vals: &[f32],
    b: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    build(rows, cols, row_ptr, col_idx, Values::F32(vals.to_vec()))?.spmm(b, n, y)
}

/// [`csr_spmm_f32`] with shared weights: `vals[j] = centroids[codes[j]]`.
#[allow(clippy::too_many_arguments)]
pub fn csr_spmm_lut(
    rows: usize,
    cols: usize,
    row_ptr: &[u32],
    col_idx: &[u32],
    centroids: &[f32],
    codes: &[u16],
    b: &[f32],
    n: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    build(rows, cols, row_ptr, col_idx, Values::lut(centroids.to_vec(), codes))?.spmm(b, n, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{self, tests_support::*};
    use proptest::prelude::*;

    /// A random CSR matrix: (row_ptr, col_idx, dense copy of the values' positions).
    fn random_csr(rows: usize, cols: usize, density: f32, seed: u64) -> (Vec<u32>, Vec<u32>) {
        let u = vector(rows * cols, seed);
        let (mut rp, mut ci) = (vec![0u32], Vec::new());
        for r in 0..rows {
            for c in 0..cols {
                if (u[r * cols + c] + 1.0) / 2.0 < density {
                    ci.push(c as u32);
                }
            }
            rp.push(ci.len() as u32);
        }
        (rp, ci)
    }

    /// Scale for the normalised comparison: the reference run on absolute values.
    fn scale_matmul(
        rows: usize,
        cols: usize,
        rp: &[u32],
        ci: &[u32],
        v: impl Fn(usize) -> f32,
        x: &[f32],
        batch: usize,
    ) -> Vec<f32> {
        let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let mut s = vec![0.0; batch * rows];
        reference::csr_matmul(rows, cols, rp, ci, |j| v(j).abs(), &xa, batch, &mut s);
        s
    }

    fn check_all(
        rows: usize,
        cols: usize,
        density: f32,
        batch: usize,
        ncent: usize,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        let (rp, ci) = random_csr(rows, cols, density, seed);
        let nnz = ci.len();
        let vals = vector(nnz, seed ^ 2);
        let centroids = vector(ncent, seed ^ 3);
        let codes: Vec<u16> =
            vector(nnz, seed ^ 4).iter().map(|u| ((u + 1.0) / 2.0 * ncent as f32) as u16).collect();
        let codes: Vec<u16> = codes.iter().map(|&c| c.min(ncent as u16 - 1)).collect();
        let x = vector(batch * cols, seed ^ 5);
        let lut = |j: usize| centroids[codes[j] as usize];
        for (name, value) in [("f32", &(|j: usize| vals[j]) as &dyn Fn(usize) -> f32), ("lut", &lut)] {
            let mut fast = vec![f32::NAN; batch * rows];
            if name == "f32" {
                csr_matmul_f32(rows, cols, &rp, &ci, &vals, &x, batch, &mut fast).unwrap();
            } else {
                csr_matmul_lut(rows, cols, &rp, &ci, &centroids, &codes, &x, batch, &mut fast).unwrap();
            }
            let mut slow = vec![0.0; batch * rows];
            reference::csr_matmul(rows, cols, &rp, &ci, value, &x, batch, &mut slow);
            assert_close(&fast, &slow, &scale_matmul(rows, cols, &rp, &ci, value, &x, batch))?;

            // Sparse x dense with B = x reinterpreted as [cols, batch].
            let mut fast = vec![f32::NAN; rows * batch];
            if name == "f32" {
                csr_spmm_f32(rows, cols, &rp, &ci, &vals, &x, batch, &mut fast).unwrap();
            } else {
                csr_spmm_lut(rows, cols, &rp, &ci, &centroids, &codes, &x, batch, &mut fast).unwrap();
            }
            let mut slow = vec![0.0; rows * batch];
            reference::csr_spmm(rows, cols, &rp, &ci, value, &x, batch, &mut slow);
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let mut scale = vec![0.0; rows * batch];
            reference::csr_spmm(rows, cols, &rp, &ci, |j| value(j).abs(), &xa, batch, &mut scale);
            assert_close(&fast, &slow, &scale)?;
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn kernels_match_reference(
            rows in 0usize..40, cols in 1usize..90, density in 0.0f32..1.0, batch in 1usize..7,
            ncent in prop_oneof![1usize..=256, 257usize..600], seed in any::<u64>(),
        ) {
            check_all(rows, cols, density, batch, ncent, seed)?;
        }

        #[test]
        fn transpose_moves_every_entry(rows in 0usize..20, cols in 1usize..30, density in 0.0f32..1.0, seed in any::<u64>()) {
            let (rp, ci) = random_csr(rows, cols, density, seed);
            let vals = vector(ci.len(), seed ^ 9);
            let w = SparseWeights::new(Csr::new(rows, cols, rp, ci).unwrap(), Values::F32(vals)).unwrap();
            let (t, tt) = (w.transpose(), w.transpose().transpose());
            prop_assert_eq!(&tt, &w);
            let dense = |m: &SparseWeights| {
                let (r, c) = (m.csr().rows(), m.csr().cols());
                let mut d = vec![0.0; r * c];
                for i in 0..r {
                    for j in m.csr().row_ptr()[i] as usize..m.csr().row_ptr()[i + 1] as usize {
                        d[i * c + m.csr().col_idx()[j] as usize] = m.values().get(j);
                    }
                }
                d
            };
            let (d, dt) = (dense(&w), dense(&t));
            for i in 0..rows {
                for j in 0..cols {
                    prop_assert_eq!(d[i * cols + j], dt[j * rows + i]);
                }
            }
        }
    }

    proptest! {
        /// The column-skipping GEMV (inputs mostly zero, or mostly one background value `bg`
        /// as in a normalised image) against the reference, for float and codebook values.
        #[test]
        fn column_path_matches_reference(
            rows in 1usize..60, cols in 1usize..90, density in 0.0f32..1.0, zeros in 0.0f32..1.0,
            bg in prop_oneof![Just(0.0f32), -2.0f32..2.0],
            lut in any::<bool>(), packed in any::<bool>(), seed in any::<u64>(),
        ) {
            let (rp, ci) = random_csr(rows, cols, density, seed);
            let values = if lut {
                let codes: Vec<u16> = (0..ci.len()).map(|j| (j * 5 % 17) as u16).collect();
                Values::lut(vector(17, seed ^ 1), &codes)
            } else {
                Values::F32(vector(ci.len(), seed ^ 1))
            };
            let u = vector(cols, seed ^ 2);
            let x: Vec<f32> = vector(cols, seed ^ 3)
                .into_iter()
                .zip(&u)
                .map(|(v, u)| if (u + 1.0) / 2.0 < zeros { bg } else { v })
                .collect();
            let w = SparseWeights::new(Csr::new(rows, cols, rp.clone(), ci.clone()).unwrap(), values.clone())
                .unwrap()
                .with_column_index();
            let w = if packed { w.with_packed_rows() } else { w };
            let mut fast = vec![f32::NAN; rows];
            w.matmul(&x, 1, &mut fast).unwrap();
            let mut slow = vec![0.0; rows];
            reference::csr_matmul(rows, cols, &rp, &ci, |j| values.get(j), &x, 1, &mut slow);
            // Shifting by `bg` rounds terms of size |w|·(|x| + |bg|).
            let xs: Vec<f32> = x.iter().map(|v| v.abs() + bg.abs()).collect();
            assert_close(&fast, &slow, &scale_matmul(rows, cols, &rp, &ci, |j| values.get(j), &xs, 1))?;
        }
    }

    /// The multi-threaded path (above `PAR_MIN_WORK`) gives the same result as the reference.
    #[test]
    fn parallel_path_matches_reference() {
        check_all(500, 900, 0.5, 1, 16, 7).unwrap();
        check_all(64, 300, 0.3, 16, 300, 8).unwrap();
    }

    #[test]
    fn rejects_malformed_input() {
        let ok =
            |rp: &[u32], ci: &[u32]| csr_matmul_f32(2, 3, rp, ci, &[1.0; 2], &[0.0; 3], 1, &mut [0.0; 2]);
        assert!(ok(&[0, 1, 2], &[0, 2]).is_ok());
        assert!(matches!(ok(&[0, 1], &[0, 2]), Err(KernelError::Csr(_))), "too few offsets");
        assert!(matches!(ok(&[0, 2, 1], &[0, 2]), Err(KernelError::Csr(_))), "decreasing");
        assert!(matches!(ok(&[0, 1, 2], &[0, 3]), Err(KernelError::Csr(_))), "column out of range");
        assert!(matches!(ok(&[1, 1, 2], &[0, 2]), Err(KernelError::Csr(_))), "nonzero start");
        let r = csr_matmul_f32(2, 3, &[0, 1, 2], &[0, 2], &[1.0], &[0.0; 3], 1, &mut [0.0; 2]);
        assert!(matches!(r, Err(KernelError::Length { what: "values", .. })));
        let r = csr_matmul_f32(2, 3, &[0, 1, 2], &[0, 2], &[1.0; 2], &[0.0; 4], 1, &mut [0.0; 2]);
        assert!(matches!(r, Err(KernelError::Length { what: "x", .. })));
        let r = csr_spmm_f32(2, 3, &[0, 1, 2], &[0, 2], &[1.0; 2], &[0.0; 6], 2, &mut [0.0; 3]);
        assert!(matches!(r, Err(KernelError::Length { what: "y", .. })));
        let r = csr_matmul_lut(2, 3, &[0, 1, 2], &[0, 2], &[1.0; 2], &[0, 2], &[0.0; 3], 1, &mut [0.0; 2]);
        assert!(matches!(r, Err(KernelError::Code { index: 1, code: 2, centroids: 2 })));
        assert!(matches!(Values::lut(vec![0.0; 300], &[1, 2]), Values::Lut8 { .. }));
        assert!(matches!(Values::lut(vec![0.0; 300], &[1, 299]), Values::Lut16 { .. }));
    }
}
