//! The runtime on block-circulant weights (FFT kernel) against the dense runtime on the expanded
//! matrix: Gemm with `trans_b` at batch 1 and 5, through a written and re-read container, and the
//! dense fallback where the kernel does not apply.

use std::collections::BTreeMap;

use deepshrink_codec::{from_bytes, to_bytes, CirculantTensor, DskModel, PackOptions};
use deepshrink_engine::rng::Rng;
use deepshrink_graph::{Graph, Op, Tensor, ValueInfo};
use deepshrink_runtime::Runtime;

fn circulant(rows: usize, cols: usize, block: usize, rng: &mut Rng) -> CirculantTensor {
    let n = CirculantTensor::value_count(rows, cols, block);
    CirculantTensor {
        shape: vec![rows, cols],
        block,
        sign_seed: Some(3),
        values: (0..n).map(|_| rng.range(-0.2, 0.2)).collect(),
    }
}

fn fc(rows: usize, cols: usize, trans_b: bool, rng: &mut Rng) -> Graph {
    let mut g = Graph::new("fc", "x", &[cols]);
    let shape = if trans_b { vec![rows, cols] } else { vec![cols, rows] };
    g.add_weight("w", Tensor::f32(shape, vec![0.0; rows * cols]));
    g.add_weight("b", Tensor::f32(vec![rows], (0..rows).map(|_| rng.range(-1.0, 1.0)).collect()));
    let op = Op::Gemm { alpha: 0.5, beta: 1.0, trans_a: false, trans_b };
    let out = g.push("fc", op, &["x", "w", "b"]);
    g.outputs.push(ValueInfo::batched(&out, &[rows]));
    g
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "output {i}: {g} vs {w}");
    }
}

#[test]
fn gemm_runs_on_the_fft_kernel_and_matches_dense() {
    let mut rng = Rng::new(1);
    // Small layers run dense: their dense product costs less than twice the FFTs' operations.
    for (rows, cols, block, kind) in [
        (300, 784, 784, "circulant"),
        (100, 300, 64, "circulant"),
        (10, 100, 100, "dense"),
        (37, 29, 5, "dense"),
        (64, 200, 16, "circulant"),
    ] {
        let t = circulant(rows, cols, block, &mut rng);
        let model = DskModel::new(fc(rows, cols, true, &mut rng), BTreeMap::new())
            .with_circulant(BTreeMap::from([("w".into(), t)]));
        let (bytes, _) = to_bytes(&model, &PackOptions::default()).unwrap();
        let model = from_bytes(&bytes).unwrap();
        let dense = Runtime::dense(model.to_dense_graph()).unwrap();
        let rt = Runtime::from_model(model).unwrap();
        assert_eq!(rt.node_kinds()[0].2, kind, "{rows}x{cols} block {block}");
        for batch in [1, 5] {
            let x: Vec<f32> = (0..batch * cols).map(|_| rng.range(-1.0, 1.0)).collect();
            let (s, y) = rt.run(&x, batch).unwrap();
            let (ds, dy) = dense.run(&x, batch).unwrap();
            assert_eq!(s, ds);
            assert_close(&y, &dy);
        }
    }
}

/// A circulant weight read by a Gemm without `trans_b` is expanded and runs dense, exactly as
/// the expanded model.
#[test]
fn other_operands_run_expanded() {
    let mut rng = Rng::new(2);
    let t = circulant(8, 6, 4, &mut rng);
    let mut g = fc(6, 8, false, &mut rng);
    g.weights.get_mut("w").unwrap().shape = vec![8, 6];
    let model = DskModel::new(g, BTreeMap::new()).with_circulant(BTreeMap::from([("w".into(), t.clone())]));
    let dense = Runtime::dense(model.to_dense_graph()).unwrap();
    let rt = Runtime::from_model(model.clone()).unwrap();
    assert_eq!(rt.node_kinds()[0].2, "dense");
    let x: Vec<f32> = (0..8).map(|_| rng.range(-1.0, 1.0)).collect();
    assert_eq!(rt.run(&x, 1).unwrap(), dense.run(&x, 1).unwrap());
    // A malformed tensor built in memory is an error at load time, not a panic.
    let bad = CirculantTensor { values: vec![0.0; 3], ..t };
    let model = DskModel { circulant: BTreeMap::from([("w".into(), bad)]), ..model };
    assert!(Runtime::from_model(model).is_err());
}
