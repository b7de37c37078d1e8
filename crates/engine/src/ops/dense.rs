//! Gemm and MatMul.

use super::{broadcast_strides, for_each_index, reduce_to, Buf};
use crate::linalg::{matmul, matmul_strided, Mat};
use deepshrink_graph::shape::{broadcast, gemm_shape, matmul_shape};

fn a_view(a: &Buf, trans: bool) -> Mat<'_> {
    let m = Mat::rm(&a.data, a.shape[0], a.shape[1]);
    if trans {
        m.t()
    } else {
        m
    }
}

/// `Y = alpha A' B' + beta C`.
pub(super) fn gemm_forward(ins: &[&Buf], alpha: f32, beta: f32, ta: bool, tb: bool) -> Buf {
    let [m, _, n] = gemm_shape(&ins[0].shape, &ins[1].shape, ta, tb).expect("checked by shape inference");
    let mut y = vec![0.0; m * n];
    let mut acc = false;
    if let Some(c) = ins.get(2) {
        if beta != 0.0 {
            let strides = broadcast_strides(&c.shape, &[m, n]);
            if c.data.len() == n && strides == [0, 1] {
                for row in y.chunks_mut(n) {
                    row.iter_mut().zip(&c.data).for_each(|(y, c)| *y = beta * c);
                }
            } else {
                for_each_index(&[m, n], |lin, idx| {
                    y[lin] = beta * c.data[idx[0] * strides[0] + idx[1] * strides[1]]
                });
            }
            acc = true;
        }
    }
    matmul(&mut y, a_view(ins[0], ta), a_view(ins[1], tb), acc, alpha);
    Buf::new(vec![m, n], y)
}

pub(super) fn gemm_backward(
    ins: &[&Buf],
    dy: &[f32],
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
    need: &[bool],
) -> Vec<Option<Vec<f32>>> {
    let [m, k, n] = gemm_shape(&ins[0].shape, &ins[1].shape, ta, tb).expect("checked by shape inference");
    let dyv = Mat::rm(dy, m, n);
    let mut out = vec![None, None, None];
    if need[0] {
        // dA' = alpha dY B'^T, stored transposed when A is used transposed.
        let mut da = vec![0.0; m * k];
        let (rs, cs) = if ta { (1, m) } else { (k, 1) };
        matmul_strided(&mut da, rs, cs, dyv, a_view(ins[1], tb).t(), false, alpha);
        out[0] = Some(da);
    }
    if need[1] {
        let mut db = vec![0.0; k * n];
        let (rs, cs) = if tb { (1, k) } else { (n, 1) };
        matmul_strided(&mut db, rs, cs, a_view(ins[0], ta).t(), dyv, false, alpha);
        out[1] = Some(db);
    }
    if let (Some(c), Some(true)) = (ins.get(2), need.get(2)) {
        let mut dc = reduce_to(dy, &[m, n], &c.shape);
        dc.iter_mut().for_each(|v| *v *= beta);
        out[2] = Some(dc);
    }
    out
}

/// Batch layout of a MatMul: output batch shape and, per output batch index, the matrix offsets
/// into A and B.
fn batches(a: &[usize], b: &[usize]) -> (Vec<usize>, Vec<(usize, usize)>) {
    let ab = &a[..a.len() - 2];
    let bb = &b[..b.len() - 2];
    let ob = broadcast(ab, bb).expect("checked by shape inference");
    let sa = broadcast_strides(ab, &ob);
    let sb = broadcast_strides(bb, &ob);
    let mut offs = Vec::new();
    for_each_index(&ob, |_, idx| {
        let oa: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let obb: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        offs.push((oa, obb));
    });
    (ob, offs)
}

fn dims(s: &[usize]) -> (usize, usize) {
    (s[s.len() - 2], s[s.len() - 1])
}

pub(super) fn matmul_forward(a: &Buf, b: &Buf) -> Buf {
    let shape = matmul_shape(&a.shape, &b.shape).expect("checked by shape inference");
    let ((m, k), (_, n)) = (dims(&a.shape), dims(&b.shape));
    let mut y = vec![0.0; shape.iter().product()];
    if b.shape.len() == 2 {
        // Every batch of A shares B: one product over all rows.
        let rows = a.data.len() / k;
        matmul(&mut y, Mat::rm(&a.data, rows, k), Mat::rm(&b.data, k, n), false, 1.0);
    } else {
        let (_, offs) = batches(&a.shape, &b.shape);
        for (i, (oa, ob)) in offs.into_iter().enumerate() {
            let am = Mat::rm(&a.data[oa * m * k..], m, k);
            let bm = Mat::rm(&b.data[ob * k * n..], k, n);
            matmul(&mut y[i * m * n..(i + 1) * m * n], am, bm, false, 1.0);
        }
    }
    Buf::new(shape, y)
}

pub(super) fn matmul_backward(a: &Buf, b: &Buf, dy: &[f32], need: &[bool]) -> Vec<Option<Vec<f32>>> {
    let ((m, k), (_, n)) = (dims(&a.shape), dims(&b.shape));
    let (_, offs) = batches(&a.shape, &b.shape);
    let mut da = need[0].then(|| vec![0.0; a.data.len()]);
    let mut db = need[1].then(|| vec![0.0; b.data.len()]);
    for (i, &(oa, ob)) in offs.iter().enumerate() {
        let g = Mat::rm(&dy[i * m * n..(i + 1) * m * n], m, n);
        if let Some(da) = da.as_mut() {
            let bm = Mat::rm(&b.data[ob * k * n..], k, n);
            matmul(&mut da[oa * m * k..(oa + 1) * m * k], g, bm.t(), true, 1.0);
        }
        if let Some(db) = db.as_mut() {
            let am = Mat::rm(&a.data[oa * m * k..], m, k);
            matmul(&mut db[ob * k * n..(ob + 1) * k * n], am.t(), g, true, 1.0);
        }
    }
    vec![da, db]
}
