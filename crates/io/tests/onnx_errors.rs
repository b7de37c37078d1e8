//! What ONNX import refuses, and that malformed bytes are errors, never panics.

mod common;

use common::*;
use deepshrink_graph::Op;
use deepshrink_io::onnx::proto::ModelProto;
use deepshrink_io::{onnx, IoError};
use prost::Message;

fn import(m: &ModelProto) -> Result<deepshrink_graph::Graph, IoError> {
    onnx::from_bytes(&m.encode_to_vec(), "bad.onnx")
}

fn unsupported(m: &ModelProto) -> String {
    match import(m) {
        Err(IoError::Unsupported { path, detail }) => {
            assert_eq!(path, "bad.onnx");
            detail
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn corrupt(m: &ModelProto) -> String {
    match import(m) {
        Err(IoError::Corrupt { detail, .. }) => detail,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// x[batch, 4] → `op` → y.
fn one_node(opset: i64, op: &str, attrs: Vec<deepshrink_io::onnx::proto::AttributeProto>) -> ModelProto {
    model(
        opset,
        vec![node(op, "the_node", &["x"], &["y"], attrs)],
        vec![],
        vec![vi("x", &[-1, 4])],
        vec![vi("y", &[-1, 4])],
    )
}

#[test]
fn unsupported_op_names_op_node_and_supported_list() {
    let d = unsupported(&one_node(13, "LRN", vec![]));
    assert!(d.contains("LRN") && d.contains("the_node"), "{d}");
    for op in Op::SUPPORTED {
        assert!(d.contains(op), "{d} lacks {op}");
    }
}

#[test]
fn opsets_outside_11_to_18_are_rejected() {
    for v in [10, 19, 1, 0] {
        let d = unsupported(&one_node(v, "Relu", vec![]));
        assert!(d.contains(&format!("opset {v}")) && d.contains("11–18"), "{d}");
    }
    for v in 11..=18 {
        import(&one_node(v, "Relu", vec![])).unwrap();
    }
}

#[test]
fn other_domains_are_rejected() {
    let mut m = one_node(13, "Relu", vec![]);
    m.graph.as_mut().unwrap().node[0].domain = Some("com.microsoft".into());
    let d = unsupported(&m);
    assert!(d.contains("com.microsoft") && d.contains("the_node"), "{d}");
    // "ai.onnx" is the default domain spelled out.
    let mut m = one_node(13, "Relu", vec![]);
    m.opset_import[0].domain = Some("ai.onnx".into());
    m.graph.as_mut().unwrap().node[0].domain = Some("ai.onnx".into());
    import(&m).unwrap();
    // No default-domain opset at all.
    m.opset_import[0].domain = Some("ai.onnx.ml".into());
    assert!(unsupported(&m).contains("no opset"));
}

#[test]
fn unsupported_attribute_values_and_features() {
    let cases: Vec<(ModelProto, &str)> = vec![
        (one_node(13, "Relu", vec![attr_i("mystery", 1)]), "mystery"),
        (one_node(13, "MaxPool", vec![attr_ints("kernel_shape", &[2, 2, 2])]), "2-D"),
        (
            one_node(
                13,
                "MaxPool",
                vec![attr_ints("kernel_shape", &[2, 2]), attr_s("auto_pad", "SAME_UPPER")],
            ),
            "SAME_UPPER",
        ),
        (
            one_node(
                13,
                "MaxPool",
                vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("dilations", &[2, 2])],
            ),
            "dilations",
        ),
        (one_node(15, "BatchNormalization", vec![attr_i("training_mode", 1)]), "training_mode"),
    ];
    for (m, needle) in cases {
        let d = unsupported(&m);
        assert!(d.contains(needle) && d.contains("the_node"), "{d}");
    }
}

#[test]
fn maxpool_indices_output_is_unsupported() {
    let m = model(
        13,
        vec![node("MaxPool", "mp", &["x"], &["y", "idx"], vec![attr_ints("kernel_shape", &[2, 2])])],
        vec![],
        vec![vi("x", &[-1, 1, 4, 4])],
        vec![vi("y", &[-1, 1, 2, 2])],
    );
    assert!(unsupported(&m).contains("Indices"));
}

#[test]
fn used_dropout_mask_is_unsupported() {
    let m = model(
        13,
        vec![node("Dropout", "d", &["x"], &["y", "mask"], vec![])],
        vec![],
        vec![vi("x", &[-1, 4])],
        vec![vi("y", &[-1, 4]), vi("mask", &[-1, 4])],
    );
    assert!(unsupported(&m).contains("'mask'"));
}

#[test]
fn old_softmax_over_a_flattened_block_is_unsupported() {
    let m = model(
        12,
        vec![node("Softmax", "sm", &["x"], &["y"], vec![])],
        vec![],
        vec![vi("x", &[-1, 3, 4])],
        vec![vi("y", &[-1, 3, 4])],
    );
    let d = unsupported(&m);
    assert!(d.contains("'sm'") && d.contains("last axis"), "{d}");
    // The same node from opset 13 on is a softmax over the last axis.
    let mut m13 = m.clone();
    m13.opset_import[0].version = Some(13);
    assert_eq!(import(&m13).unwrap().nodes[0].op, Op::Softmax { axis: -1 });
}

#[test]
fn non_constant_reshape_target_is_unsupported() {
    let m = model(
        13,
        vec![node("Reshape", "r", &["x", "s"], &["y"], vec![])],
        vec![],
        vec![vi("x", &[-1, 4]), vi("s", &[2])],
        vec![vi("y", &[-1, 4])],
    );
    let d = unsupported(&m);
    assert!(d.contains("'s'") && d.contains("constant"), "{d}");
}

#[test]
fn non_float_tensors_are_unsupported_naming_them() {
    let mut m = tiny_mlp();
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    w.data_type = Some(11); // DOUBLE
    let d = unsupported(&m);
    assert!(d.contains("'W'") && d.contains("DOUBLE"), "{d}");

    let mut m = tiny_mlp();
    let w = &mut m.graph.as_mut().unwrap().initializer[0];
    w.data_location = Some(1); // EXTERNAL
    assert!(unsupported(&m).contains("external"));
}

#[test]
fn bad_tensor_data_is_corrupt_naming_the_tensor() {
    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().initializer[0].raw_data.as_mut().unwrap().truncate(20);
    let d = corrupt(&m);
    assert!(d.contains("'W'") && d.contains("20 bytes"), "{d}");

    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().initializer[1].dims = vec![-3];
    assert!(corrupt(&m).contains("'b'"));

    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().initializer[1].dims = vec![1 << 32, 1 << 32, 1 << 32];
    assert!(corrupt(&m).contains("'b'"));

    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().initializer.push(init_f32("W", &[1], vec![0.0]));
    assert!(corrupt(&m).contains("twice"));
    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().input.push(vi("x", &[-1, 4]));
    assert!(corrupt(&m).contains("'x' is listed twice"));
}

#[test]
fn inconsistent_graphs_are_errors() {
    // A node reading a value nobody defines.
    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().node[1].input[0] = "nothing".into();
    assert!(matches!(import(&m), Err(IoError::Graph { .. })));
    // Weight shapes that do not multiply.
    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().input[0] = vi("x", &[-1, 5]);
    assert!(matches!(import(&m), Err(IoError::Graph { .. })));
    // Declared output shape that the graph does not compute.
    let mut m = tiny_mlp();
    m.graph.as_mut().unwrap().output[0] = vi("y", &[-1, 7]);
    assert!(corrupt(&m).contains("'y'"));
    // Conv kernel_shape that disagrees with the weight.
    let m = model(
        13,
        vec![node("Conv", "c", &["x", "w"], &["y"], vec![attr_ints("kernel_shape", &[3, 3])])],
        vec![init_f32("w", &[1, 1, 2, 2], vec![1.0; 4])],
        vec![vi("x", &[-1, 1, 4, 4])],
        vec![vi_untyped("y")],
    );
    assert!(corrupt(&m).contains("kernel_shape"));
    // Attributes of the wrong type, or out of range.
    assert!(corrupt(&one_node(13, "LeakyRelu", vec![attr_i("alpha", 1)])).contains("alpha"));
    let twice = vec![attr_f("alpha", 0.1), attr_f("alpha", 0.2)];
    assert!(corrupt(&one_node(13, "LeakyRelu", twice)).contains("repeats attribute 'alpha'"));
    assert!(
        corrupt(&one_node(13, "MaxPool", vec![attr_ints("kernel_shape", &[0, 2])])).contains("kernel_shape")
    );
}

#[test]
fn no_graph_or_no_ir_version_is_corrupt() {
    let mut m = tiny_mlp();
    m.graph = None;
    corrupt(&m);
    let mut m = tiny_mlp();
    m.ir_version = None;
    corrupt(&m);
    assert!(matches!(onnx::from_bytes(&[], "empty"), Err(IoError::Corrupt { .. })));
}

#[test]
fn random_garbage_is_corrupt() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for len in [1, 2, 7, 64, 1000, 100_000] {
        let bytes: Vec<u8> = (0..len).map(|_| r.next_u64() as u8).collect();
        let e = onnx::from_bytes(&bytes, "garbage");
        assert!(matches!(e, Err(IoError::Corrupt { .. })), "{len} bytes: {e:?}");
    }
}

#[test]
fn truncated_models_are_errors_and_half_a_model_is_corrupt() {
    let bytes = tiny_mlp().encode_to_vec();
    assert!(onnx::from_bytes(&bytes, "whole").is_ok());
    let half = &bytes[..bytes.len() / 2];
    assert!(matches!(onnx::from_bytes(half, "half"), Err(IoError::Corrupt { .. })));
    for n in 0..bytes.len() {
        assert!(onnx::from_bytes(&bytes[..n], "cut").is_err(), "prefix of {n} bytes imported");
    }
}

#[test]
fn fixture_cut_in_half_is_corrupt() {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lenet5.onnx");
    let Ok(bytes) = std::fs::read(p) else { return };
    let e = onnx::from_bytes(&bytes[..bytes.len() / 2], "lenet5-half");
    assert!(matches!(e, Err(IoError::Corrupt { .. })), "{e:?}");
}

#[test]
fn mutated_models_never_panic() {
    // Flip, overwrite and insert bytes all over a valid model; every outcome must be Ok or Err.
    let model = crate::every_op_model_bytes();
    let mut r = Rng(12345);
    for _ in 0..3000 {
        let mut b = model.clone();
        for _ in 0..1 + r.next_u64() % 4 {
            let i = (r.next_u64() % b.len() as u64) as usize;
            match r.next_u64() % 3 {
                0 => b[i] ^= 1 << (r.next_u64() % 8),
                1 => b[i] = r.next_u64() as u8,
                _ => b.insert(i, r.next_u64() as u8),
            }
        }
        let _ = onnx::from_bytes(&b, "mutated");
    }
}

/// A model with many kinds of nodes and attributes, for mutation.
fn every_op_model_bytes() -> Vec<u8> {
    let mut r = Rng(5);
    model(
        13,
        vec![
            node(
                "Conv",
                "conv",
                &["x", "w", "b"],
                &["c"],
                vec![attr_ints("pads", &[1, 1, 1, 1]), attr_i("group", 1)],
            ),
            node(
                "BatchNormalization",
                "bn",
                &["c", "s", "b", "b", "s"],
                &["n"],
                vec![attr_f("epsilon", 1e-5)],
            ),
            node("Clip", "clip", &["n", "lo", "hi"], &["k"], vec![]),
            node(
                "MaxPool",
                "mp",
                &["k"],
                &["p"],
                vec![attr_ints("kernel_shape", &[2, 2]), attr_ints("strides", &[2, 2])],
            ),
            node("Reshape", "r", &["p", "shape"], &["f"], vec![]),
            node("Gemm", "fc", &["f", "fw"], &["g"], vec![attr_i("transB", 1)]),
            node("Softmax", "sm", &["g"], &["y"], vec![attr_i("axis", -1)]),
        ],
        vec![
            init_raw("w", &[2, 1, 3, 3], &r.vec(18)),
            init_raw("b", &[2], &r.vec(2)),
            init_f32("s", &[2], vec![1.0, 2.0]),
            init_f32("lo", &[], vec![0.0]),
            init_f32("hi", &[], vec![6.0]),
            init_i64("shape", &[2], vec![0, -1]),
            init_raw("fw", &[3, 8], &r.vec(24)),
        ],
        vec![vi("x", &[-1, 1, 4, 4])],
        vec![vi("y", &[-1, 3])],
    )
    .encode_to_vec()
}

#[test]
fn the_mutation_base_model_is_valid() {
    onnx::from_bytes(&every_op_model_bytes(), "base").unwrap();
}

#[test]
fn shapes_too_large_for_shape_inference_are_an_error_not_a_panic() {
    // Broadcasting four [N]-long weights along four axes gives N⁴ = 2⁶⁴ elements, which
    // overflows the element count in Flatten's shape rule.
    const N: usize = 1 << 16;
    let axis = |a: usize| -> Vec<i64> { (0..4).map(|i| if i == a { N as i64 } else { 1 }).collect() };
    let m = model(
        13,
        vec![
            node("Add", "a0", &["x", "w0"], &["h0"], vec![]),
            node("Add", "a1", &["h0", "w1"], &["h1"], vec![]),
            node("Add", "a2", &["h1", "w2"], &["h2"], vec![]),
            node("Add", "a3", &["h2", "w3"], &["h3"], vec![]),
            node("Flatten", "f", &["h3"], &["y"], vec![attr_i("axis", 0)]),
        ],
        (0..4).map(|a| init_raw(&format!("w{a}"), &axis(a), &vec![0.0; N])).collect(),
        vec![vi("x", &[1, 1, 1, 1])],
        vec![vi_untyped("y")],
    );
    let e = import(&m).unwrap_err();
    assert!(matches!(e, IoError::Corrupt { .. } | IoError::Graph { .. }), "{e:?}");
}
