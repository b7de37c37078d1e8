//! Block-circulant tensors (`circulant_f32`, tag 9): a `rows x cols` weight made of `b x b`
//! circulant blocks, stored as the `p · q · b` defining values and an optional sign seed
//! (docs/FORMAT.md). Cheng et al. 2015 ("An exploration of parameter redundancy in deep networks
//! with circulant projections") is one block (`b = max(rows, cols)`) with a random sign diagonal;
//! smaller blocks are Ding et al. 2017 (CirCNN).

use deepshrink_graph::Tensor;

use crate::bits::{put_varint, vlen, ByteReader};
use crate::hashing::bucket;
use crate::CodecError;

/// A block-circulant weight matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct CirculantTensor {
    /// Shape of the dense matrix: `[rows, cols]`.
    pub shape: Vec<usize>,
    /// Block size `b`: `1..=max(rows, cols)`.
    pub block: usize,
    /// Seed of the sign diagonal (input column `c` is negated where `bucket(seed, c, 1)` says
    /// so), or `None` for no signs.
    pub sign_seed: Option<u64>,
    /// `p · q · b` defining values, block `(i, j)` at `(i · q + j) · b`, with `p = ceil(rows/b)`
    /// and `q = ceil(cols/b)`.
    pub values: Vec<f32>,
}

impl CirculantTensor {
    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Columns of the matrix.
    pub fn cols(&self) -> usize {
        self.shape.get(1).copied().unwrap_or(0)
    }

    /// Number of defining values for a `rows x cols` matrix with blocks of `block`.
    pub fn value_count(rows: usize, cols: usize, block: usize) -> usize {
        rows.div_ceil(block) * cols.div_ceil(block) * block
    }

    /// Sign of every input column (`true`: negative), if the tensor has a sign diagonal.
    pub fn negative(&self) -> Option<Vec<bool>> {
        self.sign_seed.map(|seed| column_signs(seed, self.cols()))
    }

    /// Where entry `(r, c)` reads its value: the index into `values`.
    pub fn index(rows_cols: (usize, usize), block: usize, r: usize, c: usize) -> usize {
        let q = rows_cols.1.div_ceil(block);
        ((r / block) * q + c / block) * block + (r % block + block - c % block) % block
    }

    /// The dense matrix.
    pub fn to_dense(&self) -> Tensor {
        let (rows, cols, b) = (self.rows(), self.cols(), self.block);
        let neg = self.negative();
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                let v = self.values[Self::index((rows, cols), b, r, c)];
                data.push(if neg.as_ref().is_some_and(|n| n[c]) { -v } else { v });
            }
        }
        Tensor::f32(self.shape.clone(), data)
    }

    /// Payload bytes: `1 + vlen(b) + [8] + 4 · p · q · b`.
    pub fn payload_bytes(&self) -> usize {
        1 + vlen(self.block as u64) + if self.sign_seed.is_some() { 8 } else { 0 } + 4 * self.values.len()
    }

    /// Checks the shape, block size and value count (the reader and writer do; a model built in
    /// memory should be checked before [`CirculantTensor::to_dense`], which indexes the values).
    pub fn check(&self, name: &str) -> Result<(), CodecError> {
        let bad =
            |detail: String| CodecError::Matrix { tensor: name.into(), shape: self.shape.clone(), detail };
        let (rows, cols) = (self.rows(), self.cols());
        if self.shape.len() != 2 || rows == 0 || cols == 0 {
            return Err(bad("a circulant tensor is a non-empty matrix".into()));
        }
        if self.block == 0 || self.block > rows.max(cols) {
            return Err(bad(format!("block {} not in 1..={}", self.block, rows.max(cols))));
        }
        let n = Self::value_count(rows, cols, self.block);
        if self.values.len() != n {
            return Err(bad(format!("{} values, block {} needs {n}", self.values.len(), self.block)));
        }
        Ok(())
    }
}

/// The sign of each of `cols` input columns under `seed` (`true`: negative): the sign bit of
/// [`bucket`]`(seed, c, 1)`.
pub fn column_signs(seed: u64, cols: usize) -> Vec<bool> {
    (0..cols).map(|c| bucket(seed, c as u64, 1).1).collect()
}

/// Writes the payload; returns the bytes of the values.
pub(crate) fn write(out: &mut Vec<u8>, name: &str, t: &CirculantTensor) -> Result<usize, CodecError> {
    t.check(name)?;
    out.push(t.sign_seed.is_some() as u8);
    put_varint(out, t.block as u64);
    if let Some(seed) = t.sign_seed {
        out.extend_from_slice(&seed.to_le_bytes());
    }
    t.values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    Ok(4 * t.values.len())
}

/// Reads the payload of a tensor of `shape`; returns it and the value bytes.
pub(crate) fn read(r: &mut ByteReader, shape: Vec<usize>) -> Result<(CirculantTensor, usize), CodecError> {
    let name = r.section;
    if shape.len() != 2 || shape.contains(&0) {
        return Err(CodecError::range(
            name,
            "circulant shape",
            format!("{shape:?} is not a non-empty matrix"),
        ));
    }
    let flags = r.u8("circulant flags")?;
    if flags > 1 {
        return Err(CodecError::range(name, "circulant flags", format!("byte {flags:#04x}")));
    }
    let block = r.varint_max("block size", shape[0].max(shape[1]) as u64)?;
    if block == 0 {
        return Err(CodecError::range(name, "block size", "0"));
    }
    let sign_seed = if flags & 1 == 1 {
        Some(u64::from_le_bytes(r.take(8, "sign seed")?.try_into().expect("8 bytes")))
    } else {
        None
    };
    let n = CirculantTensor::value_count(shape[0], shape[1], block);
    let bytes = r.take(n.saturating_mul(4), "circulant values")?;
    let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((CirculantTensor { shape, block, sign_seed, values }, 4 * n))
}
