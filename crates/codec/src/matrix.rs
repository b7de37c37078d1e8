//! Compressed weight matrices in memory: what compression passes produce and kernels consume.

use deepshrink_graph::Tensor;

use crate::CodecError;

/// The values of the non-zero entries of a [`SparseMatrix`].
#[derive(Debug, Clone, PartialEq)]
pub enum SparseValues {
    /// One float per non-zero (pruning only).
    F32(Vec<f32>),
    /// Weight sharing: each non-zero is `centroids[codes[j]]` (Han et al. 2016's trained
    /// quantization; `centroids.len() <= 2^bits`).
    Codebook {
        /// The shared values.
        centroids: Vec<f32>,
        /// Index into `centroids` for every non-zero.
        codes: Vec<u16>,
    },
}

/// A weight tensor as a row-major sparse matrix (CSR): row `r` holds the non-zeros
/// `row_ptr[r]..row_ptr[r + 1]`, at columns `col_idx[..]`.
///
/// Rows are the tensor's first dimension (output features or output channels), columns the
/// product of the rest, so a Gemm weight `[out, in]` and a Conv weight `[O, I, KH, KW]` both
/// become `out x (in * kh * kw)` matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseMatrix {
    /// Shape of the dense tensor this matrix encodes.
    pub shape: Vec<usize>,
    /// `rows + 1` offsets into `col_idx` and the values.
    pub row_ptr: Vec<u32>,
    /// Column of every non-zero, increasing within a row.
    pub col_idx: Vec<u32>,
    /// Value of every non-zero.
    pub values: SparseValues,
}

impl SparseMatrix {
    /// Number of rows (`shape[0]`).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Number of columns (product of `shape[1..]`).
    pub fn cols(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of stored non-zeros.
    pub fn nnz(&self) -> usize {
        self.col_idx.len()
    }

    /// Value of stored entry `j`.
    pub fn value(&self, j: usize) -> f32 {
        match &self.values {
            SparseValues::F32(v) => v[j],
            SparseValues::Codebook { centroids, codes } => centroids[codes[j] as usize],
        }
    }

    /// Builds the matrix of the non-zero entries of a dense tensor, with float values.
    pub fn from_dense(shape: &[usize], data: &[f32]) -> SparseMatrix {
        let rows = shape.first().copied().unwrap_or(1);
        let cols: usize = shape.iter().skip(1).product();
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let (mut col_idx, mut vals) = (Vec::new(), Vec::new());
        row_ptr.push(0);
        for r in 0..rows {
            for (c, &v) in data[r * cols..(r + 1) * cols].iter().enumerate() {
                if v != 0.0 {
                    col_idx.push(c as u32);
                    vals.push(v);
                }
            }
            row_ptr.push(col_idx.len() as u32);
        }
        SparseMatrix { shape: shape.to_vec(), row_ptr, col_idx, values: SparseValues::F32(vals) }
    }

    /// Checks that the matrix is consistent with its shape: `rows + 1` non-decreasing row
    /// pointers from 0 to `nnz`, strictly increasing columns below `cols` in every row, one value
    /// per entry, at most 65536 centroids and every code below their count. Writers call this
    /// before encoding; the error names `tensor`.
    pub fn check(&self, tensor: &str) -> Result<(), CodecError> {
        let err = |detail: String| CodecError::Matrix {
            tensor: tensor.to_string(),
            shape: self.shape.clone(),
            detail,
        };
        let numel = deepshrink_graph::shape::checked_numel(&self.shape)
            .ok_or_else(|| err("element count overflows".into()))?;
        let (rows, cols) = (self.rows(), self.cols());
        if cols > u32::MAX as usize || self.nnz() > u32::MAX as usize || self.nnz() > numel {
            return Err(err(format!("{} entries, {cols} columns: beyond u32 indices or numel", self.nnz())));
        }
        if self.row_ptr.len() != rows + 1 {
            return Err(err(format!("{} row pointers for {rows} rows", self.row_ptr.len())));
        }
        if self.row_ptr[0] != 0 || self.row_ptr[rows] as usize != self.nnz() {
            return Err(err(format!(
                "row pointers run {}..{}, expected 0..{}",
                self.row_ptr[0],
                self.row_ptr[rows],
                self.nnz()
            )));
        }
        for r in 0..rows {
            let (a, b) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
            if a > b {
                return Err(err(format!("row pointers decrease at row {r}")));
            }
            let row = &self.col_idx[a..b];
            if row.windows(2).any(|w| w[0] >= w[1]) || row.last().is_some_and(|&c| c as usize >= cols) {
                return Err(err(format!("row {r}: columns not strictly increasing below {cols}")));
            }
        }
        match &self.values {
            SparseValues::F32(v) if v.len() != self.nnz() => {
                Err(err(format!("{} values for {} entries", v.len(), self.nnz())))
            }
            SparseValues::Codebook { codes, .. } if codes.len() != self.nnz() => {
                Err(err(format!("{} codes for {} entries", codes.len(), self.nnz())))
            }
            SparseValues::Codebook { centroids, .. } if centroids.len() > 1 << 16 => {
                Err(err(format!("{} centroids, at most 65536", centroids.len())))
            }
            SparseValues::Codebook { centroids, codes } => {
                match codes.iter().position(|&c| c as usize >= centroids.len()) {
                    Some(j) => Err(CodecError::CodeOutOfRange {
                        tensor: tensor.to_string(),
                        entry: j,
                        code: codes[j] as u32,
                        k: centroids.len(),
                    }),
                    None => Ok(()),
                }
            }
            SparseValues::F32(_) => Ok(()),
        }
    }

    /// The dense tensor (zeros where nothing is stored).
    pub fn to_dense(&self) -> Tensor {
        let cols = self.cols();
        let mut out = vec![0.0f32; self.rows() * cols];
        for r in 0..self.rows() {
            for j in self.row_ptr[r] as usize..self.row_ptr[r + 1] as usize {
                out[r * cols + self.col_idx[j] as usize] = self.value(j);
            }
        }
        Tensor::f32(self.shape.clone(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_round_trip() {
        let data = [0.0, 1.5, 0.0, -2.0, 0.0, 0.0, 3.0, 0.0];
        let m = SparseMatrix::from_dense(&[2, 2, 2], &data);
        assert_eq!((m.rows(), m.cols(), m.nnz()), (2, 4, 3));
        assert_eq!(m.row_ptr, vec![0, 2, 3]);
        assert_eq!(m.to_dense().as_f32().unwrap(), &data);
    }
}
