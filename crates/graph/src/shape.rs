//! Shape inference and the shape rules each op follows (shared with the engine).

use std::collections::HashMap;

use crate::{ConvAttrs, Graph, GraphError, Node, Op, PoolAttrs};

/// Concrete shapes of every value in a graph for one batch size.
pub type Shapes = HashMap<String, Vec<usize>>;

/// Output size of a convolution or pooling window along one axis, `None` if the window does not
/// fit.
pub fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pad;
    if padded < span || stride == 0 {
        return None;
    }
    let n = padded - span;
    Some(if ceil { n.div_ceil(stride) + 1 } else { n / stride + 1 })
}

/// Number of elements of a shape, `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Numpy broadcast of two shapes, `None` if they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// An axis that may be negative, resolved against a rank.
pub fn resolve_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r.max(1)).contains(&a).then_some(a as usize)
}

/// Target shape of a Reshape (`0` copies, `-1` inferred).
pub fn reshape_target(input: &[usize], spec: &[i64]) -> Option<Vec<usize>> {
    let total = checked_numel(input)?;
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            0 => out.push(*input.get(i)?),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            s if s > 0 => out.push(s as usize),
            _ => return None,
        }
    }
    let known = checked_numel(&out)?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return None;
        }
        out[i] = total / known;
    }
    (checked_numel(&out)? == total).then_some(out)
}

/// Output shape of a 2-D pooling.
pub fn pool_shape(x: &[usize], p: &PoolAttrs) -> Option<Vec<usize>> {
    if x.len() != 4 {
        return None;
    }
    let oh = window_out(x[2], p.kernel[0], p.strides[0], p.pads[0] + p.pads[2], 1, p.ceil_mode)?;
    let ow = window_out(x[3], p.kernel[1], p.strides[1], p.pads[1] + p.pads[3], 1, p.ceil_mode)?;
    Some(vec![x[0], x[1], oh, ow])
}

/// Output shape of a 2-D convolution with weight shape `w` (OIHW).
pub fn conv_shape(x: &[usize], w: &[usize], a: &ConvAttrs) -> Result<Vec<usize>, String> {
    if x.len() != 4 || w.len() != 4 {
        return Err(format!("expects 4-D input and weight, got {x:?} and {w:?}"));
    }
    if a.group == 0
        || !x[1].is_multiple_of(a.group)
        || !w[0].is_multiple_of(a.group)
        || x[1] / a.group != w[1]
    {
        return Err(format!("input {x:?} does not fit weight {w:?} with group {}", a.group));
    }
    let oh = window_out(x[2], w[2], a.strides[0], a.pads[0] + a.pads[2], a.dilations[0], false);
    let ow = window_out(x[3], w[3], a.strides[1], a.pads[1] + a.pads[3], a.dilations[1], false);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok(vec![x[0], w[0], oh, ow]),
        _ => Err(format!("kernel {:?} does not fit input {x:?}", &w[2..])),
    }
}

/// Output shape of `A' B'` for a Gemm.
pub fn gemm_shape(a: &[usize], b: &[usize], trans_a: bool, trans_b: bool) -> Option<[usize; 3]> {
    if a.len() != 2 || b.len() != 2 {
        return None;
    }
    let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (k2, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    (k == k2).then_some([m, k, n])
}

/// Output shape of a numpy-style MatMul.
pub fn matmul_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
        return None;
    }
    let mut out = broadcast(&a[..a.len() - 2], &b[..b.len() - 2])?;
    out.push(a[a.len() - 2]);
    out.push(b[b.len() - 1]);
    Some(out)
}

fn node_shape(n: &Node, ins: &[&Vec<usize>]) -> Result<Vec<usize>, String> {
    let x = ins[0];
    match &n.op {
        Op::Gemm { trans_a, trans_b, .. } => {
            let [m, _, nn] = gemm_shape(x, ins[1], *trans_a, *trans_b)
                .ok_or_else(|| format!("A {x:?} and B {:?} do not multiply", ins[1]))?;
            if let Some(c) = ins.get(2) {
                if broadcast(&[m, nn], c).as_deref() != Some(&[m, nn][..]) {
                    return Err(format!("C {c:?} does not broadcast to [{m}, {nn}]"));
                }
            }
            Ok(vec![m, nn])
        }
        Op::MatMul => {
            matmul_shape(x, ins[1]).ok_or_else(|| format!("{x:?} and {:?} do not multiply", ins[1]))
        }
        Op::Conv(a) => {
            let out = conv_shape(x, ins[1], a)?;
            if let Some(b) = ins.get(2) {
                if **b != [ins[1][0]] {
                    return Err(format!("bias {b:?} does not match {} output channels", ins[1][0]));
                }
            }
            Ok(out)
        }
        Op::MaxPool(p) | Op::AveragePool(p) => {
            pool_shape(x, p).ok_or_else(|| format!("window {:?} does not fit input {x:?}", p.kernel))
        }
        Op::GlobalAveragePool => {
            if x.len() < 3 {
                return Err(format!("expects at least 3-D input, got {x:?}"));
            }
            let mut o = x.clone();
            o[2..].iter_mut().for_each(|d| *d = 1);
            Ok(o)
        }
        Op::BatchNormalization { .. } => {
            if x.len() < 2 {
                return Err(format!("expects at least 2-D input, got {x:?}"));
            }
            for p in &ins[1..] {
                if **p != [x[1]] {
                    return Err(format!("parameter {p:?} does not match {} channels", x[1]));
                }
            }
            Ok(x.clone())
        }
        Op::Flatten { axis } => {
            let a = resolve_axis(*axis, x.len() + 1)
                .ok_or_else(|| format!("axis {axis} out of range for {x:?}"))?;
            Ok(vec![x[..a].iter().product(), x[a..].iter().product()])
        }
        Op::Reshape { shape } => {
            reshape_target(x, shape).ok_or_else(|| format!("cannot reshape {x:?} to {shape:?}"))
        }
        Op::Transpose { perm } => {
            let perm: Vec<usize> = if perm.is_empty() { (0..x.len()).rev().collect() } else { perm.clone() };
            let mut seen = vec![false; x.len()];
            if perm.len() != x.len()
                || perm.iter().any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true))
            {
                return Err(format!("permutation {perm:?} does not fit {x:?}"));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Add | Op::Mul => {
            broadcast(x, ins[1]).ok_or_else(|| format!("{x:?} and {:?} do not broadcast", ins[1]))
        }
        Op::Concat { axis } => {
            let a =
                resolve_axis(*axis, x.len()).ok_or_else(|| format!("axis {axis} out of range for {x:?}"))?;
            let mut out = x.clone();
            for other in &ins[1..] {
                if other.len() != x.len() || (0..x.len()).any(|i| i != a && other[i] != x[i]) {
                    return Err(format!("{other:?} does not concatenate with {x:?} on axis {a}"));
                }
                out[a] += other[a];
            }
            Ok(out)
        }
        Op::Softmax { axis } => {
            resolve_axis(*axis, x.len()).ok_or_else(|| format!("axis {axis} out of range for {x:?}"))?;
            Ok(x.clone())
        }
        Op::Relu
        | Op::LeakyRelu { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::Clip { .. }
        | Op::Dropout { .. }
        | Op::Sign
        | Op::Identity => Ok(x.clone()),
    }
}

impl Graph {
    /// Infers the shape of every value for a batch of `batch` samples, checking each node's
    /// operands. Fails on the first node whose operands do not fit, naming it.
    pub fn infer_shapes(&self, batch: usize) -> Result<Shapes, GraphError> {
        self.validate()?;
        let mut shapes: Shapes = HashMap::new();
        for (name, t) in &self.weights {
            shapes.insert(name.clone(), t.shape.clone());
        }
        for i in &self.inputs {
            shapes.insert(i.name.clone(), i.concrete(batch));
        }
        for n in &self.nodes {
            let ins: Vec<&Vec<usize>> = n.inputs.iter().map(|i| &shapes[i]).collect();
            let out = node_shape(n, &ins)
                .and_then(|s| checked_numel(&s).map(|_| s).ok_or_else(|| "output size overflows".to_string()))
                .map_err(|detail| GraphError::Shape { node: n.name.clone(), op: n.op.name(), detail })?;
            for o in &n.outputs {
                shapes.insert(o.clone(), out.clone());
            }
        }
        Ok(shapes)
    }
}
