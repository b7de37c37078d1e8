//! Dense f64 helpers on row-major buffers, with faer doing every decomposition.
//!
//! Weights are f32; decompositions run in f64 so the factors are as good as the data allows,
//! then are rounded once when written back.

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

/// A row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct M {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Elements, row-major.
    pub data: Vec<f64>,
}

impl M {
    /// Wraps row-major data.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> M {
        debug_assert_eq!(rows * cols, data.len());
        M { rows, cols, data }
    }

    /// Zeros.
    pub fn zeros(rows: usize, cols: usize) -> M {
        M::new(rows, cols, vec![0.0; rows * cols])
    }

    /// Element `(r, c)`.
    pub fn at(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    /// The transpose.
    pub fn t(&self) -> M {
        let mut out = M::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                out.data[c * self.rows + r] = self.data[r * self.cols + c];
            }
        }
        out
    }

    /// `self × other`.
    pub fn mul(&self, other: &M) -> M {
        assert_eq!(self.cols, other.rows, "matrix product shapes");
        let (a, b) = (self.to_faer(), other.to_faer());
        M::from_faer(&(&a * &b))
    }

    /// The first `k` columns.
    pub fn first_cols(&self, k: usize) -> M {
        let mut out = M::zeros(self.rows, k);
        for r in 0..self.rows {
            out.data[r * k..(r + 1) * k].copy_from_slice(&self.data[r * self.cols..][..k]);
        }
        out
    }

    /// Squared Frobenius norm.
    pub fn norm2(&self) -> f64 {
        self.data.iter().map(|v| v * v).sum()
    }

    fn to_faer(&self) -> Mat<f64> {
        Mat::from_fn(self.rows, self.cols, |r, c| self.data[r * self.cols + c])
    }

    fn from_faer(m: &Mat<f64>) -> M {
        let (rows, cols) = (m.nrows(), m.ncols());
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                data.push(m[(r, c)]);
            }
        }
        M { rows, cols, data }
    }
}

#[derive(Debug, Clone)]
/// A thin SVD `A = U diag(s) Vᵀ`: `U` is `rows x k`, `V` is `cols x k`, `k = min(rows, cols)`,
/// singular values non-increasing.
pub struct Svd {
    /// Left singular vectors (columns).
    pub u: M,
    /// Singular values.
    pub s: Vec<f64>,
    /// Right singular vectors (columns).
    pub v: M,
}

/// Thin SVD by faer. `None` if the iteration did not converge (or the input is not finite).
pub fn svd(a: &M) -> Option<Svd> {
    if a.data.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let f = a.to_faer();
    let d = f.thin_svd().ok()?;
    let s: Vec<f64> = d.S().column_vector().iter().copied().collect();
    Some(Svd { u: M::from_faer(&d.U().to_owned()), s, v: M::from_faer(&d.V().to_owned()) })
}

/// The leading `k` left singular vectors of `a` (`rows x k`).
pub fn leading_left(a: &M, k: usize) -> Option<M> {
    let d = svd(a)?;
    Some(d.u.first_cols(k.min(d.u.cols)))
}

/// Solves `X G = B` for `X` with `G` symmetric positive semi-definite (`G` is `k x k`, `B` is
/// `n x k`): Cholesky when `G` is definite, the pseudo-inverse otherwise.
pub fn solve_right_spd(g: &M, b: &M) -> M {
    let gf = g.to_faer();
    // X G = B  <=>  G Xᵀ = Bᵀ (G symmetric).
    let mut rhs = b.t().to_faer();
    if let Ok(llt) = gf.llt(Side::Lower) {
        llt.solve_in_place(&mut rhs);
        let x = M::from_faer(&rhs);
        if x.data.iter().all(|v| v.is_finite()) {
            return x.t();
        }
    }
    let pinv = match gf.thin_svd() {
        Ok(d) => d.pseudoinverse(),
        Err(_) => return M::zeros(b.rows, b.cols),
    };
    M::from_faer(&(&pinv * &b.t().to_faer())).t()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svd_reconstructs_and_sorts() {
        let a = M::new(3, 2, vec![3.0, 0.0, 0.0, -2.0, 0.0, 0.0]);
        let d = svd(&a).unwrap();
        assert!((d.s[0] - 3.0).abs() < 1e-12 && (d.s[1] - 2.0).abs() < 1e-12);
        let mut us = d.u.clone();
        for r in 0..us.rows {
            for c in 0..us.cols {
                us.data[r * us.cols + c] *= d.s[c];
            }
        }
        let back = us.mul(&d.v.t());
        for (x, y) in back.data.iter().zip(&a.data) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!(svd(&M::new(1, 1, vec![f64::NAN])).is_none());
    }

    #[test]
    fn solves_definite_and_singular_systems() {
        let g = M::new(2, 2, vec![2.0, 0.0, 0.0, 4.0]);
        let b = M::new(1, 2, vec![2.0, 8.0]);
        let x = solve_right_spd(&g, &b);
        assert!((x.data[0] - 1.0).abs() < 1e-12 && (x.data[1] - 2.0).abs() < 1e-12);
        // Singular: the minimum-norm solution.
        let g = M::new(2, 2, vec![1.0, 0.0, 0.0, 0.0]);
        let x = solve_right_spd(&g, &M::new(1, 2, vec![3.0, 0.0]));
        assert!((x.data[0] - 3.0).abs() < 1e-12 && x.data[1].abs() < 1e-12);
    }
}
