//! The batch-1 GEMV on 1x4 blocks: four consecutive columns of a row share one index, and their
//! product with `x` is one 4-lane multiply-add.
//!
//! An element-wise sparse GEMV pays a column index, a value and a gathered `x[col]` for every
//! non-zero (≈ 0.32 ns each, [`crate::RowPacked`]); a dense GEMV streams every weight. A layer
//! pruned in aligned blocks of four consecutive inputs (`compress`'s `block = 4`) keeps the
//! sparse kernel's skipping and the dense kernel's contiguous loads: one `u16` index and one
//! 16-byte load of `x` serve four weights. [`BlockPacked::new`] also accepts a matrix that was
//! pruned element-wise, filling the missing entries of each touched block with zeros, but only
//! when the blocks are at least `min_fill` full, so that the zeros do not cost more than the
//! indices they save.
//!
//! Memory: 2 bytes of index + 16 bytes of values per block (in memory only: the file keeps the
//! element-wise encoding, in which a block's inner gaps are zero-length runs that Huffman coding
//! makes nearly free).

use crate::csr::SparseWeights;
use crate::error::{expect_len, KernelError};

/// Columns per block.
pub const BLOCK: usize = 4;

/// Smallest fill (non-zeros / block slots) for which the block kernel beats the element-wise
/// packed GEMV. At fill 1/4 each block does the work of one non-zero with one load more; the
/// break-even measured lies between 0.3 and 0.4 (bench/kernels.md), and 0.5 leaves a margin.
pub const MIN_FILL: f32 = 0.5;

/// A row-major copy of a [`SparseWeights`] in aligned 1x4 blocks (`cols` a multiple of 4, at
/// most 65 536).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPacked {
    rows: usize,
    cols: usize,
    /// Block offsets of every row, `rows + 1` entries.
    row_ptr: Vec<u32>,
    /// First column of every block (a multiple of 4).
    col: Vec<u16>,
    /// Four values per block.
    val: Vec<f32>,
    /// Non-zeros of the source matrix.
    nnz: usize,
}

impl BlockPacked {
    /// The block copy of `w`, or `None` if its shape does not allow one (columns not a multiple
    /// of 4, or more than 65 536) or its touched blocks are less than `min_fill` full.
    pub fn new(w: &SparseWeights, min_fill: f32) -> Option<BlockPacked> {
        let csr = w.csr();
        let (rows, cols) = (csr.rows(), csr.cols());
        if !cols.is_multiple_of(BLOCK) || cols > 1 << 16 || csr.nnz() == 0 {
            return None;
        }
        let (rp, ci) = (csr.row_ptr(), csr.col_idx());
        let mut row_ptr = Vec::with_capacity(rows + 1);
        row_ptr.push(0u32);
        let (mut col, mut val) = (Vec::new(), Vec::new());
        for r in 0..rows {
            for (j, &cj) in ci.iter().enumerate().take(rp[r + 1] as usize).skip(rp[r] as usize) {
                let cj = cj as usize;
                let start = cj / BLOCK * BLOCK;
                // Columns are increasing within a row, so a block's entries are consecutive; a
                // row's first entry always opens a block.
                let row_start = *row_ptr.last().expect("starts with 0") as usize;
                if col.len() == row_start || col.last().is_some_and(|&c| c as usize != start) {
                    col.push(start as u16);
                    val.extend([0.0f32; BLOCK]);
                }
                let at = val.len() - BLOCK + cj - start;
                val[at] = w.values().get(j);
            }
            row_ptr.push(col.len() as u32);
        }
        let fill = csr.nnz() as f32 / (col.len() * BLOCK) as f32;
        (fill >= min_fill).then_some(BlockPacked { rows, cols, row_ptr, col, val, nnz: csr.nnz() })
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.col.len()
    }

    /// Non-zeros of the source matrix over block slots, in (0, 1].
    pub fn fill(&self) -> f32 {
        self.nnz as f32 / (self.blocks() * BLOCK).max(1) as f32
    }

    /// `y = W x` (`x` of length `cols`, `y` of length `rows`) with the fastest kernel the CPU
    /// runs.
    pub fn gemv(&self, x: &[f32], y: &mut [f32]) -> Result<(), KernelError> {
        expect_len("x", x.len(), self.cols)?;
        expect_len("y", y.len(), self.rows)?;
        #[cfg(target_arch = "x86_64")]
        if crate::x86::available() {
            // SAFETY: features checked just above; lengths checked above; every block starts at
            // a multiple of 4 below `cols`, and `cols` is a multiple of 4, so its four loads of
            // `x` are in bounds; `row_ptr` is monotone over `col` and `val`.
            unsafe { crate::x86::block_gemv(&self.row_ptr, &self.col, &self.val, x, y) };
            return Ok(());
        }
        // SAFETY: as above.
        unsafe { gemv_portable(&self.row_ptr, &self.col, &self.val, x, y) };
        Ok(())
    }
}

/// The portable block GEMV: four lanes per block, which the compiler keeps in one SSE register.
///
/// # Safety
/// `row_ptr` has `y.len() + 1` monotone entries ending at most at `col.len()`,
/// `val.len() == 4 * col.len()`, and every `col[b] + 4 <= x.len()`.
#[inline(always)]
pub(crate) unsafe fn gemv_portable(row_ptr: &[u32], col: &[u16], val: &[f32], x: &[f32], y: &mut [f32]) {
    for (r, yr) in y.iter_mut().enumerate() {
        let (s, e) = (*row_ptr.get_unchecked(r) as usize, *row_ptr.get_unchecked(r + 1) as usize);
        let mut a = [0.0f32; BLOCK];
        for b in s..e {
            let c = *col.get_unchecked(b) as usize;
            for (k, ak) in a.iter_mut().enumerate() {
                *ak += *val.get_unchecked(b * BLOCK + k) * *x.get_unchecked(c + k);
            }
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

    /// A random matrix whose non-zeros come in aligned 1x4 blocks, each entry of a kept block
    /// present with probability `inner`.
    fn blocked(rows: usize, cols: usize, density: f32, inner: f32, seed: u64) -> (Vec<u32>, Vec<u32>) {
        let (u, v) = (vector(rows * cols, seed), vector(rows * cols, seed ^ 5));
        let (mut rp, mut ci) = (vec![0u32], Vec::new());
        for r in 0..rows {
            for c in 0..cols {
                let block_kept = (u[r * cols + c / BLOCK * BLOCK] + 1.0) / 2.0 < density;
                if block_kept && (v[r * cols + c] + 1.0) / 2.0 < inner {
                    ci.push(c as u32);
                }
            }
            rp.push(ci.len() as u32);
        }
        (rp, ci)
    }

    proptest! {
        /// The block kernel (portable and, where the CPU has it, AVX2) against the reference, for
        /// float and codebook values, full and partly filled blocks.
        #[test]
        fn matches_reference(
            rows in 1usize..40, cols4 in 1usize..100, density in 0.0f32..1.0, inner in 0.3f32..1.0,
            lut in any::<bool>(), seed in any::<u64>(),
        ) {
            let cols = cols4 * BLOCK;
            let (rp, ci) = blocked(rows, cols, density, inner, seed);
            let values = if lut {
                let codes: Vec<u16> = ci.iter().map(|&c| (c % 29) as u16).collect();
                Values::lut(vector(29, seed ^ 2), &codes)
            } else {
                Values::F32(vector(ci.len(), seed ^ 1))
            };
            let w = SparseWeights::new(Csr::new(rows, cols, rp.clone(), ci.clone()).unwrap(), values.clone()).unwrap();
            let Some(b) = BlockPacked::new(&w, 0.0) else {
                prop_assert!(ci.is_empty());
                return Ok(());
            };
            prop_assert!(b.fill() > 0.0 && b.fill() <= 1.0);
            let x = vector(cols, seed ^ 3);
            let xa: Vec<f32> = x.iter().map(|v| v.abs()).collect();
            let (mut want, mut scale) = (vec![0.0; rows], vec![0.0; rows]);
            reference::csr_matmul(rows, cols, &rp, &ci, |j| values.get(j), &x, 1, &mut want);
            reference::csr_matmul(rows, cols, &rp, &ci, |j| values.get(j).abs(), &xa, 1, &mut scale);
            let mut y = vec![f32::NAN; rows];
            b.gemv(&x, &mut y).unwrap();
            assert_close(&y, &want, &scale)?;
            let mut y = vec![f32::NAN; rows];
            // SAFETY: the structure was built by `BlockPacked::new`.
            unsafe { gemv_portable(&b.row_ptr, &b.col, &b.val, &x, &mut y) };
            assert_close(&y, &want, &scale)?;
        }
    }

    #[test]
    fn counts_blocks_and_refuses_what_it_cannot_hold() {
        // Row 0: columns 0, 1, 5 -> blocks at 0 and 4; row 1: column 7 -> block at 4.
        let csr = Csr::new(2, 8, vec![0, 3, 4], vec![0, 1, 5, 7]).unwrap();
        let w = SparseWeights::new(csr, Values::F32(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
        let b = BlockPacked::new(&w, 0.0).unwrap();
        assert_eq!((b.blocks(), b.fill()), (3, 4.0 / 12.0));
        assert_eq!(b.col, vec![0, 4, 4]);
        assert_eq!(&b.val[..8], &[1.0, 2.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0]);
        assert!(BlockPacked::new(&w, 0.5).is_none(), "a third full");
        let odd =
            SparseWeights::new(Csr::new(1, 6, vec![0, 1], vec![0]).unwrap(), Values::F32(vec![1.0])).unwrap();
        assert!(BlockPacked::new(&odd, 0.0).is_none(), "6 columns");
        let mut y = vec![0.0; 2];
        b.gemv(&[1.0; 8], &mut y).unwrap();
        assert_eq!(y, vec![6.0, 4.0]);
        assert!(matches!(b.gemv(&[1.0; 7], &mut y), Err(KernelError::Length { what: "x", .. })));
    }
}
