//! [`Graph`] → `ModelProto`.

use std::collections::HashSet;

use deepshrink_graph::{Dim, Graph, Node, Op, PoolAttrs, Tensor, ValueInfo};

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
use super::proto::type_proto::{Tensor as TensorType, Value as TypeValue};
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use super::{tensor, EXPORT_IR_VERSION, EXPORT_OPSET};

pub(super) fn export_model(g: &Graph) -> ModelProto {
    let mut taken: HashSet<String> = g.weights.keys().cloned().collect();
    taken.extend(g.inputs.iter().map(|i| i.name.clone()));
    taken.extend(g.nodes.iter().flat_map(|n| n.inputs.iter().chain(&n.outputs).cloned()));
    let mut cx = Cx { taken, initializer: g.weights.iter().map(|(n, t)| tensor::to_proto(n, t)).collect() };
    let node = g.nodes.iter().map(|n| cx.node(n, g)).collect();
    ModelProto {
        ir_version: Some(EXPORT_IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(EXPORT_OPSET) }],
        producer_name: Some("deepshrink".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(GraphProto {
            name: Some(g.name.clone()),
            node,
            initializer: cx.initializer,
            input: g.inputs.iter().map(value_info).collect(),
            output: g.outputs.iter().map(value_info).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Names in use, and the initializers written so far.
struct Cx {
    taken: HashSet<String>,
    initializer: Vec<TensorProto>,
}

impl Cx {
    /// Adds a constant operand as an initializer named `<node>.<what>` (made unique) and returns
    /// the name.
    fn constant(&mut self, node: &str, what: &str, t: Tensor) -> String {
        let base = format!("{node}.{what}");
        let name = std::iter::once(base.clone())
            .chain((1..).map(|k| format!("{base}_{k}")))
            .find(|n| !self.taken.contains(n))
            .unwrap_or(base);
        self.taken.insert(name.clone());
        self.initializer.push(tensor::to_proto(&name, &t));
        name
    }

    fn node(&mut self, n: &Node, g: &Graph) -> NodeProto {
        let mut input = n.inputs.clone();
        let attribute = match &n.op {
            Op::Gemm { alpha, beta, trans_a, trans_b } => vec![
                float("alpha", *alpha),
                float("beta", *beta),
                int("transA", *trans_a as i64),
                int("transB", *trans_b as i64),
            ],
            Op::Conv(c) => {
                let mut a = vec![
                    ints("strides", &c.strides),
                    ints("pads", &c.pads),
                    ints("dilations", &c.dilations),
                    int("group", c.group as i64),
                ];
                let weight = n.inputs.get(1).and_then(|w| g.weights.get(w));
                if let Some(w) = weight.filter(|w| w.shape.len() == 4) {
                    a.insert(0, ints("kernel_shape", &w.shape[2..]));
                }
                a
            }
            Op::LeakyRelu { alpha } => vec![float("alpha", *alpha)],
            Op::Clip { min, max } => {
                if *min != f32::NEG_INFINITY || *max != f32::INFINITY {
                    let m = match *min != f32::NEG_INFINITY {
                        true => self.constant(&n.name, "min", Tensor::f32(vec![], vec![*min])),
                        false => String::new(),
                    };
                    input.push(m);
                }
                if *max != f32::INFINITY {
                    input.push(self.constant(&n.name, "max", Tensor::f32(vec![], vec![*max])));
                }
                vec![]
            }
            Op::MaxPool(p) => pool(p),
            Op::AveragePool(p) => {
                let mut a = pool(p);
                a.push(int("count_include_pad", p.count_include_pad as i64));
                a
            }
            Op::BatchNormalization { epsilon, momentum } => {
                vec![float("epsilon", *epsilon), float("momentum", *momentum)]
            }
            Op::Flatten { axis } | Op::Concat { axis } | Op::Softmax { axis } => vec![int("axis", *axis)],
            Op::Reshape { shape } => {
                let t = Tensor::i64(vec![shape.len()], shape.clone());
                input.push(self.constant(&n.name, "shape", t));
                vec![]
            }
            Op::Transpose { perm } if !perm.is_empty() => vec![ints("perm", perm)],
            Op::Dropout { ratio } => {
                input.push(self.constant(&n.name, "ratio", Tensor::f32(vec![], vec![*ratio])));
                vec![]
            }
            Op::MatMul
            | Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::Sign
            | Op::GlobalAveragePool
            | Op::Transpose { .. }
            | Op::Add
            | Op::Mul
            | Op::Identity => vec![],
        };
        NodeProto {
            input,
            output: n.outputs.clone(),
            name: Some(n.name.clone()),
            op_type: Some(n.op.name().into()),
            domain: Some(String::new()),
            attribute,
            ..Default::default()
        }
    }
}

fn pool(p: &PoolAttrs) -> Vec<AttributeProto> {
    vec![
        ints("kernel_shape", &p.kernel),
        ints("strides", &p.strides),
        ints("pads", &p.pads),
        int("ceil_mode", p.ceil_mode as i64),
    ]
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// A float tensor value; an empty shape is written as "shape unknown".
fn value_info(v: &ValueInfo) -> ValueInfoProto {
    let dim = v.shape.iter().map(|d| Dimension {
        value: Some(match d {
            Dim::Fixed(n) => DimValue::DimValue(*n as i64),
            Dim::Sym(s) => DimValue::DimParam(s.clone()),
        }),
        denotation: None,
    });
    let shape = (!v.shape.is_empty()).then(|| TensorShapeProto { dim: dim.collect() });
    ValueInfoProto {
        name: Some(v.name.clone()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(TensorType { elem_type: Some(DataType::Float as i32), shape })),
            denotation: None,
        }),
        ..Default::default()
    }
}
