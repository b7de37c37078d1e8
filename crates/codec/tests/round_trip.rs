//! Encode → decode reproduces every tensor bit for bit, and the size report is exact.

mod common;

use std::collections::BTreeMap;

use common::{lenet_300_100, random_blocked, random_sparse, Rng};
use deepshrink_codec::{
    from_bytes, from_bytes_with, to_bytes, DskModel, PackOptions, ReadOptions, SparseMatrix, SparseValues,
};
use deepshrink_graph::{Graph, Tensor};
use proptest::prelude::*;

fn model_of(name: &str, m: SparseMatrix) -> DskModel {
    DskModel {
        graph: Graph::default(),
        sparse: BTreeMap::from([(name.to_string(), m)]),
        ..Default::default()
    }
}

/// Round trip under every option combination; checks bit identity and report consistency.
fn check_round_trip(model: &DskModel) {
    for huffman in [false, true] {
        for bits in [None, Some(1), Some(3), Some(8), Some(16)] {
            let opts = PackOptions { index_bits: bits, huffman };
            let (bytes, report) = to_bytes(model, &opts).unwrap();
            assert_eq!(report.total_bytes, bytes.len());
            let parts: usize = report.tensors.iter().map(|t| t.total_bytes).sum();
            assert_eq!(report.header_and_graph_bytes + parts, bytes.len());
            for t in &report.tensors {
                let sum = t.header_bytes + t.index_bytes + t.value_bytes + t.codebook_bytes + t.table_bytes;
                assert_eq!(sum, t.total_bytes, "{t:?}");
            }
            let (back, read_report) = from_bytes_with(&bytes, &ReadOptions::default()).unwrap();
            assert_eq!(read_report, report);
            assert_eq!(back.graph, model.graph);
            assert_eq!(back.sparse.len(), model.sparse.len());
            for (name, m) in &model.sparse {
                let b = &back.sparse[name];
                assert_eq!((&b.shape, &b.row_ptr, &b.col_idx), (&m.shape, &m.row_ptr, &m.col_idx), "{name}");
                match (&b.values, &m.values) {
                    (SparseValues::F32(x), SparseValues::F32(y)) => {
                        assert!(x.iter().map(|v| v.to_bits()).eq(y.iter().map(|v| v.to_bits())))
                    }
                    (
                        SparseValues::Codebook { centroids: c1, codes: k1 },
                        SparseValues::Codebook { centroids: c2, codes: k2 },
                    ) => {
                        assert!(c1.iter().map(|v| v.to_bits()).eq(c2.iter().map(|v| v.to_bits())));
                        assert_eq!(k1, k2);
                    }
                    _ => panic!("{name}: value kind changed"),
                }
            }
        }
    }
}

#[test]
fn lenet_300_100_round_trips_and_dense_graph_is_bit_identical() {
    for bits in [None, Some(5)] {
        let model = lenet_300_100(7, 0.08, bits);
        check_round_trip(&model);
        let (bytes, _) = to_bytes(&model, &PackOptions::default()).unwrap();
        let back = from_bytes(&bytes).unwrap();
        back.validate().unwrap();
        let (d1, d2) = (model.to_dense_graph(), back.to_dense_graph());
        assert_eq!(d1.weights.len(), 6);
        for (name, t) in &d1.weights {
            let (a, b) = (t.as_f32().unwrap(), d2.weights[name].as_f32().unwrap());
            assert!(a.iter().map(|v| v.to_bits()).eq(b.iter().map(|v| v.to_bits())), "{name}");
        }
    }
}

#[test]
fn lenet_300_100_at_8_percent_with_5_bit_codebooks_is_small() {
    let model = lenet_300_100(1, 0.08, Some(5));
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    let nnz: usize = model.sparse.values().map(|m| m.nnz()).sum();
    // Random (structure-free) positions: ~5 bits of index and ~4.7 bits of code per entry.
    assert!(bytes.len() < nnz * 11 / 8 + 2500, "{} bytes for {nnz} entries", bytes.len());
    assert!(report.header_and_graph_bytes < 600, "{report:?}");
    for t in report.tensors.iter().filter(|t| t.nnz > 1000) {
        for s in [&t.index_stream, &t.code_stream].into_iter().flatten() {
            assert!(s.huffman, "{}: {s:?}", t.name);
            assert!(s.entropy_bits <= s.avg_code_bits && s.avg_code_bits < s.entropy_bits + 1.0);
        }
    }
}

#[test]
fn edge_cases_round_trip() {
    let mut rng = Rng(3);
    let cases = vec![
        SparseMatrix::from_dense(&[4, 5], &[0.0; 20]), // all zero
        SparseMatrix::from_dense(&[3, 4], &[1.5; 12]), // fully dense
        SparseMatrix::from_dense(&[0, 7], &[]),        // no rows
        SparseMatrix::from_dense(&[3, 0], &[]),        // no columns
        SparseMatrix::from_dense(&[], &[2.0]),         // scalar
        SparseMatrix::from_dense(&[1, 1000], &{
            let mut v = vec![0.0; 1000];
            v[999] = -1.0; // one gap far beyond 2^b
            v
        }),
        random_sparse(&mut rng, &[50, 3, 3, 3], 0.02, None), // empty rows, conv shape
        random_sparse(&mut rng, &[40, 60], 0.5, Some(1)),
        random_sparse(&mut rng, &[10, 10], 1.0, Some(3)), // dense codebook: no index stream
    ];
    for m in cases {
        check_round_trip(&model_of("w", m));
    }
    // Special float values survive bit for bit.
    let vals = [f32::NAN, -0.0, f32::INFINITY, f32::MIN_POSITIVE, -f32::MAX];
    let m = SparseMatrix::from_dense(&[1, 5], &vals);
    assert_eq!(m.nnz(), 4); // -0.0 == 0.0 is not stored by from_dense
    check_round_trip(&model_of("w", m));
    // A codebook that contains 0.0 and an unused 65536-entry codebook.
    let mut m = SparseMatrix::from_dense(&[2, 3], &[1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
    m.values = SparseValues::Codebook { centroids: vec![0.0, 7.0], codes: vec![0, 1, 0, 1] };
    check_round_trip(&model_of("w", m.clone()));
    m.values = SparseValues::Codebook { centroids: vec![0.5; 1 << 16], codes: vec![65535, 0, 1, 2] };
    check_round_trip(&model_of("w", m));
}

#[test]
fn dense_tensors_are_aligned_and_i64_round_trips() {
    let mut g = Graph::default();
    g.add_weight("a", Tensor::f32(vec![3], vec![1.0, 2.0, 3.0]));
    g.add_weight("bb", Tensor::i64(vec![2], vec![-5, i64::MAX]));
    g.add_weight("ccc", Tensor::f32(vec![1], vec![4.0]));
    let model = DskModel { graph: g, sparse: BTreeMap::new(), ..Default::default() };
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    let back = from_bytes(&bytes).unwrap();
    assert_eq!(back, model);
    // The data of every dense tensor sits at an aligned offset, right before its 4-byte CRC.
    let mut end = report.header_and_graph_bytes;
    for t in &report.tensors {
        end += t.total_bytes;
        let align = if t.encoding == "dense_i64" { 8 } else { 4 };
        assert_eq!((end - 4 - t.value_bytes) % align, 0, "{t:?}");
    }
}

#[test]
fn writer_rejects_inconsistent_matrices_naming_the_tensor() {
    let good = SparseMatrix::from_dense(&[2, 2], &[1.0, 0.0, 0.0, 2.0]);
    let mut bad = vec![];
    let mut m = good.clone();
    m.row_ptr = vec![0, 1];
    bad.push(m);
    let mut m = good.clone();
    m.col_idx = vec![0, 2];
    bad.push(m);
    let mut m = good.clone();
    m.values = SparseValues::F32(vec![1.0]);
    bad.push(m);
    let mut m = good.clone();
    m.values = SparseValues::Codebook { centroids: vec![1.0], codes: vec![0, 1] };
    bad.push(m);
    let mut m = good.clone();
    m.row_ptr = vec![0, 2, 1];
    bad.push(m);
    for m in bad {
        let err = to_bytes(&model_of("fc9.weight", m), &PackOptions::default()).unwrap_err();
        assert!(err.to_string().contains("fc9.weight"), "{err}");
    }
    let err =
        to_bytes(&model_of("w", good), &PackOptions { index_bits: Some(17), huffman: true }).unwrap_err();
    assert!(err.to_string().contains("index bits"), "{err}");
}

#[test]
fn a_name_both_dense_and_sparse_is_rejected() {
    let mut model = model_of("w", SparseMatrix::from_dense(&[1, 2], &[1.0, 0.0]));
    model.graph.add_weight("w", Tensor::f32(vec![1, 2], vec![1.0, 0.0]));
    assert!(to_bytes(&model, &PackOptions::default()).is_err());
    let fixed = DskModel::new(model.graph.clone(), model.sparse.clone());
    assert!(fixed.graph.weights.is_empty());
    assert!(to_bytes(&fixed, &PackOptions::default()).is_ok());
}

fn arb_matrix() -> impl Strategy<Value = SparseMatrix> {
    (0usize..12, 0usize..40, 0.0f64..1.0, any::<u64>(), prop::option::of(1u32..9)).prop_map(
        |(rows, cols, density, seed, bits)| {
            let mut rng = Rng(seed);
            random_sparse(&mut rng, &[rows, cols], density, bits)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_matrices_round_trip(m in arb_matrix()) {
        check_round_trip(&model_of("w", m));
    }

    #[test]
    fn random_blocked_matrices_round_trip(
        rows in 1usize..10, cols4 in 1usize..12, block in prop::sample::select(vec![2usize, 4, 8]),
        density in 0.0f64..1.0, seed in any::<u64>(), bits in prop::option::of(1u32..9),
    ) {
        let m = random_blocked(&mut Rng(seed), &[rows, cols4 * 8], block, density, bits);
        check_round_trip(&model_of("w", m));
    }

    #[test]
    fn random_raw_floats_round_trip(vals in prop::collection::vec(any::<u32>(), 0..200)) {
        let data: Vec<f32> = vals.iter().map(|&b| if b % 3 == 0 { 0.0 } else { f32::from_bits(b) }).collect();
        let m = SparseMatrix::from_dense(&[1, data.len()], &data);
        check_round_trip(&model_of("w", m));
    }
}

#[test]
#[ignore = "prints the LeNet-300-100 size report"]
fn print_lenet_report() {
    let model = lenet_300_100(1, 0.08, Some(5));
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    println!("{} bytes, header+graph {}", bytes.len(), report.header_and_graph_bytes);
    for t in &report.tensors {
        println!("{t:?}");
    }
}

/// A HashedNets tensor is stored as its seed and shared values only — `8 + vlen(k) + 4k` payload
/// bytes (docs/FORMAT.md, tag 8) — and decodes to the same virtual tensor.
#[test]
fn hashed_tensors_round_trip_in_their_formula_size() {
    let h = deepshrink_codec::HashedTensor {
        shape: vec![300, 784],
        seed: 42,
        values: (0..3675).map(|i| i as f32 * 1e-3).collect(),
    };
    let model = DskModel::default().with_hashed(BTreeMap::from([("fc1.weight".to_string(), h.clone())]));
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    let t = &report.tensors[0];
    assert_eq!(t.encoding, "hashed_f32");
    // Section: 8 framing + header (name, tag, rank, dims) + payload.
    let header = 1 + "fc1.weight".len() + 1 + 1 + 2 + 2;
    assert_eq!(t.total_bytes, 8 + header + 8 + 2 + 4 * 3675);
    let back = from_bytes(&bytes).unwrap();
    assert_eq!(back, model);
    let dense = back.to_dense_graph().weights["fc1.weight"].clone();
    assert_eq!(dense.shape, vec![300, 784]);
    // Every entry is ± one of the shared values.
    let vals = dense.as_f32().unwrap();
    assert!(vals.iter().all(|v| h.values.contains(&v.abs()) || h.values.contains(&-v.abs())));
    // A hashed tensor with no values is refused by the writer.
    let empty = deepshrink_codec::HashedTensor { values: Vec::new(), ..h };
    let bad = DskModel::default().with_hashed(BTreeMap::from([("w".to_string(), empty)]));
    assert!(to_bytes(&bad, &PackOptions::default()).is_err());
}

/// A block-circulant tensor is stored as its block size, sign seed and `p · q · b` defining
/// values — `1 + vlen(b) + 8 + 4pqb` payload bytes (docs/FORMAT.md, tag 9) — and decodes to the
/// block matrix SciPy builds from the same values (blocks `scipy.linalg.circulant(c)`, first
/// column `c`, cropped):
///
/// ```text
/// v = np.arange(1, 13.); b, q = 3, 2
/// np.block([[circulant(v[(i*q+j)*b:(i*q+j+1)*b]) for j in range(2)] for i in range(2)])[:4, :6]
/// ```
#[test]
fn circulant_tensors_round_trip_in_their_formula_size() {
    use deepshrink_codec::CirculantTensor;
    let t = CirculantTensor {
        shape: vec![4, 6],
        block: 3,
        sign_seed: None,
        values: (1..=12).map(|i| i as f32).collect(),
    };
    let scipy: [[f32; 6]; 4] = [
        [1., 3., 2., 4., 6., 5.],
        [2., 1., 3., 5., 4., 6.],
        [3., 2., 1., 6., 5., 4.],
        [7., 9., 8., 10., 12., 11.],
    ];
    assert_eq!(t.to_dense().as_f32().unwrap(), scipy.concat());
    // The sign diagonal negates whole input columns.
    let signed = CirculantTensor { sign_seed: Some(5), ..t.clone() };
    let neg = signed.negative().unwrap();
    let d = signed.to_dense();
    for (i, v) in d.as_f32().unwrap().iter().enumerate() {
        assert_eq!(*v, if neg[i % 6] { -scipy[i / 6][i % 6] } else { scipy[i / 6][i % 6] });
    }

    // LeNet-300-100's fc1 as one 784-circulant: 784 values instead of 235200.
    let big = CirculantTensor {
        shape: vec![300, 784],
        block: 784,
        sign_seed: Some(7),
        values: (0..784).map(|i| (i as f32).sin()).collect(),
    };
    let model = DskModel::default()
        .with_circulant(BTreeMap::from([("fc1.weight".to_string(), big.clone()), ("w".to_string(), signed)]));
    let (bytes, report) = to_bytes(&model, &PackOptions::default()).unwrap();
    let r = report.tensors.iter().find(|r| r.name == "fc1.weight").unwrap();
    assert_eq!(r.encoding, "circulant_f32");
    // Section: 8 framing + header (name, tag, rank, dims) + payload.
    let header = 1 + "fc1.weight".len() + 1 + 1 + 2 + 2;
    assert_eq!(r.total_bytes, 8 + header + 1 + 2 + 8 + 4 * 784);
    assert_eq!(big.payload_bytes(), 1 + 2 + 8 + 4 * 784);
    assert_eq!(from_bytes(&bytes).unwrap(), model);

    // The writer refuses a block that does not fit and a wrong value count.
    for bad in [
        CirculantTensor { block: 0, ..big.clone() },
        CirculantTensor { block: 785, ..big.clone() },
        CirculantTensor { block: 100, ..big.clone() },
    ] {
        let m = DskModel::default().with_circulant(BTreeMap::from([("w".to_string(), bad)]));
        assert!(to_bytes(&m, &PackOptions::default()).is_err());
    }
}
