//! One ONNX node → one [`Op`] (or, for `Constant`, a weight).

use std::collections::{HashMap, HashSet};

use deepshrink_graph::{ConvAttrs, Op, PoolAttrs, Tensor};

use super::attrs::Attrs;
use super::proto::NodeProto;
use super::tensor;
use crate::IoError;

/// Largest kernel size, stride, dilation or padding accepted; larger values are treated as
/// corrupt (they would only overflow shape arithmetic).
const MAX_WINDOW: i64 = 1 << 20;
/// Largest group count of a Conv.
const MAX_GROUP: i64 = 1 << 24;
/// Largest element count a constant Reshape target may name.
pub(super) const MAX_ELEMENTS: u64 = 1 << 48;

/// What a node converter may look at besides the node.
pub(super) struct NodeCx<'a> {
    /// Opset version of the default domain.
    pub opset: i64,
    /// `node 'name' (OpType)`, for messages.
    pub label: &'a str,
    /// The file, for messages.
    pub path: &'a str,
    /// Initializers and outputs of earlier Constant nodes.
    pub consts: &'a HashMap<String, Tensor>,
    /// Every value read by some node or listed as a graph output.
    pub read: &'a HashSet<&'a str>,
}

/// A check that needs inferred shapes, run after the whole graph is imported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Deferred {
    /// Softmax before opset 13: `axis` must be the input's last axis.
    SoftmaxLastAxis(i64),
    /// Conv's `kernel_shape` attribute must equal the weight's spatial dims.
    ConvKernel([usize; 2]),
}

/// An imported node.
pub(super) struct Converted {
    /// The op.
    pub op: Op,
    /// Inputs the op reads (folded constants and absent optional inputs removed).
    pub inputs: Vec<String>,
    /// The output.
    pub output: String,
    /// Constants folded into the op.
    pub folded: Vec<String>,
    /// A check to run once shapes are known.
    pub deferred: Option<Deferred>,
}

/// What one ONNX node becomes.
pub(super) enum Imported {
    /// A graph node.
    Node(Converted),
    /// A `Constant`: a weight named `.0` with value `.1`.
    Constant(String, Tensor),
}

/// The inputs of a node, with ONNX's empty name meaning "absent".
struct Inputs<'a> {
    names: &'a [String],
    n: &'a NodeCx<'a>,
}

impl<'a> Inputs<'a> {
    fn get(&self, i: usize) -> Option<&'a str> {
        self.names.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// Every input, in order; absent ones are allowed only at the end.
    fn all(&self) -> Result<Vec<String>, IoError> {
        let len = self.names.iter().rposition(|s| !s.is_empty()).map_or(0, |i| i + 1);
        let names = &self.names[..len];
        if let Some(i) = names.iter().position(String::is_empty) {
            return Err(super::corrupt(self.n.path, format!("{}: input {i} is empty", self.n.label)));
        }
        Ok(names.to_vec())
    }

    /// The constant that input `i` names, which is `role` of the op.
    fn constant(&self, i: usize, role: &str) -> Result<Option<(&'a str, &'a Tensor)>, IoError> {
        let Some(name) = self.get(i) else { return Ok(None) };
        match self.n.consts.get(name) {
            Some(t) => Ok(Some((name, t))),
            None => Err(super::unsupported(
                self.n.path,
                format!(
                    "{}: {role} input '{name}' must be a constant (an initializer or a Constant node)",
                    self.n.label
                ),
            )),
        }
    }

    /// A scalar float constant at input `i`.
    fn scalar(&self, i: usize, role: &str) -> Result<Option<(&'a str, f32)>, IoError> {
        let Some((name, t)) = self.constant(i, role)? else { return Ok(None) };
        match t.as_f32() {
            Some(&[v]) => Ok(Some((name, v))),
            _ => Err(super::unsupported(
                self.n.path,
                format!(
                    "{}: {role} '{name}' must be a single FLOAT value, got {:?} shape {:?}",
                    self.n.label,
                    t.dtype(),
                    t.shape
                ),
            )),
        }
    }
}

/// Converts one node of the default domain.
pub(super) fn convert(node: &NodeProto, op_type: &str, cx: &NodeCx) -> Result<Imported, IoError> {
    let ins = Inputs { names: &node.input, n: cx };
    let known: &[&str] = match op_type {
        "Gemm" => &["alpha", "beta", "transA", "transB"],
        "Conv" => &["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        "LeakyRelu" => &["alpha"],
        "MaxPool" => {
            &["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"]
        }
        "AveragePool" => {
            &["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"]
        }
        "BatchNormalization" => &["epsilon", "momentum", "training_mode"],
        "Flatten" | "Concat" | "Softmax" => &["axis"],
        "Reshape" => &["allowzero"],
        "Transpose" => &["perm"],
        "Dropout" => &["ratio", "seed"],
        "Constant" => &[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
            "value_string",
            "value_strings",
            "sparse_value",
        ],
        _ => &[],
    };
    let a = Attrs::new(node, known, cx.label, cx.path)?;
    if op_type == "Constant" {
        return constant(node, &a, cx);
    }
    let mut folded = Vec::new();
    let mut deferred = None;
    let mut inputs = None;
    let mut extra_outputs_ok = false;
    let op = match op_type {
        "Gemm" => Op::Gemm {
            alpha: a.float("alpha", 1.0)?,
            beta: a.float("beta", 1.0)?,
            trans_a: a.flag("transA")?,
            trans_b: a.flag("transB")?,
        },
        "MatMul" => Op::MatMul,
        "Conv" => {
            let pads = explicit_pads(&a)?;
            if a.has("kernel_shape") {
                deferred = Some(Deferred::ConvKernel(a.usizes("kernel_shape", [0; 2], 1, MAX_WINDOW)?));
            }
            Op::Conv(ConvAttrs {
                strides: a.usizes("strides", [1; 2], 1, MAX_WINDOW)?,
                pads,
                dilations: a.usizes("dilations", [1; 2], 1, MAX_WINDOW)?,
                group: usize::try_from(a.int("group", 1)?)
                    .ok()
                    .filter(|g| (1..=MAX_GROUP as usize).contains(g))
                    .ok_or_else(|| a.corrupt("attribute 'group' is outside 1..=2^24".into()))?,
            })
        }
        "Relu" => Op::Relu,
        "LeakyRelu" => Op::LeakyRelu { alpha: a.float("alpha", 0.01)? },
        "Sigmoid" => Op::Sigmoid,
        "Tanh" => Op::Tanh,
        "Sign" => Op::Sign,
        "Clip" => {
            let min = ins.scalar(1, "min")?;
            let max = ins.scalar(2, "max")?;
            folded.extend(min.iter().chain(&max).map(|(n, _)| n.to_string()));
            inputs = Some(vec![required(&ins, 0, "input")?]);
            Op::Clip {
                min: min.map_or(f32::NEG_INFINITY, |(_, v)| v),
                max: max.map_or(f32::INFINITY, |(_, v)| v),
            }
        }
        "MaxPool" | "AveragePool" => {
            if op_type == "MaxPool" && node.output.get(1).is_some_and(|o| !o.is_empty()) {
                return Err(a.unsupported("the Indices output of MaxPool is not supported".into()));
            }
            if a.usizes("dilations", [1; 2], 1, MAX_WINDOW)? != [1, 1] {
                return Err(a.unsupported("pooling with dilations other than 1 is not supported".into()));
            }
            if !a.has("kernel_shape") {
                return Err(a.corrupt("attribute 'kernel_shape' is required".into()));
            }
            let p = PoolAttrs {
                kernel: a.usizes("kernel_shape", [0; 2], 1, MAX_WINDOW)?,
                strides: a.usizes("strides", [1; 2], 1, MAX_WINDOW)?,
                pads: explicit_pads(&a)?,
                ceil_mode: a.flag("ceil_mode")?,
                count_include_pad: a.flag("count_include_pad")?,
            };
            extra_outputs_ok = op_type == "MaxPool";
            if op_type == "MaxPool" {
                Op::MaxPool(p)
            } else {
                Op::AveragePool(p)
            }
        }
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "BatchNormalization" => {
            if a.flag("training_mode")? {
                return Err(a.unsupported("training_mode = 1 is not supported".into()));
            }
            extra_outputs_ok = true;
            Op::BatchNormalization { epsilon: a.float("epsilon", 1e-5)?, momentum: a.float("momentum", 0.9)? }
        }
        "Flatten" => Op::Flatten { axis: a.int("axis", 1)? },
        "Reshape" => {
            let (name, t) =
                ins.constant(1, "shape")?.ok_or_else(|| a.corrupt("Reshape needs a shape input".into()))?;
            let shape = reshape_spec(t, a.flag("allowzero")?, &a)?;
            folded.push(name.to_string());
            inputs = Some(vec![required(&ins, 0, "data")?]);
            Op::Reshape { shape }
        }
        "Transpose" => {
            let perm = a.ints("perm")?.unwrap_or(&[]);
            let perm = perm
                .iter()
                .map(|&p| usize::try_from(p).ok().filter(|&p| p < 1 << 16))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| a.corrupt(format!("attribute 'perm' = {perm:?} is not a permutation")))?;
            Op::Transpose { perm }
        }
        "Add" => Op::Add,
        "Mul" => Op::Mul,
        "Concat" => {
            if !a.has("axis") {
                return Err(a.corrupt("attribute 'axis' is required".into()));
            }
            Op::Concat { axis: a.int("axis", 0)? }
        }
        "Softmax" => {
            let axis = a.int("axis", if cx.opset >= 13 { -1 } else { 1 })?;
            if cx.opset < 13 {
                deferred = Some(Deferred::SoftmaxLastAxis(axis));
            }
            Op::Softmax { axis }
        }
        "Dropout" => {
            if ins.get(2).is_some() {
                return Err(a.unsupported("a training_mode input is not supported".into()));
            }
            let mut ratio = a.float("ratio", 0.5)?;
            if let Some((name, r)) = ins.scalar(1, "ratio")? {
                ratio = r;
                folded.push(name.to_string());
            }
            inputs = Some(vec![required(&ins, 0, "data")?]);
            extra_outputs_ok = true;
            Op::Dropout { ratio }
        }
        "Identity" => Op::Identity,
        other => {
            return Err(super::unsupported(
                cx.path,
                format!(
                    "{}: op type '{other}' is not supported; supported: {}",
                    cx.label,
                    Op::SUPPORTED.join(", ")
                ),
            ))
        }
    };
    let inputs = match inputs {
        Some(i) => i,
        None => ins.all()?,
    };
    let output = outputs(node, extra_outputs_ok, cx)?;
    Ok(Imported::Node(Converted { op, inputs, output, folded, deferred }))
}

fn required(ins: &Inputs, i: usize, role: &str) -> Result<String, IoError> {
    ins.get(i)
        .map(str::to_string)
        .ok_or_else(|| super::corrupt(ins.n.path, format!("{}: the {role} input is missing", ins.n.label)))
}

/// The first output; further outputs must be absent, or (when `extra_ok`) never read.
fn outputs(node: &NodeProto, extra_ok: bool, cx: &NodeCx) -> Result<String, IoError> {
    let first = node.output.first().filter(|o| !o.is_empty());
    let first = first.ok_or_else(|| super::corrupt(cx.path, format!("{} has no output", cx.label)))?;
    for extra in node.output[1..].iter().filter(|o| !o.is_empty()) {
        if !extra_ok {
            return Err(super::corrupt(cx.path, format!("{} has more than one output", cx.label)));
        }
        if cx.read.contains(extra.as_str()) {
            return Err(super::unsupported(
                cx.path,
                format!("{}: output '{extra}' is used, but only the first output is supported", cx.label),
            ));
        }
    }
    Ok(first.clone())
}

/// The padding of a Conv or pooling: `pads`, or zeros for `auto_pad = VALID`.
fn explicit_pads(a: &Attrs) -> Result<[usize; 4], IoError> {
    match a.string("auto_pad")?.unwrap_or(b"NOTSET") {
        b"NOTSET" | b"" => a.usizes("pads", [0; 4], 0, MAX_WINDOW),
        b"VALID" => Ok([0; 4]),
        other => Err(a.unsupported(format!(
            "auto_pad = {} is not supported (only NOTSET and VALID)",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// A Reshape's constant target, checked so shape arithmetic cannot overflow.
fn reshape_spec(t: &Tensor, allowzero: bool, a: &Attrs) -> Result<Vec<i64>, IoError> {
    let Some(spec) = t.as_i64().filter(|_| t.shape.len() == 1) else {
        return Err(a.unsupported(format!(
            "the shape input must be a 1-D INT64 constant, got {:?} shape {:?}",
            t.dtype(),
            t.shape
        )));
    };
    if allowzero && spec.contains(&0) {
        return Err(a.unsupported(format!("allowzero = 1 with a 0 in the shape {spec:?}")));
    }
    let mut known: u64 = 1;
    for &s in spec {
        if s < -1 {
            return Err(a.corrupt(format!("shape {spec:?} has a negative size")));
        }
        if s > 0 {
            known = known.saturating_mul(s as u64);
        }
    }
    if known > MAX_ELEMENTS || spec.iter().filter(|&&s| s == -1).count() > 1 {
        return Err(a.corrupt(format!("shape {spec:?} is not a valid Reshape target")));
    }
    Ok(spec.to_vec())
}

/// A Constant node's value.
fn constant(node: &NodeProto, a: &Attrs, cx: &NodeCx) -> Result<Imported, IoError> {
    let out = outputs(node, false, cx)?;
    if node.input.iter().any(|i| !i.is_empty()) {
        return Err(a.corrupt("a Constant has no inputs".into()));
    }
    let what = format!("{} value '{out}'", cx.label);
    let present: Vec<&str> = ["value", "value_float", "value_floats", "value_int", "value_ints"]
        .into_iter()
        .filter(|n| a.has(n))
        .collect();
    if present.len() != 1 {
        if ["sparse_value", "value_string", "value_strings"].iter().any(|n| a.has(n)) {
            return Err(a.unsupported("only numeric dense Constant values are supported".into()));
        }
        return Err(a.corrupt(format!("a Constant needs exactly one value attribute, got {present:?}")));
    }
    let t = match present[0] {
        "value" => {
            let t = a.tensor("value")?.ok_or_else(|| a.corrupt("attribute 'value' is missing".into()))?;
            tensor::from_proto(t, &what, cx.path)?
        }
        "value_float" => Tensor::f32(vec![], vec![a.float("value_float", 0.0)?]),
        "value_int" => Tensor::i64(vec![], vec![a.int("value_int", 0)?]),
        "value_floats" => {
            let v = a.floats("value_floats")?.unwrap_or(&[]).to_vec();
            Tensor::f32(vec![v.len()], v)
        }
        _ => {
            let v = a.ints("value_ints")?.unwrap_or(&[]).to_vec();
            Tensor::i64(vec![v.len()], v)
        }
    };
    Ok(Imported::Constant(out, t))
}
