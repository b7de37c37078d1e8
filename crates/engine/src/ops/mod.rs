//! Forward and backward of every op, each backward next to its forward.
//!
//! Shapes were checked by graph shape inference before any op runs, so the kernels here trust
//! them (and assert in debug builds).

mod conv;
mod dense;
mod depthwise;
mod elementwise;
mod layout;
mod norm;
mod pool;

use deepshrink_graph::Op;

use crate::rng::Rng;

/// An activation or weight during execution: a shape and row-major f32 data.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buf {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Buf {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Buf { shape, data }
    }
}

/// What a forward pass keeps for its backward pass.
#[derive(Debug, Default)]
pub(crate) enum Saved {
    #[default]
    None,
    /// Max pooling: index of the winning input cell for every output cell.
    ArgMax(Vec<u32>),
    /// Batch normalization in training: per-channel batch mean, 1/std and unbiased variance.
    Bn { mean: Vec<f32>, invstd: Vec<f32>, var_unbiased: Vec<f32> },
    /// Dropout: the per-element scale (0 or 1/(1-p)).
    Mask(Vec<f32>),
}

/// Runs one op forward. `train` selects training behaviour (batch statistics, dropout).
pub(crate) fn forward(op: &Op, ins: &[&Buf], train: bool, rng: &mut Rng) -> (Buf, Saved) {
    match op {
        Op::Gemm { alpha, beta, trans_a, trans_b } => {
            (dense::gemm_forward(ins, *alpha, *beta, *trans_a, *trans_b), Saved::None)
        }
        Op::MatMul => (dense::matmul_forward(ins[0], ins[1]), Saved::None),
        Op::Conv(a) => conv::forward(ins, a, train),
        Op::MaxPool(p) => pool::max_forward(ins[0], p),
        Op::AveragePool(p) => (pool::avg_forward(ins[0], p), Saved::None),
        Op::GlobalAveragePool => (pool::global_avg_forward(ins[0]), Saved::None),
        Op::BatchNormalization { epsilon, .. } => norm::forward(ins, *epsilon, train),
        Op::Dropout { ratio } => elementwise::dropout_forward(ins[0], *ratio, train, rng),
        Op::Add | Op::Mul => (elementwise::binary_forward(op, ins[0], ins[1]), Saved::None),
        Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh | Op::Clip { .. } | Op::Sign => {
            (elementwise::unary_forward(op, ins[0]), Saved::None)
        }
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity | Op::Transpose { .. } | Op::Concat { .. } => {
            (layout::forward(op, ins), Saved::None)
        }
        Op::Softmax { axis } => (layout::softmax_forward(ins[0], *axis), Saved::None),
    }
}

/// The output shape of an op that only reshapes (Flatten, Reshape, Identity, and Dropout outside
/// training), so callers can move the input's data instead of copying it.
pub(crate) fn reshape_only(op: &Op, shape: &[usize], train: bool) -> Option<Vec<usize>> {
    use deepshrink_graph::shape::{reshape_target, resolve_axis};
    match op {
        Op::Flatten { axis } => {
            let a = resolve_axis(*axis, shape.len() + 1)?;
            Some(vec![shape[..a].iter().product(), shape[a..].iter().product()])
        }
        Op::Reshape { shape: spec } => reshape_target(shape, spec),
        Op::Identity => Some(shape.to_vec()),
        Op::Dropout { .. } if !train => Some(shape.to_vec()),
        _ => None,
    }
}

/// Runs one op backward: given the output gradient `dy`, returns the gradient of each input for
/// which `need[i]` is true (None for the others).
pub(crate) fn backward(
    op: &Op,
    ins: &[&Buf],
    out: &Buf,
    saved: &Saved,
    dy: &[f32],
    need: &[bool],
) -> Vec<Option<Vec<f32>>> {
    match op {
        Op::Gemm { alpha, beta, trans_a, trans_b } => {
            dense::gemm_backward(ins, dy, *alpha, *beta, *trans_a, *trans_b, need)
        }
        Op::MatMul => dense::matmul_backward(ins[0], ins[1], dy, need),
        Op::Conv(a) => conv::backward(ins, a, dy, need),
        Op::MaxPool(_) => vec![Some(pool::max_backward(ins[0], saved, dy))],
        Op::AveragePool(p) => vec![Some(pool::avg_backward(ins[0], p, dy))],
        Op::GlobalAveragePool => vec![Some(pool::global_avg_backward(ins[0], dy))],
        Op::BatchNormalization { epsilon, .. } => norm::backward(ins, saved, *epsilon, dy, need),
        Op::Dropout { .. } => vec![Some(elementwise::dropout_backward(saved, dy))],
        Op::Add | Op::Mul => elementwise::binary_backward(op, ins[0], ins[1], dy, need),
        Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh | Op::Clip { .. } | Op::Sign => {
            vec![Some(elementwise::unary_backward(op, ins[0], out, dy))]
        }
        Op::Flatten { .. } | Op::Reshape { .. } | Op::Identity | Op::Transpose { .. } | Op::Concat { .. } => {
            layout::backward(op, ins, dy)
        }
        Op::Softmax { axis } => vec![Some(layout::softmax_backward(out, *axis, dy))],
    }
}

/// Splits a shape around `axis` into (outer, axis length, inner) element counts.
pub(crate) fn split_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

/// Sums `g` (of shape `from`) down to shape `to`, undoing numpy broadcasting.
pub(crate) fn reduce_to(g: &[f32], from: &[usize], to: &[usize]) -> Vec<f32> {
    if from == to {
        return g.to_vec();
    }
    let n = from.len();
    let inner: usize = to.iter().product();
    if to.len() <= n && from[n - to.len()..] == *to && inner > 0 {
        // `to` is a suffix of `from` (a bias): sum the rows.
        let mut out = vec![0.0; inner];
        for row in g.chunks(inner) {
            out.iter_mut().zip(row).for_each(|(o, v)| *o += v);
        }
        return out;
    }
    let to_full: Vec<usize> =
        (0..n).map(|i| if i + to.len() >= n { to[i + to.len() - n] } else { 1 }).collect();
    let mut out = vec![0.0; to_full.iter().product()];
    let strides = broadcast_strides(&to_full, from);
    for_each_index(from, |lin, idx| {
        let o: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out[o] += g[lin];
    });
    out
}

/// Strides into a tensor of shape `small` (same rank as `big`, broadcastable) for indices of `big`
/// (0 on broadcast dimensions).
pub(crate) fn broadcast_strides(small: &[usize], big: &[usize]) -> Vec<usize> {
    let n = big.len();
    let full: Vec<usize> =
        (0..n).map(|i| if i + small.len() >= n { small[i + small.len() - n] } else { 1 }).collect();
    let mut strides = vec![0; n];
    let mut s = 1;
    for i in (0..n).rev() {
        strides[i] = if full[i] == 1 && big[i] != 1 { 0 } else { s };
        s *= full[i];
    }
    strides
}

/// Calls `f(linear_index, multi_index)` for every element of `shape`, in row-major order.
pub(crate) fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let total: usize = shape.iter().product();
    let mut idx = vec![0; shape.len()];
    for lin in 0..total {
        f(lin, &idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}
