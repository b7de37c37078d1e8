//! Spatially separable filters (Jaderberg et al. 2014, scheme 2) against NumPy and PyTorch
//! (fixtures/make_separable.py -> fixtures/separable.json, run offline), and the `separable`
//! pass end to end.

mod common;

use common::quadrants;
use deepshrink_compress::factorize::separable;
use deepshrink_compress::{run, Context, Recipe};
use deepshrink_engine::{zoo, Data, Model};
use deepshrink_graph::{ConvAttrs, Graph, Op, Tensor, ValueInfo};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/separable.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn kernel(f: &Value) -> (Vec<f64>, [usize; 4]) {
    let s = usizes(&f["shape"]);
    (floats(&f["kernel"]), [s[0], s[1], s[2], s[3]])
}

#[test]
fn singular_values_and_errors_match_numpy() {
    let f = fixture();
    let (w, shape) = kernel(&f);
    let d = separable::decompose(&w, shape).unwrap();
    for (a, b) in d.s.iter().zip(floats(&f["singular_values"])) {
        assert!((a - b).abs() < 1e-9 * (1.0 + b), "{a} vs {b}");
    }
    let node = deepshrink_graph::Node {
        name: "conv".into(),
        op: Op::Conv(ConvAttrs::default()),
        inputs: vec!["x".into(), "w".into()],
        outputs: vec!["y".into()],
    };
    for case in f["errors"].as_array().unwrap() {
        let k = case["rank"].as_u64().unwrap() as usize;
        let want = case["error"].as_f64().unwrap();
        let rw = separable::rewrite(&node, "w", &ConvAttrs::default(), shape, &d, k);
        assert!((rw.rel_error - want).abs() < 1e-9, "rank {k}: {} vs NumPy {want}", rw.rel_error);
        // The reconstruction the error describes.
        let rec = separable::reconstruct(&d, shape, k);
        let num: f64 = w.iter().zip(&rec).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        let den: f64 = w.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!((num / den - want).abs() < 1e-9, "rank {k}: reconstruction {} vs {want}", num / den);
    }
}

/// The conv of the fixture kernel (strides [2, 1], pads top 1, left 0, bottom 1, right 2,
/// dilations [1, 2], bias 0.1 n) on the fixture's 4 x 9 x 7 input.
fn conv_graph(f: &Value) -> (Graph, ConvAttrs) {
    let (w, shape) = kernel(f);
    let attrs = ConvAttrs { strides: [2, 1], pads: [1, 0, 1, 2], dilations: [1, 2], group: 1 };
    let x = usizes(&f["input_shape"]);
    let mut g = Graph::new("c", "x", &x[1..]);
    g.add_weight("w", Tensor::f32(shape.to_vec(), w.iter().map(|&v| v as f32).collect()));
    let n = shape[0];
    g.add_weight("b", Tensor::f32(vec![n], (0..n).map(|i| i as f32 * 0.1).collect()));
    let y = g.push("conv", Op::Conv(attrs.clone()), &["x", "w", "b"]);
    let out = g.infer_shapes(1).unwrap()[&y].clone();
    g.outputs.push(ValueInfo::batched(&y, &out[1..]));
    (g, attrs)
}

#[test]
fn separable_pair_matches_pytorch_and_is_exact_at_full_rank() {
    let f = fixture();
    let (w, shape) = kernel(&f);
    let (g, attrs) = conv_graph(&f);
    let x: Vec<f32> = floats(&f["input"]).iter().map(|&v| v as f32).collect();
    let d = separable::decompose(&w, shape).unwrap();
    let run_rank = |k: usize| {
        let mut h = g.clone();
        let rw = separable::rewrite(&g.nodes[0], "w", &attrs, shape, &d, k);
        h.nodes = rw.nodes;
        h.weights.remove("w");
        h.weights.extend(rw.weights);
        Model::new(h).unwrap().forward(&x, 1).unwrap()
    };
    // Rank 2 against torch.conv2d applied to the same two factors.
    let (s2, y2) = run_rank(2);
    assert_eq!(s2, usizes(&f["rank2_output_shape"]));
    for (a, b) in y2.iter().zip(floats(&f["rank2_output"])) {
        assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "rank 2: {a} vs PyTorch {b}");
    }
    // Full rank (min(C kh, N kw) = 12): the original convolution, by PyTorch and by the engine.
    let (_, yf) = run_rank(d.s.len());
    let orig = Model::new(g).unwrap().forward(&x, 1).unwrap().1;
    for ((a, b), c) in yf.iter().zip(floats(&f["full_output"])).zip(&orig) {
        assert!((*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()), "full rank: {a} vs PyTorch {b}");
        assert!((a - c).abs() < 1e-4 * (1.0 + c.abs()), "full rank: {a} vs the original layer {c}");
    }
}

#[test]
fn separable_pass_rewrites_and_reports() {
    let (xs, ys) = quadrants(60, 2);
    let data = Data { x: &xs, y: &ys };
    let g = zoo::build("lenet-5", 1).unwrap();
    let recipe = Recipe::parse(
        "[[pass]]\nkind = \"separable\"\nratio = 2.0\nlayers = { \"conv1.weight\" = 9 }\n\
         check_speed = false\nfinetune_epochs = 1\nlr = 1e-4\n",
    )
    .unwrap();
    let mut ctx = Context { train: data, test: data, batch_size: 16, seed: 0, progress: &mut |_, _| {} };
    let (state, report) = run(&recipe, g, &mut ctx).unwrap();
    let rows: Vec<(&str, bool)> =
        report.factorized.iter().map(|r| (r.layer.as_str(), r.factorized)).collect();
    assert_eq!(rows, [("conv1.weight", false), ("conv2.weight", true)]);
    // conv1 (1 -> 20, 5x5): the matrix is 5 x 100, so rank 9 is above the full rank.
    assert!(report.factorized[0].note.contains("rank 9 is above the full rank 5"), "{:?}", report.factorized);
    // conv2 (20 -> 50, 5x5 on 12x12 -> 8x8): rank K costs K (20*5*8*12 + 50*5*64) = 25600 K MACs
    // against 50*20*25*64 = 1.6M; half of that allows K = 31.
    let conv2 = &report.factorized[1];
    assert_eq!((conv2.rank.as_str(), conv2.macs_before, conv2.macs_after), ("31", 1_600_000, 31 * 25_600));
    assert_eq!(conv2.params_after, 31 * (20 * 5 + 50 * 5) + 50);
    let g = state.model.to_graph();
    assert_eq!(g.weights["conv2.weight.sep_v"].shape, vec![31, 20, 5, 1]);
    assert_eq!(g.weights["conv2.weight.sep_h"].shape, vec![50, 31, 1, 5]);
    assert!(!g.weights.contains_key("conv2.weight"));
}

#[test]
fn bad_separable_recipes_are_one_line_errors() {
    for (text, needle) in [
        ("rank = 0\n", "rank 0"),
        ("rank = 4\nvbmf = true\n", "exactly one"),
        ("ratio = 1.0\n", "above 1"),
        ("layers = { \"c\" = 0 }\n", "rank 0 for c"),
        ("lr = -1.0\n", "lr"),
    ] {
        let err = Recipe::parse(&format!("[[pass]]\nkind = \"separable\"\n{text}")).unwrap_err().to_string();
        assert!(err.contains(needle) && !err.contains('\n'), "{text:?}: {err}");
    }
}
