//! The runtime on quantized weights (integer kernels, activations quantized per call) against the
//! dense runtime on the decoded weights: within the error that int8 activations allow, for every
//! bit width, grouping and zero-point scheme, on Gemm; plus the dense fallback (Conv, MatMul).

use std::collections::BTreeMap;

use deepshrink_codec::{from_bytes, to_bytes, DskModel, PackOptions, QuantMatrix};
use deepshrink_engine::rng::Rng;
use deepshrink_graph::{ConvAttrs, Graph, Op, Tensor, ValueInfo};
use deepshrink_runtime::Runtime;

fn random_quant(shape: &[usize], bits: u8, per_row: bool, zp: bool, rng: &mut Rng) -> QuantMatrix {
    let n: usize = shape.iter().product();
    let g = if per_row { shape[0] } else { 1 };
    QuantMatrix {
        shape: shape.to_vec(),
        bits,
        scales: (0..g).map(|_| rng.range(0.01, 0.1)).collect(),
        zero_points: zp.then(|| (0..g).map(|_| rng.below(1 << bits) as u8).collect()),
        codes: (0..n).map(|_| rng.below(1 << bits) as u8).collect(),
        neg_scales: None,
        act_scale: None,
    }
}

fn inputs(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

/// Asserts `|got - want| <= Σ_c |w[o, c]| · max|x| / 254 · 1.01 + 1e-5 · max|want|` per output,
/// where `abs_w_sum[o]` is the row sum of |w|: with activations rounded to a step of at most
/// `max|x| / 127`, each product is off by at most half a step times |w|.
fn assert_within_activation_error(got: &[f32], want: &[f32], abs_w_sum: impl Fn(usize) -> f32, xmax: f32) {
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let bound = abs_w_sum(i) * xmax / 254.0 * 1.01 + 1e-5 * scale;
        assert!((g - w).abs() <= bound, "output {i}: {g} vs {w} (bound {bound})");
    }
}

fn fc_graph(rows: usize, cols: usize, rng: &mut Rng) -> Graph {
    let mut g = Graph::new("fc", "x", &[cols]);
    g.add_weight("w", Tensor::f32(vec![rows, cols], vec![0.0; rows * cols]));
    g.add_weight("b", Tensor::f32(vec![rows], inputs(rows, rng)));
    let out =
        g.push("fc", Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }, &["x", "w", "b"]);
    g.outputs.push(ValueInfo::batched(&out, &[rows]));
    g
}

#[test]
fn gemm_matches_decoded_dense_at_every_bit_width() {
    let mut rng = Rng::new(3);
    let (rows, cols) = (37, 300);
    for bits in [8u8, 4, 2, 1] {
        for per_row in [false, true] {
            for zp in [false, true] {
                if bits == 1 && zp {
                    continue;
                }
                let q = random_quant(&[rows, cols], bits, per_row, zp, &mut rng);
                let model = DskModel::new(fc_graph(rows, cols, &mut rng), BTreeMap::new())
                    .with_quantized(BTreeMap::from([("w".to_string(), q.clone())]));
                let dense = Runtime::dense(model.to_dense_graph()).unwrap();
                let rt = Runtime::from_model(model).unwrap();
                let kinds = rt.node_kinds();
                let want_kind = match bits {
                    8 => "int8",
                    4 => "int4",
                    2 => "int2",
                    _ => "binary",
                };
                assert_eq!(kinds[0].2, want_kind);
                let x = inputs(2 * cols, &mut rng);
                let (shape, got) = rt.run(&x, 2).unwrap();
                let (_, want) = dense.run(&x, 2).unwrap();
                assert_eq!(shape, vec![2, rows]);
                let w = q.to_dense();
                let w = w.as_f32().unwrap();
                let abs = |o: usize| w[(o % rows) * cols..][..cols].iter().map(|v| v.abs()).sum::<f32>();
                // Every width, binary included, multiplies int8-quantized activations.
                let xmax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert_within_activation_error(&got, &want, abs, xmax);
            }
        }
    }
}

/// Two-scale ternary weights (TTQ) run as two 2-bit products: the decoded model within the
/// int8 activation error.
#[test]
fn two_scale_ternary_gemm_matches_decoded_dense() {
    let mut rng = Rng::new(9);
    let (rows, cols) = (23, 150);
    let mut q = random_quant(&[rows, cols], 2, false, false, &mut rng);
    q.codes.iter_mut().for_each(|c| *c = 1 + *c % 3);
    q.neg_scales = Some(vec![q.scales[0] * 0.6]);
    let model = DskModel::new(fc_graph(rows, cols, &mut rng), BTreeMap::new())
        .with_quantized(BTreeMap::from([("w".to_string(), q.clone())]));
    let dense = Runtime::dense(model.to_dense_graph()).unwrap();
    let rt = Runtime::from_model(model).unwrap();
    assert_eq!(rt.node_kinds()[0].2, "ternary2");
    let x = inputs(3 * cols, &mut rng);
    let (_, got) = rt.run(&x, 3).unwrap();
    let (_, want) = dense.run(&x, 3).unwrap();
    let w = q.to_dense();
    let w = w.as_f32().unwrap();
    let abs = |o: usize| w[(o % rows) * cols..][..cols].iter().map(|v| v.abs()).sum::<f32>();
    let xmax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_within_activation_error(&got, &want, abs, xmax);
}

/// Quantized Conv weights are decoded at load time and run dense (the per-pixel integer GEMV
/// was slower than the f32 im2col GEMM): bit for bit the decoded model.
#[test]
fn conv_runs_decoded() {
    let mut rng = Rng::new(5);
    let mut g = Graph::new("conv", "x", &[3, 9, 9]);
    g.add_weight("w", Tensor::f32(vec![5, 3, 3, 3], vec![0.0; 135]));
    g.add_weight("b", Tensor::f32(vec![5], inputs(5, &mut rng)));
    let a = ConvAttrs { pads: [1, 1, 1, 1], strides: [2, 2], ..Default::default() };
    let out = g.push("conv", Op::Conv(a), &["x", "w", "b"]);
    g.outputs.push(ValueInfo::batched(&out, &[5, 5, 5]));
    let q = random_quant(&[5, 3, 3, 3], 8, true, false, &mut rng);
    let model = DskModel::new(g, BTreeMap::new()).with_quantized(BTreeMap::from([("w".to_string(), q)]));
    let dense = Runtime::dense(model.to_dense_graph()).unwrap();
    let rt = Runtime::from_model(model).unwrap();
    assert_eq!(rt.node_kinds()[0].2, "dense");
    let x = inputs(2 * 3 * 81, &mut rng);
    assert_eq!(rt.run(&x, 2).unwrap(), dense.run(&x, 2).unwrap());
}

/// A quantized weight read where the kernels cannot run it (Gemm without trans_b: per-row
/// scales along the reduced dimension) is decoded and runs dense, bit for bit as the decoded model.
#[test]
fn unsupported_operands_run_decoded() {
    let mut rng = Rng::new(7);
    let mut g = Graph::new("fc", "x", &[6]);
    g.add_weight("w", Tensor::f32(vec![6, 4], vec![0.0; 24]));
    let out = g.push("fc", Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false }, &["x", "w"]);
    g.outputs.push(ValueInfo::batched(&out, &[4]));
    let q = random_quant(&[6, 4], 4, true, false, &mut rng);
    let model = DskModel::new(g, BTreeMap::new()).with_quantized(BTreeMap::from([("w".to_string(), q)]));
    let dense = Runtime::dense(model.to_dense_graph()).unwrap();
    let rt = Runtime::from_model(model).unwrap();
    assert_eq!(rt.node_kinds()[0].2, "dense");
    let x = inputs(6, &mut rng);
    assert_eq!(rt.run(&x, 1).unwrap(), dense.run(&x, 1).unwrap());
}

/// Written, read back and run: the container holds what the runtime needs.
#[test]
fn runs_from_file_bytes() {
    let mut rng = Rng::new(9);
    let q = random_quant(&[10, 70], 4, true, true, &mut rng);
    let model = DskModel::new(fc_graph(10, 70, &mut rng), BTreeMap::new())
        .with_quantized(BTreeMap::from([("w".to_string(), q)]));
    let (bytes, _) = to_bytes(&model, &PackOptions::default()).unwrap();
    let back = from_bytes(&bytes).unwrap();
    assert_eq!(back, model);
    let x = inputs(70, &mut rng);
    let a = Runtime::from_model(model).unwrap().run(&x, 1).unwrap();
    let b = Runtime::from_model(back).unwrap().run(&x, 1).unwrap();
    assert_eq!(a, b);
}

/// XNOR-Net: a binary Gemm whose input is a `Sign` node's output runs on the XNOR-popcount
/// kernel (kind "xnor"), and gives the float product of the decoded ±α weights with the ±1
/// signs (the engine's simulation) up to float rounding — no activation quantization error,
/// unlike the int8 path; at batch 1 and 3, through the file bytes too.
#[test]
fn binary_gemm_after_sign_runs_xnor_and_matches_the_float_model() {
    let mut rng = Rng::new(21);
    let (rows, cols) = (29, 200);
    let q = random_quant(&[rows, cols], 1, true, false, &mut rng);
    let mut g = Graph::new("xnor", "x", &[cols]);
    g.add_weight("w", Tensor::f32(vec![rows, cols], vec![0.0; rows * cols]));
    g.add_weight("b", Tensor::f32(vec![rows], inputs(rows, &mut rng)));
    let s = g.push("fc.sign", Op::Sign, &["x"]);
    let out =
        g.push("fc", Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true }, &[&s, "w", "b"]);
    g.outputs.push(ValueInfo::batched(&out, &[rows]));
    let model = DskModel::new(g, BTreeMap::new()).with_quantized(BTreeMap::from([("w".to_string(), q)]));
    let engine = deepshrink_engine::Model::new(model.to_dense_graph()).unwrap();
    let (bytes, _) = to_bytes(&model, &PackOptions::default()).unwrap();
    let rt = Runtime::from_model(from_bytes(&bytes).unwrap()).unwrap();
    let kinds = rt.node_kinds();
    assert_eq!((kinds[0].2, kinds[1].2), ("dense", "xnor"), "{kinds:?}");
    for batch in [1, 3] {
        let mut x = inputs(batch * cols, &mut rng);
        x[0] = 0.0; // sign(0) = +1 on both sides
        let (_, got) = rt.run(&x, batch).unwrap();
        let (_, want) = engine.forward(&x, batch).unwrap();
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!((a - b).abs() <= 1e-5 * scale, "batch {batch} output {i}: {a} vs {b}");
        }
    }
    // Without the Sign node the same weights take the int8-activation kernel.
    let rt =
        Runtime::from_model(DskModel::new(fc_graph(rows, cols, &mut rng), BTreeMap::new()).with_quantized(
            BTreeMap::from([("w".to_string(), random_quant(&[rows, cols], 1, true, false, &mut rng))]),
        ))
        .unwrap();
    assert_eq!(rt.node_kinds()[0].2, "binary");
}
