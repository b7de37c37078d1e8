//! Graph, nodes, inputs and outputs.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

use crate::{GraphError, Op, Tensor};

/// One dimension of a graph input or output: fixed, or symbolic (the batch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dim {
    /// A known size.
    Fixed(usize),
    /// A named, free size such as `"batch"`.
    Sym(String),
}

/// A named graph input or output with its (partly symbolic) shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Shape; symbolic dimensions take the batch size at run time.
    pub shape: Vec<Dim>,
}

impl ValueInfo {
    /// An input of the given per-sample shape with a leading symbolic batch dimension.
    pub fn batched(name: &str, sample_shape: &[usize]) -> Self {
        let mut shape = vec![Dim::Sym("batch".into())];
        shape.extend(sample_shape.iter().map(|&d| Dim::Fixed(d)));
        ValueInfo { name: name.into(), shape }
    }

    /// The shape with every symbolic dimension replaced by `batch`.
    pub fn concrete(&self, batch: usize) -> Vec<usize> {
        self.shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Sym(_) => batch,
            })
            .collect()
    }

    /// The shape without its first dimension (the per-sample shape).
    pub fn sample_shape(&self) -> Vec<usize> {
        self.concrete(1).into_iter().skip(1).collect()
    }
}

/// One application of an op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique node name.
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Names of the values read, in the op's input order.
    pub inputs: Vec<String>,
    /// Names of the values written.
    pub outputs: Vec<String>,
}

/// A model: nodes in topological order, weights, inputs and outputs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Graph {
    /// Model name.
    pub name: String,
    /// Inputs fed at run time (weights are not listed here).
    pub inputs: Vec<ValueInfo>,
    /// Outputs.
    pub outputs: Vec<ValueInfo>,
    /// Nodes, each reading only values defined before it.
    pub nodes: Vec<Node>,
    /// Named weights and constants.
    pub weights: BTreeMap<String, Tensor>,
}

impl Graph {
    /// An empty graph with one batched input.
    pub fn new(name: &str, input: &str, sample_shape: &[usize]) -> Self {
        Graph {
            name: name.into(),
            inputs: vec![ValueInfo::batched(input, sample_shape)],
            ..Default::default()
        }
    }

    /// Appends a node and returns the name of its (first) output, which is the node name.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> String {
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![name.to_string()],
        });
        name.to_string()
    }

    /// Adds a weight tensor and returns its name.
    pub fn add_weight(&mut self, name: &str, t: Tensor) -> String {
        self.weights.insert(name.into(), t);
        name.to_string()
    }

    /// The node that produces `value`, if any.
    pub fn producer(&self, value: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.outputs.iter().any(|o| o == value))
    }

    /// Nodes that read `value`.
    pub fn consumers<'a>(&'a self, value: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.inputs.iter().any(|i| i == value))
    }

    /// Checks structure: every read value is defined earlier, nothing is defined twice, arities
    /// match, outputs exist and weights are consistent. Shapes are checked by
    /// [`Graph::infer_shapes`].
    pub fn validate(&self) -> Result<(), GraphError> {
        let mut defined: HashSet<&str> = HashSet::new();
        for (name, t) in &self.weights {
            t.check(name)?;
            defined.insert(name);
        }
        for i in &self.inputs {
            defined.insert(&i.name);
        }
        for n in &self.nodes {
            let (lo, hi) = n.op.input_arity();
            if n.inputs.len() < lo || n.inputs.len() > hi {
                let expected = if hi == usize::MAX {
                    format!("at least {lo}")
                } else if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(GraphError::Arity {
                    node: n.name.clone(),
                    op: n.op.name(),
                    what: "inputs",
                    got: n.inputs.len(),
                    expected,
                });
            }
            if n.outputs.is_empty() {
                return Err(GraphError::Arity {
                    node: n.name.clone(),
                    op: n.op.name(),
                    what: "outputs",
                    got: 0,
                    expected: "at least 1".into(),
                });
            }
            for i in &n.inputs {
                if !defined.contains(i.as_str()) {
                    return Err(GraphError::UndefinedValue { node: n.name.clone(), value: i.clone() });
                }
            }
            for o in &n.outputs {
                if !defined.insert(o) {
                    return Err(GraphError::DuplicateValue { node: n.name.clone(), value: o.clone() });
                }
            }
        }
        for o in &self.outputs {
            if !defined.contains(o.name.as_str()) {
                return Err(GraphError::MissingOutput(o.name.clone()));
            }
        }
        Ok(())
    }
}
