//! Ops that move data without arithmetic (Flatten, Reshape, Identity, Transpose, Concat) and
//! Softmax.

use super::{for_each_index, split_axis, Buf};
use deepshrink_graph::{
    shape::{reshape_target, resolve_axis},
    Op,
};

fn perm_of(op_perm: &[usize], rank: usize) -> Vec<usize> {
    if op_perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        op_perm.to_vec()
    }
}

/// Transposes `data` of `shape` by `perm`.
fn transpose(data: &[f32], shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let mut in_strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = vec![0.0f32; data.len()];
    for_each_index(&out_shape, |lin, idx| {
        out[lin] = data[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()];
    });
    (out_shape, out)
}

pub(super) fn forward(op: &Op, ins: &[&Buf]) -> Buf {
    let x = ins[0];
    match op {
        Op::Flatten { axis } => {
            let a = resolve_axis(*axis, x.shape.len() + 1).expect("checked by shape inference");
            Buf::new(vec![x.shape[..a].iter().product(), x.shape[a..].iter().product()], x.data.clone())
        }
        Op::Reshape { shape } => {
            Buf::new(reshape_target(&x.shape, shape).expect("checked by shape inference"), x.data.clone())
        }
        Op::Identity => x.clone(),
        Op::Transpose { perm } => {
            let (s, d) = transpose(&x.data, &x.shape, &perm_of(perm, x.shape.len()));
            Buf::new(s, d)
        }
        Op::Concat { axis } => {
            let a = resolve_axis(*axis, x.shape.len()).expect("checked by shape inference");
            let (outer, _, inner) = split_axis(&x.shape, a);
            let mut shape = x.shape.clone();
            shape[a] = ins.iter().map(|b| b.shape[a]).sum();
            let mut out = Vec::with_capacity(shape.iter().product());
            for o in 0..outer {
                for b in ins {
                    let len = b.shape[a] * inner;
                    out.extend_from_slice(&b.data[o * len..(o + 1) * len]);
                }
            }
            Buf::new(shape, out)
        }
        _ => unreachable!("not a layout op: {}", op.name()),
    }
}

pub(super) fn backward(op: &Op, ins: &[&Buf], dy: &[f32]) -> Vec<Option<Vec<f32>>> {
    let x = ins[0];
    match op {
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity => vec![Some(dy.to_vec())],
        Op::Transpose { perm } => {
            let perm = perm_of(perm, x.shape.len());
            let mut inv = vec![0; perm.len()];
            perm.iter().enumerate().for_each(|(i, &p)| inv[p] = i);
            let out_shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
            vec![Some(transpose(dy, &out_shape, &inv).1)]
        }
        Op::Concat { axis } => {
            let a = resolve_axis(*axis, x.shape.len()).expect("checked by shape inference");
            let (outer, _, inner) = split_axis(&x.shape, a);
            let total: usize = ins.iter().map(|b| b.shape[a]).sum::<usize>() * inner;
            let mut offset = 0;
            ins.iter()
                .map(|b| {
                    let len = b.shape[a] * inner;
                    let g =
                        (0..outer).flat_map(|o| dy[o * total + offset..][..len].iter().copied()).collect();
                    offset += len;
                    Some(g)
                })
                .collect()
        }
        _ => unreachable!("not a layout op: {}", op.name()),
    }
}

pub(super) fn softmax_forward(x: &Buf, axis: i64) -> Buf {
    let a = resolve_axis(axis, x.shape.len()).expect("checked by shape inference");
    let (outer, n, inner) = split_axis(&x.shape, a);
    let mut y = vec![0.0f32; x.data.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + i;
            let max = (0..n).map(|k| x.data[at(k)]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for k in 0..n {
                let e = (x.data[at(k)] - max).exp();
                y[at(k)] = e;
                sum += e;
            }
            (0..n).for_each(|k| y[at(k)] /= sum);
        }
    }
    Buf::new(x.shape.clone(), y)
}

pub(super) fn softmax_backward(y: &Buf, axis: i64, dy: &[f32]) -> Vec<f32> {
    let a = resolve_axis(axis, y.shape.len()).expect("checked by shape inference");
    let (outer, n, inner) = split_axis(&y.shape, a);
    let mut dx = vec![0.0f32; dy.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + i;
            let dot: f32 = (0..n).map(|k| dy[at(k)] * y.data[at(k)]).sum();
            (0..n).for_each(|k| dx[at(k)] = y.data[at(k)] * (dy[at(k)] - dot));
        }
    }
    dx
}
