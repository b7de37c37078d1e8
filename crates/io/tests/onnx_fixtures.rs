//! The PyTorch-exported fixtures (crates/io/tests/fixtures, made by make_fixtures.py) import,
//! validate, infer shapes, and survive export → import unchanged. Their numeric match against
//! onnxruntime is tested by the engine; `check_export.py` there checks our re-exports by hand.

use std::path::{Path, PathBuf};

use deepshrink_graph::{Dim, Op};
use deepshrink_io::onnx;

const FIXTURES: [&str; 4] = ["mlp", "lenet5", "bn_residual", "depthwise"];

fn fixture(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.onnx"));
    p.exists().then_some(p)
}

#[test]
fn fixtures_import_validate_and_round_trip() {
    for name in FIXTURES {
        let Some(path) = fixture(name) else {
            eprintln!("skipping {name}: fixture not present");
            continue;
        };
        let g = onnx::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        g.validate().unwrap();
        assert_eq!(g.inputs.len(), 1, "{name}");
        assert_eq!(g.inputs[0].name, "input");
        assert_eq!(g.inputs[0].shape[0], Dim::Sym("batch".into()));
        assert_eq!(g.inputs[0].sample_shape(), [1, 28, 28], "{name}");
        let shapes = g.infer_shapes(3).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(g.outputs.len(), 1);
        assert_eq!(g.outputs[0].name, "logits");
        assert_eq!(shapes["logits"], [3, 10], "{name}");
        assert!(g.param_count() > 0);
        // No folded constant is left among the weights, and every weight is read by a node.
        for w in g.weights.keys() {
            assert!(g.consumers(w).next().is_some(), "{name}: weight '{w}' is unused");
        }

        let back = onnx::from_bytes(&onnx::to_bytes(&g), name).unwrap();
        assert_eq!(back, g, "{name}: export → import changed the graph");
        if let Ok(out) = std::env::var("DEEPSHRINK_ONNX_EXPORT_DIR") {
            onnx::save(&g, &Path::new(&out).join(format!("{name}.onnx"))).unwrap();
        }
    }
}

#[test]
fn depthwise_fixture_folds_constant_clip_bounds() {
    let Some(path) = fixture("depthwise") else { return };
    let g = onnx::load(&path).unwrap();
    let clips: Vec<_> = g.nodes.iter().filter(|n| matches!(n.op, Op::Clip { .. })).collect();
    assert_eq!(clips.len(), 1);
    assert_eq!(clips[0].op, Op::Clip { min: 0.0, max: 6.0 });
    assert_eq!(clips[0].inputs.len(), 1);
    let groups: Vec<usize> =
        g.nodes.iter().filter_map(|n| if let Op::Conv(c) = &n.op { Some(c.group) } else { None }).collect();
    assert_eq!(groups, [1, 2, 1, 16, 1, 32, 1]);
}

#[test]
fn bn_residual_fixture_keeps_batch_norm_parameters() {
    let Some(path) = fixture("bn_residual") else { return };
    let g = onnx::load(&path).unwrap();
    let bns: Vec<_> = g.nodes.iter().filter(|n| matches!(n.op, Op::BatchNormalization { .. })).collect();
    assert_eq!(bns.len(), 3);
    for bn in bns {
        assert_eq!(bn.inputs.len(), 5);
        assert_eq!(bn.outputs.len(), 1);
        assert!(bn.inputs[1..].iter().all(|i| g.weights.contains_key(i)), "{:?}", bn.inputs);
    }
}
