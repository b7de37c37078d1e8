//! Import choices on small models written as protobuf: constants, folding, optional inputs,
//! symbolic dimensions, opset-dependent defaults.

mod common;

use common::*;
use deepshrink_graph::{Dim, Op, Tensor, ValueInfo};
use deepshrink_io::onnx;
use prost::Message;

fn import(m: &deepshrink_io::onnx::proto::ModelProto) -> deepshrink_graph::Graph {
    let bytes = m.encode_to_vec();
    onnx::from_bytes(&bytes, "test.onnx").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn constant_nodes_become_weights() {
    let m = model(
        13,
        vec![
            node(
                "Constant",
                "c_w",
                &[],
                &["w"],
                vec![attr_t("value", init_raw("", &[2, 2], &[1.0, 2.0, 3.0, 4.0]))],
            ),
            node("Constant", "c_b", &[], &["b"], vec![attr_floats("value_floats", &[0.5, -0.5])]),
            node("Constant", "c_s", &[], &["s"], vec![attr_f("value_float", 2.0)]),
            node("MatMul", "mm", &["x", "w"], &["h"], vec![]),
            node("Add", "add", &["h", "b"], &["h2"], vec![]),
            node("Mul", "mul", &["h2", "s"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("x", &[-1, 2])],
        vec![vi("y", &[-1, 2])],
    );
    let g = import(&m);
    assert_eq!(g.nodes.len(), 3);
    assert_eq!(g.weights["w"], Tensor::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]));
    assert_eq!(g.weights["b"], Tensor::f32(vec![2], vec![0.5, -0.5]));
    assert_eq!(g.weights["s"], Tensor::f32(vec![], vec![2.0]));
}

#[test]
fn folded_constants_do_not_stay_weights_unless_also_read() {
    // "shape" is folded into the Reshape and read by nothing else: dropped. "lo" is folded into
    // Clip and also added to the output: kept. "six" comes from a Constant node (value_ints would
    // be int64; Clip needs floats) and is folded: dropped.
    let m = model(
        13,
        vec![
            node("Constant", "k", &[], &["six"], vec![attr_t("value", init_f32("", &[], vec![6.0]))]),
            node("Reshape", "r", &["x", "shape"], &["r_out"], vec![]),
            node("Clip", "clip", &["r_out", "lo", "six"], &["c"], vec![]),
            node("Add", "add", &["c", "lo"], &["y"], vec![]),
        ],
        vec![init_i64("shape", &[2], vec![0, -1]), init_f32("lo", &[1], vec![-1.0])],
        vec![vi("x", &[-1, 2, 3])],
        vec![vi("y", &[-1, 6])],
    );
    let g = import(&m);
    assert_eq!(g.nodes[0].op, Op::Reshape { shape: vec![0, -1] });
    assert_eq!(g.nodes[0].inputs, ["x"]);
    assert_eq!(g.nodes[1].op, Op::Clip { min: -1.0, max: 6.0 });
    assert_eq!(g.weights.keys().collect::<Vec<_>>(), ["lo"]);
    assert_eq!(g.infer_shapes(5).unwrap()["y"], [5, 6]);
}

#[test]
fn reshape_shape_from_value_ints_constant() {
    let m = model(
        18,
        vec![
            node("Constant", "k", &[], &["target"], vec![attr_ints("value_ints", &[-1, 4])]),
            node("Reshape", "r", &["x", "target"], &["y"], vec![attr_i("allowzero", 0)]),
        ],
        vec![],
        vec![vi("x", &[-1, 2, 2])],
        vec![vi("y", &[-1, 4])],
    );
    let g = import(&m);
    assert_eq!(g.nodes[0].op, Op::Reshape { shape: vec![-1, 4] });
    assert!(g.weights.is_empty());
}

#[test]
fn clip_with_absent_bounds_is_unbounded_on_that_side() {
    let m = model(
        11,
        vec![
            node("Clip", "only_max", &["x", "", "hi"], &["a"], vec![]),
            node("Clip", "only_min", &["a", "lo"], &["b"], vec![]),
            node("Clip", "neither", &["b"], &["y"], vec![]),
        ],
        vec![init_f32("hi", &[], vec![3.0]), init_raw("lo", &[], &[-3.0])],
        vec![vi("x", &[-1, 4])],
        vec![vi("y", &[-1, 4])],
    );
    let g = import(&m);
    let ops: Vec<_> = g.nodes.iter().map(|n| n.op.clone()).collect();
    assert_eq!(
        ops,
        [
            Op::Clip { min: f32::NEG_INFINITY, max: 3.0 },
            Op::Clip { min: -3.0, max: f32::INFINITY },
            Op::Clip { min: f32::NEG_INFINITY, max: f32::INFINITY },
        ]
    );
    assert!(g.weights.is_empty());
}

#[test]
fn initializers_listed_as_inputs_are_not_inputs() {
    let mut m = tiny_mlp();
    let graph = m.graph.as_mut().unwrap();
    graph.input.push(vi("W", &[3, 4]));
    graph.input.push(vi("b", &[3]));
    let g = import(&m);
    assert_eq!(g.inputs, [ValueInfo::batched("x", &[4])]);
    assert_eq!(g.weights.len(), 2);
}

#[test]
fn unknown_dims_are_symbolic_and_output_shapes_are_inferred_when_missing() {
    let mut m = tiny_mlp();
    let graph = m.graph.as_mut().unwrap();
    graph.input = vec![vi("x", &[0, 4])];
    graph.output = vec![vi_untyped("y")];
    let g = import(&m);
    assert_eq!(g.inputs[0].shape, [Dim::Sym("batch".into()), Dim::Fixed(4)]);
    assert_eq!(g.outputs[0].shape, [Dim::Sym("batch".into()), Dim::Fixed(3)]);

    // A named dim_param keeps its name, wherever it is.
    let graph = m.graph.as_mut().unwrap();
    let mut x = vi("x", &[1, 4]);
    if let Some(deepshrink_io::onnx::proto::type_proto::Value::TensorType(t)) =
        x.r#type.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape.as_mut().unwrap().dim[0].value =
            Some(deepshrink_io::onnx::proto::tensor_shape_proto::dimension::Value::DimParam("N".into()));
    }
    graph.input = vec![x];
    assert_eq!(import(&m).inputs[0].shape[0], Dim::Sym("N".into()));
}

#[test]
fn softmax_defaults_depend_on_the_opset() {
    let make = |opset| {
        model(
            opset,
            vec![node("Softmax", "sm", &["x"], &["y"], vec![])],
            vec![],
            vec![vi("x", &[-1, 10])],
            vec![vi("y", &[-1, 10])],
        )
    };
    assert_eq!(import(&make(13)).nodes[0].op, Op::Softmax { axis: -1 });
    // Before 13 the default axis is 1, which for a 2-D input is the last axis: accepted.
    assert_eq!(import(&make(11)).nodes[0].op, Op::Softmax { axis: 1 });
}

#[test]
fn dropout_ratio_from_attribute_or_input_and_unused_mask_is_dropped() {
    let m11 = model(
        11,
        vec![node("Dropout", "d", &["x"], &["y", "mask"], vec![attr_f("ratio", 0.3)])],
        vec![],
        vec![vi("x", &[-1, 4])],
        vec![vi("y", &[-1, 4])],
    );
    let g = import(&m11);
    assert_eq!(g.nodes[0].op, Op::Dropout { ratio: 0.3 });
    assert_eq!(g.nodes[0].outputs, ["y"]);

    let m13 = model(
        13,
        vec![node("Dropout", "d", &["x", "r"], &["y"], vec![attr_i("seed", 3)])],
        vec![init_f32("r", &[], vec![0.1])],
        vec![vi("x", &[-1, 4])],
        vec![vi("y", &[-1, 4])],
    );
    let g = import(&m13);
    assert_eq!(g.nodes[0].op, Op::Dropout { ratio: 0.1 });
    assert!(g.weights.is_empty());
}

#[test]
fn conv_and_pool_attributes_import() {
    let mut r = Rng(3);
    let m = model(
        17,
        vec![
            node(
                "Conv",
                "conv",
                &["x", "w", ""],
                &["c"],
                vec![
                    attr_ints("kernel_shape", &[3, 1]),
                    attr_ints("strides", &[2, 1]),
                    attr_ints("pads", &[1, 0, 1, 0]),
                    attr_ints("dilations", &[1, 2]),
                    attr_i("group", 2),
                    attr_s("auto_pad", "NOTSET"),
                ],
            ),
            node(
                "AveragePool",
                "ap",
                &["c"],
                &["p"],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_s("auto_pad", "VALID"),
                    attr_i("ceil_mode", 1),
                    attr_i("count_include_pad", 1),
                ],
            ),
            node(
                "MaxPool",
                "mp",
                &["p"],
                &["y"],
                vec![attr_ints("kernel_shape", &[1, 1]), attr_i("storage_order", 0)],
            ),
        ],
        vec![init_raw("w", &[4, 1, 3, 1], &r.vec(12))],
        vec![vi("x", &[-1, 2, 9, 9])],
        vec![vi("y", &[0, 4, 0, 0])],
    );
    let g = import(&m);
    let Op::Conv(c) = &g.nodes[0].op else { panic!() };
    assert_eq!((c.strides, c.pads, c.dilations, c.group), ([2, 1], [1, 0, 1, 0], [1, 2], 2));
    assert_eq!(g.nodes[0].inputs, ["x", "w"]);
    let Op::AveragePool(p) = &g.nodes[1].op else { panic!() };
    assert_eq!(
        (p.kernel, p.strides, p.pads, p.ceil_mode, p.count_include_pad),
        ([2, 2], [1, 1], [0; 4], true, true)
    );
    assert_eq!(g.infer_shapes(1).unwrap()["y"], [1, 4, 4, 8]);
}

#[test]
fn unnamed_and_repeated_node_names_are_made_unique() {
    let m = model(
        13,
        vec![
            node("Relu", "", &["x"], &["a"], vec![]),
            node("Relu", "r", &["a"], &["b"], vec![]),
            node("Relu", "r", &["b"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("x", &[-1, 4])],
        vec![vi("y", &[-1, 4])],
    );
    let names: Vec<_> = import(&m).nodes.into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["Relu_0", "r", "r_1"]);
}

#[test]
fn import_export_import_is_stable_for_hand_written_models() {
    let m = model(
        12,
        vec![
            node("Constant", "c", &[], &["s"], vec![attr_ints("value_ints", &[-1, 6])]),
            node("Transpose", "t", &["x"], &["xt"], vec![]),
            node("Reshape", "r", &["xt", "s"], &["y0"], vec![]),
            node("Softmax", "sm", &["y0"], &["y"], vec![]),
        ],
        vec![],
        vec![vi("x", &[2, 3, -1])],
        vec![vi_untyped("y")],
    );
    let g = import(&m);
    assert_eq!(g.nodes[0].op, Op::Transpose { perm: vec![] });
    assert_eq!(g.outputs[0].shape, [Dim::Sym("batch".into()), Dim::Fixed(6)]);
    assert_eq!(onnx::from_bytes(&onnx::to_bytes(&g), "again").unwrap(), g);
}
