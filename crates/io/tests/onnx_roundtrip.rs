//! ONNX export → import gives back the same graph, for a hand-built graph using every op.

mod common;

use common::Rng;
use deepshrink_graph::{ConvAttrs, Dim, Graph, Op, PoolAttrs, Tensor, ValueInfo};
use deepshrink_io::onnx;

fn w(g: &mut Graph, r: &mut Rng, name: &str, shape: &[usize]) -> String {
    let n = shape.iter().product();
    g.add_weight(name, Tensor::f32(shape.to_vec(), r.vec(n)))
}

/// Every op of `Op`, on input x[batch, 3, 8, 8], with two outputs.
pub fn every_op_graph() -> Graph {
    let mut r = Rng(42);
    let mut g = Graph::new("every_op", "x", &[3, 8, 8]);
    let (w1, b1) = (w(&mut g, &mut r, "conv1.weight", &[4, 3, 3, 3]), w(&mut g, &mut r, "conv1.bias", &[4]));
    let conv = ConvAttrs { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
    let c1 = g.push("conv1", Op::Conv(conv), &["x", &w1, &b1]);
    let bn: Vec<String> =
        ["scale", "bias", "mean"].iter().map(|p| w(&mut g, &mut r, &format!("bn.{p}"), &[4])).collect();
    let var = g.add_weight("bn.var", Tensor::f32(vec![4], vec![0.5, 1.0, 1.5, 2.0]));
    let bn = g.push(
        "bn",
        Op::BatchNormalization { epsilon: 1e-3, momentum: 0.8 },
        &[&c1, &bn[0], &bn[1], &bn[2], &var],
    );
    let x = g.push("relu", Op::Relu, &[&bn]);
    let x = g.push("leaky", Op::LeakyRelu { alpha: 0.2 }, &[&x]);
    let x = g.push("sigmoid", Op::Sigmoid, &[&x]);
    let x = g.push("tanh", Op::Tanh, &[&x]);
    let x = g.push("relu6", Op::Clip { min: 0.0, max: 6.0 }, &[&x]);
    let x = g.push("clip_max", Op::Clip { min: f32::NEG_INFINITY, max: 1.0 }, &[&x]);
    let x = g.push("clip_min", Op::Clip { min: -1.0, max: f32::INFINITY }, &[&x]);
    let x = g.push("clip_none", Op::Clip { min: f32::NEG_INFINITY, max: f32::INFINITY }, &[&x]);
    let mp = PoolAttrs { ceil_mode: true, ..PoolAttrs::square(2) };
    let mp = g.push("maxpool", Op::MaxPool(mp), &[&x]);
    let ap = PoolAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1, 1, 1, 1],
        ceil_mode: false,
        count_include_pad: true,
    };
    let ap = g.push("avgpool", Op::AveragePool(ap), &[&mp]);
    let wdw = w(&mut g, &mut r, "dw.weight", &[4, 1, 3, 3]);
    let dw = ConvAttrs { strides: [1, 1], pads: [2, 2, 2, 2], dilations: [2, 2], group: 4 };
    let dw = g.push("dw", Op::Conv(dw), &[&ap, &wdw]);
    let add = g.push("add", Op::Add, &[&dw, &ap]);
    let s = w(&mut g, &mut r, "scale", &[1, 4, 1, 1]);
    let mul = g.push("mul", Op::Mul, &[&add, &s]);
    let cat = g.push("cat", Op::Concat { axis: 1 }, &[&mul, &ap]);
    let gap = g.push("gap", Op::GlobalAveragePool, &[&cat]);
    let rev = g.push("reverse", Op::Transpose { perm: vec![] }, &[&gap]);
    let fl = g.push("flatten", Op::Flatten { axis: 1 }, &[&gap]);
    let tr = g.push("nhwc", Op::Transpose { perm: vec![0, 2, 3, 1] }, &[&cat]);
    let rs = g.push("reshape", Op::Reshape { shape: vec![0, -1] }, &[&tr]);
    let (wg, bg) = (w(&mut g, &mut r, "fc.weight", &[16, 128]), w(&mut g, &mut r, "fc.bias", &[16]));
    let gemm = Op::Gemm { alpha: 0.5, beta: 2.0, trans_a: false, trans_b: true };
    let fc = g.push("fc", gemm, &[&rs, &wg, &bg]);
    let wm = w(&mut g, &mut r, "proj", &[16, 8]);
    let mm = g.push("matmul", Op::MatMul, &[&fc, &wm]);
    let x = g.push("add2", Op::Add, &[&mm, &fl]);
    let x = g.push("sign", Op::Sign, &[&x]);
    let x = g.push("dropout", Op::Dropout { ratio: 0.25 }, &[&x]);
    let x = g.push("softmax", Op::Softmax { axis: -1 }, &[&x]);
    let y = g.push("identity", Op::Identity, &[&x]);
    g.outputs = vec![
        ValueInfo::batched(&y, &[8]),
        ValueInfo {
            name: rev,
            shape: vec![Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(8), Dim::Sym("batch".into())],
        },
    ];
    g
}

#[test]
fn every_op_graph_is_valid_and_covers_every_op() {
    let g = every_op_graph();
    g.infer_shapes(2).unwrap();
    for op in Op::SUPPORTED.iter().filter(|&&o| o != "Constant") {
        assert!(g.nodes.iter().any(|n| n.op.name() == *op), "{op} not covered");
    }
}

#[test]
fn every_op_round_trips_through_bytes() {
    let g = every_op_graph();
    let back = onnx::from_bytes(&onnx::to_bytes(&g), "mem").unwrap();
    assert_eq!(back, g);
    // Folded constants (Reshape shape, Clip bounds, Dropout ratio) did not come back as weights.
    assert_eq!(back.weights.keys().collect::<Vec<_>>(), g.weights.keys().collect::<Vec<_>>());
    // Export of the re-import is byte-identical.
    assert_eq!(onnx::to_bytes(&back), onnx::to_bytes(&g));
}

#[test]
fn every_op_round_trips_through_a_file() {
    let g = every_op_graph();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("every_op.onnx");
    onnx::save(&g, &path).unwrap();
    assert_eq!(onnx::load(&path).unwrap(), g);
    assert_eq!(deepshrink_io::load_model(&path).unwrap(), g);
    // For the onnxruntime check by hand (crates/io/tests/fixtures/check_export.py).
    if let Ok(out) = std::env::var("DEEPSHRINK_ONNX_EXPORT_DIR") {
        onnx::save(&g, &std::path::Path::new(&out).join("every_op.onnx")).unwrap();
    }
}

#[test]
fn weights_round_trip_bit_identical() {
    let mut g = Graph::new("bits", "x", &[4]);
    let odd =
        vec![f32::NAN, -0.0, f32::from_bits(1), f32::MAX, f32::NEG_INFINITY, f32::from_bits(0x7fc0_1234)];
    g.add_weight("odd", Tensor::f32(vec![1, 6], odd.clone()));
    g.add_weight("ints", Tensor::i64(vec![3], vec![i64::MIN, -1, i64::MAX]));
    let y = g.push("mm", Op::MatMul, &["x", "w"]);
    g.add_weight("w", Tensor::f32(vec![4, 2], vec![1.0; 8]));
    // "odd" and "ints" are read by no node: unused weights are kept as they are.
    g.outputs = vec![ValueInfo::batched(&y, &[2])];
    let back = onnx::from_bytes(&onnx::to_bytes(&g), "mem").unwrap();
    let bits = |t: &Tensor| t.as_f32().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back.weights["odd"]), bits(&g.weights["odd"]));
    assert_eq!(back.weights["ints"], g.weights["ints"]);
}

#[test]
fn save_refuses_an_invalid_graph() {
    let mut g = Graph::new("bad", "x", &[4]);
    g.push("relu", Op::Relu, &["nowhere"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.onnx");
    assert!(matches!(onnx::save(&g, &path), Err(deepshrink_io::IoError::Graph { .. })));
    assert!(!path.exists());
}

#[test]
fn export_names_folded_constants_after_the_node_without_clashes() {
    let mut g = Graph::new("names", "x", &[2, 3]);
    g.add_weight("r.shape", Tensor::f32(vec![1], vec![1.0]));
    let y = g.push("r", Op::Reshape { shape: vec![0, 6] }, &["x"]);
    let y = g.push("add", Op::Add, &[&y, "r.shape"]);
    g.outputs = vec![ValueInfo::batched(&y, &[6])];
    let m = onnx::to_model(&g);
    let graph = m.graph.as_ref().unwrap();
    assert_eq!(graph.node[0].input, ["x", "r.shape_1"]);
    assert_eq!(m.opset_import[0].version, Some(onnx::EXPORT_OPSET));
    assert_eq!(onnx::from_model(&m, "mem").unwrap(), g);
}
