//! The prune → share pipeline on a small learnable task: constraints hold exactly, accuracy
//! survives, and the sparse export matches the model.

mod common;

use common::quadrants;
use deepshrink_codec::SparseValues;
use deepshrink_compress::{run, Context, PassConfig, Recipe};
use deepshrink_engine::{evaluate, zoo, Data};

const RECIPE: &str = r#"
[[pass]]
kind = "prune"
sparsity = 0.9
layers = { "fc3.weight" = 0.5 }
schedule = "iterative"
steps = 2
retrain_epochs = 1
lr = 1e-3

[[pass]]
kind = "share"
bits_fc = 3
finetune_epochs = 1
lr = 1e-3

[[pass]]
kind = "huffman"
"#;

#[test]
fn prune_then_share_keeps_constraints_and_accuracy() {
    let (xt, yt) = quadrants(600, 1);
    let (xs, ys) = quadrants(200, 2);
    let train = Data { x: &xt, y: &yt };
    let test = Data { x: &xs, y: &ys };
    // Train the baseline first.
    let mut model = deepshrink_engine::Model::new(zoo::build("lenet-300-100", 3).unwrap()).unwrap();
    let cfg = deepshrink_engine::TrainConfig { epochs: 2, batch_size: 32, ..Default::default() };
    deepshrink_engine::train(&mut model, train, &cfg, &mut deepshrink_engine::NoHook, &mut |_| {}).unwrap();
    let base = evaluate(&model, test, 100, &mut |_| {}).unwrap().top1;
    assert!(base > 0.95, "baseline {base}");

    let recipe = Recipe::parse(RECIPE).unwrap();
    assert!(matches!(recipe.passes[0], PassConfig::Prune(_)));
    let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let (state, report) = run(&recipe, model.to_graph(), &mut ctx).unwrap();

    // Stages: baseline, prune 1/2, prune 2/2, share before and after fine-tuning.
    let names: Vec<&str> = report.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names, ["baseline", "prune 1/2", "prune 2/2", "share (before fine-tuning)", "share"]);
    assert!(report.stages.last().unwrap().test_top1 > 0.95, "{:?}", report.stages);
    assert!(report.warnings.is_empty());

    // Exact sparsity per layer, as configured.
    for row in &report.layers {
        let want = if row.name == "fc3.weight" { 0.5 } else { 0.9 };
        let dropped = ((want * row.weights as f32).round()) as usize;
        assert_eq!(row.kept, row.weights - dropped, "{}", row.name);
        assert_eq!(row.bits, Some(3));
    }

    // The weights themselves: zeros where pruned, at most 2^3 distinct values where kept, and
    // the sparse export stores exactly those.
    let (graph, sparse) = state.to_sparse();
    let trained = state.model.to_graph();
    for row in &report.layers {
        let w = trained.weights[&row.name].as_f32().unwrap();
        let m = &sparse[&row.name];
        assert_eq!(m.nnz(), row.kept);
        let mut distinct: Vec<f32> = (0..m.nnz()).map(|j| m.value(j)).collect();
        distinct.sort_by(f32::total_cmp);
        distinct.dedup();
        assert!(distinct.len() <= 8, "{}: {} values", row.name, distinct.len());
        assert!(matches!(m.values, SparseValues::Codebook { .. }));
        assert_eq!(m.to_dense().as_f32().unwrap(), w, "{}", row.name);
        assert!(!graph.weights.contains_key(&row.name));
    }
    assert!(graph.weights.contains_key("fc1.bias"));
}

#[test]
fn model_without_compressible_layers_is_an_error() {
    let mut g = deepshrink_graph::Graph::new("relu-only", "x", &[4]);
    let y = g.push("r", deepshrink_graph::Op::Relu, &["x"]);
    g.outputs.push(deepshrink_graph::ValueInfo::batched(&y, &[4]));
    let (x, labels) = (vec![0.0; 8], vec![0u32, 1]);
    let data = Data { x: &x, y: &labels };
    let mut ctx = Context { train: data, test: data, batch_size: 2, seed: 0, progress: &mut |_, _| {} };
    let err = run(&Recipe::parse(RECIPE).unwrap(), g, &mut ctx).err().unwrap().to_string();
    assert!(err.contains("no Gemm, MatMul or Conv"), "{err}");
}

/// Block pruning keeps whole aligned 1x4 groups of fc1 (and element-wise fc2/fc3 as
/// overridden), the container stores fc1 with block positions, and Hessian-weighted sharing
/// runs on the same pipeline.
#[test]
fn block_pruning_and_hessian_sharing() {
    let (xt, yt) = quadrants(400, 3);
    let (xs, ys) = quadrants(100, 4);
    let train = Data { x: &xt, y: &yt };
    let test = Data { x: &xs, y: &ys };
    let recipe = Recipe::parse(
        r#"
[[pass]]
kind = "prune"
sparsity = 0.9
schedule = "one-shot"
retrain_epochs = 1
lr = 1e-3
block = 4
block_layers = { "fc2.weight" = 1, "fc3.weight" = 1 }

[[pass]]
kind = "share"
bits_fc = 3
finetune_epochs = 0
hessian = true
calibration_samples = 64
"#,
    )
    .unwrap();
    let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let (state, _) = run(&recipe, zoo::build("lenet-300-100", 5).unwrap(), &mut ctx).unwrap();
    let (_, sparse) = state.to_sparse();
    let fc1 = &sparse["fc1.weight"];
    for r in 0..fc1.rows() {
        let row = &fc1.col_idx[fc1.row_ptr[r] as usize..fc1.row_ptr[r + 1] as usize];
        assert_eq!(row.len() % 4, 0);
        for b in row.chunks(4) {
            assert!(b[0] % 4 == 0 && b == [b[0], b[0] + 1, b[0] + 2, b[0] + 3], "row {r}: {b:?}");
        }
    }
    // 10% of fc1's 300 x 196 groups kept.
    assert_eq!(fc1.nnz(), 4 * (300 * 196 - (0.9f32 * (300 * 196) as f32).round() as usize));
    let (_, report) = deepshrink_codec::to_bytes(
        &deepshrink_codec::DskModel::new(state.model.to_graph(), sparse.clone()),
        &deepshrink_codec::PackOptions::default(),
    )
    .unwrap();
    let enc = |n: &str| report.tensors.iter().find(|t| t.name == n).unwrap().encoding.clone();
    assert_eq!(enc("fc1.weight"), "sparse_block_codebook");
    assert_eq!(enc("fc2.weight"), "sparse_codebook");
}

/// HashedNets trained end to end from a fresh initialisation: every weight of a hashed layer is
/// exactly ± its bucket's shared value (bucket and sign from the committed hash), and the
/// network still learns the task.
#[test]
fn hashed_layers_train_and_keep_their_structure() {
    let (xt, yt) = quadrants(600, 5);
    let (xs, ys) = quadrants(200, 6);
    let train = Data { x: &xt, y: &yt };
    let test = Data { x: &xs, y: &ys };
    let recipe =
        Recipe::parse("[[pass]]\nkind = \"hash\"\nfraction = 0.015625\nseed = 9\nepochs = 3\nlr = 3e-3\n")
            .unwrap();
    let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let (state, report) = run(&recipe, zoo::build("lenet-300-100", 1).unwrap(), &mut ctx).unwrap();
    assert!(report.stages.last().unwrap().test_top1 > 0.9, "{:?}", report.stages);
    let g = state.model.to_graph();
    for name in ["fc1.weight", "fc2.weight", "fc3.weight"] {
        let w = g.weights[name].as_f32().unwrap();
        let (k, seed) = state.hashed[name];
        assert_eq!(k, ((w.len() as f64 / 64.0).round() as usize).max(1));
        let mut shared = vec![None; k];
        for (p, &v) in w.iter().enumerate() {
            let (b, neg) = deepshrink_codec::hashing::bucket(seed, p as u64, k as u32);
            let s = if neg { -v } else { v };
            assert_eq!(*shared[b as usize].get_or_insert(s), s, "{name}[{p}]");
        }
        // What the container stores reproduces the trained weights bit for bit.
        let h = &state.hashed_tensors()[name];
        assert_eq!(h.values.len(), k);
        assert_eq!(h.to_dense().as_f32().unwrap(), w);
    }
    let (_, sparse) = state.to_sparse();
    assert!(sparse.is_empty(), "hashed layers are not stored as sparse matrices");
}

/// Ternary and binary QAT keep every layer on its grid (3 and 2 distinct values), still learn
/// the task, and the export stores the grid packed (`quant`: 2-bit and 1-bit codes) decoding to
/// exactly the trained weights.
#[test]
fn qat_keeps_weights_on_their_grid() {
    let (xt, yt) = quadrants(600, 7);
    let (xs, ys) = quadrants(200, 8);
    let train = Data { x: &xt, y: &yt };
    let test = Data { x: &xs, y: &ys };
    for (method, values, bits) in [("ternary", 3, 2), ("binary", 2, 1)] {
        let text = format!("[[pass]]\nkind = \"qat\"\nmethod = \"{method}\"\nepochs = 2\nlr = 1e-3\n");
        let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
        let (state, report) =
            run(&Recipe::parse(&text).unwrap(), zoo::build("lenet-300-100", 2).unwrap(), &mut ctx).unwrap();
        assert!(report.stages.last().unwrap().test_top1 > 0.9, "{method}: {:?}", report.stages);
        let g = state.model.to_graph();
        let (graph, sparse) = state.to_sparse();
        for name in ["fc1.weight", "fc2.weight", "fc3.weight"] {
            let mut d: Vec<f32> = g.weights[name].as_f32().unwrap().to_vec();
            d.sort_by(f32::total_cmp);
            d.dedup();
            assert!(d.len() <= values, "{method} {name}: {} values", d.len());
            let q = &state.quantized[name];
            assert_eq!(q.bits, bits);
            assert_eq!(q.to_dense().as_f32().unwrap(), g.weights[name].as_f32().unwrap());
            assert!(!sparse.contains_key(name) && !graph.weights.contains_key(name));
        }
    }
}

/// TTQ, LSQ int4 per channel and fixed point on the small task: each layer ends on its grid
/// (TTQ: `{+wp, 0, −wn}` with `wp ≠ wn` learned; LSQ: 15 levels per channel; fixed point:
/// multiples of `2^−FL`), the packed form decodes to the trained weights, and 16-bit fixed point
/// stays dense f32.
#[test]
fn learned_and_fixed_point_quantizers_end_on_their_grids() {
    let (xt, yt) = quadrants(600, 7);
    let (xs, ys) = quadrants(200, 8);
    let train = Data { x: &xt, y: &yt };
    let test = Data { x: &xs, y: &ys };
    let cases = [
        ("method = \"ttq\"", Some(2u8)),
        ("method = \"uniform\"\nbits = 4\ngranularity = \"channel\"\nlsq = true", Some(4)),
        ("method = \"fixed\"\nbits = 8", Some(8)),
        ("method = \"fixed\"\nbits = 8\nrounding = \"nearest\"", Some(8)),
        ("method = \"fixed\"\nbits = 16", None),
    ];
    for (body, bits) in cases {
        let text = format!("[[pass]]\nkind = \"qat\"\n{body}\nepochs = 2\nlr = 1e-3\n");
        let mut ctx = Context { train, test, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
        let (state, report) =
            run(&Recipe::parse(&text).unwrap(), zoo::build("lenet-300-100", 2).unwrap(), &mut ctx).unwrap();
        assert!(report.stages.last().unwrap().test_top1 > 0.9, "{body}: {:?}", report.stages);
        let g = state.model.to_graph();
        let (graph, _) = state.to_sparse();
        for name in ["fc1.weight", "fc2.weight", "fc3.weight"] {
            let w = g.weights[name].as_f32().unwrap();
            let Some(bits) = bits else {
                // 16-bit fixed point: dense f32 in the file, on a power-of-two grid.
                assert_eq!(graph.weights[name].as_f32().unwrap(), w);
                let on_grid = |fl: i32| {
                    w.iter().all(|v| {
                        let k = *v as f64 * 2f64.powi(fl);
                        k.fract() == 0.0 && k.abs() <= 32768.0
                    })
                };
                assert!((0..24).any(on_grid), "{name} is not 16-bit fixed point");
                continue;
            };
            let q = &state.quantized[name];
            assert_eq!(q.bits, bits, "{body}");
            assert_eq!(q.to_dense().as_f32().unwrap(), w, "{body} {name}");
            if body.contains("ttq") {
                let (wp, wn) = (q.scales[0], q.neg_scales.as_ref().unwrap()[0]);
                assert!(wp > 0.0 && wn > 0.0 && wp != wn, "{wp} {wn}");
            }
            if body.contains("fixed") {
                assert!(q.scales[0].log2().fract() == 0.0, "power-of-two scale {}", q.scales[0]);
            }
            if body.contains("lsq") {
                assert_eq!(q.scales.len(), q.rows());
                assert!(q.codes.iter().all(|&c| (1..=15).contains(&c)));
            }
        }
    }
}

/// `scope = "global"`: every layer ends on the same centroids (one network-wide codebook, kept
/// as k-means found it), and a recipe asking for different bits per layer is refused.
#[test]
fn global_sharing_uses_one_codebook_for_every_layer() {
    let (xt, yt) = quadrants(200, 5);
    let data = Data { x: &xt, y: &yt };
    let recipe = Recipe::parse(
        "[[pass]]\nkind = \"share\"\nbits_fc = 2\nscope = \"global\"\nhessian = true\ncalibration_samples = 64\nfinetune_epochs = 0\n",
    )
    .unwrap();
    let mut ctx = Context { train: data, test: data, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let (state, _) = run(&recipe, zoo::build("lenet-300-100", 1).unwrap(), &mut ctx).unwrap();
    let g = state.model.to_graph();
    let mut all = Vec::new();
    for name in ["fc1.weight", "fc2.weight", "fc3.weight"] {
        let mut v: Vec<f32> = g.weights[name].as_f32().unwrap().to_vec();
        v.sort_by(f32::total_cmp);
        v.dedup();
        assert!(v.len() <= 4, "{name}: {v:?}");
        all.extend(v);
    }
    all.sort_by(f32::total_cmp);
    all.dedup();
    assert!(all.len() <= 4, "layers do not share one codebook: {all:?}");
    let recipe = Recipe::parse(
        "[[pass]]\nkind = \"share\"\nbits_fc = 2\nlayers = { \"fc3.weight\" = 3 }\nscope = \"global\"\n",
    )
    .unwrap();
    let mut ctx = Context { train: data, test: data, batch_size: 32, seed: 0, progress: &mut |_, _| {} };
    let err = run(&recipe, zoo::build("lenet-300-100", 1).unwrap(), &mut ctx).err().unwrap();
    assert!(err.to_string().contains("same bits"), "{err}");
}
