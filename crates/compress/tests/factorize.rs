//! Low-rank factorization against independent references (tensorly 0.10, NumPy and the
//! published EVBMF code, run offline by fixtures/make_lowrank.py into fixtures/lowrank.json),
//! and the graph rewrites against the original layers.

mod common;

use common::quadrants;
use deepshrink_compress::factorize::{cp, linalg, rank, tucker};
use deepshrink_compress::{run, Context, Recipe};
use deepshrink_engine::{zoo, Data, Model};
use deepshrink_graph::{ConvAttrs, Graph, Op, Tensor, ValueInfo};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/lowrank.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn kernel(f: &Value) -> (Vec<f64>, [usize; 4]) {
    let s: Vec<usize> = f["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
    (floats(&f["kernel"]), [s[0], s[1], s[2], s[3]])
}

#[test]
fn singular_values_match_numpy() {
    let f = fixture();
    let (w, [s, c, kh, kw]) = kernel(&f);
    let d = linalg::svd(&tucker::unfold0(&w, s, c * kh * kw)).unwrap();
    for (a, b) in d.s.iter().zip(floats(&f["singular_values_mode0"])) {
        assert!((a - b).abs() < 1e-9 * (1.0 + b), "{a} vs {b}");
    }
}

#[test]
fn tucker2_error_matches_tensorly() {
    let f = fixture();
    let (w, shape) = kernel(&f);
    for case in f["tucker"].as_array().unwrap() {
        let r: Vec<usize> =
            case["ranks"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        // HOSVD is deterministic: equal to NumPy's up to rounding.
        let h = tucker::decompose(&w, shape, r[0], r[1], 0, 1e-4).unwrap();
        let want = case["hosvd_error"].as_f64().unwrap();
        assert!((h.rel_error - want).abs() < 1e-6, "HOSVD {r:?}: {} vs {want}", h.rel_error);
        // HOOI (tensorly's partial_tucker, 100 rounds, tol 1e-4): within 1% of tensorly's error
        // or better.
        let o = tucker::decompose(&w, shape, r[0], r[1], 100, 1e-4).unwrap();
        let want = case["hooi_error"].as_f64().unwrap();
        assert!(o.rel_error <= want * 1.01, "HOOI {r:?}: {} vs tensorly {want}", o.rel_error);
    }
}

#[test]
fn cp_error_matches_tensorly() {
    let f = fixture();
    let (w, shape) = kernel(&f);
    for case in f["cp"].as_array().unwrap() {
        let r = case["rank"].as_u64().unwrap() as usize;
        // tensorly's parafac defaults: SVD initialisation, 100 sweeps, tol 1e-8.
        let d = cp::decompose(&w, shape, r, 100, 1e-8, 0).unwrap();
        let want = case["error"].as_f64().unwrap();
        assert!(d.rel_error <= want * 1.01, "CP rank {r}: {} vs tensorly {want}", d.rel_error);
    }
}

#[test]
fn vbmf_ranks_match_the_reference_code() {
    let f = fixture();
    let m = floats(&f["vbmf_matrix"]);
    let d = linalg::svd(&linalg::M::new(40, 60, m.clone())).unwrap();
    let n2 = m.iter().map(|v| v * v).sum();
    assert_eq!(rank::evbmf_rank(&d.s, 40, 60, n2) as u64, f["vbmf_rank"].as_u64().unwrap());
    let (w, [s, c, kh, kw]) = kernel(&f);
    let n2: f64 = w.iter().map(|v| v * v).sum();
    let s0 = linalg::svd(&tucker::unfold0(&w, s, c * kh * kw)).unwrap().s;
    let s1 = linalg::svd(&tucker::unfold1(&w, s, c, kh * kw)).unwrap().s;
    let want = f["vbmf_ranks_kernel"].as_array().unwrap();
    assert_eq!(rank::evbmf_rank(&s0, s, c * kh * kw, n2) as u64, want[0].as_u64().unwrap());
    assert_eq!(rank::evbmf_rank(&s1, c, s * kh * kw, n2) as u64, want[1].as_u64().unwrap());
}

/// One strided, padded conv (with bias) on a 2 x 9 x 7 input.
fn conv_graph(w: Tensor, attrs: ConvAttrs) -> Graph {
    let mut g = Graph::new("c", "x", &[w.shape[1], 9, 7]);
    let s = w.shape[0];
    g.add_weight("w", w);
    g.add_weight("b", Tensor::f32(vec![s], (0..s).map(|i| i as f32 * 0.1).collect()));
    let y = g.push("conv", Op::Conv(attrs), &["x", "w", "b"]);
    let out = g.infer_shapes(1).unwrap()[&y].clone();
    g.outputs.push(ValueInfo::batched(&y, &out[1..]));
    g
}

fn run_graph(g: Graph, x: &[f32]) -> Vec<f32> {
    Model::new(g).unwrap().forward(x, 1).unwrap().1
}

fn apply(g: &Graph, rw: deepshrink_compress::factorize::Rewrite) -> Graph {
    let mut h = g.clone();
    h.nodes = rw.nodes;
    h.weights.remove("w");
    h.weights.extend(rw.weights);
    h
}

#[test]
fn conv_rewrites_compute_the_same_layer() {
    let attrs = ConvAttrs { strides: [2, 1], pads: [1, 0, 1, 2], dilations: [1, 2], group: 1 };
    let (s, c, kh, kw) = (3, 2, 3, 2);
    // An exactly rank-2 CP kernel, so both decompositions are exact at full / CP rank.
    let a = [
        vec![1.0, -2.0, 0.5, 1.5, 0.3, 1.0],
        vec![0.2, 1.0, -1.0, 0.7],
        vec![1.0, 0.5, -1.0, 0.2, 0.3, 1.0],
        vec![0.5, 1.0, 1.0, -0.5],
    ];
    let mut w = vec![0.0f32; s * c * kh * kw];
    for (i, v) in w.iter_mut().enumerate() {
        let idx = [i / (c * kh * kw), (i / (kh * kw)) % c, (i / kw) % kh, i % kw];
        *v = (0..2).map(|k| (0..4).map(|m| a[m][idx[m] * 2 + k]).product::<f64>()).sum::<f64>() as f32;
    }
    let g = conv_graph(Tensor::f32(vec![s, c, kh, kw], w.clone()), attrs.clone());
    let x: Vec<f32> = (0..c * 63).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
    let want = run_graph(g.clone(), &x);
    let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    let node = &g.nodes[0];

    let t = tucker::decompose(&w64, [s, c, kh, kw], s, c, 0, 1e-4).unwrap();
    let got = run_graph(apply(&g, tucker::rewrite(node, "w", &attrs, [s, c, kh, kw], &t)), &x);
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "tucker {a} vs {b}");
    }

    let d = cp::decompose(&w64, [s, c, kh, kw], 2, 500, 1e-14, 0).unwrap();
    assert!(d.rel_error < 1e-5, "{}", d.rel_error);
    let got = run_graph(apply(&g, cp::rewrite(node, "w", &attrs, [s, c, kh, kw], &d)), &x);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-3, "cp {a} vs {b}");
    }
}

#[test]
fn svd_pass_rewrites_fine_tunes_and_reports_skips() {
    let (xt, yt) = quadrants(400, 1);
    let (xs, ys) = quadrants(100, 2);
    let (train, test) = (Data { x: &xt, y: &yt }, Data { x: &xs, y: &ys });
    let mut model = Model::new(zoo::build("lenet-300-100", 3).unwrap()).unwrap();
    let cfg = deepshrink_engine::TrainConfig { epochs: 1, batch_size: 32, ..Default::default() };
    deepshrink_engine::train(&mut model, train, &cfg, &mut deepshrink_engine::NoHook, &mut |_| {}).unwrap();

    let recipe = Recipe::parse(
        "[[pass]]\nkind = \"svd\"\nrank = 8\nlayers = { \"fc3.weight\" = 50 }\ncheck_speed = false\n\
         finetune_epochs = 1\nlr = 1e-3\n",
    )
    .unwrap();
    let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let (state, report) = run(&recipe, model.to_graph(), &mut ctx).unwrap();
    let names: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["baseline", "svd (before fine-tuning)", "svd"]);
    assert!(report.stages[2].test_top1 > 0.95, "{:?}", report.stages);

    let rows: Vec<(&str, bool)> =
        report.factorized.iter().map(|r| (r.layer.as_str(), r.factorized)).collect();
    assert_eq!(rows, [("fc1.weight", true), ("fc2.weight", true), ("fc3.weight", false)]);
    let fc1 = &report.factorized[0];
    assert_eq!(
        (fc1.rank.as_str(), fc1.params_before, fc1.params_after),
        ("8", 784 * 300 + 300, 8 * 1084 + 300)
    );
    assert_eq!(fc1.macs_after, 8 * 1084);
    assert!(
        report.factorized[2].note.contains("rank 50 is above the full rank 10"),
        "{:?}",
        report.factorized[2]
    );

    let g = state.model.to_graph();
    let ops: Vec<(&str, &str)> = g.nodes.iter().map(|n| (n.name.as_str(), n.op.name())).collect();
    assert!(ops.contains(&("fc1.svd_in", "Gemm")) && ops.contains(&("fc1", "Gemm")), "{ops:?}");
    assert_eq!(g.weights["fc1.weight.svd_in"].shape, vec![8, 784]);
    assert!(!g.weights.contains_key("fc1.weight"));
    // The factor weights stay dense in the container's graph half.
    let (dense, sparse) = state.to_sparse();
    assert!(sparse.is_empty() && dense.weights.contains_key("fc1.weight.svd_out"));
}

#[test]
fn conv_passes_keep_layers_they_cannot_factor() {
    let (xs, ys) = quadrants(40, 2);
    let data = Data { x: &xs, y: &ys };
    let g = zoo::build("lenet-5", 1).unwrap();
    let mut nan = g.clone();
    nan.weights.get_mut("conv2.weight").unwrap().as_f32_mut().unwrap()[3] = f32::NAN;
    for (g, text, reason) in [
        (&g, "kind = \"tucker2\"\nrank = 30\n", "ranks 30x30 are above the full ranks 20x50"),
        (&nan, "kind = \"cp\"\nrank = 4\n", "not finite"),
    ] {
        let recipe =
            Recipe::parse(&format!("[[pass]]\n{text}check_speed = false\nfinetune_epochs = 0\n")).unwrap();
        let mut ctx = Context { train: data, test: data, batch_size: 8, seed: 0, progress: &mut |_, _| {} };
        let (_, report) = run(&recipe, g.clone(), &mut ctx).unwrap();
        let conv2 = report.factorized.iter().find(|r| r.layer == "conv2.weight").unwrap();
        assert!(!conv2.factorized && conv2.note.contains(reason), "{text}: {conv2:?}");
    }
}

#[test]
fn bad_factorization_recipes_are_one_line_errors() {
    for (text, needle) in [
        ("kind = \"svd\"\nrank = 0\n", "rank 0"),
        ("kind = \"svd\"\nrank = 4\nenergy = 0.9\n", "exactly one"),
        ("kind = \"svd\"\nscope = \"net\"\n", "needs a ratio"),
        ("kind = \"tucker2\"\nlayers = { \"c\" = 0 }\n", "rank 0 for c"),
        ("kind = \"cp\"\nmax_iter = 0\n", "max_iter"),
        ("kind = \"cp\"\nenergy = 0.9\n", "energy"),
        ("kind = \"svd\"\nratio = 0.5\n", "above 1"),
    ] {
        let err = Recipe::parse(&format!("[[pass]]\n{text}")).unwrap_err().to_string();
        assert!(err.contains(needle) && !err.contains('\n'), "{text:?}: {err}");
    }
}
