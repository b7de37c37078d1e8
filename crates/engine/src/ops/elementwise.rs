//! Activations, broadcasting Add and Mul, and Dropout.

use rayon::prelude::*;

use super::{broadcast_strides, for_each_index, reduce_to, Buf, Saved};
use crate::rng::Rng;
use deepshrink_graph::{shape::broadcast, Op};

const CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i], b[i])` in parallel chunks.
fn zip_map(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = vec![0.0f32; a.len()];
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(|(o, (a, b))| {
        o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (a, b))| *o = f(*a, *b));
    });
    out
}

fn map(a: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    zip_map(a, a, |x, _| f(x))
}

/// `+1` for `x >= 0` (zero included, as the XNOR-popcount kernel's sign bit), `−1` otherwise.
pub(crate) fn sign(x: f32) -> f32 {
    if x >= 0.0 {
        1.0
    } else {
        -1.0
    }
}

pub(super) fn unary_forward(op: &Op, x: &Buf) -> Buf {
    let y = match *op {
        Op::Relu => map(&x.data, |v| v.max(0.0)),
        Op::LeakyRelu { alpha } => map(&x.data, |v| if v >= 0.0 { v } else { alpha * v }),
        Op::Sigmoid => map(&x.data, |v| 1.0 / (1.0 + (-v).exp())),
        Op::Tanh => map(&x.data, f32::tanh),
        Op::Clip { min, max } => map(&x.data, |v| v.max(min).min(max)),
        Op::Sign => map(&x.data, sign),
        _ => unreachable!("not a unary op: {}", op.name()),
    };
    Buf::new(x.shape.clone(), y)
}

pub(super) fn unary_backward(op: &Op, x: &Buf, y: &Buf, dy: &[f32]) -> Vec<f32> {
    match *op {
        Op::Relu => zip_map(&x.data, dy, |x, g| if x > 0.0 { g } else { 0.0 }),
        Op::LeakyRelu { alpha } => zip_map(&x.data, dy, |x, g| if x >= 0.0 { g } else { alpha * g }),
        Op::Sigmoid => zip_map(&y.data, dy, |y, g| g * y * (1.0 - y)),
        Op::Tanh => zip_map(&y.data, dy, |y, g| g * (1.0 - y * y)),
        Op::Clip { min, max } => zip_map(&x.data, dy, |x, g| if x >= min && x <= max { g } else { 0.0 }),
        // Clipped straight-through estimator (Hubara et al. 2016; XNOR-Net): the gradient of
        // hardtanh, passed where |x| <= 1 and cut outside.
        Op::Sign => zip_map(&x.data, dy, |x, g| if x.abs() <= 1.0 { g } else { 0.0 }),
        _ => unreachable!("not a unary op: {}", op.name()),
    }
}

fn apply(op: &Op, a: f32, b: f32) -> f32 {
    match op {
        Op::Add => a + b,
        _ => a * b,
    }
}

pub(super) fn binary_forward(op: &Op, a: &Buf, b: &Buf) -> Buf {
    let shape = broadcast(&a.shape, &b.shape).expect("checked by shape inference");
    if a.shape == b.shape {
        let y = zip_map(&a.data, &b.data, |x, y| apply(op, x, y));
        return Buf::new(shape, y);
    }
    let (sa, sb) = (broadcast_strides(&a.shape, &shape), broadcast_strides(&b.shape, &shape));
    let mut y = vec![0.0f32; shape.iter().product()];
    for_each_index(&shape, |lin, idx| {
        let ia: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let ib: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        y[lin] = apply(op, a.data[ia], b.data[ib]);
    });
    Buf::new(shape, y)
}

pub(super) fn binary_backward(op: &Op, a: &Buf, b: &Buf, dy: &[f32], need: &[bool]) -> Vec<Option<Vec<f32>>> {
    let shape = broadcast(&a.shape, &b.shape).expect("checked by shape inference");
    let grad_of = |this: &Buf, other: &Buf| -> Vec<f32> {
        let full = match op {
            Op::Add => dy.to_vec(),
            _ => {
                // d(a*b)/da = b, broadcast to the output shape.
                let so = broadcast_strides(&other.shape, &shape);
                let mut g = vec![0.0f32; dy.len()];
                for_each_index(&shape, |lin, idx| {
                    let io: usize = idx.iter().zip(&so).map(|(i, s)| i * s).sum();
                    g[lin] = dy[lin] * other.data[io];
                });
                g
            }
        };
        reduce_to(&full, &shape, &this.shape)
    };
    vec![need[0].then(|| grad_of(a, b)), need[1].then(|| grad_of(b, a))]
}

pub(super) fn dropout_forward(x: &Buf, ratio: f32, train: bool, rng: &mut Rng) -> (Buf, Saved) {
    if !train || ratio <= 0.0 {
        return (x.clone(), Saved::None);
    }
    let keep = 1.0 / (1.0 - ratio);
    let mask: Vec<f32> = (0..x.data.len()).map(|_| if rng.uniform() < ratio { 0.0 } else { keep }).collect();
    let y = zip_map(&x.data, &mask, |x, m| x * m);
    (Buf::new(x.shape.clone(), y), Saved::Mask(mask))
}

pub(super) fn dropout_backward(saved: &Saved, dy: &[f32]) -> Vec<f32> {
    match saved {
        Saved::Mask(m) => zip_map(dy, m, |g, m| g * m),
        _ => dy.to_vec(),
    }
}
