//! Relative (gap) indices with filler symbols, Han et al. 2016 Fig. 2 (docs/FORMAT.md,
//! "Sparse positions").
//!
//! Positions are row-major flattened over the whole tensor, so gaps run across rows. With
//! `E = 2^b - 1`, a gap of `d` skipped zeros is written as `floor(d / E)` fillers `E` followed by
//! `d mod E`. Fillers carry no value, so decoding returns exactly the encoded CSR matrix.
//!
//! Size: `n_sym = nnz + Σ_j floor(d_j / E)` symbols of `b` bits each when fixed-width.

use crate::{CodecError, SparseMatrix};

/// The gap symbols of a (checked) matrix's stored positions, for index width `b` in 1..=16.
pub fn gap_symbols(m: &SparseMatrix, b: u32) -> Vec<u32> {
    let escape = (1u64 << b) - 1;
    let cols = m.cols() as u64;
    let mut out = Vec::with_capacity(m.nnz());
    let mut next = 0u64; // first position not yet covered (prev + 1)
    for r in 0..m.rows() {
        for j in m.row_ptr[r] as usize..m.row_ptr[r + 1] as usize {
            let p = r as u64 * cols + m.col_idx[j] as u64;
            let d = p - next;
            out.extend(std::iter::repeat_n(escape as u32, (d / escape) as usize));
            out.push((d % escape) as u32);
            next = p + 1;
        }
    }
    out
}

/// Number of gap symbols [`gap_symbols`] produces, without building them.
pub fn gap_symbol_count(m: &SparseMatrix, b: u32) -> usize {
    let escape = (1u64 << b) - 1;
    let cols = m.cols() as u64;
    let mut n = 0u64;
    let mut next = 0u64;
    for r in 0..m.rows() {
        for j in m.row_ptr[r] as usize..m.row_ptr[r + 1] as usize {
            let p = r as u64 * cols + m.col_idx[j] as u64;
            n += (p - next) / escape + 1;
            next = p + 1;
        }
    }
    n as usize
}

/// Rebuilds CSR `row_ptr` and `col_idx` from gap symbols, checking that exactly `nnz` entries
/// are defined, all below `rows * cols`, and that the stream does not end with a filler.
pub fn csr_from_gaps(
    symbols: &[u32],
    b: u32,
    nnz: usize,
    rows: usize,
    cols: usize,
    tensor: &str,
) -> Result<(Vec<u32>, Vec<u32>), CodecError> {
    let err = |detail: String| CodecError::IndexOverflow { tensor: tensor.to_string(), detail };
    let escape = (1u64 << b) - 1;
    let numel = rows as u64 * cols as u64;
    let mut row_ptr = Vec::with_capacity(rows + 1);
    row_ptr.push(0u32);
    let mut col_idx = Vec::with_capacity(nnz);
    let mut cursor = 0u64;
    for (i, &s) in symbols.iter().enumerate() {
        if s as u64 == escape {
            cursor += escape;
            continue;
        }
        let p = cursor + s as u64;
        if p >= numel {
            return Err(err(format!("symbol {i} addresses position {p} of a tensor of {numel} elements")));
        }
        if col_idx.len() == nnz {
            return Err(err(format!("more than the {nnz} declared entries")));
        }
        let row = (p / cols as u64) as usize;
        while row_ptr.len() <= row {
            row_ptr.push(col_idx.len() as u32);
        }
        col_idx.push((p % cols as u64) as u32);
        cursor = p + 1;
    }
    if col_idx.len() != nnz {
        return Err(err(format!("{} entries decoded, {nnz} declared", col_idx.len())));
    }
    if symbols.last().is_some_and(|&s| s as u64 == escape) {
        return Err(err("stream ends with a filler".into()));
    }
    while row_ptr.len() <= rows {
        row_ptr.push(col_idx.len() as u32);
    }
    Ok((row_ptr, col_idx))
}

/// CSR of a tensor with every position stored (index coding "none").
pub fn csr_full(rows: usize, cols: usize) -> (Vec<u32>, Vec<u32>) {
    let row_ptr = (0..=rows).map(|r| (r * cols) as u32).collect();
    let col_idx = (0..rows).flat_map(|_| 0..cols as u32).collect();
    (row_ptr, col_idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SparseValues;

    fn matrix(shape: &[usize], positions: &[usize]) -> SparseMatrix {
        let mut dense = vec![0.0f32; shape.iter().product()];
        for &p in positions {
            dense[p] = 1.0;
        }
        SparseMatrix::from_dense(shape, &dense)
    }

    #[test]
    fn paper_figure_2_example() {
        // Han et al. 2016 Fig. 2 with 3-bit gaps: entries at 1, 4 and 15 (a gap of 10 > 7).
        let m = matrix(&[16], &[1, 4, 15]);
        let s = gap_symbols(&m, 3);
        assert_eq!(s, vec![1, 2, 7, 3]);
        assert_eq!(gap_symbol_count(&m, 3), 4);
        let (rp, ci) = csr_from_gaps(&s, 3, 3, 16, 1, "t").unwrap();
        assert_eq!((rp, ci), (m.row_ptr.clone(), m.col_idx.clone()));
    }

    #[test]
    fn gap_of_exact_multiple_of_escape() {
        let m = matrix(&[2, 7], &[7, 13]);
        let s = gap_symbols(&m, 3);
        assert_eq!(s, vec![7, 0, 5]);
        let (rp, ci) = csr_from_gaps(&s, 3, 2, 2, 7, "t").unwrap();
        assert_eq!((rp, ci), (m.row_ptr.clone(), m.col_idx.clone()));
        if let SparseValues::F32(v) = &m.values {
            assert_eq!(v.len(), 2);
        }
    }

    #[test]
    fn rejects_out_of_range_and_bad_counts() {
        assert!(csr_from_gaps(&[7, 7, 3], 3, 1, 4, 4, "t").is_err());
        assert!(csr_from_gaps(&[0, 0], 3, 1, 4, 4, "t").is_err());
        assert!(csr_from_gaps(&[0], 3, 2, 4, 4, "t").is_err());
        assert!(csr_from_gaps(&[0, 7], 3, 1, 4, 4, "t").is_err());
        assert!(csr_from_gaps(&[0], 3, 1, 0, 4, "t").is_err());
    }
}
