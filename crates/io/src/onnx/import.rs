//! `ModelProto` → [`Graph`]: opset, inputs and outputs, weights, nodes, and the checks that need
//! shapes.

use std::collections::{BTreeMap, HashMap, HashSet};

use deepshrink_graph::{shape::resolve_axis, Dim, Graph, GraphError, Node, Shapes, Tensor, ValueInfo};

use super::ops::{self, Deferred, Imported, NodeCx, MAX_ELEMENTS};
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::dimension::Value as DimValue;
use super::proto::type_proto::Value as TypeValue;
use super::proto::{GraphProto, ModelProto, ValueInfoProto};
use super::{corrupt, tensor, unsupported, IMPORT_OPSETS};
use crate::IoError;

/// Largest fixed dimension of a graph input or output.
const MAX_DIM: i64 = 1 << 31;

pub(super) fn import_model(m: &ModelProto, path: &str) -> Result<Graph, IoError> {
    if m.ir_version.unwrap_or(0) <= 0 {
        return Err(corrupt(path, "no IR version: not an ONNX model"));
    }
    let g = m.graph.as_ref().ok_or_else(|| corrupt(path, "the model has no graph"))?;
    let opset = default_opset(m, path)?;
    if !g.sparse_initializer.is_empty() {
        return Err(unsupported(path, "sparse initializers are not supported"));
    }

    let mut consts: HashMap<String, Tensor> = HashMap::new();
    for t in &g.initializer {
        let name = t.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(corrupt(path, "an initializer has no name"));
        }
        let value = tensor::from_proto(t, &format!("initializer '{name}'"), path)?;
        if consts.insert(name.clone(), value).is_some() {
            return Err(corrupt(path, format!("initializer '{name}' is defined twice")));
        }
    }

    let mut inputs = Vec::new();
    let mut seen = HashSet::new();
    for v in g.input.iter().filter(|v| !consts.contains_key(v.name.as_deref().unwrap_or(""))) {
        let (name, shape) = value_info(v, "input", path)?;
        let shape = shape.ok_or_else(|| unsupported(path, format!("input '{name}' has no shape")))?;
        let fixed = shape.iter().map(|d| if let Dim::Fixed(n) = d { *n as u64 } else { 1 });
        if fixed.fold(1u64, |a, b| a.saturating_mul(b)) > MAX_ELEMENTS {
            return Err(corrupt(path, format!("input '{name}' has shape {shape:?}, too many elements")));
        }
        if !seen.insert(name.clone()) {
            return Err(corrupt(path, format!("input '{name}' is listed twice")));
        }
        inputs.push(ValueInfo { name, shape });
    }
    let input_names: HashSet<&str> = inputs.iter().map(|i| i.name.as_str()).collect();

    let (nodes, deferred, folded) = import_nodes(g, opset, &mut consts, &input_names, path)?;

    let mut referenced: HashSet<&str> =
        nodes.iter().flat_map(|n| n.inputs.iter().map(String::as_str)).collect();
    let mut declared = Vec::new();
    for v in &g.output {
        let (name, shape) = value_info(v, "output", path)?;
        declared.push((name, shape));
    }
    referenced.extend(declared.iter().map(|(n, _)| n.as_str()));
    let mut weights = BTreeMap::new();
    for (name, t) in consts {
        if folded.contains(&name) && !referenced.contains(name.as_str()) {
            continue;
        }
        // Shape rules assume no zero-sized dimension; an empty constant nothing reads is dropped.
        if t.numel() == 0 {
            if referenced.contains(name.as_str()) {
                return Err(unsupported(
                    path,
                    format!("weight '{name}' has shape {:?}, no elements", t.shape),
                ));
            }
            continue;
        }
        weights.insert(name, t);
    }

    let outputs =
        declared.iter().map(|(n, s)| ValueInfo { name: n.clone(), shape: s.clone().unwrap_or_default() });
    let mut graph = Graph {
        name: g.name.clone().unwrap_or_default(),
        inputs,
        outputs: outputs.collect(),
        nodes,
        weights,
    };
    let graph_err = |source| IoError::Graph { path: path.to_string(), source };
    graph.validate().map_err(graph_err)?;
    let shapes = infer(&graph, 1, path)?.map_err(graph_err)?;
    for (i, d) in deferred {
        check_deferred(&graph.nodes[i], d, &shapes, path)?;
    }
    settle_outputs(&mut graph, &declared, &shapes, path)?;
    Ok(graph)
}

/// The opset version of the default domain, which must be in [`IMPORT_OPSETS`].
fn default_opset(m: &ModelProto, path: &str) -> Result<i64, IoError> {
    let mut version = None;
    for o in &m.opset_import {
        if matches!(o.domain.as_deref().unwrap_or(""), "" | "ai.onnx") {
            let v = o.version.unwrap_or(0);
            if version.is_some_and(|x| x != v) {
                return Err(corrupt(path, "the default domain is imported with two opset versions"));
            }
            version = Some(v);
        }
    }
    let v =
        version.ok_or_else(|| unsupported(path, "the model imports no opset of the default ONNX domain"))?;
    if !IMPORT_OPSETS.contains(&v) {
        return Err(unsupported(
            path,
            format!(
                "opset {v} of the default domain is not supported (supported: {}–{})",
                IMPORT_OPSETS.start(),
                IMPORT_OPSETS.end()
            ),
        ));
    }
    Ok(v)
}

type Nodes = (Vec<Node>, Vec<(usize, Deferred)>, HashSet<String>);

/// Converts the nodes; Constant nodes are added to `consts`. Returns the nodes, the checks to
/// run once shapes are known (by node index) and the constants folded into ops.
fn import_nodes(
    g: &GraphProto,
    opset: i64,
    consts: &mut HashMap<String, Tensor>,
    input_names: &HashSet<&str>,
    path: &str,
) -> Result<Nodes, IoError> {
    let mut read: HashSet<&str> = g.node.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    read.extend(g.output.iter().filter_map(|o| o.name.as_deref()));
    let mut nodes: Vec<Node> = Vec::new();
    let mut deferred = Vec::new();
    let mut folded = HashSet::new();
    let mut names = HashSet::new();
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        let op_type = n.op_type.as_deref().unwrap_or("");
        let mut name = n.name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| format!("{op_type}_{i}"));
        if names.contains(&name) {
            let k = next_suffix.entry(name.clone()).or_insert(1usize);
            while names.contains(&format!("{name}_{k}")) {
                *k += 1;
            }
            name = format!("{name}_{k}");
        }
        names.insert(name.clone());
        let label = format!("node '{name}' ({op_type})");
        let domain = n.domain.as_deref().unwrap_or("");
        if !matches!(domain, "" | "ai.onnx") {
            return Err(unsupported(
                path,
                format!("{label} is in domain '{domain}'; only the default ONNX domain is supported"),
            ));
        }
        let cx = NodeCx { opset, label: &label, path, consts, read: &read };
        match ops::convert(n, op_type, &cx)? {
            Imported::Constant(out, t) => {
                if consts.contains_key(&out) || input_names.contains(out.as_str()) {
                    return Err(corrupt(path, format!("{label}: value '{out}' is defined twice")));
                }
                consts.insert(out, t);
            }
            Imported::Node(c) => {
                folded.extend(c.folded);
                if let Some(d) = c.deferred {
                    deferred.push((nodes.len(), d));
                }
                nodes.push(Node { name, op: c.op, inputs: c.inputs, outputs: vec![c.output] });
            }
        }
    }
    Ok((nodes, deferred, folded))
}

/// Name and (if declared) shape of a graph input or output, which must be a float tensor.
fn value_info(v: &ValueInfoProto, role: &str, path: &str) -> Result<(String, Option<Vec<Dim>>), IoError> {
    let name = v.name.clone().filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| corrupt(path, format!("a graph {role} has no name")))?;
    let t = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        None => return Ok((name, None)),
        Some(TypeValue::TensorType(t)) => t,
        Some(_) => return Err(unsupported(path, format!("{role} '{name}' is not a tensor"))),
    };
    let elem = t.elem_type.unwrap_or(0);
    if elem != DataType::Undefined as i32 && elem != DataType::Float as i32 {
        return Err(unsupported(
            path,
            format!(
                "{role} '{name}' has element type {}; only FLOAT inputs and outputs are supported",
                tensor::dtype_name(elem)
            ),
        ));
    }
    let Some(shape) = &t.shape else { return Ok((name, None)) };
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (i, d) in shape.dim.iter().enumerate() {
        let sym = || Dim::Sym(if i == 0 { "batch".into() } else { format!("dim{i}") });
        dims.push(match &d.value {
            Some(DimValue::DimValue(v)) if (1..=MAX_DIM).contains(v) => Dim::Fixed(*v as usize),
            Some(DimValue::DimValue(v)) if *v < 0 || *v > MAX_DIM => {
                return Err(corrupt(path, format!("{role} '{name}' has dimension {v}")))
            }
            Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
            _ => sym(),
        });
    }
    Ok((name, Some(dims)))
}

/// Shape inference, guarded: the graph crate's shape arithmetic is unchecked, and a hostile file
/// could make it overflow; that becomes an error rather than a panic.
fn infer(graph: &Graph, batch: usize, path: &str) -> Result<Result<Shapes, GraphError>, IoError> {
    std::panic::catch_unwind(|| graph.infer_shapes(batch))
        .map_err(|_| corrupt(path, "shape inference overflowed: the shapes in the file are too large"))
}

fn check_deferred(node: &Node, d: Deferred, shapes: &Shapes, path: &str) -> Result<(), IoError> {
    let label = format!("node '{}' ({})", node.name, node.op.name());
    match d {
        Deferred::SoftmaxLastAxis(axis) => {
            let rank = shapes[&node.inputs[0]].len();
            if resolve_axis(axis, rank).map(|a| a + 1) != Some(rank) {
                return Err(unsupported(
                    path,
                    format!(
                        "{label}: before opset 13 Softmax flattens its {rank}-D input at axis {axis}; \
                         only a softmax over the last axis is supported"
                    ),
                ));
            }
        }
        Deferred::ConvKernel(k) => {
            let w = &shapes[&node.inputs[1]];
            if w.len() != 4 || w[2..] != k {
                return Err(corrupt(
                    path,
                    format!("{label}: kernel_shape {k:?} does not match weight shape {w:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// Checks declared output shapes against inference, and fills in those not declared: dimensions
/// that change with the batch size become `Sym("batch")`.
fn settle_outputs(
    graph: &mut Graph,
    declared: &[(String, Option<Vec<Dim>>)],
    at1: &Shapes,
    path: &str,
) -> Result<(), IoError> {
    // A graph that only infers at batch 1 (a fixed Reshape target, say) has no batch dimension.
    let at2 = match declared.iter().any(|(_, d)| d.is_none()) {
        true => infer(graph, 2, path)?.ok(),
        false => None,
    };
    for (out, (name, dims)) in graph.outputs.iter_mut().zip(declared) {
        let inferred = &at1[name];
        match dims {
            Some(dims) => {
                let fits = dims.len() == inferred.len()
                    && dims.iter().zip(inferred).all(|(d, &n)| !matches!(d, Dim::Fixed(f) if *f != n));
                if !fits {
                    return Err(corrupt(
                        path,
                        format!("output '{name}' is declared {dims:?} but the graph computes {inferred:?}"),
                    ));
                }
            }
            None => {
                let other = at2.as_ref().map(|s| &s[name]).unwrap_or(inferred);
                out.shape = inferred
                    .iter()
                    .zip(other)
                    .map(|(&a, &b)| if a == b { Dim::Fixed(a) } else { Dim::Sym("batch".into()) })
                    .collect();
            }
        }
    }
    Ok(())
}
