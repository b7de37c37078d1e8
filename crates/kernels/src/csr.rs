//! Validated sparse weights: the CSR structure and the value encodings kernels run on.

use crate::block::BlockPacked;
use crate::error::{expect_len, KernelError};
use crate::packed::RowPacked;
use crate::sparse::{self, Lut};

/// The structure of a sparse matrix in compressed sparse row form: row `r` holds the non-zeros
/// `row_ptr[r]..row_ptr[r + 1]` at columns `col_idx[..]`.
///
/// Invariants (checked by [`Csr::new`]): `row_ptr` has `rows + 1` entries, starts at 0, never
/// decreases and ends at `col_idx.len()`; every column index is below `cols`. Columns need not be
/// sorted within a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csr {
    rows: usize,
    cols: usize,
    row_ptr: Vec<u32>,
    col_idx: Vec<u32>,
}

impl Csr {
    /// Checks and wraps a CSR structure.
    pub fn new(rows: usize, cols: usize, row_ptr: Vec<u32>, col_idx: Vec<u32>) -> Result<Csr, KernelError> {
        if row_ptr.len() != rows.saturating_add(1) {
            return Err(KernelError::Csr(format!("{} row offsets for {rows} rows", row_ptr.len())));
        }
        if row_ptr[0] != 0 {
            return Err(KernelError::Csr(format!("first row offset is {}, not 0", row_ptr[0])));
        }
        if let Some(r) = row_ptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(KernelError::Csr(format!("row offsets decrease at row {r}")));
        }
        if row_ptr[rows] as usize != col_idx.len() {
            return Err(KernelError::Csr(format!(
                "last row offset is {} but there are {} column indices",
                row_ptr[rows],
                col_idx.len()
            )));
        }
        if let Some(j) = col_idx.iter().position(|&c| c as usize >= cols) {
            return Err(KernelError::Csr(format!("non-zero {j} is in column {} of {cols}", col_idx[j])));
        }
        Ok(Csr { rows, cols, row_ptr, col_idx })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.col_idx.len()
    }

    /// Row offsets (`rows + 1` of them).
    pub fn row_ptr(&self) -> &[u32] {
        &self.row_ptr
    }

    /// Column index of every non-zero.
    pub fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// The transposed structure and, for each of its non-zeros, the position of the same entry in
    /// `self` (so values can be permuted alongside). Columns come out sorted within each row.
    pub fn transpose(&self) -> (Csr, Vec<usize>) {
        let mut counts = vec![0u32; self.cols + 1];
        for &c in &self.col_idx {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.cols {
            counts[i + 1] += counts[i];
        }
        let row_ptr = counts.clone();
        let mut next = counts;
        let mut col_idx = vec![0u32; self.nnz()];
        let mut perm = vec![0usize; self.nnz()];
        for r in 0..self.rows {
            for j in self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize {
                let c = self.col_idx[j] as usize;
                let dst = next[c] as usize;
                next[c] += 1;
                col_idx[dst] = r as u32;
                perm[dst] = j;
            }
        }
        (Csr { rows: self.cols, cols: self.rows, row_ptr, col_idx }, perm)
    }
}

/// Runs `$body` with `$v` bound to the value source matching the encoding, so each encoding gets
/// its own monomorphised kernel.
macro_rules! dispatch {
    ($w:expr, $v:ident => $body:expr) => {
        match &$w.values {
            Values::F32(x) => {
                let $v = &x[..];
                $body
            }
            Values::Lut8 { centroids, codes } => {
                let $v = &Lut { centroids, codes };
                $body
            }
            Values::Lut16 { centroids, codes } => {
                let $v = &Lut { centroids, codes };
                $body
            }
        }
    };
}

/// Largest fraction of non-zero inputs for which the column-skipping GEMV beats the row GEMV
/// (measured: bench/kernels.md) on the CSR kernels.
pub const COLUMN_PATH_MAX_DENSITY: f32 = 0.5;

/// [`COLUMN_PATH_MAX_DENSITY`] for packed weights ([`SparseWeights::with_packed_rows`]): the
/// packed scatter beats the packed row GEMV below about 60% non-zero inputs (bench/kernels.md).
pub const PACKED_COLUMN_PATH_MAX_DENSITY: f32 = 0.6;

/// Non-zeros per input below which the column path never pays: with few weights per input,
/// the per-input work (and the short inner loops) costs more than the products it skips.
/// LeNet-300-100's fc3 (10x100 at 25%, 2.5 per input) ran 1.6x slower on it, and its fc2
/// (100x300 at 10%, 10 per input) 1.7x slower on real MNIST activations (2.4 vs 1.4 µs in
/// `deepshrink bench --data data/mnist`, bench/kernels.md); fc1 (784 inputs, 18 per input)
/// gains.
pub const COLUMN_PATH_MIN_NNZ_PER_INPUT: usize = 16;

/// The values of the non-zeros of a [`SparseWeights`].
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// One float per non-zero (pruning alone). 4 bytes per non-zero, plus 4 of column index.
    F32(Vec<f32>),
    /// Shared weights with at most 256 centroids: `w = centroids[codes[j]]`. 1 byte per non-zero.
    Lut8 {
        /// The shared values.
        centroids: Vec<f32>,
        /// Codebook index of every non-zero.
        codes: Vec<u8>,
    },
    /// Shared weights with more than 256 centroids. 2 bytes per non-zero.
    Lut16 {
        /// The shared values.
        centroids: Vec<f32>,
        /// Codebook index of every non-zero.
        codes: Vec<u16>,
    },
}

impl Values {
    /// Codebook values, stored as `u8` codes when every code fits in a byte.
    pub fn lut(centroids: Vec<f32>, codes: &[u16]) -> Values {
        if codes.iter().all(|&c| c < 256) {
            Values::Lut8 { centroids, codes: codes.iter().map(|&c| c as u8).collect() }
        } else {
            Values::Lut16 { centroids, codes: codes.to_vec() }
        }
    }

    /// Number of non-zeros described.
    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::Lut8 { codes, .. } => codes.len(),
            Values::Lut16 { codes, .. } => codes.len(),
        }
    }

    /// True if there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value of non-zero `j` (checked indexing; for references and tests).
    pub fn get(&self, j: usize) -> f32 {
        match self {
            Values::F32(v) => v[j],
            Values::Lut8 { centroids, codes } => centroids[codes[j] as usize],
            Values::Lut16 { centroids, codes } => centroids[codes[j] as usize],
        }
    }

    fn check_codes(&self) -> Result<(), KernelError> {
        fn check<C: Copy + Into<usize>>(codes: &[C], n: usize) -> Result<(), KernelError> {
            match codes.iter().position(|&c| c.into() >= n) {
                Some(index) => Err(KernelError::Code { index, code: codes[index].into(), centroids: n }),
                None => Ok(()),
            }
        }
        match self {
            Values::F32(_) => Ok(()),
            Values::Lut8 { centroids, codes } => check(codes, centroids.len()),
            Values::Lut16 { centroids, codes } => check(codes, centroids.len()),
        }
    }

    fn permuted(&self, perm: &[usize]) -> Values {
        match self {
            Values::F32(v) => Values::F32(perm.iter().map(|&j| v[j]).collect()),
            Values::Lut8 { centroids, codes } => {
                Values::Lut8 { centroids: centroids.clone(), codes: perm.iter().map(|&j| codes[j]).collect() }
            }
            Values::Lut16 { centroids, codes } => Values::Lut16 {
                centroids: centroids.clone(),
                codes: perm.iter().map(|&j| codes[j]).collect(),
            },
        }
    }
}

/// A sparse weight matrix `W` (`rows x cols`) ready for the kernels: a checked [`Csr`] and
/// one value per non-zero.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseWeights {
    csr: Csr,
    values: Values,
    /// `Wᵀ`, built by [`SparseWeights::with_column_index`] for the activation-sparse GEMV.
    by_col: Option<Box<SparseWeights>>,
    /// The batch-1 layout, built by [`SparseWeights::with_packed_rows`].
    packed: Option<Box<RowPacked>>,
    /// `W · 1` (the sum of every row), built with the column index: the correction term of the
    /// shifted activation-sparse GEMV.
    row_sums: Vec<f32>,
    /// The 1x4-block layout, built by [`SparseWeights::with_blocks`].
    blocked: Option<Box<BlockPacked>>,
}

impl SparseWeights {
    /// Checks that there is one value per non-zero and every code is inside its codebook.
    pub fn new(csr: Csr, values: Values) -> Result<SparseWeights, KernelError> {
        expect_len("values", values.len(), csr.nnz())?;
        values.check_codes()?;
        Ok(SparseWeights { csr, values, by_col: None, packed: None, row_sums: Vec::new(), blocked: None })
    }

    /// The structure.
    pub fn csr(&self) -> &Csr {
        &self.csr
    }

    /// The values.
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// `"sparse-f32"` or `"sparse-lut"`, with `"-1x4"` when batch-1 products run on blocks.
    pub fn kind(&self) -> &'static str {
        match (&self.values, self.blocked.is_some()) {
            (Values::F32(_), false) => "sparse-f32",
            (Values::F32(_), true) => "sparse-f32-1x4",
            (_, false) => "sparse-lut",
            (_, true) => "sparse-lut-1x4",
        }
    }

    /// `Wᵀ`, with the values permuted to follow their entries.
    pub fn transpose(&self) -> SparseWeights {
        let (csr, perm) = self.csr.transpose();
        SparseWeights {
            csr,
            values: self.values.permuted(&perm),
            by_col: None,
            packed: None,
            row_sums: Vec::new(),
            blocked: None,
        }
    }

    /// Also keeps `W` column by column (doubling the memory of the weight), so that batch-1
    /// products whose `x` is mostly zeros (at most [`COLUMN_PATH_MAX_DENSITY`] non-zero) skip
    /// the columns those zeros multiply (Han et al. 2016's EIE).
    ///
    /// The same path serves inputs that are mostly one other value `c` — normalised images,
    /// whose background pixels all equal `-mean/std` — as `W·x = W·(x − c) + c·(W·1)`: the
    /// shifted input is mostly exact zeros, and the row sums `W·1` are computed here, once.
    pub fn with_column_index(mut self) -> SparseWeights {
        let mut sums = vec![0.0f64; self.csr.rows];
        for (r, s) in sums.iter_mut().enumerate() {
            let (a, b) = (self.csr.row_ptr[r] as usize, self.csr.row_ptr[r + 1] as usize);
            *s = (a..b).map(|j| self.values.get(j) as f64).sum();
        }
        self.row_sums = sums.into_iter().map(|s| s as f32).collect();
        let t = self.transpose();
        self.by_col = Some(Box::new(if self.packed.is_some() { t.with_packed_rows() } else { t }));
        self
    }

    /// Also keeps a [`RowPacked`] copy (`u16` columns, values expanded to `f32`: 6 bytes per
    /// non-zero in memory, not in the file) that batch-1 products run on when the column path
    /// does not apply; the column index, if any, is packed too. Does nothing to a matrix with
    /// more than 65 536 columns (or rows, for the column index).
    pub fn with_packed_rows(mut self) -> SparseWeights {
        self.packed = RowPacked::new(&self).map(Box::new);
        if let Some(t) = self.by_col.take() {
            self.by_col = Some(Box::new(t.with_packed_rows()));
        }
        self
    }

    /// Also keeps a [`BlockPacked`] copy when the non-zeros fill aligned 1x4 blocks at least
    /// [`crate::MIN_FILL`] full (a layer pruned with `block = 4`); batch-1 products then run on it.
    pub fn with_blocks(mut self) -> SparseWeights {
        self.blocked = BlockPacked::new(&self, crate::MIN_FILL).map(Box::new);
        self
    }

    /// True if batch-1 products run on 1x4 blocks ([`SparseWeights::with_blocks`]).
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }

    /// `y = x · Wᵀ` for `x` row-major `[batch, cols]` and `y` `[batch, rows]` (a Gemm with
    /// `trans_b`). Batch 1 runs a sparse GEMV; larger batches transpose `x` and run [`Self::spmm`].
    pub fn matmul(&self, x: &[f32], batch: usize, y: &mut [f32]) -> Result<(), KernelError> {
        let (rows, cols) = (self.csr.rows, self.csr.cols);
        expect_len("x", x.len(), batch.checked_mul(cols).ok_or(overflow())?)?;
        expect_len("y", y.len(), batch.checked_mul(rows).ok_or(overflow())?)?;
        if batch == 1 {
            if let Some(b) = &self.blocked {
                return b.gemv(x, y);
            }
            if let Some(t) =
                self.by_col.as_ref().filter(|_| self.csr.nnz() >= COLUMN_PATH_MIN_NNZ_PER_INPUT * cols)
            {
                let max =
                    if t.packed.is_some() { PACKED_COLUMN_PATH_MAX_DENSITY } else { COLUMN_PATH_MAX_DENSITY };
                let limit = (max * cols as f32) as usize;
                if let Some(c) = sparse_around(x, limit) {
                    match &t.packed {
                        Some(p) => p.scatter_around(x, c, y)?,
                        None => dispatch!(t, v => sparse::gemv_cols(&t.csr, v, x, c, y)),
                    }
                    if c != 0.0 {
                        y.iter_mut().zip(&self.row_sums).for_each(|(v, s)| *v += c * s);
                    }
                    return Ok(());
                }
            }
            match &self.packed {
                Some(p) => p.gemv(x, y)?,
                None => dispatch!(self, v => sparse::gemv(&self.csr, v, x, y)),
            }
            return Ok(());
        }
        let mut xt = vec![0.0f32; x.len()];
        transpose_into(x, batch, cols, &mut xt);
        let mut yt = vec![0.0f32; y.len()];
        dispatch!(self, v => sparse::spmm(&self.csr, v, &xt, batch, &mut yt));
        transpose_into(&yt, rows, batch, y);
        Ok(())
    }

    /// `Y = W × B` for `B` row-major `[cols, n]` and `Y` `[rows, n]`: each non-zero at `(r, c)`
    /// adds a scaled copy of row `c` of `B` to row `r` of `Y` (convolution on im2col columns).
    pub fn spmm(&self, b: &[f32], n: usize, y: &mut [f32]) -> Result<(), KernelError> {
        let (rows, cols) = (self.csr.rows, self.csr.cols);
        expect_len("b", b.len(), cols.checked_mul(n).ok_or(overflow())?)?;
        expect_len("y", y.len(), rows.checked_mul(n).ok_or(overflow())?)?;
        dispatch!(self, v => sparse::spmm(&self.csr, v, b, n, y));
        Ok(())
    }
}

/// The value `c` (zero, else `x[0]`) that all but at most `limit` entries of `x` equal, if any.
/// A finite `c` only: shifting by an infinity would turn the product into NaNs.
fn sparse_around(x: &[f32], limit: usize) -> Option<f32> {
    let c = x.first().copied().filter(|c| c.is_finite() && *c != 0.0).unwrap_or(0.0);
    let (mut off_zero, mut off_c) = (0usize, 0usize);
    for v in x {
        off_zero += (*v != 0.0) as usize;
        off_c += (*v != c) as usize;
    }
    if off_zero <= limit {
        Some(0.0)
    } else if off_c <= limit {
        Some(c)
    } else {
        None
    }
}

fn overflow() -> KernelError {
    KernelError::Csr("buffer size overflows".into())
}

/// Writes the transpose of row-major `a` (`r x c`) into `out` (`c x r`).
pub(crate) fn transpose_into(a: &[f32], r: usize, c: usize, out: &mut [f32]) {
    const T: usize = 16;
    for i0 in (0..r).step_by(T) {
        for j0 in (0..c).step_by(T) {
            for i in i0..(i0 + T).min(r) {
                for j in j0..(j0 + T).min(c) {
                    out[j * r + i] = a[i * c + j];
                }
            }
        }
    }
}
