//! The runtime on compressed weights against the dense runtime on the decoded weights, the dense
//! runtime against the engine, and every bad-input case.

use std::collections::BTreeMap;

use deepshrink_codec::{SparseMatrix, SparseValues};
use deepshrink_engine::rng::Rng;
use deepshrink_engine::{zoo, Model};
use deepshrink_graph::{ConvAttrs, Graph, Op, PoolAttrs, Tensor, ValueInfo};
use deepshrink_runtime::{median_latency, Runtime, RuntimeError};

/// Normalised tolerance: max |a - b| / max(1, max |b|).
const TOL: f32 = 1e-5;

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let err = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(err <= TOL * scale, "{what}: max error {err} (scale {scale})");
}

fn gemm(trans_b: bool) -> Op {
    Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b }
}

/// Compresses `name` in place: keeps about `keep` of its weights (at random), and with `codebook`
/// snaps the survivors to 16 shared values. The dense graph gets the decoded weight; the
/// returned matrix is what a `.dsk` would hold.
fn compress(g: &mut Graph, name: &str, keep: f32, codebook: bool, rng: &mut Rng) -> SparseMatrix {
    let t = g.weights.get_mut(name).expect("weight exists");
    let shape = t.shape.clone();
    let data = t.as_f32_mut().expect("f32");
    let centroids: Vec<f32> = (0..16).map(|i| (i as f32 - 7.5) / 20.0).collect();
    let mut codes = Vec::new();
    for v in data.iter_mut() {
        if rng.uniform() >= keep {
            *v = 0.0;
        } else if codebook {
            let c = rng.below(16);
            *v = centroids[c];
            codes.push(c as u16);
        } else if *v == 0.0 {
            *v = 0.25;
        }
    }
    let mut m = SparseMatrix::from_dense(&shape, data);
    if codebook {
        m.values = SparseValues::Codebook { centroids, codes };
    }
    assert_eq!(m.to_dense().as_f32(), Some(&data[..]), "decoding restores the dense weight");
    m
}

fn random(shape: Vec<usize>, rng: &mut Rng) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, (0..n).map(|_| rng.range(-0.5, 0.5)).collect())
}

/// 20 -> 30 (trans_b, f32) -> relu -> 16 (trans_b = false, codebook, alpha/beta) -> relu -> 10
/// (dense) -> softmax.
fn mlp(rng: &mut Rng) -> Graph {
    let mut g = Graph::new("mlp", "x", &[20]);
    g.add_weight("w1", random(vec![30, 20], rng));
    g.add_weight("b1", random(vec![30], rng));
    g.add_weight("w2", random(vec![30, 16], rng));
    g.add_weight("b2", random(vec![1, 16], rng));
    g.add_weight("w3", random(vec![10, 16], rng));
    g.add_weight("b3", random(vec![10], rng));
    g.push("fc1", gemm(true), &["x", "w1", "b1"]);
    g.push("r1", Op::Relu, &["fc1"]);
    g.push("fc2", Op::Gemm { alpha: 0.5, beta: 2.0, trans_a: false, trans_b: false }, &["r1", "w2", "b2"]);
    g.push("r2", Op::Relu, &["fc2"]);
    g.push("fc3", gemm(true), &["r2", "w3", "b3"]);
    let out = g.push("prob", Op::Softmax { axis: 1 }, &["fc3"]);
    g.outputs.push(ValueInfo::batched(&out, &[10]));
    g
}

/// LeNet-5-like: conv 3x3 pad 1 (f32) -> relu -> maxpool -> conv 3x3 stride 2 dilation 1
/// (codebook) -> relu -> flatten -> fc (codebook) -> fc (f32, trans_b = false).
fn convnet(rng: &mut Rng) -> Graph {
    let mut g = Graph::new("convnet", "x", &[2, 12, 12]);
    g.add_weight("c1.w", random(vec![6, 2, 3, 3], rng));
    g.add_weight("c1.b", random(vec![6], rng));
    g.add_weight("c2.w", random(vec![8, 6, 3, 3], rng));
    g.add_weight("f1.w", random(vec![20, 8 * 3 * 3], rng));
    g.add_weight("f1.b", random(vec![20], rng));
    g.add_weight("f2.w", random(vec![20, 10], rng));
    let c1 = ConvAttrs { pads: [1, 1, 1, 1], ..Default::default() };
    g.push("conv1", Op::Conv(c1), &["x", "c1.w", "c1.b"]);
    g.push("relu1", Op::Relu, &["conv1"]);
    g.push("pool1", Op::MaxPool(PoolAttrs::square(2)), &["relu1"]);
    let c2 = ConvAttrs { strides: [2, 2], pads: [0, 0, 1, 1], ..Default::default() };
    g.push("conv2", Op::Conv(c2), &["pool1", "c2.w"]);
    g.push("relu2", Op::Relu, &["conv2"]);
    g.push("flat", Op::Flatten { axis: 1 }, &["relu2"]);
    g.push("fc1", gemm(true), &["flat", "f1.w", "f1.b"]);
    g.push("relu3", Op::Relu, &["fc1"]);
    let out = g.push("fc2", gemm(false), &["relu3", "f2.w"]);
    g.outputs.push(ValueInfo::batched(&out, &[10]));
    g
}

/// Compresses the listed weights of `g`; returns (sparse runtime, dense runtime on the decoded
/// weights, the decoded graph).
fn both(mut g: Graph, which: &[(&str, bool)], rng: &mut Rng) -> (Runtime, Runtime, Graph) {
    let mut sparse = BTreeMap::new();
    for &(name, codebook) in which {
        sparse.insert(name.to_string(), compress(&mut g, name, 0.1, codebook, rng));
    }
    let mut stored = g.clone();
    for name in sparse.keys() {
        stored.weights.remove(name);
    }
    let rt = Runtime::new(stored, sparse).expect("sparse runtime loads");
    (rt, Runtime::dense(g.clone()).expect("dense runtime loads"), g)
}

fn input(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.range(-1.0, 1.0)).collect()
}

#[test]
fn sparse_mlp_matches_dense_and_engine() {
    let mut rng = Rng::new(1);
    let (rt, dense, g) = both(mlp(&mut rng), &[("w1", false), ("w2", true)], &mut rng);
    let kinds: Vec<&str> = rt.node_kinds().iter().map(|k| k.2).collect();
    assert_eq!(kinds, ["sparse-f32", "dense", "sparse-lut", "dense", "dense", "dense"]);
    let model = Model::new(g).unwrap();
    for batch in [1, 3, 8] {
        let x = input(20 * batch, &mut rng);
        let (s1, y1) = rt.run(&x, batch).unwrap();
        let (s2, y2) = dense.run(&x, batch).unwrap();
        let (s3, y3) = model.forward(&x, batch).unwrap();
        assert_eq!((&s1, &s2, &s3), (&vec![batch, 10], &vec![batch, 10], &vec![batch, 10]));
        assert_close(&y1, &y2, &format!("sparse vs dense, batch {batch}"));
        assert_close(&y2, &y3, &format!("dense vs engine, batch {batch}"));
    }
}

#[test]
fn sparse_convnet_matches_dense_and_engine() {
    let mut rng = Rng::new(2);
    let which = [("c1.w", false), ("c2.w", true), ("f1.w", true), ("f2.w", false)];
    let (rt, dense, g) = both(convnet(&mut rng), &which, &mut rng);
    let kinds: Vec<(String, &str)> =
        rt.node_kinds().into_iter().filter(|k| k.2 != "dense").map(|k| (k.0, k.2)).collect();
    let expected =
        [("conv1", "sparse-f32"), ("conv2", "sparse-lut"), ("fc1", "sparse-lut"), ("fc2", "sparse-f32")];
    assert_eq!(kinds, expected.map(|(a, b)| (a.to_string(), b)));
    let model = Model::new(g).unwrap();
    for batch in [1, 2, 5] {
        let x = input(2 * 12 * 12 * batch, &mut rng);
        let (_, y1) = rt.run(&x, batch).unwrap();
        let (_, y2) = dense.run(&x, batch).unwrap();
        let (_, y3) = model.forward(&x, batch).unwrap();
        assert_close(&y1, &y2, &format!("sparse vs dense, batch {batch}"));
        assert_close(&y2, &y3, &format!("dense vs engine, batch {batch}"));
    }
}

/// The zoo's LeNets pruned to 8%, as Deep Compression leaves them.
#[test]
fn pruned_zoo_lenets_match_dense() {
    let mut rng = Rng::new(3);
    for (name, which) in [
        ("lenet-300-100", vec![("fc1.weight", false), ("fc2.weight", true), ("fc3.weight", false)]),
        (
            "lenet-5",
            vec![
                ("conv1.weight", false),
                ("conv2.weight", true),
                ("fc1.weight", true),
                ("fc2.weight", false),
            ],
        ),
    ] {
        let (rt, dense, g) = both(zoo::build(name, 0).unwrap(), &which, &mut rng);
        let model = Model::new(g).unwrap();
        for batch in [1, 4] {
            let x = input(784 * batch, &mut rng);
            let (_, y1) = rt.run(&x, batch).unwrap();
            let (_, y2) = dense.run(&x, batch).unwrap();
            let (_, y3) = model.forward(&x, batch).unwrap();
            assert_close(&y1, &y2, &format!("{name} sparse vs dense, batch {batch}"));
            assert_close(&y2, &y3, &format!("{name} dense vs engine, batch {batch}"));
        }
        let (total, nodes) = median_latency(&rt, &input(784, &mut rng), 1, 5).unwrap();
        assert_eq!(nodes.len(), rt.node_kinds().len());
        assert!(nodes.iter().map(|n| n.time).sum::<std::time::Duration>() <= total * 2);
    }
}

fn mlp_parts(rng: &mut Rng) -> (Graph, BTreeMap<String, SparseMatrix>) {
    let mut g = mlp(rng);
    let m = compress(&mut g, "w1", 0.1, false, rng);
    g.weights.remove("w1");
    (g, BTreeMap::from([("w1".to_string(), m)]))
}

#[test]
fn wrong_input_length_is_an_error() {
    let mut rng = Rng::new(4);
    let (g, sparse) = mlp_parts(&mut rng);
    let rt = Runtime::new(g, sparse).unwrap();
    let err = rt.run(&[0.0; 21], 1).unwrap_err();
    assert!(matches!(err, RuntimeError::Input { expected: 20, got: 21, .. }), "{err}");
    assert!(rt.run(&[0.0; 40], 1).is_err());
    // An empty batch returns a result or an error, never a panic.
    let _ = rt.run(&[], 0);
}

#[test]
fn sparse_weight_feeding_an_unsupported_op_is_refused() {
    let mut rng = Rng::new(5);
    let (mut g, sparse) = mlp_parts(&mut rng);
    // As input A of a Gemm.
    g.nodes[0].inputs = vec!["w1".into(), "x".into()];
    let err = Runtime::new(g.clone(), sparse.clone()).err().expect("refused");
    assert!(matches!(&err, RuntimeError::SparseUse { position: 0, .. }), "{err}");
    // Into an Add.
    let (mut g, sparse) = mlp_parts(&mut rng);
    g.push("add", Op::Add, &["prob", "w1"]);
    let err = Runtime::new(g, sparse).err().expect("refused");
    assert!(matches!(&err, RuntimeError::SparseUse { op: "Add", .. }), "{err}");
    assert!(err.to_string().contains("'w1'") && err.to_string().contains("'add'"), "{err}");
}

#[test]
fn grouped_sparse_conv_and_malformed_weights_are_refused() {
    let mut rng = Rng::new(6);
    let mut g = Graph::new("grouped", "x", &[4, 6, 6]);
    g.add_weight("w", random(vec![4, 2, 3, 3], &mut rng));
    let out = g.push("conv", Op::Conv(ConvAttrs { group: 2, ..Default::default() }), &["x", "w"]);
    g.outputs.push(ValueInfo::batched(&out, &[4, 4, 4]));
    let m = compress(&mut g, "w", 0.2, false, &mut rng);
    assert!(Runtime::dense(g.clone()).is_ok());
    let err = Runtime::new(g.clone(), BTreeMap::from([("w".into(), m.clone())])).err().expect("refused");
    assert!(matches!(&err, RuntimeError::SparseUse { .. }) && err.to_string().contains("group"), "{err}");

    let (g, mut sparse) = mlp_parts(&mut rng);
    sparse.get_mut("w1").unwrap().col_idx[0] = 20;
    let err = Runtime::new(g.clone(), sparse).err().expect("refused");
    assert!(matches!(&err, RuntimeError::SparseWeight { .. }), "{err}");

    let (_, mut sparse) = mlp_parts(&mut rng);
    let w = sparse.get_mut("w1").unwrap();
    let nnz = w.nnz();
    w.values = SparseValues::Codebook { centroids: vec![0.0; 2], codes: vec![2; nnz] };
    let err = Runtime::new(g.clone(), sparse).err().expect("refused");
    assert!(matches!(&err, RuntimeError::SparseWeight { .. }), "{err}");

    let (_, mut sparse) = mlp_parts(&mut rng);
    sparse.get_mut("w1").unwrap().shape = vec![30, 21];
    let err = Runtime::new(g.clone(), sparse).err().expect("shape mismatch refused");
    assert!(matches!(&err, RuntimeError::SparseWeight { .. } | RuntimeError::Graph(_)), "{err}");

    let (mut g2, sparse) = mlp_parts(&mut rng);
    g2.nodes[1].inputs[0] = "nowhere".into();
    let err = Runtime::new(g2, sparse).err().expect("refused");
    assert!(matches!(&err, RuntimeError::Undefined { .. }), "{err}");
}

/// Dense depthwise convs (the CP chain's k×1 and 1×k steps) run on the engine's direct depthwise
/// kernel through the runtime; checked against the convolution sum written out per output cell.
#[test]
fn dense_depthwise_conv_matches_the_definition() {
    let mut rng = Rng::new(21);
    let (c, h, w) = (3, 6, 5);
    for (kh, kw, a) in [
        (3, 1, ConvAttrs { pads: [1, 0, 1, 0], group: 3, ..Default::default() }),
        (1, 3, ConvAttrs { strides: [1, 2], pads: [0, 1, 0, 1], group: 3, ..Default::default() }),
        (3, 3, ConvAttrs { pads: [2, 1, 0, 1], dilations: [2, 1], group: 3, ..Default::default() }),
    ] {
        let mut g = Graph::new("dw", "x", &[c, h, w]);
        let k = random(vec![c, 1, kh, kw], &mut rng);
        let b = random(vec![c], &mut rng);
        let (kd, bd) = (k.as_f32().unwrap().to_vec(), b.as_f32().unwrap().to_vec());
        g.add_weight("k", k);
        g.add_weight("b", b);
        let y = g.push("dw", Op::Conv(a.clone()), &["x", "k", "b"]);
        let out = g.infer_shapes(1).unwrap()[&y].clone();
        g.outputs.push(ValueInfo::batched(&y, &out[1..]));
        let batch = 2;
        let x = input(batch * c * h * w, &mut rng);
        let (shape, got) = Runtime::dense(g).unwrap().run(&x, batch).unwrap();
        let (oh, ow) = (out[2], out[3]);
        assert_eq!(shape, vec![batch, c, oh, ow]);
        let mut want = Vec::new();
        for n in 0..batch {
            for ch in 0..c {
                for i in 0..oh {
                    for j in 0..ow {
                        let mut s = bd[ch];
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let ih =
                                    (i * a.strides[0] + ki * a.dilations[0]) as isize - a.pads[0] as isize;
                                let iw =
                                    (j * a.strides[1] + kj * a.dilations[1]) as isize - a.pads[1] as isize;
                                if (0..h as isize).contains(&ih) && (0..w as isize).contains(&iw) {
                                    let xi = ((n * c + ch) * h + ih as usize) * w + iw as usize;
                                    s += kd[(ch * kh + ki) * kw + kj] * x[xi];
                                }
                            }
                        }
                        want.push(s);
                    }
                }
            }
        }
        assert_close(&got, &want, &format!("{kh}x{kw} depthwise"));
    }
}
